"""Passive checks on the wire between two IUTs: what every ICE check and its response must look like.

Theory of operation: the emulator records every datagram where it enters (``in``) and where it leaves (``out``).
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
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from conformance.packets import check_fingerprint, check_header, check_integrity, classify
from conformance.packets.fast import StunIndex, index
from conformance.protocol.candidate import CandidateError, parse_candidate
from conformance.protocol.keys import short_term_key
from conformance.tester.capture import Address, Datagram

__all__ = [
    "CHECKED_REQUIREMENTS",
    "DirectionCounts",
    "PeerSignalling",
    "Violation",
    "WireReport",
    "check_wire",
    "drop_reason",
]

_BINDING = 0x001
_USERNAME = 0x0006
_MI = 0x0008
_MI256 = 0x001C
_PRIORITY = 0x0024
_USE_CANDIDATE = 0x0025
_FINGERPRINT = 0x8028
_CONTROLLED = 0x8029
_CONTROLLING = 0x802A
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
    low_bits: dict[int, set[int]]  #: component -> (local preference << 8 | 256 - component) of signalled candidates


def _low_bits(candidates: Iterable[str]) -> dict[int, set[int]]:
    out: dict[int, set[int]] = collections.defaultdict(set)
    for text in candidates:
        try:
            c = parse_candidate(text)
        except CandidateError:
            continue
        out[c.component].add(c.priority & 0xFFFFFF)
    return dict(out)


def _in_network(ip: str, network: str) -> bool:
    try:
        return ipaddress.ip_address(ip) in ipaddress.ip_network(network)
    except ValueError:
        return False


def _fmt(addr: Address) -> str:
    return f"{addr[0]}:{addr[1]}"


class _Checker:
    def __init__(self, a: PeerSignalling, b: PeerSignalling, servers: Iterable[Address]) -> None:
        self.sides = {"a": _Sender(a, b, _low_bits(a.candidates)), "b": _Sender(b, a, _low_bits(b.candidates))}
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
        if idx is None or idx.method != _BINDING:
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
        raw = idx.value(_USERNAME)
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
        if idx.method != _BINDING:
            return
        if idx.msg_class == 0:
            self.judge_request(d, idx)
        elif idx.msg_class in (2, 3):
            self.judge_response(d, idx)

    def judge_request(self, d: Datagram, idx: StunIndex) -> None:
        raw = idx.value(_USERNAME)
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
        if idx.has(_USE_CANDIDATE):
            direction.with_use_candidate += 1
            if me.role == "controlled":
                self.flag("ICE-NOM-01", sender, f"{where}: USE-CANDIDATE from the controlled agent")
        # Only checks from the sender's own address or relayed by its TURN server are judged: a stack that
        # gathers on every local address also sends strays from bases it was not given (and never signalled).
        if self.side_of_source(d.src) == sender or d.src[0] in self.relay_ips:
            self.priority(idx, sender, where)

    def integrity(self, d: Datagram, idx: StunIndex, by: str, where: str, pwd: str, whose: str) -> None:
        if not (idx.has(_MI) or idx.has(_MI256)):
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
        has_controlling, has_controlled = idx.has(_CONTROLLING), idx.has(_CONTROLLED)
        expected = "ICE-CONTROLLING" if role == "controlling" else "ICE-CONTROLLED"
        if has_controlling + has_controlled != 1:
            self.flag(
                "ICE-CHK-02", by, f"{where}: expected exactly one role attribute ({expected}) for the {role} agent"
            )
        elif (role == "controlling") != has_controlling:
            got = "ICE-CONTROLLING" if has_controlling else "ICE-CONTROLLED"
            self.flag("ICE-CHK-02", by, f"{where}: carries {got}, but the agent was told to be {role}")

    def priority(self, idx: StunIndex, by: str, where: str) -> None:
        value = idx.value(_PRIORITY)
        if value is None or len(value) != 4:
            self.flag("ICE-PRIO-04", by, f"{where}: no PRIORITY attribute (RFC 8445 §7.1.1)")
            return
        (prio,) = struct.unpack("!I", value)
        type_pref, local_pref, component = prio >> 24, (prio >> 8) & 0xFFFF, 256 - (prio & 0xFF)
        signalled = self.sides[by].low_bits.get(component, set())
        if not 1 <= prio <= 2**31 - 1 or type_pref > 126:
            self.flag("ICE-PRIO-04", by, f"{where}: PRIORITY {prio} (type preference {type_pref}) is out of range")
        elif signalled and (prio & 0xFFFFFF) not in signalled:
            known = ", ".join(f"{lp >> 8}" for lp in sorted(signalled))
            self.flag(
                "ICE-PRIO-04",
                by,
                f"{where}: PRIORITY {prio} has local preference {local_pref} and component {component}, matching "
                f"none of the signalled candidates of component {component} (local preferences {known})",
            )

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
            if idx.has(_USERNAME):
                self.flag("STUN-AUTH-03", responder, f"{where}: carries USERNAME (RFC 8445 §7.3)")
            self.integrity(d, idx, responder, where, r.pwd, f"{r.iut}'s own ice-pwd (the responder's)")
        elif idx.has(_MI):
            self.integrity(d, idx, responder, where, r.pwd, f"{r.iut}'s own ice-pwd (the responder's)")


def check_wire(
    datagrams: Iterable[Datagram], a: PeerSignalling, b: PeerSignalling, servers: Iterable[Address] = ()
) -> WireReport:
    """Judge every ICE check and response between ``a`` and ``b`` in a capture (RFC 8445 §7, RFC 8489 §14).

    ``servers`` are the STUN/TURN server addresses on the emulated network: traffic to and from them is not a
    check (only its header is checked, RFC 8489 §5).
    """
    return _Checker(a, b, servers).run(list(datagrams))
