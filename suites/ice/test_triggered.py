"""Triggered checks (RFC 8445 §7.3.1.4): what a valid incoming check does to the pair it arrived on."""

from __future__ import annotations

import itertools

import pytest

from conformance.protocol.transactions import Request
from conformance.tester.endpoint import Received
from conformance.tester.expect import Expect
from conformance.tester.harness import Harness
from conformance.tester.ice import BINDING, REQUEST
from conformance.tester.ice_steps import check_iut_alive, host_line, open_endpoints, run_exchange
from conformance.tester.transactions import model_of


def _is_request(r: Received) -> bool:
    return r.is_type(BINDING, REQUEST)


@pytest.mark.requirement("ICE-TRIG-01")
@pytest.mark.parametrize("role", ["controlling", "controlled"])  # explicit: keeps the case IDs [state-role]
@pytest.mark.parametrize("state", ["waiting", "failed"])
@pytest.mark.selftest(fault="no-triggered-check")
@pytest.mark.selftest(variant="limiting")
async def test_check_on_a_waiting_or_failed_pair_triggers_a_check(
    harness: Harness, expect: Expect, role: str, state: str
) -> None:
    """ICE-TRIG-01 (RFC 8445 §7.3.1.4): a valid check on a Waiting or Failed pair enqueues a triggered check."""
    peer = await harness.peer()
    f = harness.findings
    ep = peer.endpoint
    if state == "waiting":
        # 18 higher-priority candidates ahead of ours: its ordinary check would come last, about 0.9 s in at Ta.
        # With ours 19 remote candidates (one local candidate: 19 pairs), an agent that limits its pairs and keeps
        # the highest-priority ones (RFC 8445 §6.1.2.5) still keeps ours, at the common limit of 20.
        others = await open_endpoints(harness, 18, "silent remote")
        lines = [host_line(f"W{i}", 2130706431 - i * 256, o.address) for i, o in enumerate(others)]
        lines += peer.candidates(priority_offset=1 << 24)
        s = await harness.session(role, peer=peer, remote_candidates=lines)
        await others[0].expect(_is_request, 10.0, what="the IUT's first check")
        already = ep.find(_is_request)
        if already:
            f.inconclusive(
                "ICE-TRIG-01",
                f"the IUT checked the pair under test before the harness could ({already[0].describe()}), so it "
                "was never Waiting when a harness check could arrive",
            )
            return
    else:
        # A second, silent candidate keeps the checklist Running while our pair is Failed (RFC 8445 §6.1.2.6).
        silent = await harness.endpoint("silent remote (keeps the checklist running)")
        lines = [*peer.candidates(), host_line("Q", 1694498815, silent.address)]
        peer.responder = lambda rec: bytes(peer.error(rec, 403))
        s = await harness.session(role, peer=peer, remote_candidates=lines)
        first = await ep.expect(_is_request, 10.0, what="connectivity check from the IUT")
        f.info(f"answered {first.transaction_id.hex()} with an authenticated 403: the pair is Failed")
        peer.responder = None
    before = {r.transaction_id for r in ep.find(_is_request)}
    sent = ep.now()
    reply = await peer.transact(peer.check(), s.iut_address, timeout=2.0, note=f"check on the {state} pair")
    if reply is None:
        check_iut_alive(harness, f"no response to a valid check on the {state} pair")
    expect(reply, what=f"the valid check on the {state} pair").success(BINDING)
    # A triggered check goes ahead of the ordinary ones (RFC 8445 §6.1.4.2): within 0.5 s, before the Waiting
    # pair's ordinary turn (about 0.9 s in at Ta = 50 ms) could account for it.
    triggered = await ep.expect(
        lambda r: _is_request(r) and r.transaction_id not in before,
        (0.5 if state == "waiting" else 1.0) + (ep.now() - sent),
        since=sent,
        what=f"triggered check on the {state} pair within {0.5 if state == 'waiting' else 1:g} s",
        findings=f,
        requirement="ICE-TRIG-01",
    )
    username = triggered.value("USERNAME") if triggered.index else None
    expected = f"{peer.ufrag}:{peer.remote_ufrag}".encode()
    expect(triggered, what="the triggered check").that(username == expected, f"USERNAME {expected!r}")

    f.info(f"triggered check {(triggered.time - sent) * 1000:.0f} ms after the harness's check")


