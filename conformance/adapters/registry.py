"""The known IUTs, as data: one ``iut.toml`` per IUT folder, plus what vendor packages register.

Theory of operation: every ``conformance/adapters/*/iut.toml`` describes one IUT (docs/adapter-contract.md §12):
its name, kind (an ICE agent or a TURN server), how to launch it, what it declares, whether it needs a
loopback-only network namespace, whether it gathers on every interface address, its pinned version and what to
install. :func:`load_iut_file` turns one file into an :class:`IutSpec`; the registry is built from these files at
import, then from the entry-point group ``ice_conformance.iuts``, through which a vendor's own package adds an
IUT without editing the harness (an entry point names an ``iut.toml``, a module whose folder holds one, an
:class:`IutSpec`, or a callable returning one of these). Python callables named in a file (``"module:attr"``) are
imported only when used, so listing the IUTs loads none of them.

``--iut NAME`` picks an entry; ``--iut-cmd "CMD ARGS"`` bypasses the registry and drives any stdio shim.
"""

from __future__ import annotations

import functools
import importlib
import logging
import shlex
import sys
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any, Literal, cast

from .base import CAPABILITIES, Adapter, IutAdapter
from .contract import complete
from .stdio import StdioAdapter

__all__ = [
    "DEFAULT_IUT",
    "ENTRY_POINT_GROUP",
    "IUT_FILE",
    "REGISTRY",
    "IutSpec",
    "NodeLauncher",
    "StdioCommand",
    "UnknownIut",
    "get_iut",
    "known_iuts",
    "load_entry_points",
    "load_iut_file",
    "make_adapter",
    "register",
]

logger = logging.getLogger(__name__)

#: The IUT used when neither ``--iut`` nor ``--iut-cmd`` is given.
DEFAULT_IUT = "aioice"
#: The entry-point group through which installed packages register IUTs.
ENTRY_POINT_GROUP = "ice_conformance.iuts"
#: The name of an IUT's description file.
IUT_FILE = "iut.toml"

_HERE = Path(__file__).resolve().parent

IutKind = Literal["ice-agent", "turn-server"]
Launcher = Literal["inprocess", "stdio", "node"]


class UnknownIut(LookupError):
    """No IUT of that name is registered (a usage error, reported before any case runs)."""


@dataclass(frozen=True)
class StdioCommand:
    """How to start a shim: its command line, and optionally its environment and working folder."""

    argv: list[str]
    env: Mapping[str, str] | None = None
    cwd: str | None = None


@dataclass(frozen=True)
class NodeLauncher:
    """A Node.js shim (conformance/adapters/node.py): ``shim.js`` and its pinned npm packages in the IUT folder."""

    #: The npm package the shim drives (its installed version is read from the cache).
    package: str
    #: The program the shim drives when it is not an npm package (a browser), and its Debian package.
    binary: str | None = None
    apt_package: str | None = None


