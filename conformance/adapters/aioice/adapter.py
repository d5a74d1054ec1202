"""aioice 0.13 as an in-process IUT: :class:`AioiceAdapter` maps the contract onto ``aioice.Connection``.

Theory of operation: one ``aioice.Connection`` per agent, keyed by an id ("a1", "a2", ...).

- Interfaces: upstream ``aioice.ice.get_host_addresses`` drops 127.0.0.1 and ::1, so gathering on loopback
  needs a patch. The module function is replaced once per process by a dispatcher that reads a
  :class:`contextvars.ContextVar`: :meth:`AioiceAdapter.gather` sets the agent's ``interfaces`` in the
  variable around ``gather_candidates()`` (the lookup happens synchronously at its start, in the caller's
  context). Outside such a call the variable is unset and the original function runs, so nothing leaks to
  other adapters, other agents or other users of aioice in the same process.
- mDNS: a remote ``.local`` candidate is ignored with a log line; aioice would resolve it by multicast.
- Completion: ``connect`` runs ``Connection.connect()`` as a background task and returns at once. It emits
  ``state`` checking, then ``selected_pair`` per component and ``state`` connected, or ``state`` failed. The
  selected pair is read from ``Connection._nominated`` (private: aioice has no public selected-pair API).
  A receive loop then emits ``data``; a watcher on ``get_event()`` turns a close that the harness did not ask
  for (consent expiry, RFC 7675 §5.1) into ``state`` failed. ``close`` emits ``state`` closed.
- Non-trickle agents: the candidates given to ``set_remote`` are complete, so the adapter signals
  end-of-candidates itself; trickle agents wait for ``add_remote_candidate(None)`` (RFC 8838 §13).
- Trickle agents gather in the background: ``gather`` returns the credentials and no candidates, and the
  candidates follow as ``candidate`` notifications (one burst, as aioice gathers in one shot), then ``null``.
- Diagnostics: a handler on the ``aioice`` logger keeps this adapter's lines (records that name one of its
  connections, plus the records that name none, such as TURN ones) in a bounded buffer, with the adapter's
  own lines (ignored candidates, failures).

Notifications carry params in their JSON form (``data`` base64), exactly as a stdio shim sends them.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import contextvars
import ipaddress
import itertools
import logging
import re
from collections import deque
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any
from urllib.parse import parse_qs

import aioice
import aioice.ice

from ..base import (
    AgentConfig,
    Credentials,
    ErrorCode,
    IutInfo,
    LocalDescription,
    Notification,
    RemoteError,
    Unsupported,
)

__all__ = ["AioiceAdapter", "declared_capabilities"]

logger = logging.getLogger(__name__)

_INTERFACES: contextvars.ContextVar[tuple[str, ...] | None] = contextvars.ContextVar(
    "conformance_aioice_interfaces", default=None
)
_PATCH_MARK = "_conformance_interfaces_patch"
_MDNS_RE = re.compile(r"^[^\s]+\.local\.?$", re.IGNORECASE)


def _install_interfaces_patch() -> None:
    """Replace ``aioice.ice.get_host_addresses`` (once) by a dispatcher on the context variable."""
    current = aioice.ice.get_host_addresses
    if getattr(current, _PATCH_MARK, False):
        return
    original = current

    def get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        wanted = _INTERFACES.get()
        if wanted is None:
            return list(original(use_ipv4, use_ipv6))
        out: list[str] = []
        for address in wanted:
            version = ipaddress.ip_address(address).version
            if (version == 4 and use_ipv4) or (version == 6 and use_ipv6):
                out.append(address)
        return out

    setattr(get_host_addresses, _PATCH_MARK, True)
    aioice.ice.get_host_addresses = get_host_addresses


def declared_capabilities() -> frozenset[str]:
    """The capabilities of aioice's ``iut.toml`` (checked against the contract's list when it is loaded)."""
    from conformance.adapters.registry import iut_file

    return iut_file("aioice").capabilities or frozenset()


def _split_hostport(value: str, default_port: int) -> tuple[str, int]:
    """ "host:port", "[v6]:port" or "host" -> (host, port)."""
    value = value.strip()
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port = int(rest[1:]) if rest.startswith(":") else default_port
        return host, port
    if value.count(":") == 1:
        host, _, port_text = value.partition(":")
        return host, int(port_text)
    return value, default_port


def _parse_turn_uri(uri: str) -> tuple[tuple[str, int], bool, str]:
    """A ``turn:``/``turns:`` URI (RFC 7065) -> ((host, port), ssl, transport)."""
    scheme, sep, rest = uri.partition(":")
    if not sep or scheme.lower() not in ("turn", "turns"):
        raise ValueError(f"not a turn: or turns: URI: {uri!r}")
    ssl = scheme.lower() == "turns"
    hostport, _, query = rest.partition("?")
    transport = parse_qs(query).get("transport", ["tcp" if ssl else "udp"])[0].lower()
    if transport not in ("udp", "tcp"):
        raise ValueError(f"unsupported TURN transport {transport!r} in {uri!r}")
    return _split_hostport(hostport, 5349 if ssl else 3478), ssl, transport


def _strip_candidate(value: str) -> str:
    """An RFC 8839 attribute value without ``a=`` and ``candidate:``, as ``Candidate.from_sdp`` wants it."""
    value = value.strip()
    value = value.removeprefix("a=")
    return value[len("candidate:") :] if value.lower().startswith("candidate:") else value


@dataclass
class _Agent:
    """One aioice connection and the tasks that report on it."""

    id: str
    conn: aioice.Connection
    config: AgentConfig
    interfaces: tuple[str, ...]
    gather_task: asyncio.Task[None] | None = None
    connect_task: asyncio.Task[None] | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    gathered: bool = False
    closing: bool = False
    state: str = "new"


class _LogCapture(logging.Handler):
    """Keeps the aioice log lines that belong to one adapter, bounded."""

    def __init__(self, owner: AioiceAdapter, maxlen: int) -> None:
        super().__init__(logging.DEBUG)
        self.owner = owner
        self.lines: deque[str] = deque(maxlen=maxlen)
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args
        if (
            isinstance(args, tuple)
            and args
            and isinstance(args[0], aioice.Connection)
            and not self.owner._owns(args[0])
        ):
            return
        try:
            self.lines.append(self.format(record))
        except Exception:  # a bad log call must not break the adapter
            self.handleError(record)


class AioiceAdapter:
    """The :class:`~conformance.adapters.base.Adapter` for aioice, in process (iuts.md §1)."""

    def __init__(self, *, log_level: int = logging.INFO, log_lines: int = 2000) -> None:
        self.notifications: asyncio.Queue[Notification] = asyncio.Queue()
        self._agents: dict[str, _Agent] = {}
        self._conns: set[int] = set()
        self._ids = itertools.count(1)
        self._log_level = log_level
        self._capture = _LogCapture(self, log_lines)
        self._capture_on = False
        self._saved_level = logging.NOTSET
        _install_interfaces_patch()

    # -- helpers -------------------------------------------------------------------------------------------

    def _log(self, level: int, msg: str, *args: object) -> None:
        """Log through the module logger and keep the line for :meth:`diagnostics` too."""
        logger.log(level, msg, *args, exc_info=level >= logging.ERROR)
        record = logger.makeRecord(logger.name, level, __file__, 0, msg, args, None)
        self._capture.lines.append(self._capture.format(record))

    def _owns(self, conn: aioice.Connection) -> bool:
        return id(conn) in self._conns

    def _notify(self, method: str, params: dict[str, Any]) -> None:
        self.notifications.put_nowait(Notification(method, params, time=asyncio.get_running_loop().time()))

    def _set_state(self, agent: _Agent, state: str) -> None:
        if agent.state != state:
            agent.state = state
            self._notify("state", {"agent": agent.id, "state": state})

    def _agent(self, method: str, agent_id: str) -> _Agent:
        try:
            return self._agents[agent_id]
        except KeyError:
            raise RemoteError(method, ErrorCode.UNKNOWN_AGENT, f"unknown agent {agent_id!r}") from None

    def _start_capture(self) -> None:
        if not self._capture_on:
            log = logging.getLogger("aioice")
            self._saved_level = log.level
            if log.getEffectiveLevel() > self._log_level:
                log.setLevel(self._log_level)
            log.addHandler(self._capture)
            self._capture_on = True

    def _stop_capture(self) -> None:
        if self._capture_on:
            log = logging.getLogger("aioice")
            log.removeHandler(self._capture)
            if not any(isinstance(h, _LogCapture) for h in log.handlers):
                log.setLevel(self._saved_level)
            self._capture_on = False

    def _spawn(self, agent: _Agent, coro: Any, name: str) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.create_task(coro, name=f"aioice-{agent.id}-{name}")
        agent.tasks.append(task)
        return task

    # -- the contract ------------------------------------------------------------------------------------

    async def initialize(self) -> IutInfo:
        """``initialize``: name, aioice's installed version, and the capabilities of ``iut.toml``."""
        self._start_capture()
        return IutInfo(name="aioice", version=metadata.version("aioice"), capabilities=declared_capabilities())

    async def create_agent(self, config: AgentConfig) -> str:
        """``create_agent``: one ``aioice.Connection`` (role, credentials, servers, policy)."""
        method = "create_agent"
        self._start_capture()
        if config.role not in ("controlling", "controlled"):
            raise RemoteError(method, ErrorCode.INVALID_PARAMS, f"bad role {config.role!r}")
        if config.components < 1:
            raise RemoteError(method, ErrorCode.INVALID_PARAMS, f"bad component count {config.components}")
        try:
            interfaces = tuple(str(ipaddress.ip_address(i)) for i in config.interfaces)
            stun_server = turn_server = None
            turn_ssl, turn_transport = False, "udp"
            if config.stun_servers:
                stun_server = _split_hostport(config.stun_servers[0], 3478)
                if len(config.stun_servers) > 1:
                    self._log(logging.INFO, "aioice uses only the first STUN server, %s", config.stun_servers[0])
            turn = config.turn_servers[0] if config.turn_servers else None
            if turn is not None:
                turn_server, turn_ssl, turn_transport = _parse_turn_uri(turn.uri)
                if len(config.turn_servers) > 1:
                    self._log(logging.INFO, "aioice uses only the first TURN server, %s", turn.uri)
        except ValueError as exc:
            raise RemoteError(method, ErrorCode.INVALID_PARAMS, str(exc)) from None
        if config.options:
            self._log(logging.INFO, "aioice adapter ignores options %s", sorted(config.options))
        versions = {ipaddress.ip_address(i).version for i in interfaces}
        try:
            conn = aioice.Connection(
                ice_controlling=config.role == "controlling",
                components=config.components,
                stun_server=stun_server,
                turn_server=turn_server,
                turn_username=turn.username if turn else None,
                turn_password=turn.password if turn else None,
                turn_ssl=turn_ssl,
                turn_transport=turn_transport,
                use_ipv4=4 in versions,
                use_ipv6=6 in versions,
                transport_policy=(aioice.TransportPolicy.RELAY if config.relay_only else aioice.TransportPolicy.ALL),
                local_username=config.ufrag,
                local_password=config.pwd,
            )
        except ValueError as exc:  # credentials outside the ice-char grammar (RFC 8839 §5.4)
            raise RemoteError(method, ErrorCode.INVALID_PARAMS, str(exc)) from None
        agent = _Agent(id=f"a{next(self._ids)}", conn=conn, config=config, interfaces=interfaces)
        self._agents[agent.id] = agent
        self._conns.add(id(conn))
        self._log(logging.INFO, "agent %s is %r (%s)", agent.id, conn, config.role)
        self._notify("state", {"agent": agent.id, "state": "new"})
        return agent.id

    def _description(self, agent: _Agent, candidates: bool) -> LocalDescription:
        conn = agent.conn
        values = [f"candidate:{c.to_sdp()}" for c in conn.local_candidates] if candidates else []
        return LocalDescription(ufrag=conn.local_username, pwd=conn.local_password, candidates=values)

    async def _gather(self, agent: _Agent) -> None:
        """Gather with the agent's interfaces (see the module docstring on the patch)."""
        token = _INTERFACES.set(agent.interfaces)
        try:
            await agent.conn.gather_candidates()
        finally:
            _INTERFACES.reset(token)

    async def _trickle_gather(self, agent: _Agent) -> None:
        """Background gathering of a trickle agent: a burst of ``candidate`` notifications, then null."""
        try:
            await self._gather(agent)
        finally:
            if not agent.closing:
                for value in self._description(agent, True).candidates:
                    self._notify("candidate", {"agent": agent.id, "candidate": value})
                self._notify("candidate", {"agent": agent.id, "candidate": None})

    async def gather(self, agent_id: str) -> LocalDescription:
        """``gather``: local credentials and candidates (RFC 8445 §5.1.1)."""
        agent = self._agent("gather", agent_id)
        if agent.config.trickle:
            if agent.gather_task is None:
                agent.gather_task = self._spawn(agent, self._trickle_gather(agent), "gather")
            agent.gathered = True
            return self._description(agent, False)
        await self._gather(agent)
        agent.gathered = True
        return self._description(agent, True)

    async def set_remote(
        self,
        agent_id: str,
        ufrag: str,
        pwd: str,
        candidates: list[str],
        lite: bool = False,
        options: dict[str, Any] | None = None,
    ) -> list[str]:
        """``set_remote``: remote credentials and candidates; non-trickle agents end candidates here.

        aioice has no SDP layer and no API for the peer's ice-options: no option is applied (contract 1.2)."""
        method = "set_remote"
        agent = self._agent(method, agent_id)
        if options:  # contract 1.1: SDP-level signalling; aioice has no SDP layer
            self._log(logging.INFO, "agent %s: aioice has no SDP layer, ignoring options %s", agent_id, sorted(options))
        conn = agent.conn
        conn.remote_username = ufrag
        conn.remote_password = pwd
        conn.remote_is_lite = lite
        for value in candidates:
            await self._add_candidate(method, agent, value)
        if not agent.config.trickle:
            await conn.add_remote_candidate(None)
        return []  # contract 1.2: no option reached aioice

    async def _add_candidate(self, method: str, agent: _Agent, value: str) -> None:
        body = _strip_candidate(value)
        try:
            candidate = aioice.Candidate.from_sdp(body)
        except (ValueError, IndexError) as exc:
            raise RemoteError(method, ErrorCode.INVALID_PARAMS, f"cannot parse {value!r}: {exc}") from None
        if _MDNS_RE.match(candidate.host):
            self._log(
                logging.INFO, "agent %s ignores mDNS candidate %r (no multicast on the test network)", agent.id, value
            )
            return
        if candidate.transport.lower() != "udp":
            self._log(logging.INFO, "agent %s ignores non-UDP candidate %r (aioice has no ICE-TCP)", agent.id, value)
            return
        try:
            await agent.conn.add_remote_candidate(candidate)
        except ValueError as exc:  # after end-of-candidates
            raise RemoteError(method, ErrorCode.INVALID_STATE, str(exc)) from None

    async def add_remote_candidate(self, agent_id: str, candidate: str | None) -> None:
        """``add_remote_candidate``: a trickled candidate, or None for end-of-candidates (RFC 8838 §13)."""
        method = "add_remote_candidate"
        agent = self._agent(method, agent_id)
        if candidate is None:
            try:
                await agent.conn.add_remote_candidate(None)
            except ValueError as exc:
                raise RemoteError(method, ErrorCode.INVALID_STATE, str(exc)) from None
            return
        await self._add_candidate(method, agent, candidate)

    async def connect(self, agent_id: str) -> None:
        """``connect``: start the checks in the background (RFC 8445 §6.1.4); returns at once."""
        method = "connect"
        agent = self._agent(method, agent_id)
        if agent.connect_task is not None:
            raise RemoteError(method, ErrorCode.INVALID_STATE, f"agent {agent_id} is already connecting")
        if not agent.gathered:
            raise RemoteError(method, ErrorCode.INVALID_STATE, f"agent {agent_id}: gather first")
        if agent.conn.remote_username is None or agent.conn.remote_password is None:
            raise RemoteError(method, ErrorCode.INVALID_STATE, f"agent {agent_id}: set_remote first")
        agent.connect_task = self._spawn(agent, self._run_connect(agent), "connect")

    async def _run_connect(self, agent: _Agent) -> None:
        """Run ``Connection.connect()`` and report states, the selected pair and data."""
        conn = agent.conn
        if agent.gather_task is not None:
            with contextlib.suppress(Exception):
                await agent.gather_task
        self._set_state(agent, "checking")
        try:
            await conn.connect()
        except ConnectionError as exc:
            if not agent.closing:
                self._log(logging.INFO, "agent %s: %s", agent.id, exc)
                self._set_state(agent, "failed")
            return
        except Exception:
            self._log(logging.ERROR, "agent %s: connect() raised", agent.id)
            if not agent.closing:
                self._set_state(agent, "failed")
            return
        if agent.closing:
            return
        # Private: aioice exposes the nominated pairs only as Connection._nominated.
        nominated: dict[int, Any] = dict(getattr(conn, "_nominated", {}))
        for component in sorted(nominated):
            pair = nominated[component]
            self._notify(
                "selected_pair",
                {
                    "agent": agent.id,
                    "component": component,
                    "local": f"candidate:{pair.local_candidate.to_sdp()}",
                    "remote": f"candidate:{pair.remote_candidate.to_sdp()}",
                },
            )
        self._set_state(agent, "connected")
        self._spawn(agent, self._receive(agent), "recv")
        self._spawn(agent, self._watch(agent), "events")

    async def _receive(self, agent: _Agent) -> None:
        """Emit every datagram received on a selected pair as ``data``."""
        while True:
            try:
                data, component = await agent.conn.recvfrom()
            except ConnectionError:
                return
            self._notify(
                "data",
                {
                    "agent": agent.id,
                    "component": component,
                    "data": base64.b64encode(data).decode("ascii"),
                },
            )

    async def _watch(self, agent: _Agent) -> None:
        """A close the harness did not ask for is consent loss (RFC 7675 §5.1): state failed."""
        event = await agent.conn.get_event()
        if isinstance(event, aioice.ConnectionClosed) and not agent.closing:
            self._log(logging.INFO, "agent %s closed by aioice (consent expired or socket lost)", agent.id)
            self._set_state(agent, "failed")

    async def send(self, agent_id: str, component: int, data: bytes) -> None:
        """``send``: one datagram on the component's selected pair."""
        method = "send"
        agent = self._agent(method, agent_id)
        try:
            await agent.conn.sendto(data, component)
        except ConnectionError as exc:
            raise RemoteError(method, ErrorCode.INVALID_STATE, f"agent {agent_id}: {exc}") from None

    async def restart(self, agent_id: str) -> Credentials:
        """``restart``: aioice has no ICE restart (RFC 8445 §9)."""
        self._agent("restart", agent_id)
        raise Unsupported("restart: aioice has no ICE restart API")

    async def close(self, agent_id: str) -> None:
        """``close``: close the connection, stop its tasks, emit ``state`` closed."""
        agent = self._agent("close", agent_id)
        await self._close(agent)

    async def _close(self, agent: _Agent) -> None:
        agent.closing = True
        self._agents.pop(agent.id, None)
        try:
            await asyncio.wait_for(agent.conn.close(), 5.0)
        except Exception:
            self._log(logging.ERROR, "agent %s: close() failed", agent.id)
        for task in agent.tasks:
            task.cancel()
        if agent.tasks:
            await asyncio.gather(*agent.tasks, return_exceptions=True)
        self._conns.discard(id(agent.conn))
        self._set_state(agent, "closed")

    async def shutdown(self) -> None:
        """``shutdown``: close every agent; idempotent."""
        for agent in list(self._agents.values()):
            await self._close(agent)
        self._stop_capture()

    def diagnostics(self) -> str:
        """This adapter's aioice log lines (the last 2000)."""
        return "\n".join(self._capture.lines) + ("\n" if self._capture.lines else "")
