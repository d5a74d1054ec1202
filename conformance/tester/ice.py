"""The scripted ICE peer and the session that wires it to an IUT agent (RFC 8445 §6, §7, §8).

Theory of operation: :class:`IcePeer` is the harness's side of an ICE session on one :class:`Endpoint` per component.
It knows both sets of credentials, crafts checks and responses with the Scapy layers (integrity and fingerprint
computed unless the case overrides them), and can run an auto-responder that answers the IUT's valid checks as a
conforming agent would (§7.3). :class:`IceSession` creates the IUT agent through its adapter, exchanges credentials
and candidates, starts the checks and records every notification, so a case reads as a send/expect script.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from conformance.adapters.base import (
    Adapter,
    AgentConfig,
    LocalDescription,
    Notification,
    TurnServer,
    accepts_remote_options,
)
from conformance.packets import (
    BINDING,
    ERROR,
    INDICATION,
    REQUEST,
    STUN,
    SUCCESS,
    ErrorCode,
    attr,
    check_integrity,
    message_type,
)
from conformance.protocol.candidate import Candidate, parse_candidate
from conformance.protocol.keys import short_term_key
from conformance.protocol.priority import candidate_priority
from conformance.tester.capture import Capture
from conformance.tester.endpoint import Address, Endpoint, Received
from conformance.verdict import HarnessError, UnsupportedFeature

#: BINDING and the message classes are re-exported from :mod:`conformance.packets` for the suites.
__all__ = [
    "BINDING",
    "ERROR",
    "INDICATION",
    "OPTION_NOT_DELIVERED",
    "REQUEST",
    "SUCCESS",
    "IcePeer",
    "IceSession",
    "NotificationLog",
    "random_credentials",
]

#: How the report words an option the adapter did not report as applied (contract 1.2, ``applied_options``).
OPTION_NOT_DELIVERED = "not supported by this adapter"

logger = logging.getLogger(__name__)

_ICE_CHARS = string.ascii_letters + string.digits + "+/"


def random_credentials(ufrag_len: int = 8, pwd_len: int = 24) -> tuple[str, str]:
    """A random ufrag and pwd of ice-chars (RFC 8445 §5.3, RFC 8839 §5.4)."""

    def pick(n: int) -> str:
        return "".join(secrets.choice(_ICE_CHARS) for _ in range(n))

    return pick(ufrag_len), pick(pwd_len)


class IcePeer:
    """The harness's ICE agent: endpoints per component, credentials, crafted checks, auto-responder."""

    def __init__(self, endpoints: list[Endpoint], ufrag: str, pwd: str, tiebreaker: int) -> None:
        self.endpoints = endpoints
        self.ufrag = ufrag
        self.pwd = pwd
        self.tiebreaker = tiebreaker
        self.role = "controlled"
        self.remote_ufrag = ""
        self.remote_pwd = ""
        self.auto_respond = True
        #: Overrides for auto-responses: a function (request) -> bytes | None; None means "answer normally", b""
        #: means "do not answer".
        self.responder: Callable[[Received], bytes | None] | None = None
        #: Extra endpoints (more candidates of a component), as (endpoint, component), see :meth:`attach`.
        self.extra: list[tuple[Endpoint, int]] = []
        #: Earlier (ufrag, pwd) generations, newest first, still answered after :meth:`new_credentials` (§9).
        self.previous: list[tuple[str, str]] = []
        self._unhook = [ep.on_datagram(self._on_datagram) for ep in endpoints]

    @classmethod
    async def open(
        cls, capture: Capture, host: str = "127.0.0.1", components: int = 1, label: str = "harness peer"
    ) -> IcePeer:
        """Bind one endpoint per component with fresh credentials."""
        eps = [
            await Endpoint.open(capture, host, 0, f"{label}" if components == 1 else f"{label} c{c}")
            for c in range(1, components + 1)
        ]
        ufrag, pwd = random_credentials()
        return cls(eps, ufrag, pwd, secrets.randbits(64))

    @property
    def endpoint(self) -> Endpoint:
        """The component-1 endpoint."""
        return self.endpoints[0]

    def candidates(self, priority_offset: int = 0) -> list[str]:
        """The harness's host candidates, one per component, priority by the RFC 8445 §5.1.2.1 formula."""
        out = []
        for i, ep in enumerate(self.endpoints, start=1):
            prio = candidate_priority(126, 65535, i) - priority_offset
            out.append(f"candidate:H{i} {i} udp {prio} {ep.address[0]} {ep.address[1]} typ host")
        return out

    def attach(self, endpoint: Endpoint, component: int = 1) -> None:
        """Answer checks on one more endpoint, a further candidate of ``component`` (RFC 8445 §5.1.1)."""
        self.extra.append((endpoint, component))
        self._unhook.append(endpoint.on_datagram(self._on_datagram))

    def all_endpoints(self, component: int | None = None) -> list[Endpoint]:
        """The main and attached endpoints (of one component, or all)."""
        out = [(ep, i) for i, ep in enumerate(self.endpoints, start=1)] + self.extra
        return [ep for ep, c in out if component is None or c == component]

    def new_credentials(self, ufrag: str | None = None, pwd: str | None = None) -> None:
        """ICE restart on the harness side: fresh ufrag and pwd; the old ones stay answerable (RFC 8445 §9)."""
        self.previous.insert(0, (self.ufrag, self.pwd))
        fresh = random_credentials()
        self.ufrag, self.pwd = ufrag or fresh[0], pwd or fresh[1]

    def generation_of(self, rec: Received) -> int | None:
        """0 when ``rec`` is a valid check under the current credentials, n for the n-th previous, else None."""
        if not rec.is_type(BINDING, REQUEST) or rec.index is None:
            return None
        username = rec.index.value("USERNAME") or b""
        for n, (ufrag, pwd) in enumerate([(self.ufrag, self.pwd), *self.previous]):
            if username.startswith(ufrag.encode() + b":") and check_integrity(rec.data, short_term_key(pwd)) is None:
                return n
        return None

    @property
    def local_key(self) -> bytes:
        """Key for responses the harness sends and requests it receives (RFC 8445 §7.3)."""
        return short_term_key(self.pwd)

    @property
    def remote_key(self) -> bytes:
        """Key for checks the harness sends to the IUT (RFC 8445 §7.2.2)."""
        return short_term_key(self.remote_pwd)

    # -- crafting --------------------------------------------------------------------------------------------

    def check(
        self,
        *,
        use_candidate: bool = False,
        role: str | None = None,
        tiebreaker: int | None = None,
        priority: int | None = None,
        username: bytes | None = None,
        key: bytes | None = None,
        extra: list[Any] | None = None,
        integrity: bool = True,
        fingerprint: bool = True,
        transaction_id: bytes | None = None,
    ) -> STUN:
        """A connectivity check to the IUT (RFC 8445 §7.2.2); every field overridable."""
        role = role or self.role
        tb = self.tiebreaker if tiebreaker is None else tiebreaker
        attributes: list[Any] = [
            attr.Username(username=username if username is not None else f"{self.remote_ufrag}:{self.ufrag}".encode()),
            attr.Priority(priority=priority if priority is not None else candidate_priority(110, 65535, 1)),
            attr.IceControlling(tiebreaker=tb) if role == "controlling" else attr.IceControlled(tiebreaker=tb),
        ]
        if use_candidate:
            attributes.append(attr.UseCandidate())
        attributes += extra or []
        if integrity:
            attributes.append(attr.MessageIntegrity())
        if fingerprint:
            attributes.append(attr.Fingerprint())
        kwargs: dict[str, Any] = {} if transaction_id is None else {"transaction_id": transaction_id}
        return STUN(type=message_type(BINDING, REQUEST), key=key or self.remote_key, attributes=attributes, **kwargs)

    def success(self, request: Received, *, key: bytes | None = None, mapped: Address | None = None) -> STUN:
        """The success response a conforming agent sends (RFC 8445 §7.3, RFC 8489 §14.2)."""
        host, port = mapped or request.src
        family = 2 if ":" in host else 1
        return STUN(
            type=message_type(BINDING, SUCCESS),
            transaction_id=request.transaction_id,
            key=key or self.local_key,
            attributes=[
                attr.XorMappedAddress(family=family, address=host, port=port),
                attr.MessageIntegrity(),
                attr.Fingerprint(),
            ],
        )

    def error(self, request: Received, code: int, *, integrity: bool = True, key: bytes | None = None) -> STUN:
        """An error response, integrity-protected unless told otherwise (RFC 8489 §6.3.1.1)."""
        attributes: list[Any] = [ErrorCode(code)]
        if integrity:
            attributes.append(attr.MessageIntegrity())
        attributes.append(attr.Fingerprint())
        return STUN(
            type=message_type(BINDING, ERROR),
            transaction_id=request.transaction_id,
            key=key or self.local_key,
            attributes=attributes,
        )

    # -- auto-responder ---------------------------------------------------------------------------------------

    def is_valid_check(self, rec: Received) -> bool:
        """A Binding request to us with our ufrag and a MESSAGE-INTEGRITY valid under our pwd (RFC 8445 §7.3)."""
        if not rec.is_type(BINDING, REQUEST) or rec.index is None:
            return False
        username = rec.index.value("USERNAME") or b""
        return username.startswith(self.ufrag.encode() + b":") and check_integrity(rec.data, self.local_key) is None

    def _on_datagram(self, rec: Received) -> None:
        if not self.auto_respond:
            return
        generation = self.generation_of(rec) if self.previous else (0 if self.is_valid_check(rec) else None)
        if generation is None:
            return
        ep = next(e for e in self.all_endpoints() if e.address == rec.dst)
        custom = self.responder(rec) if self.responder is not None else None
        if custom == b"":
            return
        if custom is None:
            key = None if generation == 0 else short_term_key(self.previous[generation - 1][1])
            custom = bytes(self.success(rec, key=key))
        ep.send(custom, rec.src)

    async def transact(
        self, message: STUN, to: Address, timeout: float = 5.0, component: int = 1, note: str = ""
    ) -> Received | None:
        """Send a request, retransmitting at 0.5 s doubling (RFC 8489 §6.2.1), until its response or ``timeout``."""
        ep = self.endpoints[component - 1]
        data = bytes(message)
        txid = data[8:20]
        since = ep.now()
        ep.send(data, to, note)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        rto = 0.5
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            try:
                return await ep.expect(
                    lambda r: r.is_stun and r.transaction_id == txid and (r.index.msg_class in (SUCCESS, ERROR)),  # type: ignore[union-attr]
                    min(rto, remaining),
                    since=since,
                )
            except HarnessError:
                if loop.time() >= deadline:
                    return None
                ep.send(data, to, note + " (retransmit)" if note else "retransmit")
                rto *= 2

    def close(self) -> None:
        """Close every endpoint."""
        for unhook in self._unhook:
            unhook()
        for ep in self.endpoints:
            ep.close()
        for ep, _ in self.extra:
            ep.close()


