"""The known IUTs, as data: how to make each one's adapter, what it declares, how to install it.

``--iut NAME`` picks an entry; ``--iut-cmd "CMD ARGS"`` bypasses the registry and drives any stdio shim. Other
modules add entries with :func:`register` (docs/adapter-contract.md, "Plugging an IUT in").
"""

from __future__ import annotations

import functools
import json
import logging
import shlex
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .base import CAPABILITIES, Adapter
from .stdio import StdioAdapter

__all__ = [
    "DEFAULT_IUT",
    "REGISTRY",
    "IutSpec",
    "StdioCommand",
    "UnknownIut",
    "get_iut",
    "known_iuts",
    "make_adapter",
    "register",
]

logger = logging.getLogger(__name__)

#: The IUT used when neither ``--iut`` nor ``--iut-cmd`` is given.
DEFAULT_IUT = "aioice"

_HERE = Path(__file__).resolve().parent


class UnknownIut(LookupError):
    """No IUT of that name is registered (a usage error, reported before any case runs)."""


@dataclass(frozen=True)
class StdioCommand:
    """How to start a shim: its command line, and optionally its environment and working folder."""

    argv: list[str]
    env: Mapping[str, str] | None = None
    cwd: str | None = None


@dataclass(frozen=True)
class IutSpec:
    """One known IUT: an in-process adapter factory, or a command that starts a stdio shim."""

    name: str
    kind: Literal["inprocess", "stdio"]
    description: str
    #: In process: builds the adapter (called once per adapter, inside the event loop).
    factory: Callable[[], Adapter] | None = None
    #: Stdio: builds the command line (may install or compile the shim first; may raise AdapterError).
    command: Callable[[], StdioCommand] | None = None
    #: The IUT's capability declaration (``{"capabilities": [...]}``), read without starting the IUT.
    capabilities_file: Path | None = None
    #: What to install when the IUT is missing, shown in the ERROR message.
    install_hint: str = ""
    #: Extra keyword arguments for :class:`StdioAdapter` (deadlines, for example).
    stdio_options: Mapping[str, Any] = field(default_factory=dict)
    #: Runs must execute in a loopback-only network namespace (WebRTC stacks gather on every interface).
    netns: bool = False
    #: The installed IUT's version, read from the software itself (``ice-conformance list``); None if unknown.
    version: Callable[[], str | None] | None = None

    def __post_init__(self) -> None:
        if self.kind == "inprocess" and self.factory is None:
            raise ValueError(f"IUT {self.name!r}: an in-process IUT needs a factory")
        if self.kind == "stdio" and self.command is None:
            raise ValueError(f"IUT {self.name!r}: a stdio IUT needs a command")
        if self.kind not in ("inprocess", "stdio"):
            raise ValueError(f"IUT {self.name!r}: kind must be 'inprocess' or 'stdio', not {self.kind!r}")

    def make(self, **stdio_options: Any) -> Adapter:
        """A new, not yet initialized adapter for this IUT."""
        if self.kind == "inprocess":
            assert self.factory is not None
            return self.factory()
        assert self.command is not None
        cmd = self.command()
        options = {**self.stdio_options, **stdio_options}
        return StdioAdapter(cmd.argv, env=cmd.env, cwd=cmd.cwd, name=self.name, **options)

    def declared_capabilities(self) -> frozenset[str] | None:
        """The capabilities from :attr:`capabilities_file`, or None when there is none."""
        if self.capabilities_file is None:
            return None
        data = json.loads(self.capabilities_file.read_text(encoding="utf-8"))
        caps = frozenset(str(c) for c in data["capabilities"])
        unknown = caps - CAPABILITIES
        if unknown:
            raise ValueError(f"{self.capabilities_file}: unknown capabilities {sorted(unknown)}")
        return caps


#: Every registered IUT by name; add to it with :func:`register`.
REGISTRY: dict[str, IutSpec] = {}


def register(spec: IutSpec, *, replace: bool = False) -> IutSpec:
    """Add an IUT to the registry; a second entry of the same name needs ``replace=True``."""
    if spec.name in REGISTRY and not replace and REGISTRY[spec.name] != spec:
        raise ValueError(f"IUT {spec.name!r} is already registered")
    REGISTRY[spec.name] = spec
    return spec


def known_iuts() -> list[str]:
    """The registered IUT names, sorted."""
    return sorted(REGISTRY)


