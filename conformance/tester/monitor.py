"""The passive monitor: every datagram an IUT sends is judged once against the rules that hold for every message.

Two users share it. :class:`Monitor` is attached to each conformance case's capture (``Capture.observers``): every
datagram the IUT sends to the harness is checked as it arrives against the per-message rules (framing, padding,
FINGERPRINT, MESSAGE-INTEGRITY and USERNAME of ICE checks and their responses, PRIORITY, role attributes and
tie-breaker, XOR address encodings, transaction-ID reuse, ChannelData framing, Send indications, invented
comprehension-required attributes); the plugin turns its findings into verdicts on their catalog rows.
:func:`check_wire` judges the ICE checks between two IUTs of an interop cell after the fact.

Interop theory of operation: the emulator records every datagram where it enters (``in``) and where it leaves
(``out``).
Each datagram that entered from an IUT (or from the TURN server relaying an IUT's check) is judged once, on its
``in`` record. A Binding request carrying a USERNAME is an ICE connectivity check (RFC 8445 §7.2.2); its sender is
named by the USERNAME's second half (``<receiver ufrag>:<sender ufrag>``, RFC 8445 §7.2.2), not by its source
address, so a check relayed by TURN is still charged to the IUT that wrote it. A Binding response is matched to its
request by transaction ID (RFC 8489 §6.3.1). The signalled credentials give the short-term keys (RFC 8489 §9.1) and
the signalled candidates the priorities a check's PRIORITY must agree with (RFC 8445 §7.1.1). Pure: no sockets.
"""

from __future__ import annotations

import collections
import ipaddress
import struct
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from conformance.packets import (
    ATTRIBUTE_NAMES,
    BINDING,
    CHANNEL_BIND,
    CREATE_PERMISSION,
    DATA,
    REQUEST,
    SEND,
    SUCCESS,
    attribute_code,
    check_fingerprint,
    check_header,
    check_integrity,
    classify,
    message_type,
    type_name,
)
from conformance.packets.fast import StunIndex, index
from conformance.protocol.keys import short_term_key
from conformance.protocol.transactions import Kind, Request, TransactionModel
from conformance.tester.capture import Address, Datagram

__all__ = [
    "CHECKED_REQUIREMENTS",
    "SYSTEMATIC",
    "DirectionCounts",
    "Monitor",
    "MonitorFinding",
    "PeerSignalling",
    "SystematicViolation",
    "Violation",
    "WireReport",
    "check_wire",
    "drop_reason",
]

#: What a retransmission may change: the integrity and FINGERPRINT values (RFC 8489 §14.5-14.7).
_RECOMPUTED = frozenset(attribute_code(n) for n in ("MESSAGE-INTEGRITY", "MESSAGE-INTEGRITY-SHA256", "FINGERPRINT"))
_DROP_NOTE = "netem dropped: "
#: Violations kept per requirement and sender (the count of the rest is still reported).
_KEEP = 5

#: The requirement IDs the passive checks judge (catalog IDs).
CHECKED_REQUIREMENTS: tuple[str, ...] = (
    "STUN-MSG-01",
    "STUN-FP-01",
    "STUN-MI-01",
    "STUN-AUTH-01",
    "STUN-AUTH-03",
    "ICE-PRIO-04",
    "ICE-CHK-02",
    "ICE-NOM-01",
)


@dataclass(frozen=True)
class PeerSignalling:
    """What one side signalled (RFC 8445 §5.3, RFC 8839 §5.1) and where it lives on the emulated network."""

    side: str  #: "a" or "b"
    iut: str
    role: str  #: "controlling" or "controlled"
    ufrag: str
    pwd: str
    #: Candidates as the IUT gave them (before the emulator's rewrite), gathered and trickled.
    candidates: tuple[str, ...]
    #: The side's private network (its IUT's source addresses), e.g. 127.10.1.0/24.
    network: str


@dataclass(frozen=True)
class Violation:
    """One conformance violation seen on the wire: the requirement, what was wrong, and whose message it was."""

    requirement: str
    message: str
    by: str  #: the side ("a" or "b") whose IUT sent the offending message

    def as_dict(self) -> dict[str, str]:
        """JSON form for ``summary.json``."""
        return {"requirement": self.requirement, "message": self.message, "by": self.by}


