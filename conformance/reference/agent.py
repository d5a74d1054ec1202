"""A small but real full ICE agent on UDP host candidates, with switchable faults (RFC 8445, RFC 8489, RFC 7675).

Theory of operation: :class:`IceAgent` owns one UDP socket per component per interface (its host candidates) and one
:class:`CheckList` of candidate pairs. A pacer task starts one check every Ta, the one the checklist chooses
(triggered checks first, then the highest-priority Waiting pair, RFC 8445 §6.1.4.2); each check is a STUN
transaction retransmitted on the RFC 8489 §6.2.1 schedule. Every datagram goes through
:meth:`IceAgent._on_datagram`: STUN requests are authenticated and answered (RFC 8489 §9.1.3, RFC 8445 §7.3),
responses complete their transaction (RFC 8445 §7.2.5), anything else is application data. The controlling side
nominates by regular nomination (§8.1.1); the controlled side selects on USE-CANDIDATE (§7.3.1.5). Once a component
has a selected pair, consent freshness runs on it (RFC 7675). Remote candidates may trickle in; the checklist fails
only when a component's pairs have all failed and end-of-candidates was received (RFC 8838 §8). Pairs carry the
credentials of their ICE generation, so after a restart (RFC 8445 §9) the old selected pair keeps carrying data and
consent checks until a new pair is selected.

The STUN codec (conformance/reference/codec.py) is deliberately independent of :mod:`conformance.packets`: the reference
peer is an oracle for the harness's own codec. The checklist (its types, and its logic without I/O) is in
conformance/reference/checklist.py. Every fault (:mod:`conformance.reference.faults`) is one ``if`` at the place it
changes, or one flag of the checklist.
"""

from __future__ import annotations

import asyncio
import collections
import ipaddress
import logging
import os
import random
import secrets
import signal
import struct
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from conformance import __version__
from conformance.protocol.candidate import Candidate, CandidateError, format_candidate, is_ip_address, parse_candidate
from conformance.protocol.priority import candidate_priority
from conformance.protocol.roles import ICE_CONTROLLED, ICE_CONTROLLING, Role, RoleAction, decide_role_conflict
from conformance.protocol.transactions import (
    RC_DEFAULT,
    RM_DEFAULT,
    RTO_DEFAULT,
    TA_DEFAULT,
    retransmission_schedule,
)

from .checklist import (
    CandidatePair,
    CheckList,
    Credentials,
    LocalCandidate,
    NoPairError,
    PairState,
    RemoteCandidate,
    Transaction,
    norm_address,
    random_text,
)
from .codec import (
    ALTERNATE_SERVER,
    BINDING_ERROR,
    BINDING_INDICATION,
    BINDING_REQUEST,
    BINDING_SUCCESS,
    COOKIE_BYTES,
    ERROR_CODE,
    ICE_CONTROLLED_ATTR,
    ICE_CONTROLLING_ATTR,
    KNOWN_OPTIONAL,
    KNOWN_REQUIRED,
    MAPPED_ADDRESS,
    MESSAGE_INTEGRITY,
    PRIORITY,
    SOFTWARE,
    UNEXPECTED_IN_CHECK,
    UNKNOWN_ATTRIBUTES,
    USE_CANDIDATE,
    USERNAME,
    XOR_MAPPED_ADDRESS,
    Address,
    StunMessage,
    address_family,
    declared_lengths,
    decode,
    encode,
    error_value,
    fingerprint_ok,
    plain_address,
    repair_header,
    tlv,
    unxor_address,
    verify_integrity,
    xor_address,
)
from .faults import check_faults

__all__ = ["AgentSettings", "IceAgent"]

logger = logging.getLogger(__name__)

#: The pinging variant stops pinging a pair (and fails it, if it never succeeded) after this long unanswered.
PING_GIVE_UP = 5.0

#: Default limit on candidate pairs (RFC 8445 §6.1.2.5).
MAX_PAIRS_DEFAULT = 100


class _Endpoint(asyncio.DatagramProtocol):
    def __init__(self, agent: IceAgent, local: LocalCandidate | None) -> None:
        self.agent = agent
        self.local = local

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if self.local is not None:
            self.agent._on_datagram(self.local, data, norm_address(addr))

    def error_received(self, exc: Exception) -> None:
        logger.debug("socket error: %s", exc)


@dataclass
class AgentSettings:
    """How to build an :class:`IceAgent`; timers default to the RFC values."""

    controlling: bool = True
    components: int = 1
    ufrag: str | None = None
    pwd: str | None = None
    interfaces: tuple[str, ...] = ("127.0.0.1",)
    faults: frozenset[str] = frozenset()
    tiebreaker: int | None = None
    ta: float = TA_DEFAULT
    rto: float = RTO_DEFAULT
    rc: int = RC_DEFAULT
    rm: int = RM_DEFAULT
    consent: bool = True
    consent_interval: float = 5.0
    consent_timeout: float = 30.0
    software: str = f"ice-conformance reference peer {__version__}"
    max_pairs: int = MAX_PAIRS_DEFAULT
    #: The legal "pinging" variant (libwebrtc's design): when set, a check is never retransmitted; every pair is
    #: checked again as a new transaction at this interval (RFC 8489 §5: a fresh ID for each), until it has gone
    #: unanswered for PING_GIVE_UP seconds; while controlling, every check carries USE-CANDIDATE.
    ping_interval: float | None = None
    #: The legal "strict limit" variant: a pair learnt from an incoming check obeys max_pairs like any other, so a
    #: check on a discarded lowest-priority pair is answered but triggers nothing (RFC 8445 §6.1.2.5).
    strict_pair_limit: bool = False
    keepalive_interval: float = 15.0
    stun_servers: tuple[tuple[str, int], ...] = ()
    gather_timeout: float = 10.0
    #: A legal RFC 5245 variant: it reads no ice-options, so it never learns that its peer is ice2, and nominates
    #: aggressively when controlling (RFC 5245 §8.1.1.2, which RFC 8445 §8.1.1 still expects from such agents).
    rfc5245: bool = False


EventSink = Callable[[str, dict[str, Any]], None]


# --- the agent -----------------------------------------------------------------------------------------------