class NotificationLog:
    """Every notification from the IUT for one agent, with waiting on predicates."""

    def __init__(self, adapter: Adapter) -> None:
        self.adapter = adapter
        self.items: list[Notification] = []
        self._agents: set[str] = set()
        self._changed = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._drain())

    def watch(self, agent: str) -> None:
        """Keep notifications of this agent (others, e.g. of an earlier case, are dropped)."""
        self._agents.add(agent)

    async def _drain(self) -> None:
        while True:
            note = await self.adapter.notifications.get()
            if str(note.params.get("agent")) in self._agents:
                self.items.append(note)
                self._changed.set()

    async def wait(
        self, method: str, predicate: Callable[[Notification], bool] | None = None, timeout: float = 10.0
    ) -> Notification | None:
        """The first notification of ``method`` (matching ``predicate``), or None after ``timeout``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for n in self.items:
                if n.method == method and (predicate is None or predicate(n)):
                    return n
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                return None

    def of(self, method: str) -> list[Notification]:
        """Every notification of ``method`` so far."""
        return [n for n in self.items if n.method == method]

    async def close(self) -> None:
        """Stop draining."""
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task


@dataclass
class IceSession:
    """One IUT agent wired to the harness's :class:`IcePeer` (RFC 8445 §5, §6)."""

    adapter: Adapter
    peer: IcePeer
    role: str
    agent: str = ""
    local: LocalDescription | None = None
    log: NotificationLog | None = None
    candidates: list[Candidate] = field(default_factory=list)
    #: The SDP-level options the harness signalled to the IUT (contract 1.1), ``ice_options`` included.
    remote_options: dict[str, Any] = field(default_factory=dict)
    #: The option names the adapter says it handed to its IUT (contract 1.2); None: it did not say, or not yet sent.
    applied_options: list[str] | None = None
    _remote: list[str] = field(default_factory=list, repr=False)
    _remote_extra: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    async def open(
        cls,
        adapter: Adapter,
        peer: IcePeer,
        role: str,
        log: NotificationLog,
        *,
        ufrag: str | None = None,
        pwd: str | None = None,
        components: int = 1,
        remote_candidates: list[str] | None = None,
        connect: bool = True,
        options: dict[str, Any] | None = None,
        interfaces: list[str] | None = None,
        stun_servers: list[str] | None = None,
        trickle: bool = False,
        signal_remote: bool = True,
        lite: bool = False,
        remote_options: dict[str, Any] | None = None,
        turn_servers: list[TurnServer] | None = None,
        relay_only: bool = False,
    ) -> IceSession:
        """Create the IUT agent in ``role``, gather, give it the harness's description, and start checks.

        ``signal_remote=False`` (controlling IUT only) stops after gathering: the case delivers the answer later with
        :meth:`signal_remote` (RFC 8445 §7.3, checks arriving before the answer). With ``trickle`` the IUT's local
        candidates are collected from its ``candidate`` notifications up to end-of-candidates (RFC 8838 §13).
        ``turn_servers`` and ``relay_only`` give the agent TURN servers (relayed candidates, RFC 8445 §5.1.1.2).
        """
        config = AgentConfig(
            role=role,
            components=components,
            ufrag=ufrag,
            pwd=pwd,
            interfaces=list(interfaces or ["127.0.0.1"]),
            stun_servers=list(stun_servers or []),
            trickle=trickle,
            options=options or {},
            turn_servers=list(turn_servers or []),
            relay_only=relay_only,
        )
        session = cls(adapter, peer, role, log=log)
        session.agent = await adapter.create_agent(config)
        log.watch(session.agent)
        peer.role = "controlled" if role == "controlling" else "controlling"
        cands = peer.candidates() if remote_candidates is None else remote_candidates
        session._remote = cands
        if role == "controlled" and not signal_remote:
            raise HarnessError("a controlled IUT answers: it needs the harness's description before gathering")
        # Offer/answer order: the controlling IUT offers (gathers first); the controlled IUT answers, so it learns
        # the harness's description before gathering (SDP-driven stacks need that order).
        # The harness is an RFC 8445 agent, so its description carries the ice2 option (RFC 8445 §10) unless the case
        # overrides ice_options. The SDP-level options (contract 1.1) are passed to in-process adapters only when their
        # set_remote takes them; whether the IUT got them is what the adapter reports (contract 1.2, applied_options).
        session.remote_options = {"ice_options": ["ice2"], **(remote_options or {})}
        extra: dict[str, Any] = {}
        if accepts_remote_options(adapter.set_remote):
            extra["options"] = dict(session.remote_options)
        if lite:
            extra["lite"] = True
        session._remote_extra = extra
        if role == "controlled":
            session.applied_options = await adapter.set_remote(session.agent, peer.ufrag, peer.pwd, cands, **extra)
        session.local = await adapter.gather(session.agent)
        lines = list(session.local.candidates)
        if trickle:
            lines += await session._trickled_candidates(log)
        session.candidates = [parse_candidate(c) for c in lines]
        peer.remote_ufrag, peer.remote_pwd = session.local.ufrag, session.local.pwd
        if role == "controlling" and signal_remote:
            session.applied_options = await adapter.set_remote(session.agent, peer.ufrag, peer.pwd, cands, **extra)
        if connect and (signal_remote or role == "controlled"):
            await adapter.connect(session.agent)
        return session

    async def _trickled_candidates(self, log: NotificationLog, timeout: float = 15.0) -> list[str]:
        """The local candidates a trickle agent announced, up to its end-of-candidates (RFC 8838 §13)."""

        def mine(n: Notification) -> bool:
            return n.method == "candidate" and str(n.params.get("agent")) == self.agent

        end = await log.wait("candidate", lambda n: mine(n) and n.params.get("candidate") is None, timeout)
        if end is None:
            raise HarnessError(f"the trickle IUT announced no end-of-candidates within {timeout:g} s")
        return [str(n.params["candidate"]) for n in log.of("candidate") if mine(n) and n.params.get("candidate")]

    async def signal_remote(self, candidates: list[str] | None = None, *, connect: bool = True) -> None:
        """Deliver the harness's answer (credentials and candidates) to the IUT, then start its checks."""
        cands = self._remote if candidates is None else candidates
        self.applied_options = await self.adapter.set_remote(
            self.agent, self.peer.ufrag, self.peer.pwd, cands, **self._remote_extra
        )
        if connect:
            await self.adapter.connect(self.agent)

    def delivered(self, name: str) -> bool:
        """Whether the IUT got ``name``: an entry of the signalled options, or an ICE option token such as ``ice2``.

        Only the adapter's ``applied_options`` (contract 1.2) count; an adapter that does not report delivers nothing.
        """
        applied = self.applied_options or []
        if name in self.remote_options:
            return name in applied
        return "ice_options" in applied and name in self.remote_options.get("ice_options", [])

    def options_delivery(self) -> list[str]:
        """One line per signalled option for the report, e.g. ``ice2: delivered``."""
        names = [str(t) for t in self.remote_options.get("ice_options", [])]
        if not names:
            names = ["ice_options"]  # an empty list (an RFC 5245 peer) is a signal too: no a=ice-options
        names += [k for k in self.remote_options if k != "ice_options"]
        return [f"{n}: {'delivered' if self.delivered(n) else OPTION_NOT_DELIVERED}" for n in names]

    def require_option(self, name: str, why: str) -> None:
        """Raise UNSUPPORTED unless the IUT got ``name``: a case must not grade an option its IUT never received."""
        if not self.delivered(name):
            raise UnsupportedFeature(f"{name}: {OPTION_NOT_DELIVERED} ({why})")

    def iut_addresses(self, component: int = 1) -> list[Address]:
        """The transport addresses of the IUT's UDP host candidates for a component."""
        return [
            (c.address, c.port)
            for c in self.candidates
            if c.component == component and c.kind == "host" and c.protocol.lower() == "udp"
        ]

    @property
    def iut_address(self) -> Address:
        """The first IPv4 UDP host candidate of component 1."""
        addrs = [a for a in self.iut_addresses() if ":" not in a[0]]
        if not addrs:
            raise HarnessError(f"the IUT offered no IPv4 UDP host candidate: {self.local}")
        return addrs[0]

    def is_check_from_iut(self, rec: Received) -> bool:
        """A Binding request sent by the IUT to the harness."""
        return rec.is_type(BINDING, REQUEST)

    async def close(self) -> None:
        """Close the IUT agent (errors are logged: the session is over)."""
        try:
            await asyncio.wait_for(self.adapter.close(self.agent), 5)
        except Exception as exc:
            logger.info("closing agent %s: %s", self.agent, exc)
