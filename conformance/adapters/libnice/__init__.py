"""libnice (C) as an IUT: a stdio JSON-RPC shim compiled against the system libnice.

Theory of operation: ``shim.c`` is compiled on first use with gcc against ``pkg-config nice json-glib-1.0``
into ``$XDG_CACHE_HOME/ice-conformance/libnice/<key>/shim`` (``~/.cache`` when the variable is unset). The key
is the sha256 of everything that goes into the binary (the C source, ``iut.toml``, the libnice version and the
compiler flags), so an edited source or an upgraded libnice gets a fresh build and an old one
is never reused. The build writes to a private temporary file and renames it into place, so two pytest-xdist
workers building at once both end up with a complete binary. The libnice version reported by ``initialize``
is ``pkg-config --modversion nice`` at build time; the capabilities are those of ``iut.toml``.

How the shim maps the adapter contract onto libnice (all verified by ``tests/test_libnice_shim.py``):

- ``create_agent``: local credentials are checked against the RFC 8839 grammar (-32602 otherwise), and an
  empty ``interfaces`` list is refused (libnice would gather on every interface). Then
  ``nice_agent_new_full`` with RFC 5245 compatibility, regular nomination (RFC 8445; ``options:
  {"nomination": "aggressive"}`` for the old mode), consent freshness (RFC 7675; ``options:
  {"consent_freshness": false}`` turns it off), lite mode with ``options: {"lite": true}``, and trickle when
  asked; ``upnp`` and ``ice-tcp`` off; the ``interfaces`` (default 127.0.0.1) through
  ``nice_agent_add_local_address``; the first STUN server only (libnice takes one, as an IP literal); TURN
  servers (``turn:IP:PORT``, ``?transport=tcp``, ``turns:``) through ``nice_agent_set_relay_info``;
  ``relay_only`` as ``force-relay``.
- ``gather`` waits for ``candidate-gathering-done``. With trickle it returns at once with no candidates: every
  local candidate arrives as a ``candidate`` notification, then ``candidate: null``.
- ``set_remote`` sets the remote credentials at once (so checks arriving early are answered, RFC 8445
  section 7.3) and buffers the candidates; ``connect`` hands them to libnice, which is what starts the
  checks. After ``connect``, ``add_remote_candidate`` goes straight to libnice. A candidate libnice cannot
  parse is refused with -32602 (nothing of that request is applied); TCP and mDNS (``.local``) candidates,
  which this agent cannot use, are skipped with a stderr line.
- ``state`` notifications are the agent's aggregate over its components (``failed`` if any failed, else the
  least advanced), with ``component`` and ``native`` (the libnice state) of the change that caused them.
- ``restart`` accepts optional ``ufrag``/``pwd`` (chosen new credentials); remote candidates buffer again
  until the next ``connect``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from conformance.adapters.base import AdapterError

__all__ = [
    "ASAN_ENV",
    "IUT_FILE",
    "SOURCE",
    "LibniceMissing",
    "argv",
    "build_key",
    "cache_root",
    "capabilities",
    "compile_shim",
    "compiler",
    "ensure_built",
    "libnice_version",
    "pkg_config",
    "source_key",
]

logger = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
#: The shim's C source.
SOURCE = HERE / "shim.c"
#: The IUT's description: what the shim implements, the pinned libnice version, what to install.
IUT_FILE = HERE / "iut.toml"


def _install_hint() -> str:
    from conformance.adapters.registry import iut_file

    return iut_file("libnice").install_hint


_PKGS = ("nice", "json-glib-1.0")
_CFLAGS = ("-O1", "-Wall", "-Wextra")
#: ``ICE_CONFORMANCE_LIBNICE_ASAN=1`` builds the shim with AddressSanitizer: a crash report names the faulting
#: function (inside libnice.so too, which is not instrumented but is symbolized), and ``abort_on_error`` turns the
#: report into SIGABRT, a fault signal the harness grades FAIL under ROB-CRASH-01 (docs/robustness.md).
ASAN_ENV = "ICE_CONFORMANCE_LIBNICE_ASAN"
_ASAN_CFLAGS = ("-fsanitize=address", "-fno-omit-frame-pointer", "-g")
_ASAN_OPTIONS = "ASAN_OPTIONS=abort_on_error=1:detect_leaks=0:symbolize=1"


def _asan() -> bool:
    return os.environ.get(ASAN_ENV, "") not in ("", "0")


def _cflags() -> tuple[str, ...]:
    return _CFLAGS + (_ASAN_CFLAGS if _asan() else ())


_BUILD_TIMEOUT = 120.0


class LibniceMissing(AdapterError):
    """libnice, json-glib, pkg-config or gcc is missing, or the shim failed to compile."""


def capabilities() -> frozenset[str]:
    """The capabilities the shim declares (from ``iut.toml``)."""
    from conformance.adapters.registry import iut_file

    return iut_file("libnice").capabilities or frozenset()


def pinned_version() -> str | None:
    """The libnice version the capabilities were verified against (``iut.toml``)."""
    from conformance.adapters.registry import iut_file

    return iut_file("libnice").pinned_version


def cache_root() -> Path:
    """``$XDG_CACHE_HOME/ice-conformance/libnice`` (``~/.cache`` when the variable is unset)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ice-conformance" / "libnice"