@dataclass
class DirectionCounts:
    """Checks and responses of one direction (sender to receiver), as the emulator saw them."""

    requests_sent: int = 0  #: check requests that entered the emulator
    requests_forwarded: int = 0  #: check requests the emulator delivered (``out``)
    requests_dropped: collections.Counter[str] = field(default_factory=collections.Counter)
    with_use_candidate: int = 0
    success_sent: int = 0  #: Binding success responses to the other side's checks
    success_forwarded: int = 0
    success_dropped: collections.Counter[str] = field(default_factory=collections.Counter)
    errors_sent: int = 0  #: Binding error responses

    def as_dict(self) -> dict[str, Any]:
        """JSON form for ``summary.json``."""
        return {
            "requests_sent": self.requests_sent,
            "requests_forwarded": self.requests_forwarded,
            "requests_dropped": dict(sorted(self.requests_dropped.items())),
            "with_use_candidate": self.with_use_candidate,
            "success_sent": self.success_sent,
            "success_forwarded": self.success_forwarded,
            "success_dropped": dict(sorted(self.success_dropped.items())),
            "errors_sent": self.errors_sent,
        }


@dataclass
class WireReport:
    """The passive checks' result: violations (bounded per requirement) and per-direction counts."""

    violations: list[Violation]
    suppressed: dict[str, int]  #: further violations not listed, by requirement
    directions: dict[str, DirectionCounts]  #: "a>b" and "b>a"
    unattributed_checks: int  #: check requests whose USERNAME names neither side's ufrag

    def checks(self) -> dict[str, Any]:
        """Per-direction counts as JSON."""
        return {k: v.as_dict() for k, v in sorted(self.directions.items())}


def drop_reason(d: Datagram) -> str | None:
    """The emulator's drop reason recorded on an ``in`` datagram, or None when it was forwarded."""
    return d.note[len(_DROP_NOTE) :] if d.note.startswith(_DROP_NOTE) else None


@dataclass
class _Sender:
    peer: PeerSignalling
    other: PeerSignalling


def _in_network(ip: str, network: str) -> bool:
    try:
        return ipaddress.ip_address(ip) in ipaddress.ip_network(network)
    except ValueError:
        return False


def _fmt(addr: Address) -> str:
    return f"{addr[0]}:{addr[1]}"


