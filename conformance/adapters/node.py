"""Node.js stdio shims: every IUT whose ``iut.toml`` says ``[launcher] type = "node"`` (werift, libjuice, ...).

Theory of operation: each shim is a folder next to this module (``werift/``, ``libjuice/``, ``nodeturn/``, ...)
holding ``shim.js`` (the adapter contract over JSON-RPC lines, on ``_node/common.js`` and ``_node/serve.js``), an
exactly pinned ``package.json`` with its ``package-lock.json``, and ``iut.toml`` (what it declares). The npm
dependencies never go into the source tree: they are installed with ``npm ci`` into a per-user cache folder keyed
by the sha256 of the lock file, so a changed lock gets a fresh install and two pytest-xdist workers racing on the
same install are safe (each installs into a private temporary folder and renames it into place; the loser discards
its copy). ``shim.js`` runs from the
repository and finds its packages through ``NODE_PATH``.

Typical use::

    argv, env = launch("werift")            # installs on first use
    adapter = StdioAdapter(netns.wrap(argv), env=env)

Every shim restricts itself to loopback (interfaces, server addresses and remote candidates must be loopback
literals); :func:`conformance.netns.wrap` additionally runs it in a private network namespace that holds only
``lo`` when that is possible (root and a working ``unshare -n``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from conformance.adapters.base import AdapterError

if TYPE_CHECKING:
    from conformance.adapters.registry import IutSpec, NodeLauncher

__all__ = [
    "HERE",
    "NodeShimMissing",
    "binary_version",
    "cache_root",
    "capabilities",
    "ensure_installed",
    "installed_version",
    "launch",
    "lock_hash",
    "node_available",
    "node_shims",
    "shim_dir",
]

logger = logging.getLogger(__name__)

#: The folder holding the shim folders.
HERE = Path(__file__).resolve().parent

#: How long one ``npm ci`` may take before it is abandoned.
NPM_TIMEOUT = 600.0


class NodeShimMissing(AdapterError):
    """Node.js or npm is missing, or installing a shim's packages failed."""


def node_shims() -> dict[str, IutSpec]:
    """Every registered IUT launched as a Node shim (``[launcher] type = "node"`` in its ``iut.toml``), by name."""
    from .registry import REGISTRY

    return {name: spec for name, spec in REGISTRY.items() if spec.node is not None}


def _spec(name: str) -> IutSpec:
    spec = node_shims().get(name)
    if spec is None:
        raise NodeShimMissing(f"unknown Node shim {name!r}; known: {', '.join(sorted(node_shims()))}")
    return spec


def _node(spec: IutSpec) -> NodeLauncher:
    assert spec.node is not None
    return spec.node


def _folder(spec: IutSpec) -> Path:
    assert spec.folder is not None
    return spec.folder


def shim_dir(name: str) -> Path:
    """The shim's source folder (the folder of its ``iut.toml``)."""
    return _folder(_spec(name))


def capabilities(name: str) -> frozenset[str]:
    """The capabilities the shim declares (its ``iut.toml``; ``_node/common.js`` reads the same list)."""
    return _spec(name).capabilities or frozenset()


def lock_hash(name: str) -> str:
    """sha256 of the shim's ``package-lock.json`` (hex)."""
    return hashlib.sha256((shim_dir(name) / "package-lock.json").read_bytes()).hexdigest()