class IceAgent:
    """A full ICE agent on UDP host candidates (RFC 8445), its faults chosen by :class:`AgentSettings`."""

    def __init__(self, settings: AgentSettings, on_event: EventSink | None = None, name: str = "agent") -> None:
        if settings.components < 1 or settings.components > 256:
            raise ValueError(f"component count {settings.components} is outside 1..256 (RFC 8445 §5.1.2.1)")
        self.settings = settings
        self.faults = check_faults(settings.faults)
        self._deaf = False  # the deaf-after-non-stun fault has struck
        self.name = name
        self._on_event = on_event
        self.journal: collections.deque[str] = collections.deque(maxlen=1000)
        role = Role.CONTROLLING if settings.controlling else Role.CONTROLLED
        if "swapped-initial-role" in self.faults:
            role = Role.CONTROLLED if settings.controlling else Role.CONTROLLING
        self.checklist = CheckList(
            settings.components,
            role,
            settings.max_pairs,
            self._log,
            pair_limit="no-pair-limit" not in self.faults,
            ordered="unordered-checks" not in self.faults,
            cross_component="cross-component-pairs" in self.faults,
            nominations=2 if "nominate-twice" in self.faults else 1,
            keep_first="keep-first-nomination" in self.faults,
            select_latest="select-latest-nomination" in self.faults,
            select_best_valid="select-best-valid-pair" in self.faults,
        )
        self.tiebreaker = settings.tiebreaker if settings.tiebreaker is not None else secrets.randbits(64)
        short = "short-credentials" in self.faults
        self.ufrag = settings.ufrag or random_text(3 if short else 8)
        self.pwd = settings.pwd or random_text(16 if short else 24)
        #: SDP-level state (RFC 8839): the peer answered a=ice-mismatch; ICE gave up on an unusable answer.
        self.ice_mismatch = False
        self._gave_up = False
        self._consent_paused = False
        self._keepalive_task: asyncio.Task[None] | None = None
        self.remote_ufrag: str | None = None
        self.remote_pwd: str | None = None
        self.local_candidates: list[LocalCandidate] = []
        self.state = "new"
        self._started = False
        self._closed = False
        self._transactions: dict[bytes, Transaction] = {}
        self._rechecks: dict[int, int] = {}  # fault recheck-not-retransmit: new checks per pair
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._consent_tasks: dict[int, asyncio.Task[None]] = {}
        self._fixed_txid = os.urandom(12)
        self._rto = 0.1 if "fast-retransmit" in self.faults else settings.rto
        self._gathering: dict[bytes, asyncio.Future[tuple[StunMessage, Address]]] = {}
        #: Server-reflexive candidates learnt while gathering: (base, mapped address, priority, server).
        self.srflx: list[tuple[LocalCandidate, Address, int, Address]] = []
        self._side_sockets: list[asyncio.DatagramTransport] = []

    @property
    def role(self) -> Role:
        """The agent's role, which orders its checklist (RFC 8445 §6.1.1, §6.1.2.3)."""
        return self.checklist.role

    @role.setter
    def role(self, role: Role) -> None:
        self.checklist.role = role

    @property
    def selected(self) -> dict[int, CandidatePair]:
        """The selected pair of each component (RFC 8445 §8.1.1)."""
        return self.checklist.selected

    # -- small helpers ---------------------------------------------------------------------------------------

    def _log(self, level: int, msg: str, *args: object) -> None:
        text = msg % args if args else msg
        logger.log(level, "%s: %s", self.name, text)
        self.journal.append(f"{logging.getLevelName(level)} {self.name}: {text}")

    def _emit(self, method: str, params: dict[str, Any]) -> None:
        if self._on_event is not None and not self._closed:
            self._on_event(method, params)

    def _set_state(self, state: str) -> None:
        if self.state != state:
            self._log(logging.INFO, "state %s -> %s", self.state, state)
            self.state = state
            self._emit("state", {"state": state})

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    def _new_txid(self) -> bytes:
        return self._fixed_txid if "constant-txid" in self.faults else os.urandom(12)

    def _software(self) -> bytes:
        return b"x" * 200 if "long-software" in self.faults else self.settings.software.encode()

    def _pad(self) -> int:
        return 0x20 if "nonzero-padding" in self.faults else 0

    def _fp_mode(self) -> Literal["ok", "none", "bad"]:
        if "no-fingerprint" in self.faults:
            return "none"
        return "bad" if "bad-fingerprint" in self.faults else "ok"

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.create_task(coro, name=f"{self.name}-{name}")
        self._tasks.append(task)
        return task

    def _host_priority(self, component: int, iface: int) -> tuple[int, int]:
        """(local preference, priority) of a host candidate (RFC 8445 §5.1.2.1)."""
        local_pref = 65535 - iface
        if "wrong-priority-formula" in self.faults:
            return 1, (126 << 24) + (1 << 8) + component
        if "duplicate-priorities" in self.faults:
            return 65535, candidate_priority(126, 65535, 1)
        type_pref = 125 if "type-pref-mismatch" in self.faults and component >= 2 else 126
        return local_pref, candidate_priority(type_pref, local_pref, component)

    def _credentials(self) -> Credentials | None:
        if self.remote_ufrag is None or self.remote_pwd is None:
            return None
        return Credentials(self.ufrag, self.pwd, self.remote_ufrag, self.remote_pwd)

    def _endpoint_factory(self, local: LocalCandidate | None) -> Callable[[], _Endpoint]:
        return lambda: _Endpoint(self, local)

    # -- the operations --------------------------------------------------------------------------------------

    async def gather(self) -> list[LocalCandidate]:
        """Bind one socket per component per interface: the host candidates (RFC 8445 §5.1.1.1)."""
        if self.local_candidates:
            return list(self.local_candidates)
        loop = asyncio.get_running_loop()
        for iface, host in enumerate(self.settings.interfaces):
            host = str(ipaddress.ip_address(host))
            for component in range(1, self.settings.components + 1):
                local_pref, priority = self._host_priority(component, iface)
                foundation = "x" * 33 if "bad-foundation" in self.faults else str(iface + 1)
                cand = LocalCandidate(component, host, 0, foundation, local_pref, priority)
                transport, _ = await loop.create_datagram_endpoint(self._endpoint_factory(cand), local_addr=(host, 0))
                cand.transport = transport
                cand.port = int(transport.get_extra_info("sockname")[1])
                if "asymmetric-response" in self.faults:
                    side, _ = await loop.create_datagram_endpoint(self._endpoint_factory(None), local_addr=(host, 0))
                    cand.side = side
                self.local_candidates.append(cand)
                self._log(logging.INFO, "gathered %s", cand.sdp())
        # Remote candidates signalled before gathering (the answerer's order) are paired now (RFC 8445 §6.1.2.2).
        self.checklist.pair_remotes(self.local_candidates)
        if self.settings.stun_servers:
            # One transaction per (host candidate, server) pairing, a new one every Ta (RFC 8445 §5.1.1.2, §14).
            pairings = [
                (c, s)
                for c in list(self.local_candidates)
                for s in self.settings.stun_servers
                if address_family(s) == c.version
            ]
            pace = 0.0 if "gathering-burst" in self.faults else self.settings.ta
            await asyncio.gather(*[self._query_stun_server(c, s, i * pace) for i, (c, s) in enumerate(pairings)])
        return list(self.local_candidates)

    def srflx_sdp(self, base: LocalCandidate, mapped: Address, priority: int, server: Address) -> str:
        """A server-reflexive candidate line, raddr/rport = its base (RFC 8839 §5.1).

        The foundation differs per STUN server IP address (RFC 8445 §5.1.1.3)."""
        servers = sorted({ipaddress.ip_address(s[0]) for s in self.settings.stun_servers}, key=str)
        index = servers.index(ipaddress.ip_address(server[0])) if ipaddress.ip_address(server[0]) in servers else 0
        foundation = (
            f"s{base.foundation}" if "shared-srflx-foundation" in self.faults else f"s{base.foundation}n{index}"
        )
        related = mapped if "srflx-raddr-mapped" in self.faults else base.address
        cand = Candidate(
            foundation, base.component, "udp", priority, mapped[0], mapped[1], "srflx", related[0], related[1]
        )
        return format_candidate(cand)

    async def _stun_transaction(self, local: LocalCandidate, server: Address) -> tuple[StunMessage, Address] | None:
        """One Binding transaction to a STUN server on the RFC 8489 §6.2.1 schedule (capped by gather_timeout)."""
        if local.transport is None:
            return None
        txid = self._new_txid()
        attrs: list[tuple[int, bytes]] = []
        key: bytes | None = None
        if "authenticated-stun-binding" in self.faults:  # short-term credentials where none belong (§5.1.1.2)
            attrs, key = [(USERNAME, f"{self.ufrag}:{self.ufrag}".encode())], self.pwd.encode()
        request = encode(BINDING_REQUEST, txid, attrs, key=key, fingerprint=self._fp_mode(), pad=self._pad())
        future: asyncio.Future[tuple[StunMessage, Address]] = asyncio.get_running_loop().create_future()
        self._gathering[txid] = future
        offsets, fail_at = retransmission_schedule(self._rto, self.settings.rc, self.settings.rm)
        deadline = min(fail_at, self.settings.gather_timeout)
        start = self._now()
        transport = local.transport
        if "stun-from-side-socket" in self.faults:  # a socket that is no host candidate (RFC 8445 §5.1.1.2)
            loop = asyncio.get_running_loop()
            transport, _ = await loop.create_datagram_endpoint(
                self._endpoint_factory(local), local_addr=(local.host, 0)
            )
            self._side_sockets.append(transport)
        try:
            for offset in offsets:
                if offset >= deadline:
                    break
                wait = start + offset - self._now()
                if wait > 0:
                    done, _ = await asyncio.wait({future}, timeout=wait)
                    if done:
                        return future.result()
                transport.sendto(request, server)
            wait = start + deadline - self._now()
            if wait > 0:
                await asyncio.wait({future}, timeout=wait)
            return future.result() if future.done() else None
        finally:
            self._gathering.pop(txid, None)

    async def _query_stun_server(self, local: LocalCandidate, server: Address, delay: float = 0.0) -> None:
        """Server-reflexive gathering (RFC 8445 §5.1.1.2), started after ``delay`` (the Ta pacing); ALTERNATE-SERVER
        in a 300 is ignored; MAPPED-ADDRESS is read when XOR-MAPPED-ADDRESS is absent (RFC 5389 §12.1)."""
        if delay > 0:
            await asyncio.sleep(delay)  # the protocol's Ta timer (RFC 8445 §14.2)
        answer = await self._stun_transaction(local, server)
        if answer is None:
            self._log(logging.INFO, "no answer from STUN server %s:%d", *server)
            return
        msg, _ = answer
        if msg.msg_class == 3:
            alternate_value = msg.get(ALTERNATE_SERVER)
            self._log(logging.INFO, "STUN server %s:%d answered error %s", *server, msg.error_code())
            if alternate_value is not None and "follow-alternate-server" in self.faults:
                alternate = plain_address(alternate_value)
                if alternate is not None:
                    self._log(logging.INFO, "following ALTERNATE-SERVER %s:%d", *alternate)
                    await self._stun_transaction(local, alternate)
            return
        value = msg.get(XOR_MAPPED_ADDRESS)
        mapped = unxor_address(value, msg.txid) if value is not None else None
        plain = msg.get(MAPPED_ADDRESS)
        if mapped is None and plain is not None and "no-mapped-address-fallback" not in self.faults:
            mapped = plain_address(plain)
        if mapped is None or mapped == local.address:
            return  # the same transport address and base as the host candidate: redundant (RFC 8445 §5.1.3)
        type_pref = 126 if "srflx-host-priority" in self.faults else 100
        # A distinct local preference per server keeps priorities unique (RFC 8445 §5.1.2.1).
        local_pref = local.local_pref - 1 - sum(1 for base, *_ in self.srflx if base is local)
        priority = candidate_priority(type_pref, local_pref, local.component)
        self._log(logging.INFO, "server-reflexive %s:%d (base %s:%d)", *mapped, *local.address)
        self.srflx.append((local, mapped, priority, server))

    def set_remote(self, ufrag: str, pwd: str, candidates: Iterable[str], end_of_candidates: bool = True) -> None:
        """Remote credentials and candidates; a restart's new credentials start a new checklist (RFC 8445 §9)."""
        if "truncate-remote-credentials" in self.faults:
            ufrag, pwd = ufrag[:32], pwd[:32]
        self.remote_ufrag, self.remote_pwd = ufrag, pwd
        for value in candidates:
            self.add_remote_candidate(value)
        if end_of_candidates:
            self.add_remote_candidate(None)
        if self._started and not self.checklist.all_selected():
            self._set_state("checking")
        self._wake.set()

    def add_remote_candidate(self, value: str | None) -> None:
        """A trickled remote candidate, or None for end-of-candidates (RFC 8838 §11, §13)."""
        if value is None:
            self.checklist.end_of_candidates = True
            self._log(logging.INFO, "end of remote candidates")
            self._check_failed()
            return
        if self._gave_up or self.ice_mismatch:
            self._log(logging.INFO, "ignoring candidate %s: ICE is over for this stream", value)
            return
        if self.checklist.end_of_candidates and "accept-after-eoc" not in self.faults:
            self._log(logging.INFO, "ignoring candidate after end-of-candidates: %s", value)  # RFC 8838 §13
            return
        try:
            cand = parse_candidate(value)
        except CandidateError as exc:
            self._log(logging.INFO, "ignoring unparsable candidate %r: %s", value, exc)
            return
        if cand.protocol != "udp" or not is_ip_address(cand.address) or not 1 <= cand.component <= 256:
            self._log(logging.INFO, "ignoring candidate %r (not UDP over an IP literal)", value)  # RFC 8839 §5.1
            return
        if cand.extensions and "reject-unknown-extensions" in self.faults:
            self._log(logging.INFO, "ignoring candidate %r with extensions", value)
            return
        host = str(ipaddress.ip_address(cand.address))
        known = self.checklist.find_remote(cand.component, (host, cand.port))
        if known is not None and not (known.type == "prflx" and "duplicate-prflx-pair" in self.faults):
            return  # a duplicate of a known (e.g. peer-reflexive) candidate adds no pair (RFC 8838 §11)
        remote = RemoteCandidate(cand.component, host, cand.port, cand.priority, cand.kind, cand.foundation)
        self.checklist.add_remote(remote, self.local_candidates)
        self._wake.set()

    def connect(self) -> None:
        """Start the checks (RFC 8445 §6.1.4); returns at once."""
        if self._started:
            return
        self._started = True
        self._set_state("checking")
        if "fail-without-candidates" in self.faults and not self.checklist.remote_candidates:
            self._log(logging.INFO, "no remote candidate yet: giving up")
            self._gave_up = True
            self._set_state("failed")
        self._spawn(self._pacer(), "pacer")
        self._wake.set()

    def send(self, component: int, data: bytes) -> None:
        """Send on the selected pair, else on the best valid pair (RFC 8445 §12.1); NoPairError without one."""
        checklist = self.checklist
        pair = checklist.selected.get(component)
        if "data-on-highest-pair" in self.faults:
            mine = [p for p in checklist.pairs if p.component == component]
            pair = checklist.best(mine) if mine else pair
        if pair is None:
            valid = checklist.valid(component)
            pair = checklist.best(valid) if valid else None
        if pair is None:
            if "data-before-consent" in self.faults:
                target = next((p for p in checklist.pairs if p.component == component), None)
                if target is not None and target.local.transport is not None:
                    target.local.transport.sendto(data, target.remote.address)
                    return
            raise NoPairError(f"no valid pair on component {component}")
        if not self._has_consent(pair):
            raise NoPairError(f"consent lost on component {component} ({pair.describe()})")
        assert pair.local.transport is not None
        pair.local.transport.sendto(data, pair.remote.address)

    def restart(self) -> tuple[str, str]:
        """ICE restart: new ufrag and pwd, same role, a new checklist (RFC 8445 §9)."""
        old_pwd = self.pwd
        self.ufrag, self.pwd = random_text(8), random_text(24)
        if "restart-keeps-pwd" in self.faults:
            self.pwd = old_pwd
        if "restart-flips-role" in self.faults:
            self.role = Role.CONTROLLED if self.role is Role.CONTROLLING else Role.CONTROLLING
        if "drop-pair-on-restart" in self.faults:
            self.checklist.selected.clear()
        self._consent_paused = "no-consent-during-restart" in self.faults
        self.checklist.restart()
        self.remote_ufrag = self.remote_pwd = None
        for tx in list(self._transactions.values()):
            if tx.kind == "check":
                self._finish(tx)
        self._log(logging.INFO, "ICE restart: new credentials %s", self.ufrag)
        return self.ufrag, self.pwd

    async def close(self) -> None:
        """Stop every timer and task and close the sockets."""
        if self._closed:
            return
        self._set_state("closed")
        self._closed = True
        for tx in list(self._transactions.values()):
            self._finish(tx)
        tasks = self._tasks + list(self._consent_tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        for local in self.local_candidates:
            for transport in (local.transport, local.side):
                if transport is not None:
                    transport.close()
        for side in self._side_sockets:
            side.close()

    # -- pairs and checks ------------------------------------------------------------------------------------

    def _next_check(self) -> tuple[CandidatePair, bool] | None:
        """The checklist's next check, once checks may start (RFC 8445 §6.1.4.2)."""
        if not self._started or self._credentials() is None or self._gave_up or self.ice_mismatch:
            return None
        return self.checklist.next_check()

    async def _pacer(self) -> None:
        """One new check every Ta (RFC 8445 §14.2)."""
        while not self._closed:
            nxt = self._next_check()
            if nxt is None:
                self._wake.clear()
                await self._wake.wait()
                continue
            self._start_check(*nxt)
            await asyncio.sleep(0.001 if "no-pacing" in self.faults else self.settings.ta)

    def _request(self, pair: CandidatePair, creds: Credentials, use_candidate: bool) -> tuple[bytes, bytes, bytes]:
        """(txid, request bytes, response key) of a connectivity or consent check (RFC 8445 §7.2.2)."""
        txid = self._new_txid()
        username = f"{creds.remote_ufrag}:{creds.local_ufrag}"
        if "swapped-username" in self.faults:
            username = f"{creds.local_ufrag}:{creds.remote_ufrag}"
        type_pref = 126 if "priority-attr-host-pref" in self.faults else 110
        prio = candidate_priority(type_pref, pair.local.local_pref, pair.component)
        attrs: list[tuple[int, bytes]] = [
            (USERNAME, username.encode()),
            (PRIORITY, struct.pack("!I", prio)),
        ]
        role_code = ICE_CONTROLLING_ATTR if self.role is Role.CONTROLLING else ICE_CONTROLLED_ATTR
        if "tiebreaker-per-check" in self.faults:
            self.tiebreaker = secrets.randbits(64)
        attrs.append((role_code, struct.pack("!Q", self.tiebreaker)))
        if use_candidate:
            attrs.append((USE_CANDIDATE, b""))
        attrs.append((SOFTWARE, self._software()))
        key = creds.local_pwd if "wrong-integrity-key" in self.faults else creds.remote_pwd
        length_delta = 4 if "bad-header-length" in self.faults else 0
        data = encode(
            BINDING_REQUEST,
            txid,
            attrs,
            key=key.encode(),
            fingerprint=self._fp_mode(),
            length_delta=length_delta,
            pad=self._pad(),
        )
        return txid, data, creds.remote_pwd.encode()

    def _start_check(self, pair: CandidatePair, nominate: bool) -> None:
        """Send a connectivity check on ``pair`` (RFC 8445 §7.2.4)."""
        creds = self._credentials()
        if creds is None or pair.local.transport is None:
            return
        if self.role is Role.CONTROLLING:
            use_candidate = (nominate or self._aggressive()) and "no-nomination" not in self.faults
        else:
            use_candidate = "controlled-nominates" in self.faults
        txid, data, key = self._request(pair, creds, use_candidate)
        tx = Transaction(txid, pair, data, "check", use_candidate, key, self.role)
        pair.credentials = creds
        self.checklist.checking(pair, tx)
        self._transactions[txid] = tx
        self._log(logging.DEBUG, "check %s%s", pair.describe(), " USE-CANDIDATE" if use_candidate else "")
        self._transmit(tx)
        if "unpruned-redundant-pair" in self.faults:
            # A second pair with the same base and remote, checked at the same time (RFC 8445 §6.1.2.4).
            txid2, data2, key2 = self._request(pair, creds, use_candidate)
            twin = Transaction(txid2, pair, data2, "check", use_candidate, key2, self.role)
            self._transactions[txid2] = twin
            self._transmit(twin)

    def _transmit(self, tx: Transaction) -> None:
        """Send (or resend) a request and arm its timer (RFC 8489 §6.2.1)."""
        transport = tx.pair.local.transport
        if transport is None or self._closed:
            return
        transport.sendto(tx.request, tx.pair.remote.address)
        tx.sends += 1
        loop = asyncio.get_running_loop()
        if tx.kind == "consent":  # consent checks are not retransmitted (RFC 7675 §5.1)
            if "late-response-restores-consent" not in self.faults:
                tx.timer = loop.call_later(self.settings.consent_interval * 2, self._finish, tx)
            return
        offsets, fail_at = retransmission_schedule(self._rto, self.settings.rc, self.settings.rm)
        if tx.kind == "check" and self.settings.ping_interval is not None:
            tx.timer = loop.call_later(self.settings.ping_interval, self._ping_again, tx)
        elif tx.kind == "check" and "recheck-not-retransmit" in self.faults:
            tx.timer = loop.call_later(0.15, self._recheck, tx)
        elif tx.sends < len(offsets):
            tx.timer = loop.call_later(offsets[tx.sends] - offsets[tx.sends - 1], self._transmit, tx)
        else:
            tx.timer = loop.call_later(fail_at - offsets[-1], self._timeout, tx)

    def _recheck(self, tx: Transaction) -> None:
        """Fault recheck-not-retransmit: a new check on the pair instead of a retransmission, Rc times at most."""
        self._finish(tx)
        pair = tx.pair
        if self._closed or pair.transaction is not tx or pair.state is not PairState.IN_PROGRESS:
            return
        self._rechecks[id(pair)] = self._rechecks.get(id(pair), 0) + 1
        if self._rechecks[id(pair)] >= self.settings.rc:
            self._pair_failed(pair, nomination=tx.use_candidate)
            return
        self._start_check(pair, tx.use_candidate)

    def _ping_again(self, tx: Transaction) -> None:
        """The pinging variant: the pair is checked again as a new transaction instead of a retransmission."""
        self._finish(tx)
        pair = tx.pair
        checklist = self.checklist
        if self._closed or pair.transaction is not tx or pair not in checklist.pairs or pair.state is PairState.FAILED:
            return
        if pair.generation != checklist.generation or self.settings.ping_interval is None:
            return
        unanswered = self._rechecks.get(id(pair), 0) + 1
        self._rechecks[id(pair)] = unanswered
        if unanswered * self.settings.ping_interval >= PING_GIVE_UP:
            if pair.state is not PairState.SUCCEEDED:
                self._pair_failed(pair)
            return
        self._start_check(pair, tx.use_candidate)

    def _send_raw(self, pair: CandidatePair, data: bytes) -> None:
        if pair.local.transport is not None and not self._closed:
            pair.local.transport.sendto(data, pair.remote.address)

    def _finish(self, tx: Transaction) -> None:
        if tx.timer is not None:
            tx.timer.cancel()
            tx.timer = None
        if self._transactions.get(tx.txid) is tx:
            del self._transactions[tx.txid]

    def _cancel(self, tx: Transaction) -> None:
        """Stop retransmitting; a late response still counts, a timeout does not fail (RFC 8445 §7.3.1.4)."""
        if tx.timer is not None:
            tx.timer.cancel()
        tx.cancelled = True
        _, fail_at = retransmission_schedule(self._rto, self.settings.rc, self.settings.rm)
        tx.timer = asyncio.get_running_loop().call_later(fail_at, self._finish, tx)

    def _timeout(self, tx: Transaction) -> None:
        """A check transaction timed out: the pair fails (RFC 8445 §7.2.5.4)."""
        if "never-fail-pair" in self.faults and not tx.cancelled and tx.kind == "check":
            tx.sends = 0  # start the schedule over instead of failing the pair
            self._transmit(tx)
            return
        self._finish(tx)
        if tx.cancelled or tx.kind != "check" or tx.pair.transaction is not tx:
            return
        self._log(logging.INFO, "check timed out on %s", tx.pair.describe())
        self._pair_failed(tx.pair, nomination=tx.use_candidate)

    def _pair_failed(self, pair: CandidatePair, nomination: bool = False) -> None:
        if self.settings.ping_interval is not None:
            nomination = False  # USE-CANDIDATE on every check: a failed check is not a failed nomination
        if nomination and self.role is Role.CONTROLLING and "keep-failed-nomination" in self.faults:
            self._log(logging.INFO, "nomination of %s failed: selected anyway", pair.describe())
            self._select(pair)
            return
        self.checklist.failed(pair)
        if nomination and self.role is Role.CONTROLLING:
            # The nominating check failed: the pair leaves the valid list and the checklist fails (§8.1.1).
            self._log(logging.INFO, "nomination of %s failed", pair.describe())
            if pair.generation == self.checklist.generation and not self.checklist.component_done(pair.component):
                self._set_state("failed")
            return
        self._check_failed()

    def _check_failed(self) -> None:
        """The checklist fails when a component's pairs all failed and the peer ended its candidates (RFC 8838 §8)."""
        if not self._started or self.state == "failed":
            return
        component = self.checklist.failed_component()
        if component is not None:
            self._log(logging.INFO, "component %d: every pair failed", component)
            self._set_state("failed")

    def _enqueue(self, pair: CandidatePair, nominate: bool = False) -> None:
        """Queue a check and wake the pacer (RFC 8445 §7.3.1.4)."""
        self.checklist.enqueue(pair, nominate)
        self._wake.set()

    def _trigger(self, pair: CandidatePair) -> None:
        """A triggered check on ``pair``; wake the pacer (RFC 8445 §7.3.1.4)."""
        self.checklist.trigger(pair)
        self._wake.set()

    def _set_role(self, role: Role, reason: str) -> None:
        if role is self.role:
            return
        self._log(logging.INFO, "role %s -> %s (%s)", self.role.value, role.value, reason)
        self.role = role
        self.checklist.nominating.clear()
        if role is Role.CONTROLLING:
            for component in range(1, self.settings.components + 1):
                self._maybe_nominate(component)

    def _aggressive(self) -> bool:
        """RFC 5245 aggressive nomination: USE-CANDIDATE on every check (rfc5245 and pinging variants, or the fault)."""
        pinging = self.settings.ping_interval is not None
        return self.settings.rfc5245 or pinging or "aggressive-nomination" in self.faults

    def _maybe_nominate(self, component: int) -> None:
        """Regular nomination: once a pair succeeded, nominate the best valid pair (RFC 8445 §8.1.1)."""
        if self.role is not Role.CONTROLLING or "no-nomination" in self.faults or self._aggressive():
            return
        checklist = self.checklist
        done = checklist.nominating.setdefault(component, [])
        if len(done) >= checklist.nominations:
            return
        if done and not any(p.nominated for p in done):
            return  # the first nomination is still running
        valid = [p for p in checklist.valid(component, checklist.generation) if p not in done]
        if not valid:
            return
        best = checklist.best(valid)
        done.append(best)
        self._log(logging.INFO, "nominating %s", best.describe())
        self._enqueue(best, nominate=True)

    def _select(self, pair: CandidatePair) -> None:
        """A nominated pair: select the highest-priority nominated pair of its component (RFC 8445 §8.1.1)."""
        best = self.checklist.nominated(pair)
        if best is None:
            return
        self._consent_paused = False
        self._log(logging.INFO, "component %d selected %s", pair.component, best.describe())
        if "check-after-nomination" in self.faults:
            asyncio.get_running_loop().call_later(1.0, self._recheck_others, best)
        if self._keepalive_task is None and {"fast-keepalive", "keepalive-with-integrity"} & self.faults:
            self._keepalive_task = self._spawn(self._keepalive_loop(), "keepalive")
        if "retransmit-indication" in self.faults and best.local.transport is not None:
            keepalive = encode(BINDING_INDICATION, self._new_txid(), [], key=None, fingerprint=self._fp_mode())
            loop = asyncio.get_running_loop()
            for delay in (0.0, 0.5, 1.0):  # a keepalive sent three times with one transaction ID
                loop.call_later(delay, self._send_raw, best, keepalive)
        self._emit(
            "selected_pair", {"component": pair.component, "local": best.local.sdp(), "remote": best.remote.sdp()}
        )
        if self.settings.consent and pair.component not in self._consent_tasks:
            self._consent_tasks[pair.component] = asyncio.create_task(
                self._consent_loop(pair.component), name=f"{self.name}-consent-{pair.component}"
            )
        if self.checklist.all_selected():
            self._set_state("connected")

    async def _keepalive_loop(self) -> None:
        """The keepalive faults: Binding indications every 2 s on selected pairs, whatever was sent (RFC 8445 §11)."""
        while not self._closed:
            await asyncio.sleep(2.0)
            for pair in list(self.selected.values()):
                creds = pair.credentials
                if "keepalive-with-integrity" in self.faults and creds is not None:
                    attrs = [(USERNAME, f"{creds.remote_ufrag}:{creds.local_ufrag}".encode())]
                    data = encode(BINDING_INDICATION, self._new_txid(), attrs, key=creds.remote_pwd.encode())
                else:
                    data = encode(BINDING_INDICATION, self._new_txid(), [], key=None, fingerprint=self._fp_mode())
                self._send_raw(pair, data)

    def _recheck_others(self, best: CandidatePair) -> None:
        """The check-after-nomination fault: the other pairs of the component are checked again."""
        for other in self.checklist.pairs:
            if other.component == best.component and other is not best and other.generation == best.generation:
                other.state = PairState.WAITING
                self._enqueue(other)

    def peer_is_lite(self) -> None:
        """The peer is an ICE-lite agent: a full agent takes the controlling role (RFC 8445 §6.1.1)."""
        if "ignore-lite-peer" not in self.faults:
            self._set_role(Role.CONTROLLING, "the peer is lite")

    def sdp_options(self, options: dict[str, Any]) -> None:
        """SDP-level signalling of the peer's description (RFC 8839 §4.2.5, §5.3)."""
        default = str(options.get("default_destination", ""))
        host, _, port = default.rpartition(":")
        host = host.strip("[]")
        if options.get("ice_mismatch"):
            if "ignore-ice-mismatch" in self.faults and host and port.isdigit():
                self._log(logging.INFO, "ice-mismatch ignored: checking the default destination %s", default)
                self.add_remote_candidate(f"candidate:D 1 udp 1 {host} {port} typ host")
                return
            self._log(logging.INFO, "the peer answered a=ice-mismatch: no ICE for this stream (RFC 8839 §4.2.5)")
            self.ice_mismatch = True
            self.checklist.forget()
            return
        if port == "9" and host in ("0.0.0.0", "::") and "null-default-destination-fails" in self.faults:
            self._log(logging.INFO, "default destination %s: giving up", default)
            self._gave_up = True
            self._set_state("failed")

    # -- consent freshness (RFC 7675) ------------------------------------------------------------------------

    def _has_consent(self, pair: CandidatePair) -> bool:
        if "consent-no-expiry" in self.faults:
            return True
        if pair.consent_revoked:
            return False
        if not self.settings.consent or pair.consent_at is None:
            return True
        return self._now() - pair.consent_at <= self.settings.consent_timeout

    async def _consent_loop(self, component: int) -> None:
        """A consent check every interval x U(0.8, 1.2) on the selected pair (RFC 7675 §5.1)."""
        interval = self.settings.consent_interval
        while not self._closed:
            await asyncio.sleep(interval * random.uniform(0.8, 1.2))
            pair = self.selected.get(component)
            if pair is None:
                continue
            if not self._has_consent(pair):
                if not pair.consent_lost:
                    pair.consent_lost = True
                    self._log(logging.INFO, "consent lost on %s", pair.describe())
                    self._set_state("failed")
                continue
            if "no-consent" in self.faults or pair.local.transport is None or self._consent_paused:
                continue
            creds = pair.credentials
            if creds is None:
                continue
            txid, data, key = self._request(pair, creds, use_candidate=False)
            tx = Transaction(txid, pair, data, "consent", False, key, self.role)
            self._transactions[txid] = tx
            self._transmit(tx)

    # -- the receive path ------------------------------------------------------------------------------------

    def _on_datagram(self, local: LocalCandidate, data: bytes, addr: Address) -> None:
        if self._closed:
            return
        if (
            len(data) >= 20
            and data[4:8] != COOKIE_BYTES
            and data[:2] == b"\x00\x01"
            and "rfc3489-compat" in self.faults
        ):
            self._answer_rfc3489(local, data, addr)
            return
        if self._robustness_fault(data, addr):
            return
        short = len(data) >= 20 and struct.unpack_from("!H", data, 2)[0] > len(data) - 20
        repaired = "accept-truncated" in self.faults and short
        if repaired:
            kept = (len(data) - 20) & ~3
            data = data[:2] + struct.pack("!H", kept) + data[4 : 20 + kept]
        if len(data) >= 20 and "lenient-header" in self.faults:
            data = repair_header(data)
        if not data or data[0] > 3:  # not STUN (RFC 7983 §7)
            if self.checklist.find_remote(local.component, addr) is not None or any(
                p.local is local and p.remote.address == addr for p in self.selected.values()
            ):
                self._emit("data", {"component": local.component, "data": bytes(data)})
            return
        msg = decode(data)
        if msg is None:
            self._log(logging.DEBUG, "dropped a malformed STUN message from %s:%d", *addr)
            return
        if not msg.padding_zero and "reject-space-padding" in self.faults:
            self._log(logging.DEBUG, "dropped a message with non-zero padding from %s:%d", *addr)
            return
        if msg.method != 0x001:
            return
        waiting = self._gathering.get(msg.txid)
        if waiting is not None and msg.msg_class in (2, 3):
            if not waiting.done():
                waiting.set_result((msg, addr))
            return
        if not fingerprint_ok(msg) and "accept-bad-fingerprint" not in self.faults and not repaired:
            self._log(logging.DEBUG, "dropped a message with a missing or bad FINGERPRINT from %s:%d", *addr)
            return
        cls = msg.msg_class
        if cls == 0:
            self._on_request(local, msg, addr)
        elif cls == 1:
            if "answer-indication" in self.faults:
                attrs = [(XOR_MAPPED_ADDRESS, xor_address(addr[0], addr[1], msg.txid))]
                self._reply(local, addr, BINDING_SUCCESS, msg.txid, attrs, key=None)
        else:
            self._on_response(local, msg, addr)

    def _robustness_fault(self, data: bytes, addr: Address) -> bool:
        """The robustness faults (crash, deafness, hang on hostile input); True when the datagram is swallowed."""
        if self._deaf:
            return True
        stranger = not any(r.address == addr for r in self.checklist.remote_candidates)
        if "deaf-after-non-stun" in self.faults and (not data or data[0] > 3) and stranger:
            self._deaf = True
            return True
        if "crash-on-403" in self.faults and data[:2] == b"\x01\x11" and b"\x00\x09" in data[20:]:
            at = data.index(b"\x00\x09", 20)
            if data[at + 6 : at + 8] == b"\x04\x03":
                os.kill(os.getpid(), signal.SIGSEGV)
        if len(data) >= 20 and not data[0] & 0xC0 and data[4:8] == COOKIE_BYTES:
            walked = declared_lengths(data)
            if "crash-on-long-attribute" in self.faults and any(n > 512 for n in walked):
                os.kill(os.getpid(), signal.SIGSEGV)
            if "hang-on-many-attributes" in self.faults and len(walked) > 500:
                time.sleep(30)  # the fault: a blocked event loop, not a wait of the harness
        return False

    def _answer_rfc3489(self, local: LocalCandidate, data: bytes, addr: Address) -> None:
        """The rfc3489-compat fault: a cookie-less Binding request gets MAPPED-ADDRESS (RFC 3489 §11.1)."""
        ip = ipaddress.ip_address(addr[0])
        value = struct.pack("!BBH", 0, 1 if ip.version == 4 else 2, addr[1]) + ip.packed
        body = tlv(MAPPED_ADDRESS, value)
        if local.transport is not None:
            local.transport.sendto(struct.pack("!HH", BINDING_SUCCESS, len(body)) + data[4:20] + body, addr)

    def _reply(
        self,
        local: LocalCandidate,
        addr: Address,
        mtype: int,
        txid: bytes,
        attrs: list[tuple[int, bytes]],
        key: bytes | None,
    ) -> None:
        """Send a response from the address the request arrived on (RFC 8489 §6.3.1.2)."""
        transport = local.side if "asymmetric-response" in self.faults and local.side else local.transport
        if transport is not None:
            transport.sendto(encode(mtype, txid, attrs, key=key, fingerprint=self._fp_mode(), pad=self._pad()), addr)

    def _auth_error(self, local: LocalCandidate, addr: Address, msg: StunMessage, code: int) -> None:
        """400/401 without MESSAGE-INTEGRITY or USERNAME (RFC 8489 §9.1.3)."""
        key = self.pwd.encode() if "error-with-integrity" in self.faults else None
        self._reply(local, addr, BINDING_ERROR, msg.txid, [(ERROR_CODE, error_value(code))], key)

    def _on_request(self, local: LocalCandidate, msg: StunMessage, addr: Address) -> None:
        """Answer a Binding request (RFC 8489 §9.1.3, RFC 8445 §7.3)."""
        if "answer-first-candidate-only" in self.faults and local is not self.local_candidates[0]:
            return
        if "drop-early-checks" in self.faults and self.remote_ufrag is None:
            return
        chosen = self.selected.get(local.component)
        if "ignore-checks-after-selection" in self.faults and chosen is not None and chosen.remote.address != addr:
            return
        username = msg.get(USERNAME)
        if username is None or not msg.has(MESSAGE_INTEGRITY):
            self._auth_error(local, addr, msg, 401 if "no-400-missing-mi" in self.faults else 400)
            return
        if username.split(b":", 1)[0] != self.ufrag.encode():
            self._auth_error(local, addr, msg, 401)
            return
        key = self.pwd.encode()
        if not verify_integrity(msg, key) and "accept-bad-integrity" not in self.faults:
            self._auth_error(local, addr, msg, 401)
            return
        seen = msg.attributes if "check-after-integrity" in self.faults else msg.visible()
        unknown = sorted({c for c, _, _ in seen if c < 0x8000 and c not in KNOWN_REQUIRED})
        if "strict-attributes" in self.faults:
            unknown += sorted(
                {c for c, _, _ in seen if (c >= 0x8000 and c not in KNOWN_OPTIONAL) or c in UNEXPECTED_IN_CHECK}
            )
        if unknown and "ignore-unknown-required" not in self.faults:
            value = b"".join(struct.pack("!H", c) for c in unknown)
            attrs = [(ERROR_CODE, error_value(420)), (UNKNOWN_ATTRIBUTES, value)]
            self._reply(local, addr, BINDING_ERROR, msg.txid, attrs, key)
            return
        prio_value = msg.get(PRIORITY)
        if prio_value is None or len(prio_value) != 4:
            self._reply(local, addr, BINDING_ERROR, msg.txid, [(ERROR_CODE, error_value(400))], key)
            return
        if not self._role_check(local, msg, addr, key):
            return
        mapped = xor_address(addr[0], addr[1], msg.txid)
        if "plain-mapped-address" in self.faults:
            ip = ipaddress.ip_address(addr[0])
            mapped = struct.pack("!BBH", 0, 1 if ip.version == 4 else 2, addr[1]) + ip.packed
        attrs = [(XOR_MAPPED_ADDRESS, mapped)]
        if "response-with-username" in self.faults:
            attrs.append((USERNAME, username))
        if "no-software" not in self.faults:
            attrs.append((SOFTWARE, self._software()))
        reply_key = key
        if "response-wrong-key" in self.faults:
            reply_key = (self.remote_pwd or "").encode()
        self._reply(local, addr, BINDING_SUCCESS, msg.txid, attrs, reply_key)
        self._after_request(local, addr, struct.unpack("!I", prio_value)[0], msg.has(USE_CANDIDATE))

    def _role_check(self, local: LocalCandidate, msg: StunMessage, addr: Address, key: bytes) -> bool:
        """Role conflict by the table (RFC 8445 §7.3.1.1); False when answered with 487."""
        attribute: Literal["ICE-CONTROLLING", "ICE-CONTROLLED"] | None = None
        value = msg.get(ICE_CONTROLLING_ATTR)
        if value is not None:
            attribute = ICE_CONTROLLING
        else:
            value = msg.get(ICE_CONTROLLED_ATTR)
            attribute = ICE_CONTROLLED if value is not None else None
        if attribute is None or value is None or len(value) != 8:
            return True
        peer = struct.unpack("!Q", value)[0]
        action = decide_role_conflict(self.role, self.tiebreaker, attribute, peer)
        if action is RoleAction.SEND_487:
            if self.role is Role.CONTROLLING and "no-487" in self.faults:
                return True
            if self.role is Role.CONTROLLED and "controlled-no-487" in self.faults:
                return True
            self._log(logging.INFO, "role conflict with %s:%d: 487", *addr)
            self._reply(local, addr, BINDING_ERROR, msg.txid, [(ERROR_CODE, error_value(487))], key)
            return False
        if action is RoleAction.SWITCH_ROLE and "no-role-switch" not in self.faults:
            other = Role.CONTROLLED if self.role is Role.CONTROLLING else Role.CONTROLLING
            self._set_role(other, f"role conflict, peer tie-breaker {peer}")
        return True

    def _after_request(self, local: LocalCandidate, addr: Address, priority: int, use_candidate: bool) -> None:
        """Peer-reflexive candidates, triggered checks and nomination (RFC 8445 §7.3.1.3-§7.3.1.5)."""
        checklist = self.checklist
        remote = checklist.find_remote(local.component, addr)
        if remote is None:
            remote = checklist.add_prflx(local.component, addr, priority)
        pair = checklist.find_pair(local, addr)
        new = pair is None
        if pair is None:
            # A pair learnt from a check is being checked, unless the strict-limit variant discards it at once.
            pair = checklist.add_pair(local, remote, protect=not self.settings.strict_pair_limit)
            if pair not in checklist.pairs:
                return
        if "no-triggered-check" in self.faults:
            if new:
                pair.state = PairState.FROZEN
        elif pair.state is not PairState.SUCCEEDED:
            in_progress = pair.state is PairState.IN_PROGRESS and pair.transaction is not None
            if in_progress and pair.transaction is not None and "no-cancel-in-progress" not in self.faults:
                self._cancel(pair.transaction)
            self._trigger(pair)
        elif "recheck-succeeded" in self.faults:
            asyncio.get_running_loop().call_soon(self._start_check, pair, False)
        if use_candidate and self.role is Role.CONTROLLED:
            if pair.state is PairState.SUCCEEDED:
                self._select(pair)
            else:
                pair.nominate_on_success = "ignore-early-use-candidate" not in self.faults

    def _on_response(self, local: LocalCandidate, msg: StunMessage, addr: Address) -> None:
        """Complete a check or consent transaction (RFC 8445 §7.2.5, RFC 7675 §5.1)."""
        tx = self._transactions.get(msg.txid)
        if tx is None:
            return
        if not verify_integrity(msg, tx.key) and "accept-unauthenticated-response" not in self.faults:
            self._log(logging.DEBUG, "discarded a response without valid MESSAGE-INTEGRITY from %s:%d", *addr)
            return
        pair = tx.pair
        symmetric = addr == pair.remote.address and local is pair.local
        self._finish(tx)
        if tx.kind == "consent":
            if not symmetric:
                return
            if not self._has_consent(pair) and "late-response-restores-consent" not in self.faults:
                return  # a response after consent expired does not restore it (RFC 7675 §5.1)
            if msg.msg_class == 2:
                pair.consent_at = self._now()
                pair.consent_lost = False
            elif msg.error_code() == 403 and "ignore-403" not in self.faults:
                pair.consent_revoked = True
                self._log(logging.INFO, "consent revoked by 403 on %s", pair.describe())
            return
        if not symmetric and self.settings.ping_interval is not None and "accept-asymmetric" not in self.faults:
            # The pinging variant matches responses by 5-tuple: one from elsewhere is ignored, the pair stays
            # unvalidated and goes on being pinged (libwebrtc's reading of RFC 8445 §7.2.5.2.1).
            self._log(logging.INFO, "response from %s:%d ignored on %s", *addr, pair.describe())
            tx.timer = asyncio.get_running_loop().call_later(self.settings.ping_interval, self._ping_again, tx)
            self._transactions[tx.txid] = tx
            return
        if not symmetric and "accept-asymmetric" not in self.faults:
            self._log(logging.INFO, "asymmetric response from %s:%d on %s: pair failed", *addr, pair.describe())
            self._pair_failed(pair, nomination=tx.use_candidate)
            return
        if msg.msg_class == 3:
            code = msg.error_code()
            if code == 487 and "ignore-487" not in self.faults:
                # Switch away from the role the check carried, unless already done (RFC 8445 §7.2.5.1).
                other = Role.CONTROLLED if tx.role is Role.CONTROLLING else Role.CONTROLLING
                if self.role is not other:
                    if "keep-tiebreaker" not in self.faults:
                        self.tiebreaker = secrets.randbits(64)
                    self._set_role(other, "487 response")
                self._trigger(pair)
                return
            if "retry-errors" in self.faults:
                self._log(logging.INFO, "error %s on %s: checking again", code, pair.describe())
                pair.state = PairState.WAITING
                asyncio.get_running_loop().call_later(0.2, self._enqueue, pair)
                return
            self._log(logging.INFO, "error %s on %s: pair failed", code, pair.describe())
            self._pair_failed(pair, nomination=tx.use_candidate)
            return
        unknown = [c for c, _, _ in msg.visible() if c < 0x8000 and c not in KNOWN_REQUIRED]
        if unknown and "accept-unknown-required-response" not in self.faults:
            # An unknown comprehension-required attribute fails the transaction (RFC 8489 §6.3.3).
            self._log(logging.INFO, "success with unknown attributes %s on %s: pair failed", unknown, pair.describe())
            self._pair_failed(pair, nomination=tx.use_candidate)
            return
        if "reject-unknown-mapped" in self.faults:
            value = msg.get(XOR_MAPPED_ADDRESS)
            mapped = unxor_address(value, msg.txid) if value is not None else None
            if mapped not in [c.address for c in self.local_candidates]:
                self._log(logging.INFO, "unknown mapped address %s on %s: pair failed", mapped, pair.describe())
                self._pair_failed(pair, nomination=tx.use_candidate)
                return
        pair.consent_at = self._now()
        if self.checklist.succeeded(pair):
            self._log(logging.INFO, "pair succeeded %s", pair.describe())
        if self.settings.ping_interval is not None and pair.transaction is tx:
            self._rechecks[id(pair)] = 0  # the pinging variant goes on pinging a succeeded pair
            tx.timer = asyncio.get_running_loop().call_later(self.settings.ping_interval, self._ping_again, tx)
        nominated_by_us = tx.use_candidate and self.role is Role.CONTROLLING
        if nominated_by_us or (pair.nominate_on_success and self.role is Role.CONTROLLED):
            self._select(pair)
        self._maybe_nominate(pair.component)
        self._wake.set()
