"""Trickle ICE: fallback without trickle, waiting for trickled candidates, announcing before checking,
end-of-candidates, and the pair limit (RFC 8838 §3, §8, §10, §13, §14; RFC 8445 §6.1.2.5)."""

from __future__ import annotations

import pytest

from conformance.adapters.base import AgentConfig
from conformance.protocol.candidate import parse_candidate
from conformance.protocol.priority import candidate_priority
from conformance.tester.expect import Expect
from conformance.tester.harness import Harness
from conformance.tester.ice_steps import host_line, is_check, run_exchange
from conformance.tester.options import case_options
from conformance.verdict import HarnessError


@pytest.mark.requirement("TRK-01")
@pytest.mark.selftest(fault="trickle-always")
async def test_without_trickle_the_full_candidate_set_comes_at_once(harness: Harness) -> None:
    """TRK-01 (RFC 8838 §3, §5): without trickle, gather gives every candidate and nothing trickles later."""
    f = harness.findings
    s = await harness.session("controlling", connect=False)
    f.check(bool(s.candidates), "TRK-01", "created without trickle, the IUT returned no candidate from gather")
    await harness.log.wait("candidate", timeout=2.0)
    trickled = [n.params for n in harness.log.of("candidate") if n.params.get("agent") == s.agent]
    f.check(not trickled, "TRK-01", f"created without trickle, the IUT still trickled candidates: {trickled[:3]}")
    if "trickle" not in harness.info.capabilities:
        return
    t = await harness.session("controlling", connect=False, trickle=True)
    if t.local is None or t.local.ice_options is None:
        f.info("the adapter exposes no a=ice-options (no SDP layer): the trickle option is not judged")
        return
    f.check(
        "trickle" in t.local.ice_options,
        "TRK-01",
        f"a trickle agent's a=ice-options {t.local.ice_options} lack the trickle token",
    )


@pytest.mark.requirement("TRK-02")
@pytest.mark.needs("trickle")
@pytest.mark.selftest(fault="fail-without-candidates")
async def test_checks_wait_for_trickled_candidates(harness: Harness) -> None:
    """TRK-02 (RFC 8838 §8): with no remote candidate yet ICE keeps running; a candidate trickled 5 s later wins."""
    f = harness.findings
    peer = await harness.peer()
    s = await harness.session("controlling", peer=peer, remote_candidates=[], trickle=True)
    failed = await harness.log.wait("state", lambda n: n.params.get("state") == "failed", 5.0)
    f.check(failed is None, "TRK-02", "with no remote candidate and no end-of-candidates yet, the IUT failed ICE")
    await harness.iut.add_remote_candidate(s.agent, peer.candidates()[0])
    await harness.iut.add_remote_candidate(s.agent, None)
    first = await peer.endpoint.expect(
        is_check, 10, what="a check to the trickled candidate", findings=f, requirement="TRK-02"
    )
    await peer.transact(peer.check(), first.src, timeout=5)
    selected = await harness.log.wait("selected_pair", timeout=10)
    f.check(selected is not None, "TRK-02", "ICE did not complete on the candidate trickled after 5 s")


@pytest.mark.requirement("TRK-03")
@pytest.mark.needs("trickle")
@pytest.mark.selftest(fault="check-before-trickle")
async def test_no_check_from_a_candidate_not_yet_trickled(harness: Harness, expect: Expect) -> None:
    """TRK-03 (RFC 8838 §10): every check leaves from a candidate the IUT has already announced."""
    peer = await harness.peer()
    peer.role = "controlling"
    config = AgentConfig(role="controlled", trickle=True, options=case_options())
    agent = await harness.iut.create_agent(config)
    harness.log.watch(agent)
    harness.defer(lambda: harness.iut.close(agent))
    await harness.iut.set_remote(agent, peer.ufrag, peer.pwd, peer.candidates())
    t_gather = peer.endpoint.now()
    local = await harness.iut.gather(agent)
    peer.remote_ufrag, peer.remote_pwd = local.ufrag, local.pwd
    await harness.iut.connect(agent)
    await peer.endpoint.expect(is_check, 10, what="connectivity check from the IUT")
    await harness.observe(4.0, "no check from a candidate not yet trickled")
    announced = {(c.address, c.port): t_gather for c in map(parse_candidate, local.candidates)}
    for n in harness.log.of("candidate"):
        if n.params.get("agent") == agent and n.params.get("candidate"):
            c = parse_candidate(str(n.params["candidate"]))
            announced.setdefault((c.address, c.port), n.time)
            if c.related_address is not None and c.related_port is not None:
                announced.setdefault((c.related_address, c.related_port), n.time)
    for rec in peer.endpoint.find(is_check):
        when = announced.get(rec.src)
        source = f"a check from {rec.src[0]}:{rec.src[1]}" + (" (never trickled)" if when is None else "")
        expect(rec, what=source).that(when is not None and when <= rec.time + 0.5, "its candidate trickled first")


