"""The adapter contract: how the harness drives an implementation under test (IUT).

Theory of operation: every IUT is reached through one set of asynchronous operations (the table in
``docs/adapter-contract.md``): the lifecycle every IUT has (:class:`Adapter`), plus those of its kind, an ICE
agent's (:class:`IceAgentAdapter`) or a STUN/TURN server's (:class:`TurnServerAdapter`). An in-process adapter
implements its kind's protocol directly in Python; an out-of-process shim speaks the same operations as JSON-RPC
2.0 over its stdin and stdout and is wrapped by :class:`conformance.adapters.stdio.StdioAdapter`, which implements
both (the shim answers -32601 for the other kind's). Everything above this layer (fixtures, suites) sees only
:class:`Adapter`, every operation, the other kind's answering :class:`Unsupported` on both routes
(:func:`conformance.adapters.contract.complete`), so both routes give the same verdicts.
"""

from __future__ import annotations

import asyncio
import base64
import enum
import inspect
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "CAPABILITIES",
    "CONTRACT_VERSION",
    "CRASH_SIGNALS",
    "Adapter",
    "AdapterError",
    "AdapterTimeout",
    "AgentConfig",
    "Credentials",
    "ErrorCode",
    "IceAgentAdapter",
    "IutAdapter",
    "IutCrashed",
    "IutInfo",
    "LocalDescription",
    "Notification",
    "RemoteError",
    "TurnServer",
    "TurnServerAdapter",
    "Unsupported",
    "accepts_remote_options",
    "applied_options",
    "describe_exit",
    "iut_death",
]

#: Version of the adapter contract. Minor bumps only add optional params, result fields, methods and notifications.
CONTRACT_VERSION = "1.2"

#: Every capability an IUT may declare (PICS); see docs/adapter-contract.md.
CAPABILITIES = frozenset(
    {
        "controlling",
        "controlled",
        "set_credentials",
        "trickle",
        "ipv6",
        "stun_client",
        "turn_client",
        "turn_server",
        "stun_server",
        "consent",
        "restart",
        "lite",
        "aggressive_nomination",
        "multi_component",
        "tcp",
    }
)


class ErrorCode(enum.IntEnum):
    """JSON-RPC 2.0 error codes of the contract (docs/adapter-contract.md, "Errors")."""

    PARSE_ERROR = -32700
    INVALID_REQUEST = -32600
    METHOD_NOT_FOUND = -32601  # read by the harness as "unsupported"
    INVALID_PARAMS = -32602
    INTERNAL_ERROR = -32603
    INVALID_STATE = -32000  # the operation is not valid in the agent's current state
    UNKNOWN_AGENT = -32001  # no agent (or server) with that id


class AdapterError(Exception):
    """The adapter, the shim or the environment failed: graded ERROR, never the IUT's FAIL.

    ``stalled_in`` names the adapter method that timed out or was pending when the shim died (None otherwise):
    three cases in a row stalled in the same method mark the IUT as hung (conformance/hung.py).
    """

    def __init__(self, *args: object, stalled_in: str | None = None) -> None:
        super().__init__(*args)
        self.stalled_in = stalled_in


class AdapterTimeout(AdapterError):
    """A request to the adapter did not complete within its deadline."""


class RemoteError(AdapterError):
    """The shim answered a request with a JSON-RPC error object."""

    def __init__(self, method: str, code: int, message: str, data: Any = None) -> None:
        super().__init__(f"{method}: error {code}: {message}")
        self.method = method
        self.code = code
        self.message = message
        self.data = data


#: Signals a process raises on itself when it faults (memory errors, abort(), traps): the IUT crashed.
CRASH_SIGNALS = frozenset(
    int(s)
    for s in (
        signal.SIGSEGV,
        signal.SIGBUS,
        signal.SIGILL,
        signal.SIGFPE,
        signal.SIGABRT,
        signal.SIGTRAP,
        signal.SIGSYS,
    )
)