@pytest.mark.requirement("ICE-TRIG-02")
@pytest.mark.selftest(fault="recheck-succeeded")
@pytest.mark.selftest(variant="pinging", verdict="INFO")
async def test_check_on_a_succeeded_pair_triggers_nothing(harness: Harness, role: str) -> None:
    """ICE-TRIG-02 (RFC 8445 §7.3.1.4): on a Succeeded pair an incoming check changes nothing (no new check)."""
    x = await run_exchange(harness, role)
    peer = x.session.peer
    ep = peer.endpoint
    f = harness.findings
    succeeded = [r for r in x.iut_checks if r.transaction_id in _answered(harness)]
    f.check(bool(succeeded), "ICE-TRIG-02", "no check of the IUT was answered: no Succeeded pair to test")
    # The control window: how often does the IUT check this pair with no stimulus? An agent that keeps pinging its
    # pairs as new transactions would look triggered by any stimulus. A request 3.5 s or more after the previous
    # one is a consent check (RFC 7675 §5.1: 4-6 s apart) in either window and is not counted.
    window = 1.2
    control_start = ep.now()
    await harness.observe(window, "the control window: checks on the pair with no stimulus")
    sent = ep.now()
    await peer.transact(peer.check(), x.session.iut_address, timeout=2.0, note="check on the Succeeded pair")
    await harness.observe(sent + window - ep.now(), "the same window after the stimulus, to compare")
    model = model_of([ep])
    checks = model.transactions()

    def paced(start: float, end: float) -> list[Request]:
        out = []
        for prev, rec in itertools.pairwise(checks):
            if start <= rec.time < end and rec.time - prev.time < 3.5:
                out.append(rec)
        return out

    before, after = paced(control_start, sent), paced(sent, sent + window)
    rates = (
        f"{len(before)} new checks in the {window:g} s before the harness's check, {len(after)} in the "
        f"{window:g} s after"
    )
    f.info(f"{rates}; {model.summary()}")
    if before:
        # No unambiguous difference can be shown against an IUT that checks the pair on its own (RFC 8445 §7.3.1.4
        # asks that the stimulus add nothing; a steady rate with and without it is not evidence of a trigger).
        f.inconclusive("ICE-TRIG-02", f"the IUT checks the Succeeded pair on its own ({rates}): no trigger to tell")
        return
    extra = [r for r in ep.find(_is_request, sent) if after and r.transaction_id == after[0].txid]
    f.check(
        not extra,
        "ICE-TRIG-02",
        f"a check on the already Succeeded pair triggered a new check {(extra[0].time - sent) * 1000:.0f} ms later, "
        f"with none in the {window:g} s before it: {extra[0].describe()}"
        if extra
        else "",
    )


def _answered(h: Harness) -> set[bytes]:
    return {d.data[8:20] for d in h.capture.datagrams if d.direction == "out" and d.data[:2] == b"\x01\x01"}


@pytest.mark.requirement("ICE-TRIG-03")
@pytest.mark.selftest(fault="no-cancel-in-progress")
async def test_check_on_an_in_progress_pair_replaces_its_transaction(harness: Harness, role: str) -> None:
    """ICE-TRIG-03 (RFC 8445 §7.3.1.4): on an In-Progress pair the old transaction stops and a new check goes out."""
    peer = await harness.peer()
    peer.auto_respond = False
    s = await harness.session(role, peer=peer)
    ep = peer.endpoint
    f = harness.findings
    old = await ep.expect(_is_request, 10.0, what="connectivity check from the IUT (left unanswered)")
    sent = ep.now()
    ep.send(bytes(peer.check()), s.iut_address, note="check on the In-Progress pair")
    new = await ep.expect(
        lambda r: _is_request(r) and r.transaction_id != old.transaction_id,
        1.5,
        since=sent,
        what="new check on the In-Progress pair",
        findings=f,
        requirement="ICE-TRIG-03",
    )
    await harness.observe(2.5, "no retransmission of the replaced transaction")
    late = [r for r in ep.find(_is_request, new.time + 0.1) if r.transaction_id == old.transaction_id]
    f.check(
        not late,
        "ICE-TRIG-03",
        f"the old transaction {old.transaction_id.hex()} was retransmitted {len(late)} times after the new check "
        f"{new.transaction_id.hex()}: it must be cancelled",
    )