class _Checker:
    def __init__(self, a: PeerSignalling, b: PeerSignalling, servers: Iterable[Address]) -> None:
        self.sides = {"a": _Sender(a, b), "b": _Sender(b, a)}
        self.by_ufrag: dict[str, str] = {}
        for s in (a, b):
            self.by_ufrag.setdefault(s.ufrag, s.side)
        self.servers = set(servers)
        self.relay_ips = {ip for ip, _ in self.servers}
        self.violations: list[Violation] = []
        self.kept: collections.Counter[tuple[str, str]] = collections.Counter()
        self.suppressed: collections.Counter[str] = collections.Counter()
        self.directions = {"a>b": DirectionCounts(), "b>a": DirectionCounts()}
        self.requests: dict[bytes, tuple[str, str]] = {}  #: txid -> (sender side, receiver side)
        self.unattributed = 0

    def flag(self, requirement: str, by: str, message: str) -> None:
        key = (requirement, by)
        if self.kept[key] >= _KEEP:
            self.suppressed[requirement] += 1
            return
        self.kept[key] += 1
        self.violations.append(Violation(requirement, message, by))

    def side_of_source(self, src: Address) -> str | None:
        for name, s in self.sides.items():
            if _in_network(src[0], s.peer.network):
                return name
        return None

    def run(self, datagrams: list[Datagram]) -> WireReport:
        for d in datagrams:
            if classify(d.data) != "stun" or d.src in self.servers or d.dst in self.servers:
                continue  # traffic to and from the STUN/TURN servers is not between the pair
            if d.direction == "in":
                self.judge(d)
            else:
                self.count_out(d)
        return WireReport(
            violations=self.violations,
            suppressed=dict(self.suppressed),
            directions=self.directions,
            unattributed_checks=self.unattributed,
        )

    def header(self, d: Datagram) -> None:
        side = self.side_of_source(d.src)
        if side is None:
            return
        reason = check_header(d.data)
        if reason is not None:
            self.flag("STUN-MSG-01", side, f"STUN message {_fmt(d.src)} -> {_fmt(d.dst)}: {reason}")

    def count_out(self, d: Datagram) -> None:
        idx = index(d.data)
        if idx is None or idx.method != BINDING:
            return
        if idx.msg_class == 0:
            who = self.sender_of_request(idx)
            if who is not None:
                self.directions[f"{who}>{self.sides[who].other.side}"].requests_forwarded += 1
        elif idx.msg_class == 2:
            known = self.requests.get(idx.transaction_id)
            if known is not None:
                self.directions[f"{known[1]}>{known[0]}"].success_forwarded += 1

    def sender_of_request(self, idx: StunIndex) -> str | None:
        raw = idx.value("USERNAME")
        if raw is None:
            return None
        name = raw.decode("utf-8", errors="replace")
        if ":" not in name:
            return None
        return self.by_ufrag.get(name.split(":", 1)[1])

    def judge(self, d: Datagram) -> None:
        idx = index(d.data)
        if idx is None:
            self.header(d)
            return
        if idx.method != BINDING:
            return
        if idx.msg_class == 0:
            self.judge_request(d, idx)
        elif idx.msg_class in (2, 3):
            self.judge_response(d, idx)

    def judge_request(self, d: Datagram, idx: StunIndex) -> None:
        raw = idx.value("USERNAME")
        sender = self.sender_of_request(idx)
        if sender is None:
            by = self.side_of_source(d.src)
            if by is not None:
                text = "no USERNAME" if raw is None else f"USERNAME {raw.decode('utf-8', 'replace')!r}"
                self.unattributed += 1
                self.flag(
                    "STUN-AUTH-01",
                    by,
                    f"Binding request {_fmt(d.src)} -> {_fmt(d.dst)} has {text}; expected "
                    f"'<peer ufrag>:<own ufrag>' (RFC 8445 §7.2.2)",
                )
            return
        s = self.sides[sender]
        me, peer = s.peer, s.other
        direction = self.directions[f"{sender}>{peer.side}"]
        direction.requests_sent += 1
        reason = drop_reason(d)
        if reason is not None:
            direction.requests_dropped[reason] += 1
        self.requests[idx.transaction_id] = (sender, peer.side)
        where = f"check {me.iut} -> {peer.iut} (txid {idx.transaction_id.hex()}, {_fmt(d.src)} -> {_fmt(d.dst)})"
        fp = check_fingerprint(d.data)
        if fp is not None:
            self.flag("STUN-FP-01", sender, f"{where}: {fp}")
        expected_user = f"{peer.ufrag}:{me.ufrag}"
        got_user = (raw or b"").decode("utf-8", errors="replace")
        if got_user != expected_user:
            self.flag("STUN-AUTH-01", sender, f"{where}: USERNAME {got_user!r}, expected {expected_user!r}")
        self.integrity(d, idx, sender, where, peer.pwd, f"{peer.iut}'s ice-pwd (the receiver's)")
        self.role(idx, sender, me.role, where)
        if idx.has("USE-CANDIDATE"):
            direction.with_use_candidate += 1
            if me.role == "controlled":
                self.flag("ICE-NOM-01", sender, f"{where}: USE-CANDIDATE from the controlled agent")
        # Only checks from the sender's own address or relayed by its TURN server are judged: a stack that
        # gathers on every local address also sends strays from bases it was not given (and never signalled).
        if self.side_of_source(d.src) == sender or d.src[0] in self.relay_ips:
            self.priority(idx, sender, where)

    def integrity(self, d: Datagram, idx: StunIndex, by: str, where: str, pwd: str, whose: str) -> None:
        if not (idx.has("MESSAGE-INTEGRITY") or idx.has("MESSAGE-INTEGRITY-SHA256")):
            req = "STUN-AUTH-01" if idx.msg_class == 0 else "STUN-AUTH-03"
            self.flag(req, by, f"{where}: no MESSAGE-INTEGRITY (short-term credentials, RFC 8445 §7.2.2)")
            return
        try:
            key = short_term_key(pwd)
        except ValueError:
            key = pwd.encode("utf-8")
        problem = check_integrity(d.data, key)
        if problem is not None:
            req = "STUN-AUTH-01" if idx.msg_class == 0 else "STUN-AUTH-03"
            self.flag("STUN-MI-01", by, f"{where}: {problem} ({whose})")
            self.flag(req, by, f"{where}: MESSAGE-INTEGRITY does not validate with {whose}")

    def role(self, idx: StunIndex, by: str, role: str, where: str) -> None:
        has_controlling, has_controlled = idx.has("ICE-CONTROLLING"), idx.has("ICE-CONTROLLED")
        expected = "ICE-CONTROLLING" if role == "controlling" else "ICE-CONTROLLED"
        if has_controlling + has_controlled != 1:
            self.flag(
                "ICE-CHK-02", by, f"{where}: expected exactly one role attribute ({expected}) for the {role} agent"
            )
        elif (role == "controlling") != has_controlling:
            got = "ICE-CONTROLLING" if has_controlling else "ICE-CONTROLLED"
            self.flag("ICE-CHK-02", by, f"{where}: carries {got}, but the agent was told to be {role}")

    def priority(self, idx: StunIndex, by: str, where: str) -> None:
        value = idx.value("PRIORITY")
        if value is None or len(value) != 4:
            self.flag("ICE-PRIO-04", by, f"{where}: no PRIORITY attribute (RFC 8445 §7.1.1)")
            return
        (prio,) = struct.unpack("!I", value)
        type_pref = prio >> 24
        # A check's PRIORITY is what the sender would give a peer-reflexive candidate (RFC 8445 §7.1.1); its local
        # preference is the sender's choice (§5.1.2.1), so only the range is judged here, as in the Monitor below.
        if not 1 <= prio <= 2**31 - 1 or type_pref > 126:
            self.flag("ICE-PRIO-04", by, f"{where}: PRIORITY {prio} (type preference {type_pref}) is out of range")

    def judge_response(self, d: Datagram, idx: StunIndex) -> None:
        known = self.requests.get(idx.transaction_id)
        if known is None:
            return
        requester, responder = known
        direction = self.directions[f"{responder}>{requester}"]
        r, q = self.sides[responder].peer, self.sides[requester].peer
        kind = "success" if idx.msg_class == 2 else "error"
        where = f"{kind} response {r.iut} -> {q.iut} (txid {idx.transaction_id.hex()}, {_fmt(d.src)} -> {_fmt(d.dst)})"
        if idx.msg_class == 2:
            direction.success_sent += 1
            reason = drop_reason(d)
            if reason is not None:
                direction.success_dropped[reason] += 1
        else:
            direction.errors_sent += 1
        fp = check_fingerprint(d.data)
        if fp is not None:
            self.flag("STUN-FP-01", responder, f"{where}: {fp}")
        if idx.msg_class == 2:
            if idx.has("USERNAME"):
                self.flag("STUN-AUTH-03", responder, f"{where}: carries USERNAME (RFC 8445 §7.3)")
            self.integrity(d, idx, responder, where, r.pwd, f"{r.iut}'s own ice-pwd (the responder's)")
        elif idx.has("MESSAGE-INTEGRITY"):
            self.integrity(d, idx, responder, where, r.pwd, f"{r.iut}'s own ice-pwd (the responder's)")