def pkg_config(*args: str, hint: str | None = None) -> str:
    """Run pkg-config; raises :class:`LibniceMissing` (naming ``hint``) when it is absent or fails."""
    hint = hint or _install_hint()
    exe = shutil.which("pkg-config")
    if exe is None:
        raise LibniceMissing(f"pkg-config not found on PATH; install the build prerequisites: {hint}")
    proc = subprocess.run([exe, *args], capture_output=True, text=True, timeout=30, check=False)
    if proc.returncode != 0:
        raise LibniceMissing(
            f"pkg-config {' '.join(args)} failed ({proc.stderr.strip() or 'exit ' + str(proc.returncode)}); "
            f"install the build prerequisites: {hint}"
        )
    return proc.stdout.strip()


_pkg_config = pkg_config


def compiler(hint: str | None = None) -> str:
    """The path of gcc; :class:`LibniceMissing` naming ``hint`` when it is not on PATH."""
    gcc = shutil.which("gcc")
    if gcc is None:
        raise LibniceMissing(f"gcc not found on PATH; install the build prerequisites: {hint or _install_hint()}")
    return gcc


def libnice_version() -> str:
    """``pkg-config --modversion nice``; raises :class:`LibniceMissing` when libnice-dev is absent."""
    for pkg in _PKGS:
        _pkg_config("--exists", "--print-errors", pkg)
    return _pkg_config("--modversion", "nice")


def _compile_command(version: str, out: Path) -> list[str]:
    caps = sorted(capabilities())
    return [
        compiler(),
        *_cflags(),
        # Both are C string literals; json.dumps of ASCII text is one.
        f"-DSHIM_LIBNICE_VERSION={json.dumps(version)}",
        f"-DSHIM_CAPABILITIES_JSON={json.dumps(json.dumps(caps, separators=(',', ':')))}",
        "-o",
        str(out),
        str(SOURCE),
        *_pkg_config("--cflags", "--libs", *_PKGS).split(),
    ]


def source_key(source: Path, iut_file: Path, version: str, cflags: tuple[str, ...]) -> str:
    """sha256 (hex) of what goes into a shim binary: source, ``iut.toml``, library version, compiler flags."""
    h = hashlib.sha256()
    for part in (source.read_bytes(), iut_file.read_bytes(), version.encode(), " ".join(cflags).encode()):
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return h.hexdigest()


def build_key(version: str) -> str:
    """sha256 (hex) of what goes into the binary: source, capabilities, libnice version, compiler flags."""
    return source_key(SOURCE, IUT_FILE, version, _cflags())


def compile_shim(cmd: list[str], name: str = "libnice", hint: str | None = None) -> None:
    """Run the compiler; raises :class:`LibniceMissing` with gcc's output when it fails."""
    logger.info("building the %s shim: %s", name, " ".join(cmd))
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=_BUILD_TIMEOUT, check=False)
    except subprocess.TimeoutExpired as exc:
        raise LibniceMissing(f"compiling the {name} shim took longer than {_BUILD_TIMEOUT:.0f} s") from exc
    if proc.returncode != 0:
        raise LibniceMissing(
            f"compiling the {name} shim failed (exit {proc.returncode}); prerequisites: {hint or _install_hint()}\n"
            f"{proc.stderr.strip()}"
        )
    if proc.stderr.strip():
        logger.warning("compiler warnings for the %s shim:\n%s", name, proc.stderr.strip())


_compile = compile_shim


def ensure_built() -> Path:
    """Compile ``shim.c`` once per build key and return the path of the binary.

    Raises :class:`LibniceMissing` when libnice, json-glib, pkg-config or gcc is missing or the build fails.
    """
    version = libnice_version()
    pinned = pinned_version()
    if version != pinned:
        logger.warning("libnice %s is installed; iut.toml's capabilities were verified against %s", version, pinned)
    return build_once(cache_root() / build_key(version), lambda tmp: _compile(_compile_command(version, tmp)))


def build_once(folder: Path, build: Callable[[Path], None]) -> Path:
    """``folder/shim``, built by ``build(tmp)`` into a temporary file and renamed into place unless it exists.

    The rename is atomic: a concurrent builder's identical binary is simply replaced (used by the libre shim too).
    """
    target = folder / "shim"
    if target.is_file() and os.access(target, os.X_OK):
        return target
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".shim.", dir=folder)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        build(tmp)
        tmp.chmod(0o755)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    logger.info("shim built: %s", target)
    return target


def argv() -> list[str]:
    """The command line that starts the shim (building it first when needed); under ``env`` with ASan options
    when built with AddressSanitizer (``env`` execs the shim, so its death by signal reaches the harness)."""
    shim = str(ensure_built())
    return ["env", _ASAN_OPTIONS, shim] if _asan() else [shim]
