"""Diagnosis of one interop cell: the verdict from the wire's violations and, when a pair did not connect, its cause
read from the capture and the emulator's counters (RFC 8445 §7.2.5, §8)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from conformance.catalog import load_catalog
from conformance.protocol.candidate import CandidateError, parse_candidate
from conformance.tester.monitor import PeerSignalling, WireReport, check_wire
from conformance.verdict import verdict_for_level, worst

if TYPE_CHECKING:
    from conformance.interop.cell import Cell

__all__ = ["candidate_kind", "cause", "judge", "wire_report"]

_DROP_WORDS = {
    "filtered": "filtered by {dst}'s NAT (RFC 4787 §5)",
    "blackholed": "sent to {dst}'s private address (a black hole)",
    "no-mapping": "sent to an external port of {dst}'s NAT with no live mapping",
    "lost": "lost on a lossy link",
    "firewalled": "firewalled: the public network carries no side-to-side traffic",
    "hairpin": "hairpinned to the sender's own NAT, which does not hairpin",
    "unknown-source": "from an address the emulator does not know (the IUT did not bind its interface)",
}


def candidate_kind(candidate: str | None) -> str:
    """The candidate's type (host, srflx, prflx, relay; RFC 8445 §5.1.1), ``?`` when it does not parse."""
    if not candidate:
        return "?"
    try:
        return parse_candidate(candidate).kind
    except CandidateError:
        return "?"


def judge(cell: Cell) -> None:
    """Fill the cell's result: times, selected pairs, wire checks, the verdict and, unconnected, the cause."""
    r = cell.result
    a, b = cell.a, cell.b
    for s in (a, b):
        if s.connect_at is not None and s.connected_at is not None:
            at = s.selected_at if s.selected_at is not None else s.connected_at
            r.times[s.side] = round(max(0.0, at - s.connect_at), 3)
        else:
            r.times[s.side] = None
        if s.selected is not None:
            r.selected[s.side] = {
                "local": candidate_kind(s.selected["local"]),
                "remote": candidate_kind(s.selected["remote"]),
                "local_candidate": s.selected["local"],
                "remote_candidate": s.selected["remote"],
            }
    r.connected = a.connected_at is not None and b.connected_at is not None
    if r.connected:
        kinds = {v for sel in r.selected.values() for k, v in sel.items() if k in ("local", "remote")}
        r.path = "relay" if "relay" in kinds else "direct"
    wire = wire_report(cell)
    r.checks = wire.checks()
    r.checks["unattributed"] = wire.unattributed_checks
    r.violations = [v.as_dict() for v in wire.violations]
    r.suppressed = wire.suppressed
    if r.error:
        if r.verdict != "UNSUPPORTED":
            r.verdict = "ERROR"
        return
    verdicts = ["PASS"]
    if not r.connected:
        r.cause = cause(cell, wire)
        # A side behind a NAT that gathers no server-reflexive candidate (its adapter declares no stun_client) lacks
        # the path the topology's direct expectation rests on (RFC 8445 §5.1.1.2): not connecting is no proof of a
        # fault, so the cell is INFO with the cause, not FAIL.
        blind = [
            s
            for s in (a, b)
            if r.expected == "direct" and cell.topology.side(s.side).nat is not None and "stun_client" not in s.caps
        ]
        if blind:
            names = ", ".join(f"{s.side.upper()} ({s.iut})" for s in blind)
            r.notes.append(
                f"{names} is behind a NAT and gathers no server-reflexive candidate (no stun_client capability): "
                "inconclusive, not a failure"
            )
            verdicts.append("INFO")
        else:
            verdicts.append("FAIL")
    elif r.path != r.expected:
        r.notes.append(f"connected through a {r.path} pair where the topology expects {r.expected}")
        verdicts.append("INFO")
    catalog = load_catalog()
    for v in r.violations:
        level = catalog[v["requirement"]].level if v["requirement"] in catalog else "MUST"
        verdicts.append(verdict_for_level(level))
    r.verdict = worst(verdicts)


def wire_report(cell: Cell) -> WireReport:
    """The passive checks on the cell's capture (conformance.tester.monitor)."""
    a, b = cell.a, cell.b
    sig = [
        PeerSignalling(
            s.side, s.iut, s.role, s.ufrag, s.pwd, tuple(s.candidates), str(cell.plan.private_network(s.side))
        )
        for s in (a, b)
    ]
    return check_wire(cell.capture.datagrams, sig[0], sig[1], servers=cell.servers())


def cause(cell: Cell, wire: WireReport) -> str:
    """Why the pair did not connect, read from the capture and the emulator's counters."""
    a, b = cell.a, cell.b
    names = {"a": a, "b": b}
    parts: list[str] = []
    for key, snd, rcv in (("a>b", a, b), ("b>a", b, a)):
        c = wire.directions[key]
        back = wire.directions[f"{rcv.side}>{snd.side}"]
        if not snd.candidates and snd.ufrag:
            parts.append(f"{snd.label} signalled no candidate")
        if c.requests_sent == 0:
            usable = [x for x in (cell.rewrite(rcv, y) for y in rcv.candidates) if x is not None]
            parts.append(
                f"{snd.label} sent no connectivity check to {rcv.label} ({len(usable)} usable remote candidates "
                "signalled to it)"
            )
        elif c.requests_forwarded == 0:
            why = ", ".join(
                f"{n} {_DROP_WORDS.get(k, k).format(dst=rcv.label)}" for k, n in c.requests_dropped.most_common()
            )
            parts.append(f"checks never reached {rcv.label}: {snd.label} sent {c.requests_sent}; {why}")
        elif back.success_sent == 0:
            parts.append(
                f"no Binding success from {rcv.label} to {snd.label}'s checks ({c.requests_forwarded} delivered"
                f", {back.errors_sent} error responses)"
            )
        elif back.success_forwarded == 0:
            why = ", ".join(
                f"{n} {_DROP_WORDS.get(k, k).format(dst=snd.label)}" for k, n in back.success_dropped.most_common()
            )
            parts.append(f"{rcv.label}'s Binding success responses never reached {snd.label}: {why}")
    if not parts:
        ctl = wire.directions["a>b"]
        parts.append(
            "checks succeeded both ways, but no pair was selected on "
            + ", ".join(s.label for s in (a, b) if s.connected_at is None)
            + f" ({a.label} sent {ctl.with_use_candidate} checks with USE-CANDIDATE)"
        )
    for side, n in sorted(cell.stun_refused.items()):
        parts.append(
            f"the emulator's STUN server refused {n} requests of {names[side].label} (not RFC 8489 Binding "
            "requests: no magic cookie, RFC 3489 form), so it learned no server-reflexive candidate"
        )
    if cell.topology.expect == "relay":
        for s in names.values():
            if not any(candidate_kind(c) == "relay" for c in s.candidates):
                parts.append(f"{s.label} signalled no relay candidate (TURN allocation; see its log)")
    for s in (a, b):
        states = cell.result.states.get(s.side, [])
        if states and states[-1] == "failed":
            parts.append(f"{s.label} reported ICE state failed")
        elif s.connected_at is None:
            parts.append(f"{s.label} not connected within {cell.deadline:g} s (states: {' '.join(states) or 'none'})")
    return "; ".join(parts)