def check_wire(
    datagrams: Iterable[Datagram], a: PeerSignalling, b: PeerSignalling, servers: Iterable[Address] = ()
) -> WireReport:
    """Judge every ICE check and response between ``a`` and ``b`` in a capture (RFC 8445 §7, RFC 8489 §14).

    ``servers`` are the STUN/TURN server addresses on the emulated network: traffic to and from them is not a
    check (only its header is checked, RFC 8489 §5).
    """
    return _Checker(a, b, servers).run(list(datagrams))


# -- the per-case monitor of conformance runs --------------------------------------------------------------------

_COOKIE = b"\x21\x12\xa4\x42"
#: Distinct messages that all violate one MUST, with none conforming, before the case is ended with that FAIL.
SYSTEMATIC = 3
#: Which row a malformed XOR-PEER-ADDRESS breaks, by the method of the message carrying it (RFC 8656 §18.3).
_XOR_PEER_ROW = {
    SEND: "TURN-DATA-01",
    DATA: "TURN-DATA-03",
    CREATE_PERMISSION: "TURN-PERM-03",
    CHANNEL_BIND: "TURN-CHAN-01",
}


@dataclass(frozen=True)
class MonitorFinding:
    """One rule the IUT broke in one datagram: the row (and clause), what was wrong, and the datagram itself."""

    requirement: str
    message: str
    datagram: Datagram
    clause: str | None = None
    #: Graded INFO whatever the row's level (a rule of a revision the run does not require, or an unsure one).
    info: bool = False

    def as_dict(self) -> dict[str, Any]:
        """JSON form for ``summary.json``: the finding and the datagram (hex, first 512 bytes) as evidence."""
        d = self.datagram
        return {
            "requirement": self.requirement,
            "clause": self.clause,
            "message": self.message,
            "info": self.info,
            "time": d.time,
            "src": _fmt(d.src),
            "dst": _fmt(d.dst),
            "datagram": d.data[:512].hex(),
        }


class SystematicViolation(Exception):
    """Every message the IUT sent in a case broke the same MUST (RFC 8489 §6.3 has the peer drop them): end it now."""

    def __init__(self, finding: MonitorFinding, count: int) -> None:
        super().__init__(f"{finding.requirement}: all {count} messages the IUT sent violate it: {finding.message}")
        self.finding = finding


def _content(idx: StunIndex) -> tuple[Any, ...]:
    """What a retransmission repeats: the type and every attribute but the integrity and FINGERPRINT values."""
    kept = tuple((c, idx.data[o : o + n]) for c, o, n in idx.attributes if c not in _RECOMPUTED)
    return (idx.type, kept)