@dataclass(frozen=True)
class IutSpec:
    """One known IUT, as its ``iut.toml`` describes it (or as a vendor package builds it)."""

    name: str
    #: What the IUT is: an ICE agent (``IceAgentAdapter``) or a TURN server (``TurnServerAdapter``).
    kind: IutKind
    description: str
    #: How the harness reaches it: in process, a stdio shim, or a Node stdio shim.
    launcher: Launcher
    #: In process: builds the adapter of the IUT's kind (called once per adapter, inside the event loop).
    factory: Callable[[], IutAdapter] | None = None
    #: Stdio: builds the command line (may install or compile the shim first; may raise AdapterError).
    command: Callable[[], StdioCommand] | None = None
    #: Node: the npm package and the program the shim drives.
    node: NodeLauncher | None = None
    #: The declared capabilities (PICS), read without starting the IUT; None when declared only at initialize.
    capabilities: frozenset[str] | None = None
    #: Capabilities not declared, with the reason, and free notes (shown to people, not read by the harness).
    not_supported: Mapping[str, str] = field(default_factory=dict)
    notes: Any = None
    #: What to install when the IUT is missing, shown in the ERROR message.
    install_hint: str = ""
    #: Debian packages needed at run time or to build the shim (``ice-conformance install`` checks them).
    debian_packages: tuple[str, ...] = ()
    #: Installs or builds what the shim needs before a run (``ice-conformance install``); returns what it did.
    install: Callable[[], str] | None = None
    #: Extra keyword arguments for :class:`StdioAdapter` (deadlines, for example).
    stdio_options: Mapping[str, Any] = field(default_factory=dict)
    #: Runs must execute in a loopback-only network namespace (WebRTC stacks gather on every interface).
    netns: bool = False
    #: Gathers on every address of an interface, not only the ones asked for (interop places it on side addresses).
    gathers_on_interfaces: bool = False
    #: xdist workers for a run with ``-n auto`` when not the general default (conformance/schedule.py).
    workers: int | None = None
    #: Cases in flight per xdist worker, each in a forked child (conformance/slots.py); None: one at a time.
    slots: int | None = None
    #: The version the capabilities were verified against.
    pinned_version: str | None = None
    #: The installed IUT's version, read from the software itself (``ice-conformance list``); None if unknown.
    version: Callable[[], str | None] | None = None
    #: The folder of the IUT's ``iut.toml`` (its shim's sources), None for an IUT built in Python.
    folder: Path | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("ice-agent", "turn-server"):
            raise ValueError(f"IUT {self.name!r}: kind must be 'ice-agent' or 'turn-server', not {self.kind!r}")
        if self.launcher == "inprocess" and self.factory is None:
            raise ValueError(f"IUT {self.name!r}: an in-process IUT needs a factory")
        if self.launcher == "stdio" and self.command is None:
            raise ValueError(f"IUT {self.name!r}: a stdio IUT needs a command")
        if self.launcher == "node" and (self.node is None or self.folder is None):
            raise ValueError(f"IUT {self.name!r}: a Node IUT needs [launcher] package and a folder")
        if self.launcher not in ("inprocess", "stdio", "node"):
            raise ValueError(f"IUT {self.name!r}: launcher must be inprocess, stdio or node, not {self.launcher!r}")
        unknown = (self.capabilities or frozenset()) - CAPABILITIES
        if unknown:
            raise ValueError(f"IUT {self.name!r}: unknown capabilities {sorted(unknown)}")

    def preload(self) -> None:
        """Import an in-process adapter's module now (conformance/slots.py: the forked children then share it)."""
        ref = str(getattr(self.factory, "__name__", ""))
        if self.launcher == "inprocess" and ":" in ref:
            importlib.import_module(ref.partition(":")[0])

    def make(self, **stdio_options: Any) -> Adapter:
        """A new, not yet initialized adapter for this IUT (the other kind's operations answer Unsupported)."""
        if self.launcher == "inprocess":
            assert self.factory is not None
            return complete(self.factory())
        cmd = self.stdio_command()
        options = {**self.stdio_options, **stdio_options}
        return StdioAdapter(cmd.argv, env=cmd.env, cwd=cmd.cwd, name=self.name, **options)

    def stdio_command(self) -> StdioCommand:
        """The command line of the IUT's stdio shim (a Node shim's npm packages installed first)."""
        if self.launcher == "node":
            from . import node

            argv, env = node.launch(self.name)
            return StdioCommand(argv, env=env)
        if self.command is None:
            raise ValueError(f"IUT {self.name!r} runs in process: it has no stdio shim")
        return self.command()

    def declared_capabilities(self) -> frozenset[str] | None:
        """The declared capabilities, or None when the IUT declares them only at ``initialize``."""
        return self.capabilities

    def installed_version(self) -> str | None:
        """The installed version: the ``version`` probe, else a Node shim's binary or npm package version."""
        if self.version is not None:
            return self.version()
        if self.node is not None:
            from . import node

            return node.binary_version(self.name) if self.node.binary else node.installed_version(self.name)
        return None


# -- iut.toml -----------------------------------------------------------------------------------------------


class IutFileError(ValueError):
    """An ``iut.toml`` that does not describe an IUT."""


def _resolve(ref: str, where: Path) -> Callable[..., Any]:
    """A callable from ``"package.module:attr"``, imported when first called."""
    module, sep, attr = ref.partition(":")
    if not sep or not module or not attr:
        raise IutFileError(f"{where}: {ref!r} is not 'module:attribute'")

    def call(*args: Any, **kwargs: Any) -> Any:
        target: Any = importlib.import_module(module)
        for part in attr.split("."):
            target = getattr(target, part)
        return target(*args, **kwargs)

    call.__qualname__ = call.__name__ = ref
    return call


def _expand(arg: str, folder: Path) -> str:
    return arg.replace("{python}", sys.executable).replace("{folder}", str(folder))


def _command(launcher: Mapping[str, Any], folder: Path, where: Path) -> Callable[[], StdioCommand]:
    """The ``command`` of a stdio launcher: a fixed ``argv`` or a callable returning argv or ``(argv, env)``."""
    if "argv" in launcher:
        argv = [str(a) for a in launcher["argv"]]
        return lambda: StdioCommand([_expand(a, folder) for a in argv])
    if "command" not in launcher:
        raise IutFileError(f"{where}: a stdio launcher needs argv or command")
    build = _resolve(str(launcher["command"]), where)

    def command() -> StdioCommand:
        out = build()
        if isinstance(out, StdioCommand):
            return out
        if isinstance(out, tuple):
            return StdioCommand(list(out[0]), env=out[1])
        return StdioCommand(list(out))

    return command


def _str_map(value: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, Mapping) else {}


