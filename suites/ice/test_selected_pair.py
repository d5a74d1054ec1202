"""Nomination beyond the plain exchange: one pair for good, failed nominations, which pair the controlled side uses,
and what happens to the other pairs (RFC 8445 §7.2.5.3.4, §7.3.1.5, §8.1.1, §8.1.2, §8.3.1)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from conformance.adapters.base import Notification, Unsupported
from conformance.protocol.priority import candidate_priority
from conformance.tester.endpoint import Endpoint, Received
from conformance.tester.expect import Expect
from conformance.tester.harness import Harness
from conformance.tester.ice import BINDING, SUCCESS, IcePeer, IceSession
from conformance.tester.ice_steps import host_line, is_check, is_data, send_data
from conformance.verdict import HarnessError, UnsupportedFeature

#: Seconds the cases judging a controlled IUT's selection wait after its report for a later one to overturn it.
SETTLE = 1.5


async def _settled_report(h: Harness) -> Notification | None:
    """The IUT's last selected_pair report once no later one came for :data:`SETTLE` seconds of the window."""
    await h.observe(SETTLE, "a later selected_pair report would overturn the one seen")
    reports = h.log.of("selected_pair")
    return reports[-1] if reports else None


def _nominating(rec: Received) -> bool:
    return is_check(rec) and rec.index is not None and rec.has("USE-CANDIDATE")


async def _two_candidates(h: Harness) -> tuple[IcePeer, Endpoint, list[str]]:
    """A harness peer with a high-priority candidate A (its main endpoint) and a lower one B (attached)."""
    peer = await h.peer()
    b = await h.endpoint("harness peer B")
    peer.attach(b)
    lines = [
        host_line("A", candidate_priority(126, 65535, 1), peer.endpoint.address),
        host_line("B", candidate_priority(126, 1000, 1), b.address),
    ]
    return peer, b, lines


def _remote_port(note: Notification | None) -> int | None:
    if note is None:
        return None
    fields = str(note.params.get("remote", "")).split()
    return int(fields[5]) if len(fields) > 5 and fields[5].isdigit() else None


