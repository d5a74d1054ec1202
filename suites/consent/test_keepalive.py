"""Keepalives on the selected pair and checks in place of keepalives (RFC 8445 §11)."""

from __future__ import annotations

import itertools

import pytest

from conformance.adapters.base import Unsupported
from conformance.packets import STUN, attr, attribute_code
from conformance.tester.expect import Expect
from conformance.tester.harness import Harness
from conformance.tester.ice import BINDING, INDICATION
from conformance.tester.ice_steps import is_check, run_exchange, send_data
from conformance.verdict import HarnessError

AUTH = ("USERNAME", "MESSAGE-INTEGRITY", "MESSAGE-INTEGRITY-SHA256")
FINGERPRINT = attribute_code("FINGERPRINT")


@pytest.mark.requirement("ICE-KA-01", "ICE-KA-02")
@pytest.mark.slow
@pytest.mark.budget(90)
@pytest.mark.selftest(fault="fast-keepalive", requirement="ICE-KA-01")
@pytest.mark.selftest(fault="keepalive-with-integrity", requirement="ICE-KA-02")
async def test_keepalives_on_the_selected_pair(harness: Harness) -> None:
    """ICE-KA-01, ICE-KA-02 (RFC 8445 §11): STUN within Tr on an idle pair; indications unauthenticated, >= Tr apart."""
    f = harness.findings
    x = await run_exchange(harness, "controlling")
    if x.selected is None:
        raise HarnessError("the IUT reported no selected pair (graded by ICE-NOM-02)")
    ep = x.session.peer.endpoint
    t_sel = x.selected.time
    await harness.observe(20, "keepalives on the idle pair within Tr")
    mine = [r for r in ep.find(lambda r: True, t_sel)]
    indications = [r for r in mine if r.is_type(BINDING, INDICATION)]
    for rec in indications:
        present = [c for c in AUTH if rec.index is not None and rec.index.has(c)]
        f.check(not present, "ICE-KA-02", f"a keepalive indication carries authentication: {rec.describe()}", "no_auth")
        others = [c for c, *_ in (rec.index.attributes if rec.index else []) if c != FINGERPRINT]
        f.check(
            rec.index is not None and rec.index.has(FINGERPRINT) and not others,
            "ICE-KA-02",
            f"a keepalive indication should carry FINGERPRINT and nothing else: {rec.describe()}",
            "fingerprint_only",
        )
    previous = t_sel
    for rec in mine:
        if rec.is_type(BINDING, INDICATION):
            f.check(
                rec.time - previous >= 14.5,
                "ICE-KA-01",
                f"a Binding indication {rec.time - previous:.1f} s after the IUT's previous packet on the pair "
                f"(Tr must be >= 15 s): {rec.describe()}",
                "tr_floor",
            )
        previous = rec.time
    times = [t_sel, *[r.time for r in mine], ep.now()]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    f.check(
        max(gaps) <= 17.0,
        "ICE-KA-01",
        f"the selected pair stayed silent for {max(gaps):.1f} s (a keepalive is due after Tr = 15 s)",
        "keepalive_sent",
    )
    if not indications:
        f.info(f"no Binding indication in 20 s: {len([r for r in mine if is_check(r)])} checks kept the pair alive")
    await harness.iut.close(x.session.agent)
    after = await ep.expect_silence(lambda r: True, 3)
    f.check(
        after is None,
        "ICE-KA-01",
        f"the agent was closed, yet it still sends on the pair: {after.describe() if after else ''}",
        "keepalive_sent",
    )


@pytest.mark.requirement("ICE-KA-03")
@pytest.mark.selftest(fault="answer-indication")
async def test_checks_in_place_of_keepalives_are_answered_without_state_change(
    harness: Harness, expect: Expect
) -> None:
    """ICE-KA-03 (RFC 8445 §11): after completion an indication gets no answer and a check gets success."""
    f = harness.findings
    x = await run_exchange(harness, "controlling")
    if x.selected is None:
        raise HarnessError("the IUT reported no selected pair (graded by ICE-NOM-02)")
    s = x.session
    peer = s.peer
    ep = peer.endpoint
    keepalive = bytes(STUN(type=0x0011, attributes=[attr.Fingerprint()]))
    txid = keepalive[8:20]
    ep.send(keepalive, s.iut_address, "keepalive indication")
    answer = await ep.expect_silence(lambda r: r.transaction_id == txid, 2.0)
    expect(answer, what="a Binding indication").silence()
    notes_before = len(harness.log.items)
    response = await peer.transact(peer.check(), s.iut_address, timeout=5)
    expect(response, what="a check in place of a keepalive").success(BINDING)

    await harness.observe(1.0, "no ICE state change from the keepalive check")
    changes = [n for n in harness.log.items[notes_before:] if n.method in ("state", "selected_pair")]
    f.check(not changes, "ICE-KA-03", f"the keepalive check changed the IUT's ICE state: {[n.params for n in changes]}")
    try:
        since = ep.now()
        await send_data(harness, s.agent, b"\x80after keepalive")
        await ep.expect(
            lambda r: r.data == b"\x80after keepalive",
            3,
            since=since,
            what="data on the selected pair",
            findings=f,
            requirement="ICE-KA-03",
        )
    except Unsupported:
        f.info("the IUT cannot be asked to send data; judged from its notifications only")
