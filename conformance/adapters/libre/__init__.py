"""baresip's libre (C, the ``icem`` API) as an IUT: a stdio JSON-RPC shim compiled against the system libre.

Theory of operation: ``shim.c`` is compiled on first use with gcc against ``pkg-config libre`` (Debian package
``libre-dev``) into ``$XDG_CACHE_HOME/ice-conformance/libre/<key>/shim``, keyed by the sha256 of the source,
``iut.toml`` and the libre version, exactly as the libnice shim is built
(conformance/adapters/libnice/__init__.py, whose build helpers this module reuses). The shim parses JSON with
libre's own decoder, so libre is its only dependency. What it wires and what it does not is the ``notes`` and
``not_supported`` of ``iut.toml``: host candidates on one IPv4 loopback socket, no trickle, restart,
consent or TURN (libre's icem has no API for the first three; its TURN client is not wired).
"""

from __future__ import annotations

import json
from pathlib import Path

from conformance.adapters import libnice
from conformance.adapters.base import AdapterError

__all__ = ["IUT_FILE", "LibreMissing", "argv", "ensure_built", "install_hint", "libre_version"]

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "shim.c"
IUT_FILE = HERE / "iut.toml"
_CFLAGS = ("-O1", "-Wall", "-Wextra")


class LibreMissing(AdapterError):
    """libre-dev, pkg-config or gcc is missing, or the shim failed to compile."""


def install_hint() -> str:
    """What to install to build the shim (``iut.toml``)."""
    from conformance.adapters.registry import iut_file

    return iut_file("libre").install_hint


def _pkg_config(*args: str) -> str:
    try:
        return libnice.pkg_config(*args, hint=install_hint())
    except libnice.LibniceMissing as exc:
        raise LibreMissing(str(exc)) from exc


def libre_version() -> str | None:
    """``pkg-config --modversion libre``, or None when libre-dev is not installed."""
    try:
        return _pkg_config("--modversion", "libre")
    except LibreMissing:
        return None


def ensure_built() -> Path:
    """Compile ``shim.c`` once per build key and return the binary; :class:`LibreMissing` when it cannot."""
    version = _pkg_config("--modversion", "libre")
    from conformance.adapters.registry import iut_file

    key = libnice.source_key(SOURCE, IUT_FILE, version, _CFLAGS)
    caps = iut_file("libre").capabilities or frozenset()

    def build(tmp: Path) -> None:
        cmd = [
            libnice.compiler(install_hint()),
            *_CFLAGS,
            f"-DSHIM_LIBRE_VERSION={json.dumps(version)}",
            f"-DSHIM_CAPABILITIES_JSON={json.dumps(json.dumps(sorted(caps), separators=(',', ':')))}",
            "-o",
            str(tmp),
            str(SOURCE),
            *_pkg_config("--cflags", "--libs", "libre").split(),
        ]
        try:
            libnice.compile_shim(cmd, "libre", install_hint())
        except libnice.LibniceMissing as exc:
            raise LibreMissing(str(exc)) from exc

    return libnice.build_once(libnice.cache_root().parent / "libre" / key, build)


def argv() -> list[str]:
    """The command line that starts the shim (building it first when needed)."""
    return [str(ensure_built())]