def describe_exit(returncode: int) -> str:
    """``killed by SIGSEGV (signal 11)`` for a negative return code, ``exited with code N`` otherwise."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = "an unknown signal"
        return f"killed by {name} (signal {-returncode})"
    return f"exited with code {returncode}"


class IutCrashed(AdapterError):
    """The IUT's process died without the harness asking it to: a signal, or an exit of its own.

    A death from a fault signal (:data:`CRASH_SIGNALS`) is the IUT's: graded FAIL under ROB-CRASH-01
    (suites/catalog.toml). An exit with a code may be the shim's own failure, and SIGKILL or SIGTERM come from
    outside, so outside the robustness suite those stay ERROR; the message says which.
    """

    def __init__(
        self, name: str, returncode: int, context: str = "", tail: str = "", *, stalled_in: str | None = None
    ) -> None:
        self.name = name
        self.returncode = returncode
        self.context = context
        self.tail = tail
        during = f" {context}" if context else ""
        super().__init__(
            f"{name}: the IUT process {describe_exit(returncode)}{during}"
            + (f"; last stderr lines:\n{tail}" if tail else ""),
            stalled_in=stalled_in,
        )

    @property
    def signal(self) -> int | None:
        """The signal that killed the process, or None when it exited."""
        return -self.returncode if self.returncode < 0 else None

    @property
    def is_crash(self) -> bool:
        """Killed by a fault signal (SIGSEGV, SIGABRT, ...): the IUT's own crash, graded FAIL.

        SIGKILL, SIGTERM and the like come from outside (the OOM killer, an operator): environment, ERROR.
        """
        return self.signal in CRASH_SIGNALS

    @property
    def signal_name(self) -> str | None:
        """``SIGSEGV`` and so on, or None when it exited."""
        return describe_exit(self.returncode).split()[2] if self.returncode < 0 else None


def iut_death(adapter: object) -> IutCrashed | None:
    """How the adapter's IUT process died on its own, or None while it lives (or the adapter cannot tell).

    Adapters that run processes offer an optional ``death()`` method (docs/adapter-contract.md, "Crashes");
    the in-process ones have no process of their own to lose.
    """
    probe = getattr(adapter, "death", None)
    return probe() if callable(probe) else None


class Unsupported(AdapterError):
    """The IUT does not implement the operation (JSON-RPC -32601): graded UNSUPPORTED."""


@dataclass(frozen=True)
class IutInfo:
    """The result of ``initialize``: who the IUT is and what it declares."""

    name: str
    version: str
    capabilities: frozenset[str]
    contract: str = CONTRACT_VERSION


@dataclass(frozen=True)
class TurnServer:
    """A TURN server the IUT should use as a client."""

    uri: str
    username: str
    password: str


@dataclass
class AgentConfig:
    """Parameters of ``create_agent``."""

    role: str  # "controlling" or "controlled"
    components: int = 1
    ufrag: str | None = None
    pwd: str | None = None
    stun_servers: list[str] = field(default_factory=list)
    turn_servers: list[TurnServer] = field(default_factory=list)
    relay_only: bool = False
    interfaces: list[str] = field(default_factory=lambda: ["127.0.0.1"])
    trickle: bool = False
    options: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The ``create_agent`` params object."""
        out: dict[str, Any] = {
            "role": self.role,
            "components": self.components,
            "stun_servers": list(self.stun_servers),
            "turn_servers": [{"uri": t.uri, "username": t.username, "password": t.password} for t in self.turn_servers],
            "relay_only": self.relay_only,
            "interfaces": list(self.interfaces),
            "trickle": self.trickle,
            "options": dict(self.options),
        }
        if self.ufrag is not None:
            out["ufrag"] = self.ufrag
        if self.pwd is not None:
            out["pwd"] = self.pwd
        return out

    @classmethod
    def from_json(cls, params: dict[str, Any]) -> AgentConfig:
        """Parse a ``create_agent`` params object (the shim side)."""
        return cls(
            role=str(params.get("role", "controlling")),
            components=int(params.get("components", 1)),
            ufrag=params.get("ufrag"),
            pwd=params.get("pwd"),
            stun_servers=[str(s) for s in params.get("stun_servers", [])],
            turn_servers=[
                TurnServer(str(t["uri"]), str(t["username"]), str(t["password"]))
                for t in params.get("turn_servers", [])
            ],
            relay_only=bool(params.get("relay_only", False)),
            interfaces=[str(i) for i in params.get("interfaces", ["127.0.0.1"])],
            trickle=bool(params.get("trickle", False)),
            options=dict(params.get("options", {})),
        )


@dataclass(frozen=True)
class Credentials:
    """ICE credentials (RFC 8445 §5.3)."""

    ufrag: str
    pwd: str