@pytest.mark.requirement("TRK-04")
@pytest.mark.needs("trickle")
@pytest.mark.selftest(fault="candidates-after-eoc")
async def test_nothing_trickles_after_end_of_candidates(harness: Harness) -> None:
    """TRK-04 (RFC 8838 §13): end-of-candidates names its generation; no candidate after it or after nomination."""
    f = harness.findings
    x = await run_exchange(harness, "controlling", trickle=True)
    agent = x.session.agent
    await harness.observe(2.0, "no candidate trickled after end-of-candidates")
    notes = [n for n in harness.log.of("candidate") if n.params.get("agent") == agent]
    ends = [i for i, n in enumerate(notes) if n.params.get("candidate") is None]
    if not ends:
        raise HarnessError("the trickle IUT announced no end-of-candidates")
    after = [n.params.get("candidate") for n in notes[ends[0] + 1 :]]
    f.check(not after, "TRK-04", f"candidates announced after end-of-candidates: {after}", "no_late_candidates")
    ufrag = notes[ends[0]].params.get("ufrag")
    if ufrag is None:
        f.info("the end-of-candidates notification carries no ufrag: its generation is not observable")
    else:
        local = x.session.local.ufrag if x.session.local else None
        f.check(
            ufrag == local,
            "TRK-04",
            f"end-of-candidates names ufrag {ufrag!r}, the generation's is {local!r}",
            "eoc_generation",
        )


@pytest.mark.requirement("TRK-05")
@pytest.mark.needs("trickle")
@pytest.mark.selftest(fault="accept-after-eoc")
async def test_candidates_after_end_of_candidates_are_ignored(harness: Harness, expect: Expect) -> None:
    """TRK-05 (RFC 8838 §14): a candidate trickled after end-of-candidates is never checked."""
    peer = await harness.peer()
    peer.auto_respond = False  # keep the IUT checking, so a late candidate would be paired
    s = await harness.session("controlling", peer=peer, trickle=True)
    await harness.iut.add_remote_candidate(s.agent, None)
    late = await harness.endpoint("harness late candidate")
    try:
        await harness.iut.add_remote_candidate(s.agent, host_line("L", candidate_priority(126, 65000, 1), late.address))
    except Exception as exc:  # -32000 after end-of-candidates is the contract's way to refuse it
        harness.findings.info(f"the late candidate was refused: {exc}")
    hit = await late.expect_silence(is_check, 5.0)
    expect(hit, what="a candidate trickled after end-of-candidates").silence("no check of it")


@pytest.mark.requirement("TRK-06")
@pytest.mark.needs("trickle")
@pytest.mark.budget(90)
@pytest.mark.selftest(fault="no-pair-limit", verdict="NON-STRICT")
async def test_pair_limit_keeps_the_highest_priority_pairs(harness: Harness) -> None:
    """TRK-06 (RFC 8838 §10, RFC 8445 §6.1.2.5): of 120 remote candidates at most 100 are checked, the best ones."""
    f = harness.findings
    peer = await harness.peer()
    peer.auto_respond = False
    eps = [await harness.endpoint(f"c{i}") for i in range(120)]
    prios = {ep.address: candidate_priority(126, 65535 - 10 * i, 1) for i, ep in enumerate(eps)}
    lines = [host_line(f"c{i}", prios[ep.address], ep.address) for i, ep in enumerate(eps)]
    s = await harness.session("controlling", peer=peer, remote_candidates=lines, trickle=True)
    await harness.iut.add_remote_candidate(s.agent, None)
    deadline = eps[0].now() + 40
    count = -1
    while eps[0].now() < deadline:
        await harness.observe(3.0, "newly checked candidates, until none shows up (the pair limit)")
        checked = {ep.address for ep in eps if ep.find(is_check)}
        if len(checked) == count:
            break
        count = len(checked)
    checked = {ep.address for ep in eps if ep.find(is_check)}
    top = set(sorted(prios, key=lambda a: prios[a], reverse=True)[:100])
    f.check(len(checked) <= 100, "TRK-06", f"{len(checked)} of 120 remote candidates were checked (limit 100)")
    outside = sorted(prios[a] for a in checked - top)
    f.check(
        not outside,
        "TRK-06",
        f"{len(outside)} checked candidates are outside the 100 best, e.g. priority {outside[:3]}",
    )