def cache_root() -> Path:
    """``$XDG_CACHE_HOME/ice-conformance/node`` (``~/.cache`` when the variable is unset)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ice-conformance" / "node"


def _install_dir(name: str) -> Path:
    return cache_root() / f"{name}-{lock_hash(name)[:16]}"


def node_available() -> bool:
    """Whether ``node`` is on PATH."""
    return shutil.which("node") is not None


def _tail(text: str, lines: int = 20) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def ensure_installed(name: str) -> Path:
    """Install the shim's npm packages (once per lock file) and return the install folder.

    The folder holds ``package.json``, ``package-lock.json`` and ``node_modules``. Raises
    :class:`NodeShimMissing` when node or npm is missing or ``npm ci`` fails.
    """
    spec = _spec(name)
    target = _install_dir(name)
    if (target / "node_modules").is_dir() and (target / ".complete").is_file():
        return target
    if not node_available():
        raise NodeShimMissing(f"node not found on PATH: {spec.install_hint}")
    npm = shutil.which("npm")
    if npm is None:
        raise NodeShimMissing(f"npm not found on PATH: {spec.install_hint}")
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        for f in ("package.json", "package-lock.json"):
            shutil.copyfile(_folder(spec) / f, work / f)
        cmd = [npm, "ci", "--omit=dev", "--no-audit", "--no-fund", "--ignore-scripts"]
        logger.info("installing Node shim %s: %s (in %s)", name, " ".join(cmd), work)
        try:
            proc = subprocess.run(
                cmd,
                cwd=work,
                capture_output=True,
                text=True,
                timeout=NPM_TIMEOUT,
                check=False,
                env={**os.environ, "npm_config_update_notifier": "false"},
            )
        except subprocess.TimeoutExpired as exc:
            raise NodeShimMissing(f"npm ci for {name} took longer than {NPM_TIMEOUT:.0f} s") from exc
        if proc.returncode != 0:
            raise NodeShimMissing(
                f"npm ci for {name} failed (exit {proc.returncode}): {spec.install_hint}\n"
                f"npm stderr (tail):\n{_tail(proc.stderr)}"
            )
        (work / ".complete").write_text(lock_hash(name) + "\n", encoding="utf-8")
        try:
            work.rename(target)
        except OSError:
            # Another worker won the race (the target exists now), or a crashed run left a broken folder.
            if not (target / ".complete").is_file():
                shutil.rmtree(target, ignore_errors=True)
                try:
                    work.rename(target)
                except OSError as exc:
                    if not (target / ".complete").is_file():
                        raise NodeShimMissing(f"cannot move the {name} install into {target}: {exc}") from exc
        installed_version.cache_clear()
        return target
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)


def launch(name: str) -> tuple[list[str], dict[str, str]]:
    """``(argv, env)`` to start the shim: ``node <repo>/.../shim.js`` with ``NODE_PATH`` set.

    Installs the packages first when needed (see :func:`ensure_installed`).
    """
    spec = _spec(name)
    if _node(spec).binary is not None and not os.access(_binary(spec), os.X_OK):
        apt = " ".join(spec.debian_packages)
        raise NodeShimMissing(
            f"{name}: {_binary(spec)} not found: install the Debian package {apt} (apt-get install {apt})"
        )
    install = ensure_installed(name)
    node = shutil.which("node")
    if node is None:  # pragma: no cover - ensure_installed checked it
        raise NodeShimMissing(f"node not found on PATH: {_spec(name).install_hint}")
    env = dict(os.environ)
    paths = [str(install / "node_modules")]
    if env.get("NODE_PATH"):
        paths.append(env["NODE_PATH"])
    env["NODE_PATH"] = os.pathsep.join(paths)
    return [node, str(shim_dir(name) / "shim.js")], env


def _binary(spec: IutSpec) -> str:
    """The browser binary: ``$ICE_CONFORMANCE_<NAME>`` when set, else the Debian path."""
    return os.environ.get(f"ICE_CONFORMANCE_{spec.name.upper()}") or str(_node(spec).binary)


@functools.cache
def binary_version(name: str) -> str | None:
    """``<binary> --version`` of a browser shim's program (first line), or None when it does not run."""
    spec = _spec(name)
    if _node(spec).binary is None:
        return None
    try:
        proc = subprocess.run([_binary(spec), "--version"], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = proc.stdout.strip().splitlines()
    return lines[0].strip() if proc.returncode == 0 and lines else None


@functools.cache
def installed_version(name: str) -> str | None:
    """The version of the shim's npm package in the cache, or None when it is not installed."""
    spec = _spec(name)
    pkg = _install_dir(name) / "node_modules" / _node(spec).package / "package.json"
    try:
        return str(json.loads(pkg.read_text(encoding="utf-8"))["version"])
    except (OSError, ValueError, KeyError):
        return None
