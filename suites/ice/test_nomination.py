"""A full exchange of connectivity checks up to a nominated pair, in each role (RFC 8445 §7.1.2, §7.3.1.5, §8.1.1)."""

from __future__ import annotations

import ipaddress

import pytest

from conformance.protocol.candidate import CandidateError, parse_candidate
from conformance.tester.expect import Expect
from conformance.tester.harness import Harness
from conformance.tester.ice_steps import run_exchange


@pytest.mark.requirement("ICE-NOM-02")
@pytest.mark.selftest(record={"options": ["ice2: delivered"]})
@pytest.mark.selftest(fault="aggressive-nomination")
@pytest.mark.selftest(fault="no-nomination")
@pytest.mark.selftest(
    variant="rfc5245",
    verdict="UNSUPPORTED",
    message="ice2: not supported by this adapter",
    record={"options": ["ice2: not supported by this adapter"]},
)
async def test_controlling_iut_nominates_one_valid_pair(harness: Harness) -> None:
    """ICE-NOM-02 (RFC 8445 §8.1.1): the controlling agent repeats a check that succeeded, now with USE-CANDIDATE.

    Nominating in the first check, or nominating several pairs, is RFC 5245 aggressive nomination, which RFC 8445
    §8.1.1 still expects from an RFC 5245 agent whose peer did not signal ``ice2`` (§10). Those two findings are
    graded only when the adapter reports that the harness's ``ice2`` reached the IUT; otherwise UNSUPPORTED."""
    x = await run_exchange(harness, "controlling")
    f = harness.findings
    if not x.nominations:
        f.violation("ICE-NOM-02", f"no check with USE-CANDIDATE among the IUT's {len(x.iut_checks)} checks")
        return
    nomination = x.nominations[0]
    why = "RFC 8445 §8.1.1, §10: without ice2 from its peer an RFC 5245 agent may nominate aggressively"
    answered = {d.data[8:20] for d in harness.capture.datagrams if d.direction == "out" and d.data[:2] == b"\x01\x01"}
    prior = [
        r
        for r in x.iut_checks
        if r.time < nomination.time
        and r.src == nomination.src
        and r.transaction_id in answered
        and not r.has("USE-CANDIDATE")
    ]
    if not prior:
        x.session.require_option("ice2", f"{why}; its first USE-CANDIDATE check came before the pair succeeded")
    f.check(
        bool(prior),
        "ICE-NOM-02",
        f"the first USE-CANDIDATE check ({nomination.describe()}) was sent on a pair that had not yet succeeded "
        "although the harness's ice2 reached it (RFC 8445 §8.1.1 nominates only valid pairs; §10: an agent told ice2 "
        "must not use RFC 5245 aggressive nomination)",
    )
    pairs = {(r.src, r.dst) for r in x.nominations}
    if len(pairs) > 1:
        x.session.require_option("ice2", f"{why}; it nominated {len(pairs)} pairs")
    f.check(len(pairs) == 1, "ICE-NOM-02", f"{len(pairs)} pairs nominated for component 1: {sorted(pairs)}")
    f.check(x.selected is not None, "ICE-NOM-02", "the IUT reported no selected pair after nominating")


@pytest.mark.requirement("ICE-NOM-01", "ICE-NOM-05")
@pytest.mark.selftest(fault="controlled-nominates", requirement="ICE-NOM-01")
async def test_controlled_iut_accepts_the_nomination(harness: Harness, expect: Expect) -> None:
    """ICE-NOM-01, ICE-NOM-05 (RFC 8445 §7.1.2, §7.3.1.5): no USE-CANDIDATE when controlled; our pair selected."""
    x = await run_exchange(harness, "controlled")
    f = harness.findings
    for rec in x.nominations:
        expect(rec, "ICE-NOM-01", what="a check of the controlled IUT").lacks("USE-CANDIDATE")

    f.check(x.selected is not None, "ICE-NOM-05", "the IUT reported no selected pair after the harness nominated")
    if x.selected is not None:
        remote = str(x.selected.params.get("remote", ""))
        nominated = x.session.peer.endpoint.address
        try:
            c = parse_candidate(remote)
            chosen: tuple[str, int] | None = (str(ipaddress.ip_address(c.address)), c.port)
        except (CandidateError, ValueError):
            chosen = None
        f.check(
            chosen == (str(ipaddress.ip_address(nominated[0])), nominated[1]),
            "ICE-NOM-05",
            f"selected remote {remote!r} is not the nominated harness candidate {nominated[0]}:{nominated[1]}",
        )
