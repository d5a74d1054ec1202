"""baresip's libre (C, the ``icem`` API) as an IUT: a stdio JSON-RPC shim compiled against the system libre.

Theory of operation: ``shim.c`` is compiled on first use with gcc against ``pkg-config libre`` (Debian package
``libre-dev``) into ``$XDG_CACHE_HOME/ice-conformance/libre/<key>/shim``, keyed by the sha256 of the source,
``capabilities.json`` and the libre version, exactly as the libnice shim is built
(conformance/adapters/libnice/__init__.py, whose build helpers this module reuses). The shim parses JSON with
libre's own decoder, so libre is its only dependency. What it wires and what it does not is the ``notes`` and
``not_supported`` of ``capabilities.json``: host candidates on one IPv4 loopback socket, no trickle, restart,
consent or TURN (libre's icem has no API for the first three; its TURN client is not wired).
"""

from __future__ import annotations

import json
from pathlib import Path

from conformance.adapters import libnice
from conformance.adapters.base import AdapterError

__all__ = ["CAPABILITIES_FILE", "DESCRIPTION", "INSTALL_HINT", "LibreMissing", "argv", "ensure_built", "libre_version"]

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "shim.c"
CAPABILITIES_FILE = HERE / "capabilities.json"
INSTALL_HINT = "apt-get install -y libre-dev pkg-config gcc"
PINNED_VERSION = str(json.loads(CAPABILITIES_FILE.read_text(encoding="utf-8"))["version"])
DESCRIPTION = (
    f"baresip's libre {PINNED_VERSION} (C, the icem API: RFC 5245 full agent, UDP only), driven through a C stdio "
    "shim compiled against the system library"
)
_CFLAGS = ("-O1", "-Wall", "-Wextra")


class LibreMissing(AdapterError):
    """libre-dev, pkg-config or gcc is missing, or the shim failed to compile."""


def _pkg_config(*args: str) -> str:
    try:
        return libnice.pkg_config(*args, hint=INSTALL_HINT)
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
    key = libnice.source_key(SOURCE, CAPABILITIES_FILE, version, _CFLAGS)
    caps = json.loads(CAPABILITIES_FILE.read_text(encoding="utf-8"))["capabilities"]

    def build(tmp: Path) -> None:
        cmd = [
            libnice.compiler(INSTALL_HINT),
            *_CFLAGS,
            f"-DSHIM_LIBRE_VERSION={json.dumps(version)}",
            f"-DSHIM_CAPABILITIES_JSON={json.dumps(json.dumps(sorted(caps), separators=(',', ':')))}",
            "-o",
            str(tmp),
            str(SOURCE),
            *_pkg_config("--cflags", "--libs", "libre").split(),
        ]
        try:
            libnice.compile_shim(cmd, "libre", INSTALL_HINT)
        except libnice.LibniceMissing as exc:
            raise LibreMissing(str(exc)) from exc

    return libnice.build_once(libnice.cache_root().parent / "libre" / key, build)


def argv() -> list[str]:
    """The command line that starts the shim (building it first when needed)."""
    return [str(ensure_built())]