async def _expect_any(
    endpoints: list[Endpoint], predicate: Callable[[Received], bool], timeout: float, since: float = 0.0
) -> Received | None:
    """The first datagram matching ``predicate`` at any of the endpoints, or None after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        hits = sorted((r for ep in endpoints for r in ep.find(predicate, since)), key=lambda r: r.arrived)
        remaining = deadline - loop.time()
        if hits or remaining <= 0:
            return hits[0] if hits else None
        await endpoints[0].expect_silence(predicate, min(0.1, remaining))


async def _data_lands_on(h: Harness, s: IceSession, endpoints: list[Endpoint], tag: bytes) -> Endpoint | None:
    """Ask the IUT for data and return the harness endpoint it reached (None: nothing within 3 s)."""
    payload = b"\x80conformance-" + tag
    since = endpoints[0].now()
    if not await send_data(h, s.agent, payload):
        return None
    rec = await _expect_any(endpoints, lambda r: r.data == payload, 3.0, since)
    return next((ep for ep in endpoints if rec is not None and ep.address == rec.dst), None)


@pytest.mark.requirement("ICE-NOM-03")
@pytest.mark.parametrize(
    "window",
    [pytest.param(8.0, id="8s"), pytest.param(60.0, id="60s", marks=[pytest.mark.slow, pytest.mark.budget(100)])],
)
@pytest.mark.selftest(fault="nominate-twice")
async def test_controlling_iut_never_nominates_a_second_pair(harness: Harness, window: float) -> None:
    """ICE-NOM-03 (RFC 8445 §8.1.1): once a nomination has succeeded, no other pair of the component is nominated.

    Only a nominating transaction that starts after the IUT knew of the success counts: an aggressive agent's
    checks with USE-CANDIDATE that left before the success response reached it are not "another" nomination. The
    IUT's selected-pair report proves it knew; one that starts after the success left but before that report is
    INFO (the IUT may not have read the response yet)."""
    if window > 30:
        harness.findings.info("slow variant: 60 s window")
    peer, b, lines = await _two_candidates(harness)
    s = await harness.session("controlling", peer=peer, remote_candidates=lines)
    first = await peer.endpoint.expect(is_check, 10, what="connectivity check from the IUT")
    await peer.transact(peer.check(), first.src, timeout=5)
    nomination = await _expect_any([peer.endpoint, b], _nominating, 10)
    if nomination is None:
        raise HarnessError("no nominating check from the IUT within 10 s (graded by ICE-NOM-02)")
    await harness.observe(window, "no second pair of the component may be nominated")
    starts: dict[bytes, Received] = {}  # each nominating transaction by its first copy (RFC 8489 §6.2.1)
    for r in sorted((r for ep in (peer.endpoint, b) for r in ep.find(_nominating)), key=lambda r: r.arrived):
        starts.setdefault(r.transaction_id, r)
    won = next(iter(starts.values()))  # the harness answers every check at once: the first nomination succeeds
    pair = (won.src, won.dst)
    selected = harness.log.of("selected_pair")
    known = selected[0].time if selected else None
    later = [r for r in starts.values() if (r.src, r.dst) != pair and r.arrived > won.time]
    after_report = [r for r in later if known is not None and r.arrived > known]
    f = harness.findings
    f.info(
        f"{len(starts)} nominating transaction(s) on {len({(r.src, r.dst) for r in starts.values()})} pair(s); "
        f"the first, {won.describe()}, was answered with success when it arrived"
    )
    f.check(
        not after_report,
        "ICE-NOM-03",
        f"the nomination of {pair[0][0]}:{pair[0][1]} -> {pair[1][0]}:{pair[1][1]} succeeded and the IUT reported "
        f"its selected pair, yet it then started a nominating check on another pair: "
        f"{after_report[0].describe() if after_report else ''}",
    )
    if later and not after_report:
        f.inconclusive(
            "ICE-NOM-03",
            f"a nominating check on another pair ({later[0].describe()}) started after the success response to "
            f"the first nomination left but before the IUT reported a selected pair: it may not yet have read "
            "the response",
        )
    f.info(f"IUT agent {s.agent}: {len({(r.src, r.dst) for r in starts.values()})} nominated pair(s) seen")


@pytest.mark.requirement("ICE-NOM-04")
@pytest.mark.selftest(fault="keep-failed-nomination")
async def test_a_failed_nomination_fails_the_pair(harness: Harness) -> None:
    """ICE-NOM-04 (RFC 8445 §7.2.5.3.4): a nominating check answered 400 leaves the pair Failed: no data on it and no
    selection. An agent that also never reports the failure within 10 s is INFO: the report is not on the wire."""
    f = harness.findings
    peer = await harness.peer()
    peer.responder = lambda rec: bytes(peer.error(rec, 400)) if _nominating(rec) else None
    s = await harness.session("controlling", peer=peer)
    ep = peer.endpoint
    first = await ep.expect(is_check, 10, what="connectivity check from the IUT")
    await peer.transact(peer.check(), first.src, timeout=5)
    nomination = await ep.expect(_nominating, 10, what="nominating check from the IUT (graded by ICE-NOM-02)")
    failed = await harness.log.wait("state", lambda n: n.params.get("state") == "failed", 10)
    # The first request's round trip is a fence on the notification channel: a report read after its answer was
    # sent after the IUT had long had the 400. One read before may have left before the 400 reached the IUT (a
    # shim that reports the pair when it first succeeds), since a pipe and a socket are not ordered.
    fence: float | None = None
    for _ in range(3):
        try:
            await send_data(harness, s.agent, b"\x80after-failed-nomination")
        except Unsupported:
            f.info("the IUT cannot be asked to send data; judged from its notifications only")
            break
        finally:
            fence = ep.now() if fence is None else fence
    await harness.observe(1.0, "no data may go on the pair whose nomination failed")
    data = ep.find(is_data, nomination.time)
    f.check(
        not data,
        "ICE-NOM-04",
        f"the nominating check {nomination.describe()} got a 400, yet the IUT sent data on that pair: "
        f"{data[0].describe() if data else ''}",
    )
    selected = [n for n in harness.log.of("selected_pair") if n.time >= nomination.time]
    proven = [n for n in selected if fence is not None and n.time > fence]
    f.check(
        not proven,
        "ICE-NOM-04",
        f"the nominating check got a 400, and well after it the IUT reported: {proven[0].params if proven else None}",
    )
    if selected and not proven and not data:
        f.inconclusive(
            "ICE-NOM-04",
            f"the IUT reported the selected pair {selected[0].params} "
            f"{(selected[0].time - nomination.time) * 1000:.0f} ms after its nominating check got a 400, but before "
            "a request sent later was answered: the report may have left before the 400 reached it",
        )
    if failed is None and not data and not selected:
        # The pair was not used, which is what the MUST governs; when the agent reports the failed checklist
        # through its API is not on the wire, and RFC 8445 sets no deadline for it.
        f.inconclusive(
            "ICE-NOM-04",
            "the nominating check got a 400 and the IUT neither sent data on the pair nor selected it, but it did not "
            "report ICE failed within 10 s (no deadline is specified for that report)",
        )


@pytest.mark.requirement("ICE-NOM-05")
@pytest.mark.parametrize("variant", ["succeeded", "not-yet-checked"])
@pytest.mark.selftest(fault="ignore-early-use-candidate", params="not-yet-checked")
@pytest.mark.selftest(fault="select-best-valid-pair", params="succeeded")
async def test_controlled_iut_uses_the_pair_the_harness_nominates(
    harness: Harness, expect: Expect, variant: str
) -> None:
    """ICE-NOM-05 (RFC 8445 §7.3.1.5): USE-CANDIDATE on a lower-priority pair B (Succeeded or not yet checked)."""
    f = harness.findings
    peer, b, lines = await _two_candidates(harness)
    peer.auto_respond = variant == "succeeded"
    s = await harness.session("controlled", peer=peer, remote_candidates=lines)
    target = s.iut_address
    if variant == "succeeded":
        for ep in (peer.endpoint, b):
            await ep.expect(is_check, 10, what=f"the IUT's check to {ep.label}")
        for component_ep in (peer.endpoint, b):
            response = await _check_from(peer, component_ep, target, use_candidate=False)
            if response is None:
                f.info(f"no answer to the harness's ordinary check from {component_ep.label}")
    else:
        await b.expect(is_check, 10, what="the IUT's (unanswered) check to B")
    nominated = b.now()
    response = await _check_from(peer, b, target, use_candidate=True)
    peer.auto_respond = True
    expect(response, what="the nominating check from B").success(BINDING)
    # A report from before the nomination (the best pair the IUT could use until then) is not its answer to it:
    # judge the last report once one has come after the nomination was sent, as ICE-NOM-06 does.
    await harness.log.wait("selected_pair", lambda n: n.time >= nominated, timeout=10)
    selected = await _settled_report(harness)
    reports = harness.log.of("selected_pair")
    if len(reports) > 1:
        f.info("selected_pair reports: " + ", ".join(str(n.params.get("remote")) for n in reports))
    port = _remote_port(selected)
    f.check(
        port == b.address[1],
        "ICE-NOM-05",
        f"the harness nominated B ({b.address[0]}:{b.address[1]}); the IUT selected "
        f"{selected.params.get('remote') if selected else 'nothing'} (its last report, {SETTLE:g} s after one "
        "that came after the nomination, or 10 s after the nomination)",
    )
    try:
        landed = await _data_lands_on(harness, s, [peer.endpoint, b], b"nom05")
    except Unsupported:
        f.info("the IUT cannot be asked to send data; judged from its selected_pair report only")
        return
    f.check(
        landed is b,
        "ICE-NOM-05",
        f"after nominating B the IUT's data reached {landed.label if landed else 'no harness endpoint'}, not B",
    )


async def _check_from(
    peer: IcePeer, ep: Endpoint, to: tuple[str, int], *, use_candidate: bool, priority: int | None = None
) -> Received | None:
    """One harness check sent from ``ep`` (not only the peer's main endpoint), retransmitted until answered."""
    message = bytes(peer.check(use_candidate=use_candidate, priority=priority))
    txid = message[8:20]
    since = ep.now()
    rto = 0.5
    for _ in range(5):
        ep.send(message, to, "check" + (" USE-CANDIDATE" if use_candidate else ""))
        try:
            return await ep.expect(
                lambda r: r.transaction_id == txid and r.index is not None and r.index.msg_class in (2, 3),
                rto,
                since=since,
            )
        except HarnessError:
            rto *= 2
    return None


@pytest.mark.requirement("ICE-NOM-06")
@pytest.mark.parametrize("order", ["low-then-high", "high-then-low"])
@pytest.mark.selftest(fault="select-latest-nomination", params="high-then-low")
@pytest.mark.selftest(variant="rfc5245", record={"options": ["ice_options: not supported by this adapter"]})
@pytest.mark.selftest(params="low-then-high", record={"options": ["ice_options: delivered"]})
@pytest.mark.selftest(fault="keep-first-nomination", params="low-then-high")
async def test_controlled_iut_uses_the_highest_priority_nominated_pair(harness: Harness, order: str) -> None:
    """ICE-NOM-06 (RFC 8445 §8.1.1): with two accepted nominations from an RFC 5245 peer, the higher pair is used.

    The harness plays the RFC 5245 controlling agent §8.1.1 describes: its description carries no ice-options (no
    ``ice2``, which would promise a single nomination, §10), then it nominates two pairs. §8.1.1 binds a controlled
    agent that accepts several nominations: both nominating checks must get a success response (the only way a
    controlled agent accepts one, §7.3.1.5), else the case is UNSUPPORTED; an accepted pair of nominations must
    leave the IUT on the higher-priority pair A, in its selected_pair reports and in its data."""
    f = harness.findings
    peer, b, lines = await _two_candidates(harness)
    s = await harness.session("controlled", peer=peer, remote_candidates=lines, remote_options={"ice_options": []})
    a = peer.endpoint
    target = s.iut_address
    for ep in (a, b):
        await ep.expect(is_check, 10, what=f"the IUT's check to {ep.label}")
        await _check_from(peer, ep, target, use_candidate=False)
    sequence = [b, a] if order == "low-then-high" else [a, b]
    refused = []
    for ep in sequence:
        response = await _check_from(peer, ep, target, use_candidate=True)
        if response is None or not response.is_type(BINDING, SUCCESS):
            refused.append(f"the nomination from {ep.label} got {response.describe() if response else 'no answer'}")
        await harness.log.wait("selected_pair", timeout=5)
    if refused:
        raise UnsupportedFeature(
            "the IUT did not accept several nominations (RFC 8445 §8.1.1 binds only an agent that does): "
            + "; ".join(refused)
        )
    last = await _settled_report(harness)
    f.check(
        _remote_port(last) == a.address[1],
        "ICE-NOM-06",
        f"the harness nominated B then A ({order}); A's pair has the higher priority, but the IUT's selected pair "
        f"is {last.params.get('remote') if last else 'unreported'}",
    )
    try:
        landed = await _data_lands_on(harness, s, [a, b], b"nom06")
    except Unsupported:
        f.info("the IUT cannot be asked to send data; judged from its selected_pair reports only")
        return
    f.check(
        landed is a,
        "ICE-NOM-06",
        f"after nominations {order}, the IUT's data reached {landed.label if landed else 'no harness endpoint'}, "
        "not the higher-priority pair A",
    )


@pytest.mark.requirement("ICE-NOM-07")
@pytest.mark.selftest(fault="check-after-nomination")
@pytest.mark.selftest(fault="ignore-checks-after-selection", verdict="NON-STRICT")
async def test_after_nomination_other_pairs_stop_and_checks_are_answered(harness: Harness, expect: Expect) -> None:
    """ICE-NOM-07 (RFC 8445 §8.1.2, §8.3.1): no new checks on other pairs; checks still answered for 3 s."""
    f = harness.findings
    peer, b, lines = await _two_candidates(harness)
    a = peer.endpoint
    peer.responder = lambda rec: b"" if rec.dst == b.address else None  # B's checks stay unanswered
    s = await harness.session("controlled", peer=peer, remote_candidates=lines)
    target = s.iut_address
    await a.expect(is_check, 10, what="the IUT's check to A")
    await b.expect(is_check, 10, what="the IUT's check to B")
    await _check_from(peer, a, target, use_candidate=False)
    nominated = await _check_from(peer, a, target, use_candidate=True)
    selected = await harness.log.wait("selected_pair", timeout=10)
    if selected is None or _remote_port(selected) != a.address[1]:
        raise HarnessError(f"the IUT did not select the nominated pair A (graded by ICE-NOM-05): {selected}")
    t_sel = selected.time
    t_nom = nominated.time if nominated is not None else t_sel
    known = {r.transaction_id for r in b.find(is_check) if r.time <= t_nom + 0.3}
    response = await _check_from(peer, a, target, use_candidate=False)
    expect(response, clause="prune", what="a check on the selected pair after nomination").success(BINDING)
    await harness.observe(t_sel + 1.8 - b.now(), "no new check on the other pair after the selection")
    late = [r for r in b.find(is_check, t_nom + 0.3) if r.transaction_id not in known]
    f.check(
        not late,
        "ICE-NOM-07",
        f"after selecting A the IUT started a new check on the other pair: {late[0].describe() if late else ''}",
        "prune",
    )
    resent = [r for r in b.find(is_check, t_sel + 1.0) if r.transaction_id in known]
    if resent:
        f.info(
            f"{len(resent)} retransmissions of an earlier check to B after the nomination (RFC 8445 §8.1.2: SHOULD "
            "cease for lower-priority pairs; not graded, the catalog has no clause for it)"
        )
    grace = await _check_from(peer, b, target, use_candidate=False)
    expect(grace, clause="grace_3s", what="a check from the non-selected candidate B").that(
        grace is not None and grace.is_type(BINDING, SUCCESS) and grace.time - t_sel <= 3.5,
        "a Binding success response within 3 s of completion",
    )