class Monitor:
    """Judges every datagram the IUT sends during one conformance case, once (see the module docstring).

    Attach :meth:`observe` to the case's capture. The harness tells it the ICE sessions (signalled credentials and
    candidates, read when a datagram is judged, so restarts are followed) and the TURN servers on either side.
    ``revisions`` gives the newer revisions the run requires (rules only RFC 8489 has are INFO otherwise).
    """

    def __init__(self, revisions: Callable[[], frozenset[int]] = frozenset) -> None:
        self._revisions = revisions
        self._lock = threading.RLock()
        #: The first finding of each requirement (and clause): what becomes the case's verdict on that row.
        self.findings: list[MonitorFinding] = []
        #: Violations seen per requirement, the repeats included.
        self.counts: collections.Counter[str] = collections.Counter()
        #: The finding that ended the case (every message broke it), if any.
        self.systematic: MonitorFinding | None = None
        self._bad: dict[str, set[bytes]] = collections.defaultdict(set)
        self._good: collections.Counter[str] = collections.Counter()
        self._sessions: list[Any] = []
        self._harness: set[Address] = set()
        self._turn_servers: set[Address] = set()  #: the harness's scripted TURN servers (the IUT is a client)
        self._iut_turn_servers: set[Address] = set()  #: TURN servers the IUT runs
        self._transactions = TransactionModel()  #: the IUT's requests: new, retransmitted or repeated
        self._contents: dict[tuple[bytes, Address], tuple[Any, ...]] = {}  #: (txid, destination) -> first content
        self._harness_checks: set[bytes] = set()
        self._tiebreakers: dict[str, bytes] = {}  #: IUT ufrag -> tie-breaker of its checks
        self._ufrags: set[str] = set()
        self._pwds: set[str] = set()
        self._stops: list[Callable[[], object]] = []
        self._relayed: set[Address] = set()  #: relayed addresses the IUT's TURN server allocated
        self._unknown_ufrag: list[tuple[Datagram, str, bytes]] = []
        self._answered: dict[bytes, int] = {}  #: IUT request txid -> the harness's error code to it

    # -- what the harness tells the monitor -------------------------------------------------------------------

    def add_session(self, session: Any) -> None:
        """An IUT agent wired to a harness peer (an :class:`~conformance.tester.ice.IceSession`)."""
        with self._lock:
            self._sessions.append(session)

    def add_turn_server(self, address: Address, *, iut: bool) -> None:
        """A TURN server of the case: the IUT's own (``iut``) or the harness's scripted one."""
        with self._lock:
            (self._iut_turn_servers if iut else self._turn_servers).add(address)

    def on_systematic(self, stop: Callable[[], object]) -> None:
        """Call ``stop`` (from the thread that recorded the datagram) when a violation turns out systematic."""
        self._stops.append(stop)

    def finish(self) -> None:
        """Judge what needed the whole case: checks whose USERNAME ends in no ufrag the IUT ever signalled."""
        with self._lock:
            self._signalled()
            pending, self._unknown_ufrag = self._unknown_ufrag, []
            for d, username, key in pending:
                if username.partition(":")[2] not in self._ufrags:
                    what = f"check (txid {key.hex()})"
                    self._flag("STUN-AUTH-01", d, f"{what}: USERNAME {username!r} does not end in the IUT's ufrag", key)

    @property
    def violated(self) -> bool:
        """Whether a finding graded at its row's level (not INFO) was seen."""
        return any(not f.info for f in self.findings)

    # -- judging ----------------------------------------------------------------------------------------------

    def observe(self, d: Datagram) -> None:
        """Capture observer: note the harness's own datagrams, judge the IUT's."""
        with self._lock:
            if d.direction == "out":
                self._harness.add(d.src)
                self._note_harness(d)
                return
            self._harness.add(d.dst)
            if d.src in self._harness or d.src in self._relayed:
                return  # harness to harness, or the IUT's relay forwarding a harness peer's data
            self._judge(d, d.data)

    def _flag(
        self, requirement: str, d: Datagram, message: str, key: bytes, *, clause: str | None = None, info: bool = False
    ) -> None:
        self.counts[requirement] += 1
        where = f"{_fmt(d.src)} -> {_fmt(d.dst)}"
        if not any(f.requirement == requirement and f.clause == clause for f in self.findings):
            self.findings.append(MonitorFinding(requirement, f"{message} ({where})", d, clause, info))
        if info:
            return
        self._bad[requirement].add(key)
        if self.systematic is None and not self._good[requirement] and len(self._bad[requirement]) >= SYSTEMATIC:
            self.systematic = next(f for f in self.findings if f.requirement == requirement)
            for stop in self._stops:
                stop()

    def _pass(self, requirement: str) -> None:
        self._good[requirement] += 1

    def _note_harness(self, d: Datagram) -> None:
        idx = index(d.data)
        if idx is None:
            return
        if idx.method == BINDING and idx.msg_class == 0 and idx.has("USERNAME"):
            self._harness_checks.add(idx.transaction_id)
        elif idx.msg_class == 3:
            code = idx.error_code or 0
            self._answered[idx.transaction_id] = code
            if code == 487:
                self._tiebreakers.clear()  # a role conflict: the agent may pick a new tie-breaker (RFC 8445 §7.2.5.1)

    def _signalled(self) -> None:
        for s in self._sessions:
            if s.local is not None:
                self._ufrags.add(s.local.ufrag)
                self._pwds.add(s.local.pwd)
            if s.peer.remote_pwd:
                self._pwds.add(s.peer.remote_pwd)
            if s.peer.remote_ufrag:
                self._ufrags.add(s.peer.remote_ufrag)

    def _judge(self, d: Datagram, data: bytes, *, inner: bool = False) -> None:
        """Judge one message; ``inner`` for what the IUT sends through a relay (Send DATA, ChannelData payload)."""
        if not data:
            return
        outer = not inner and (d.dst in self._turn_servers or d.src in self._iut_turn_servers)
        if data[0] & 0xC0 == 0x40 and outer:
            self._channel_data(d, data)
            return
        if data[0] > 3 or len(data) < 20:
            return  # not STUN (RFC 7983 §7): application data, DTLS, ...
        key = data[8:20]
        if data[4:8] != _COOKIE:
            (length,) = struct.unpack_from("!H", data, 2)
            if length == len(data) - 20 and struct.unpack_from("!H", data)[0] in (
                message_type(BINDING, REQUEST),
                message_type(BINDING, SUCCESS),
            ):
                self._flag(
                    "STUN-MSG-01",
                    d,
                    f"a Binding message without the magic cookie 0x2112a442 (RFC 3489 form, RFC 8489 §12): "
                    f"{data[:20].hex()}",
                    key,
                    info=True,
                )
            return  # without the cookie, application data may start with 0-3 too
        problem = check_header(data)
        idx = index(data)
        if problem is not None or idx is None:
            self._flag("STUN-MSG-01", d, f"STUN message: {problem or 'attributes overrun the length'}", key)
            return
        self._pass("STUN-MSG-01")
        self._attributes(d, idx)
        if idx.has("FINGERPRINT"):
            fp = check_fingerprint(data)
            if fp is not None:
                self._flag("STUN-FP-01", d, f"{_describe(idx)}: {fp}", key)
            else:
                self._pass("STUN-FP-01")
        if idx.msg_class == 0:
            self._request(d, idx)
        elif idx.msg_class == 1 and idx.method == SEND and d.dst in self._turn_servers and not inner:
            self._send_indication(d, idx)
        elif idx.msg_class == 2 and idx.method == BINDING and idx.transaction_id in self._harness_checks:
            self._check_response(d, idx)
        elif idx.msg_class == 2 and d.src in self._iut_turn_servers:
            relayed = _xor_address(idx, "XOR-RELAYED-ADDRESS")
            if relayed is not None:
                self._relayed.add(relayed)

    def _attributes(self, d: Datagram, idx: StunIndex) -> None:
        key = idx.transaction_id
        data = idx.data
        for code, off, length in idx.attributes:
            name = ATTRIBUTE_NAMES.get(code, f"0x{code:04x}")
            pad = data[off + length : off + length + (-length & 3)]
            if pad.strip(b"\x00"):
                self._flag(
                    "STUN-MSG-08",
                    d,
                    f"{_describe(idx)}: {name} padding is {pad.hex()}, RFC 8489 §14 requires zeros "
                    "(RFC 5389 §15 allowed any value)",
                    key,
                    info=8489 not in self._revisions(),
                )
            if code < 0x8000 and code not in ATTRIBUTE_NAMES:
                self._flag(
                    "STUN-MSG-06",
                    d,
                    f"{_describe(idx)}: comprehension-required attribute 0x{code:04x} is in no registry the harness "
                    "knows (a receiver must reject the message, RFC 8489 §14)",
                    key,
                    info=True,
                )
            if name in ("XOR-MAPPED-ADDRESS", "XOR-PEER-ADDRESS", "XOR-RELAYED-ADDRESS"):
                value = data[off : off + length]
                family = value[1] if len(value) >= 2 else None
                expected = {1: 8, 2: 20}.get(family or 0)
                if expected != length:
                    row, clause = {
                        "XOR-MAPPED-ADDRESS": ("STUN-MSG-09", "xor_mapped"),
                        "XOR-RELAYED-ADDRESS": ("TURN-ALLOC-03", None),
                    }.get(name, (_XOR_PEER_ROW.get(idx.method, "TURN-DATA-01"), None))
                    what = f"family {family}" if expected is None else f"length {length} for family {family}"
                    self._flag(
                        row,
                        d,
                        f"{_describe(idx)}: {name} has {what} (RFC 8489 §14.2: family 1 is 8 bytes, 2 is 20)",
                        key,
                        clause=clause,
                    )

    def _request(self, d: Datagram, idx: StunIndex) -> None:
        txid, content = idx.transaction_id, _content(idx)
        kind = self._transactions.add(Request(txid, d.src, d.dst, d.time)).kind
        first = self._contents.setdefault((txid, d.dst), content)
        # A retransmission repeats its request; a new transaction (or a repeat of a check) needs an ID of its own.
        elsewhere = kind is not Kind.RETRANSMISSION and len(self._transactions.sends(txid)) > 1
        changed = kind is Kind.RETRANSMISSION and first != content
        if not elsewhere and not changed:
            self._pass("STUN-MSG-02")
        else:
            what = "another destination" if elsewhere else "different content"
            code = self._answered.get(txid)
            text = (
                f"{_describe(idx)}: transaction ID {txid.hex()} reused for a new request ({what}; a retransmission "
                "repeats the request, RFC 8489 §6.2)"
            )
            if code == 401:
                # A retry after a 401 is owned by STUN-AUTH-05 (a new transaction there is a SHOULD, RFC 8489 §9.2.3.1).
                text += " after the harness's 401"
                self._flag("STUN-AUTH-05", d, text, txid + idx.data[-8:], clause="retry_after_401")
            else:
                # After another error the retry's transaction rule is not one the monitor can grade for sure: a note.
                note = f" after the harness's {code} answer to it" if code else ""
                key = txid + idx.data[-8:]
                self._flag("STUN-MSG-02", d, text + note, key, clause="unique_id", info=code is not None)
        if idx.method == BINDING and idx.has("USERNAME"):
            self._check(d, idx)

    def _check(self, d: Datagram, idx: StunIndex) -> None:
        """An ICE connectivity check to a harness peer (RFC 8445 §7.2.2)."""
        self._signalled()
        username = (idx.value("USERNAME") or b"").decode("utf-8", errors="replace")
        peers = [s.peer for s in self._sessions]
        generations = [(p.ufrag, p.pwd) for p in peers] + [g for p in peers for g in p.previous]
        first, _, second = username.partition(":")
        match = next((pwd for ufrag, pwd in generations if ufrag == first), None)
        if match is None:
            return  # not a check to a harness peer this case signalled
        key = idx.transaction_id
        what = f"check (txid {key.hex()})"
        if not idx.has("FINGERPRINT"):
            self._flag("STUN-FP-01", d, f"{what}: no FINGERPRINT (RFC 8445 §7.2.2)", key)
        if second not in self._ufrags:
            self._unknown_ufrag.append((d, username, key))  # a restart's new ufrag may be learnt just after
        problem = check_integrity(idx.data, short_term_key(match))
        if problem is not None:
            self._flag("STUN-AUTH-01", d, f"{what}: MESSAGE-INTEGRITY with the peer's password: {problem}", key)
        else:
            self._pass("STUN-AUTH-01")
        roles = [n for n in ("ICE-CONTROLLING", "ICE-CONTROLLED") if idx.has(n)]
        if len(roles) != 1:
            self._flag("ICE-CHK-02", d, f"{what}: {len(roles)} role attributes, exactly one is required", key)
        else:
            tiebreaker = idx.value(roles[0]) or b""
            before = self._tiebreakers.setdefault(second, tiebreaker)
            if before != tiebreaker:
                self._flag(
                    "ICE-CHK-02",
                    d,
                    f"{what}: tie-breaker {tiebreaker.hex()} differs from the {before.hex()} of its earlier checks, "
                    "with no 487 in between (RFC 8445 §7.1.3)",
                    key,
                )
            else:
                self._pass("ICE-CHK-02")
        self._priority(d, idx, what)

    def _priority(self, d: Datagram, idx: StunIndex, what: str) -> None:
        cands = [c for s in self._sessions for c in s.candidates]
        if not any((c.address, c.port) == d.src and c.kind == "host" for c in cands):
            return  # judged only on checks leaving a signalled host candidate (its own base)
        key = idx.transaction_id
        value = idx.value("PRIORITY")
        if value is None or len(value) != 4:
            self._flag("ICE-PRIO-04", d, f"{what}: no PRIORITY attribute (RFC 8445 §7.1.1)", key)
            return
        (prio,) = struct.unpack("!I", value)
        component = 256 - (prio & 0xFF)
        mine = [c for c in cands if c.component == component]
        low = {c.priority & 0xFFFFFF for c in mine}
        if not 1 <= prio <= 2**31 - 1 or prio >> 24 > 126:
            self._flag("ICE-PRIO-04", d, f"{what}: PRIORITY {prio} is out of range", key)
        elif low and prio & 0xFFFFFF not in low:
            # The check's PRIORITY is what the agent's own algorithm gives a prflx candidate (RFC 8445 §7.1.1). The
            # local preference of that prflx candidate is the agent's choice (§5.1.2.1 only asks for 65535, SHOULD,
            # when it has one address), so a mismatch with its signalled candidates is a note; the priority case
            # (suites/ice/test_priority.py) grades the formula.
            self._flag(
                "ICE-PRIO-04",
                d,
                f"{what}: PRIORITY {prio} has local preference {(prio >> 8) & 0xFFFF} and component {component}, "
                f"matching none of the signalled candidates of component {component} (a note: the local preference "
                "of a peer-reflexive candidate is the agent's choice, RFC 8445 §5.1.2.1)",
                key,
                info=True,
            )
        else:
            self._pass("ICE-PRIO-04")

    def _check_response(self, d: Datagram, idx: StunIndex) -> None:
        """The IUT's success response to a harness check (RFC 8445 §7.3, RFC 8489 §9.1.3)."""
        self._signalled()
        key = idx.transaction_id
        what = f"Binding success (txid {key.hex()})"
        if not idx.has("FINGERPRINT"):
            self._flag("STUN-FP-01", d, f"{what}: no FINGERPRINT (RFC 8445 §7.3)", key)
        if idx.has("USERNAME"):
            self._flag("STUN-AUTH-03", d, f"{what}: carries USERNAME (RFC 8489 §9.1.3)", key)
        if not (idx.has("MESSAGE-INTEGRITY") or idx.has("MESSAGE-INTEGRITY-SHA256")):
            self._flag("STUN-AUTH-03", d, f"{what}: no MESSAGE-INTEGRITY", key)
        elif self._pwds and all(check_integrity(idx.data, short_term_key(p)) for p in self._pwds):
            self._flag("STUN-AUTH-03", d, f"{what}: MESSAGE-INTEGRITY is not keyed with the IUT's password", key)
        else:
            self._pass("STUN-AUTH-03")

    def _send_indication(self, d: Datagram, idx: StunIndex) -> None:
        """A Send indication to the harness's TURN server (RFC 8656 §11.1): XOR-PEER-ADDRESS and DATA."""
        missing = [n for n in ("XOR-PEER-ADDRESS", "DATA") if not idx.has(n)]
        if missing:
            key = idx.transaction_id
            self._flag("TURN-DATA-01", d, f"Send indication without {' and '.join(missing)} (RFC 8656 §11.1)", key)
            return
        self._pass("TURN-DATA-01")
        self._judge(d, idx.value("DATA") or b"", inner=True)

    def _channel_data(self, d: Datagram, data: bytes) -> None:
        """ChannelData between the IUT and a TURN server over UDP (RFC 8656 §12.4, §12.5)."""
        if len(data) < 4:
            self._flag("TURN-CHAN-06", d, f"ChannelData of {len(data)} bytes, the header alone is 4", data)
            return
        channel, length = struct.unpack_from("!HH", data)
        problem = None
        if not 0x4000 <= channel <= 0x4FFF:
            problem = f"channel number 0x{channel:04x} outside 0x4000-0x4FFF (RFC 8656 §12)"
        elif len(data) < 4 + length:
            problem = f"length field {length} exceeds the {len(data) - 4} bytes after the header (RFC 8656 §12.4)"
        elif len(data) - 4 - length > 3:
            problem = (
                f"length field {length} but {len(data) - 4} bytes follow the header: more than the padding to 4 "
                "(RFC 8656 §12.4, §12.5)"
            )
        if problem is not None:
            self._flag("TURN-CHAN-06", d, f"ChannelData {data[:4].hex()}: {problem}", data, clause="format")
            return
        self._pass("TURN-CHAN-06")
        if d.dst in self._turn_servers:
            self._judge(d, data[4 : 4 + length], inner=True)  # what the IUT relays, e.g. its ICE checks


def _xor_address(idx: StunIndex, name: str) -> Address | None:
    """An XOR-encoded address attribute's (ip, port) (RFC 8489 §14.2), or None when absent or malformed."""
    value = idx.value(name)
    if value is None or len(value) not in (8, 20):
        return None
    port = struct.unpack_from("!H", value, 2)[0] ^ 0x2112
    mask = _COOKIE + idx.transaction_id
    raw = bytes(b ^ mask[i] for i, b in enumerate(value[4:]))
    return (str(ipaddress.ip_address(raw)), port)


def _describe(idx: StunIndex) -> str:
    return f"{type_name(idx.type)} (txid {idx.transaction_id.hex()})"
