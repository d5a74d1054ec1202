"""``ice-conformance install [IUT ...]``: make the registered IUTs runnable before any run starts.

Theory of operation: runs of the WebRTC stacks execute inside a loopback-only network namespace
(``unshare -n``), where no package registry is reachable, so everything a shim needs is fetched here, outside
it: the Node shims' ``npm ci`` into their cache (:func:`conformance.adapters.node.ensure_installed`), the C shims'
compilation (:func:`conformance.adapters.libnice.ensure_built`, :func:`conformance.adapters.libre.ensure_built`).
The Debian packages are only checked
(``dpkg-query``), never installed: the command prints the ``apt-get install`` line for the missing ones. It
ends with one line per IUT, ``ready`` or what is missing, and exits 0 only when every IUT asked for is ready.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["IutStatus", "add_command", "check_iut", "debian_missing"]

EXIT_OK, EXIT_MISSING, EXIT_USAGE = 0, 1, 2


@dataclass
class IutStatus:
    """What ``install`` found for one IUT: ready when nothing is missing."""

    name: str
    missing: list[str] = field(default_factory=list)
    done: list[str] = field(default_factory=list)
    #: Debian packages found missing.
    packages: list[str] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        return not self.missing

    def line(self) -> str:
        """The IUT's closing line: ``ready`` (with what was done) or what is missing."""
        if self.ready:
            return f"{self.name}: ready" + (f" ({'; '.join(self.done)})" if self.done else "")
        return f"{self.name}: NOT READY: {'; '.join(self.missing)}"


def debian_missing(packages: tuple[str, ...]) -> list[str]:
    """The packages ``dpkg-query`` does not report as installed (all of them when dpkg-query is absent)."""
    exe = shutil.which("dpkg-query")
    if exe is None:
        return list(packages)
    missing = []
    for pkg in packages:
        proc = subprocess.run(
            [exe, "-W", "-f=${db:Status-Status}", pkg], capture_output=True, text=True, timeout=30, check=False
        )
        if proc.returncode != 0 or proc.stdout.strip() != "installed":
            missing.append(pkg)
    return missing


def _installer(name: str) -> Callable[[], str] | None:
    """What prepares the IUT before a run: its ``iut.toml``'s ``install`` hook, or ``npm ci`` for a Node shim."""
    from conformance.adapters import node
    from conformance.adapters.registry import get_iut

    spec = get_iut(name)
    if spec.node is not None:
        return lambda: f"npm packages in {node.ensure_installed(name)}"
    install = spec.install
    if install is not None:
        return lambda: f"shim compiled: {install()}"
    return None


def check_iut(name: str, *, netns_ok: bool) -> IutStatus:
    """Install what ``name`` needs (outside any namespace) and report what is still missing."""
    from conformance.adapters.base import AdapterError
    from conformance.adapters.registry import get_iut

    spec = get_iut(name)
    status = IutStatus(name)
    packages = spec.debian_packages
    missing_pkgs = status.packages = debian_missing(packages) if packages else []
    if missing_pkgs:
        status.missing.append(f"Debian packages {' '.join(missing_pkgs)}")
    if name == "coturn" and shutil.which("turnserver") is None and not missing_pkgs:
        status.missing.append("turnserver not on PATH")
    install = _installer(name)
    if install is not None and not missing_pkgs:
        try:
            status.done.append(install())
        except (AdapterError, OSError) as exc:
            status.missing.append(str(exc).splitlines()[0])
    if spec.netns and not netns_ok:
        status.missing.append("a loopback-only network namespace (unshare -n works only as root)")
    return status


def _cmd_install(args: argparse.Namespace) -> int:
    from conformance import netns
    from conformance.adapters.registry import UnknownIut, get_iut, known_iuts

    names = list(args.iuts) or known_iuts()
    for name in names:
        try:
            get_iut(name)
        except UnknownIut as exc:
            sys.stderr.write(f"error: {exc}\n")
            return EXIT_USAGE
    netns_ok = netns.available()
    sys.stdout.write(f"unshare -n: {'works' if netns_ok else 'not available (needs root and unshare -n)'}\n")
    statuses = [check_iut(name, netns_ok=netns_ok) for name in names]
    all_missing = sorted({p for s in statuses for p in s.packages})
    if all_missing:
        sys.stdout.write(f"missing Debian packages: apt-get install -y {' '.join(all_missing)}\n")
    for status in statuses:
        sys.stdout.write(status.line() + "\n")
    return EXIT_OK if all(s.ready for s in statuses) else EXIT_MISSING


def add_command(subparsers: Any) -> None:
    """Register ``install`` on the ``ice-conformance`` subparsers."""
    ins = subparsers.add_parser(
        "install",
        help="install the IUT shims (npm ci, compile) outside any namespace, check Debian packages and unshare -n",
    )
    ins.add_argument("iuts", nargs="*", metavar="IUT", help="IUT names (default: every registered IUT)")
    ins.set_defaults(func=_cmd_install)