@dataclass(frozen=True)
class LocalDescription:
    """The result of ``gather``: credentials and RFC 8839 candidate attribute values."""

    ufrag: str
    pwd: str
    candidates: list[str]
    #: Contract 1.1: the tokens of the IUT's a=ice-options (RFC 8839 §5.6); None when it has no SDP layer.
    ice_options: list[str] | None = None
    #: Contract 1.1: the IUT's a=remote-candidates values (RFC 8839 §5.2); None when it has no SDP layer.
    remote_candidates: list[str] | None = None


@dataclass(frozen=True)
class Notification:
    """A notification from the IUT: ``candidate``, ``state``, ``selected_pair`` or ``data``."""

    method: str
    params: dict[str, Any]
    time: float = 0.0

    def payload(self) -> bytes:
        """The ``data`` field decoded from base64 (params stay in their JSON form on both routes)."""
        return base64.b64decode(self.params["data"], validate=True)


@runtime_checkable
class IutAdapter(Protocol):
    """What every IUT's adapter offers, in process or behind a stdio shim: its lifecycle (docs/adapter-contract.md).

    An ICE agent adds :class:`IceAgentAdapter`'s methods, a TURN server :class:`TurnServerAdapter`'s; an adapter
    implements only those of its kind (a stdio shim answers the others -32601). Every method raises
    :class:`AdapterError` (or a subclass) when the adapter itself fails, and :class:`Unsupported` for an operation
    the IUT does not implement.
    """

    #: Notifications from the IUT, in arrival order.
    notifications: asyncio.Queue[Notification]

    async def initialize(self) -> IutInfo: ...

    async def shutdown(self) -> None: ...

    def diagnostics(self) -> str:
        """Free text to attach to a case: the shim's stderr, the server's log."""
        ...


@runtime_checkable
class IceAgentAdapter(IutAdapter, Protocol):
    """An ICE agent IUT (RFC 8445): agents, their candidates, checks and data (docs/adapter-contract.md §3)."""

    async def create_agent(self, config: AgentConfig) -> str: ...

    async def gather(self, agent: str) -> LocalDescription: ...

    async def set_remote(
        self, agent: str, ufrag: str, pwd: str, candidates: list[str], lite: bool = False
    ) -> list[str] | None:
        """The peer's description. Contract 1.1: adapters may also take ``options`` (SDP-level signalling, RFC
        8839); the harness passes it only when set, so 1.0 adapters keep working. Contract 1.2: the names of the
        ``options`` entries the adapter really handed to its IUT (``applied_options``); None when it does not say,
        which the harness reads as "not delivered"."""
        ...

    async def add_remote_candidate(self, agent: str, candidate: str | None) -> None: ...

    async def connect(self, agent: str) -> None: ...

    async def send(self, agent: str, component: int, data: bytes) -> None: ...

    async def restart(self, agent: str) -> Credentials: ...

    async def close(self, agent: str) -> None: ...


@runtime_checkable
class TurnServerAdapter(IutAdapter, Protocol):
    """A STUN or TURN server IUT (RFC 8489, RFC 8656) started and stopped by the harness."""

    async def start_server(
        self,
        kind: str,
        listen: str,
        realm: str | None = None,
        users: dict[str, str] | None = None,
        options: dict[str, Any] | None = None,
    ) -> tuple[str, str]:
        """Start a STUN or TURN server IUT; returns (server id, "host:port")."""
        ...

    async def stop_server(self, server: str) -> None: ...


@runtime_checkable
class Adapter(IceAgentAdapter, TurnServerAdapter, Protocol):
    """What the harness drives: every operation of the contract. :class:`~conformance.adapters.stdio.StdioAdapter`
    is one; an in-process adapter of one kind becomes one through :func:`conformance.adapters.contract.complete`,
    which answers the other kind's operations with :class:`Unsupported` (a case's UNSUPPORTED)."""


def accepts_remote_options(set_remote: Callable[..., Any]) -> bool:
    """Whether an adapter's ``set_remote`` can be called with contract 1.1's ``options`` (stdio shims ignore unknown
    params). A calling convention only: whether the IUT got an option is what :func:`applied_options` reads."""
    try:
        params = inspect.signature(set_remote).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "options" or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def applied_options(method: str, result: Any) -> list[str] | None:
    """Contract 1.2's optional ``applied_options`` of a ``set_remote`` result: option names, or None when absent."""
    if result is None:
        return None
    if not isinstance(result, list) or not all(isinstance(v, str) for v in result):
        raise AdapterError(f"{method}: applied_options must be a list of option names, got {result!r}")
    return list(result)