def get_iut(name: str) -> IutSpec:
    """The registered IUT of that name; :class:`UnknownIut` lists the known names."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise UnknownIut(f"unknown IUT {name!r}; known IUTs: {', '.join(known_iuts())}") from None


def make_adapter(name: str | None = None, cmd: str | None = None, **stdio_options: Any) -> Adapter:
    """The adapter for ``--iut NAME`` or, when ``cmd`` is given, for the shim command line ``--iut-cmd``."""
    if cmd is not None:
        argv = shlex.split(cmd)
        if not argv:
            raise ValueError("the shim command line is empty")
        return StdioAdapter(argv, name=name, **stdio_options)
    return get_iut(name or DEFAULT_IUT).make(**stdio_options)


def _aioice_factory() -> Adapter:
    from .aioice import AioiceAdapter  # imported late: aioice is loaded only when it is the IUT

    return AioiceAdapter()


def _aioice_stdio() -> StdioCommand:
    return StdioCommand([sys.executable, "-m", "conformance.adapters.aioice"])


_AIOICE_CAPS = _HERE / "aioice" / "capabilities.json"
_AIOICE_HINT = "pip install 'aioice>=0.13' (a dependency of ice-conformance)"

register(
    IutSpec(
        name="aioice",
        kind="inprocess",
        description="aioice (Python asyncio ICE agent), driven in process",
        factory=_aioice_factory,
        capabilities_file=_AIOICE_CAPS,
        install_hint=_AIOICE_HINT,
    )
)
register(
    IutSpec(
        name="aioice-stdio",
        kind="stdio",
        description="aioice through its stdio JSON-RPC shim (python -m conformance.adapters.aioice)",
        command=_aioice_stdio,
        capabilities_file=_AIOICE_CAPS,
        install_hint=_AIOICE_HINT,
    )
)


def _libnice_stdio() -> StdioCommand:
    from . import libnice

    return StdioCommand(libnice.argv())


def _node_stdio(name: str) -> Callable[[], StdioCommand]:
    def command() -> StdioCommand:
        from . import node

        argv, env = node.launch(name)
        return StdioCommand(argv, env=env)

    return command


def _reference_stdio() -> StdioCommand:
    return StdioCommand([sys.executable, "-m", "conformance.reference"])


def _register_shims() -> None:
    from . import libnice, node

    register(
        IutSpec(
            name="libnice",
            kind="stdio",
            description=libnice.SPEC.description,
            command=_libnice_stdio,
            capabilities_file=libnice.SPEC.capabilities_file,
            install_hint=libnice.SPEC.install_hint,
        )
    )
    from . import libre

    register(
        IutSpec(
            name="libre",
            kind="stdio",
            description=libre.DESCRIPTION,
            command=lambda: StdioCommand(libre.argv()),
            capabilities_file=libre.CAPABILITIES_FILE,
            install_hint=libre.INSTALL_HINT,
            version=libre.libre_version,
        )
    )
    for name, spec in sorted(node.SPECS.items()):
        register(
            IutSpec(
                name=name,
                kind="stdio",
                description=spec.description,
                command=_node_stdio(name),
                capabilities_file=spec.capabilities_file,
                install_hint=spec.install_hint,
                # A browser launch takes 0.5-4 s, much more on a loaded machine.
                stdio_options={"request_timeout": 20.0, **({"start_timeout": 60.0} if spec.binary else {})},
                netns=name in ("libjuice", "libwebrtc", "chromium", "firefox"),
                version=functools.partial(node.binary_version, name) if spec.binary else None,
            )
        )
    register(
        IutSpec(
            name="reference",
            kind="stdio",
            description="the in-repo reference peer with switchable faults (harness self-tests only, not an IUT claim)",
            command=_reference_stdio,
            install_hint="part of ice-conformance",
        )
    )
    from . import coturn, nodeturn

    register(
        IutSpec(
            name="coturn",
            kind="inprocess",
            description="coturn 4.6 turnserver (TURN/STUN server), one process per start_server",
            factory=coturn.CoturnAdapter,
            capabilities_file=coturn.CAPABILITIES_FILE,
            install_hint=coturn.INSTALL_HINT,
        )
    )
    register(
        IutSpec(
            name=nodeturn.NAME,
            kind="stdio",
            description=nodeturn.SPEC.description,
            command=lambda: StdioCommand(*nodeturn.launch()),
            capabilities_file=nodeturn.SPEC.capabilities_file,
            install_hint=nodeturn.SPEC.install_hint,
            stdio_options={"request_timeout": 20.0},
        )
    )
    register(
        IutSpec(
            name="reference-turn",
            kind="stdio",
            description="the in-repo reference TURN server and client with switchable faults (self-tests only)",
            command=lambda: StdioCommand([sys.executable, "-m", "conformance.reference.turn_main"]),
            install_hint="part of ice-conformance",
        )
    )


_register_shims()