def load_iut_file(path: Path) -> IutSpec:
    """The :class:`IutSpec` an ``iut.toml`` describes (docs/adapter-contract.md §12); :class:`IutFileError` if bad."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise IutFileError(f"{path}: {exc}") from exc
    folder = path.resolve().parent
    try:
        name = str(data["name"])
        kind = cast(IutKind, str(data["kind"]))
        launcher = dict(data["launcher"])
        ltype = cast(Launcher, str(launcher["type"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise IutFileError(f"{path}: needs name, kind and [launcher] type ({exc!r} missing)") from exc
    caps_table = dict(data.get("capabilities", {}))
    declared = caps_table.get("declared")
    if declared is None and "same_as" in caps_table:
        other = load_iut_file(folder.parent / str(caps_table["same_as"]) / IUT_FILE)
        capabilities, not_supported, notes = other.capabilities, other.not_supported, other.notes
    else:
        capabilities = None if declared is None else frozenset(str(c) for c in declared)
        not_supported, notes = _str_map(caps_table.get("not_supported")), caps_table.get("notes")
    version_table = dict(data.get("version", {}))
    pinned = version_table.get("pinned")
    probe = version_table.get("probe")
    options: dict[str, Any] = {k: float(launcher[k]) for k in ("request_timeout", "start_timeout") if k in launcher}
    if "method_timeouts" in launcher:
        options["method_timeouts"] = {str(k): float(v) for k, v in dict(launcher["method_timeouts"]).items()}
    install = launcher.get("install")
    node_launcher: NodeLauncher | None = None
    if ltype == "node":
        if "package" not in launcher:
            raise IutFileError(f"{path}: a node launcher needs package")
        binary, apt = launcher.get("binary"), launcher.get("apt_package")
        node_launcher = NodeLauncher(
            str(launcher["package"]), None if binary is None else str(binary), None if apt is None else str(apt)
        )
    try:
        return IutSpec(
            name=name,
            kind=kind,
            description=str(data.get("description", name)),
            launcher=ltype,
            factory=_resolve(str(launcher["factory"]), path)
            if ltype == "inprocess" and "factory" in launcher
            else None,
            command=_command(launcher, folder, path) if ltype == "stdio" else None,
            node=node_launcher,
            capabilities=capabilities,
            not_supported=not_supported,
            notes=notes,
            install_hint=str(data.get("install_hint", "")),
            debian_packages=tuple(str(p) for p in data.get("debian_packages", ())),
            install=None if install is None else _resolve(str(install), path),
            stdio_options=options,
            netns=bool(data.get("netns", False)),
            gathers_on_interfaces=bool(data.get("gathers_on_interfaces", False)),
            workers=_workers(data.get("workers")),
            slots=_workers(data.get("slots"), "slots"),
            pinned_version=None if pinned is None else str(pinned),
            version=None if probe is None else _resolve(str(probe), path),
            folder=folder,
        )
    except ValueError as exc:
        raise IutFileError(f"{path}: {exc}") from exc


def _workers(raw: Any, key: str = "workers") -> int | None:
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 1:
        raise ValueError(f"{key} must be a whole number >= 1, not {raw!r}")
    return raw


@functools.cache
def iut_file(name: str) -> IutSpec:
    """The :class:`IutSpec` of the in-repo IUT folder ``conformance/adapters/<name>/`` (for adapters reading their
    own declaration, such as aioice and coturn)."""
    return load_iut_file(_HERE / name / IUT_FILE)


# -- the registry ---------------------------------------------------------------------------------------------

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


def _specs_of(obj: Any, where: str) -> list[IutSpec]:
    """What an entry point's object registers: an IutSpec, an iut.toml path, a module beside one, or a callable."""
    if isinstance(obj, IutSpec):
        return [obj]
    if isinstance(obj, str | Path):
        path = Path(obj)
        return [load_iut_file(path / IUT_FILE if path.is_dir() else path)]
    if isinstance(obj, ModuleType):
        files = [Path(p) / IUT_FILE for p in getattr(obj, "__path__", [])] or (
            [Path(obj.__file__).parent / IUT_FILE] if obj.__file__ else []
        )
        found = [f for f in files if f.is_file()]
        if not found:
            raise IutFileError(f"{where}: module {obj.__name__} has no {IUT_FILE} beside it")
        return [load_iut_file(found[0])]
    if isinstance(obj, list | tuple):
        return [s for item in obj for s in _specs_of(item, where)]
    if callable(obj):
        return _specs_of(obj(), where)
    raise IutFileError(f"{where}: an entry point must give an IutSpec, an {IUT_FILE} path or a module, not {obj!r}")


def load_entry_points() -> list[str]:
    """Register the IUTs of the ``ice_conformance.iuts`` entry points; returns their names. A broken entry point
    is logged and skipped (one vendor package must not make the harness unusable); a name clash is refused."""
    names: list[str] = []
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        where = f"entry point {ep.name} = {ep.value}"
        try:
            specs = _specs_of(ep.load(), where)
        except Exception as exc:
            logger.warning("%s: skipped: %s", where, exc)
            continue
        for spec in specs:
            if spec.name in REGISTRY and REGISTRY[spec.name] != spec:
                logger.warning("%s: skipped: IUT %r is already registered", where, spec.name)
                continue
            register(spec)
            names.append(spec.name)
    return names


def _load_builtin() -> None:
    for path in sorted(_HERE.glob(f"*/{IUT_FILE}")):
        register(load_iut_file(path))


_load_builtin()
load_entry_points()
