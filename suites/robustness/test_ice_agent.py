"""Robustness of an ICE agent: hostile datagrams on its candidate port, a sanity check after each.

RFC 8489 §6.3 (discard what fails the basic checks), RFC 7983 §7 (demultiplexing non-STUN traffic), and the
harness's own rows ROB-CRASH-01, ROB-LIVE-01, ROB-DISC-01 (suites/catalog.toml). The loop and its verdicts are in
conformance/robustness/probe.py; the inputs, with a fixed seed per family, in conformance/robustness/inputs.py.
"""

from __future__ import annotations

import asyncio

import pytest

from conformance.robustness.inputs import ICE_FAMILIES, RESPONSE_VARIANTS, family_inputs
from conformance.robustness.probe import check_survived, run_family
from conformance.tester.endpoint import Address, Received
from conformance.tester.expect import Expect
from conformance.tester.harness import Harness
from conformance.tester.ice import IcePeer
from conformance.tester.ice_steps import sanity_probe

PROBE_TIMEOUT = 3.0  # the usual time: 0.5 s RTO doubling, three transmissions (RFC 8489 §6.2.1)
TRIGGERED_WAIT = 1.0  # a triggered check follows the peer's check at once (RFC 8445 §7.3.1.4); paced by Ta at most


@pytest.mark.requirement("ROB-CRASH-01", "ROB-LIVE-01", "ROB-DISC-01")
@pytest.mark.budget(120)
@pytest.mark.parametrize("family", ICE_FAMILIES)
@pytest.mark.selftest(
    fault="crash-on-long-attribute",
    requirement="ROB-CRASH-01",
    message="attribute 0 (0x0006) length 0xffff: 0001",
    params="attribute-length",
)
@pytest.mark.selftest(
    fault="accept-truncated",
    requirement="ROB-DISC-01",
    message="the malformed input header-length/length ",
    params="header-length",
)
@pytest.mark.selftest(
    fault="deaf-after-non-stun",
    requirement="ROB-LIVE-01",
    message="after the input non-stun/DTLS-looking record: 16fefd",
    params="non-stun",
)
@pytest.mark.selftest(
    fault="crash-on-long-attribute",
    requirement="ROB-CRASH-01",
    message="after the input oversized/USERNAME of 513 bytes: 0001",
    params="oversized",
)
@pytest.mark.selftest(
    fault="hang-on-many-attributes",
    requirement="ROB-LIVE-01",
    message="after the input oversized/1,000 attributes: 0001",
    params="oversized",
)
@pytest.mark.selftest(
    fault="accept-truncated",
    requirement="ROB-DISC-01",
    message="the malformed input truncation/at ",
    params="truncation",
)
async def test_agent_survives_hostile_datagrams(harness: Harness, family: str) -> None:
    """Each input of the family from a stranger's address, then a valid check from the peer must be answered."""
    role = "controlled" if "controlled" in harness.info.capabilities else "controlling"
    session = await harness.session(role)
    await sanity_probe(harness, session, "before the hostile inputs")
    peer = session.peer
    target = session.iut_address
    attacker = await harness.endpoint("attacker")
    valid = peer.check()

    async def probe(when: str) -> Received | None:
        reply = await peer.transact(peer.check(), target, timeout=PROBE_TIMEOUT, note=f"probe {when}")
        return reply if reply is not None and reply.is_stun else None

    inputs = family_inputs(family, valid)
    sent = await run_family(harness, inputs, attacker, target, probe)
    await sanity_probe(harness, session, f"after {sent} {family} inputs", "ROB-LIVE-01")
    check_survived(harness, f"the {family} family")
    harness.findings.info(f"{sent} {family} inputs sent; the agent answered a valid check after each")


@pytest.mark.requirement("ROB-CRASH-01", "ROB-LIVE-01")
@pytest.mark.budget(120)
@pytest.mark.selftest(
    fault="crash-on-403",
    requirement="ROB-CRASH-01",
    message="after its check was answered with: authenticated 403 error",
)
async def test_agent_survives_hostile_answers_to_its_checks(harness: Harness, expect: Expect) -> None:
    """Every check of the IUT is answered with the next hostile response (errors, malformed successes), never a
    success, so its pair fails and the peer's next check triggers a new one (RFC 8445 §7.3.1.4); that check of the
    peer is the probe, and it must be answered. An agent that stops checking (its check list ended) is replaced by a
    fresh session, whose first checks get the answer, so every answer is delivered however its timers ran."""
    current = 0
    delivered = asyncio.Event()
    sent: list[int] = []

    def respond(rec: Received, key: bytes) -> bytes | None:
        _label, build = RESPONSE_VARIANTS[current]
        if not sent or sent[-1] != current:
            sent.append(current)
        delivered.set()
        return build(rec, key)

    async def fresh_session() -> tuple[Address, IcePeer]:
        peer = await harness.peer()
        peer.responder = lambda rec: respond(rec, peer.local_key)
        session = await harness.session(role, peer=peer)
        return session.iut_address, peer

    async def answered(seconds: float) -> bool:
        try:
            await asyncio.wait_for(delivered.wait(), seconds)
        except TimeoutError:
            return False
        return True

    role = "controlled" if "controlled" in harness.info.capabilities else "controlling"
    target, peer = await fresh_session()
    skipped, sessions = [], 1
    for index, (label, _) in enumerate(RESPONSE_VARIANTS):
        current = index
        delivered.clear()
        reply = await peer.transact(peer.check(), target, timeout=PROBE_TIMEOUT, note=f"probe before '{label}'")
        previous = RESPONSE_VARIANTS[sent[-1]][0] if sent else "none yet"
        check_survived(harness, f"its check was answered with: {previous}")
        answered_what = f"a valid check after the IUT's check was answered with: {previous}"
        expect(reply, "ROB-LIVE-01", what=answered_what).arrived()
        if await answered(TRIGGERED_WAIT):
            continue
        target, peer = await fresh_session()  # this agent stopped checking; a new one checks at once
        sessions += 1
        if not await answered(TRIGGERED_WAIT):
            skipped.append(label)
    reply = await peer.transact(peer.check(), target, timeout=PROBE_TIMEOUT, note="final probe")
    last = RESPONSE_VARIANTS[sent[-1]][0] if sent else "none"
    check_survived(harness, f"its check was answered with: {last}")
    expect(reply, "ROB-LIVE-01", what=f"a valid check after the answer: {last}").arrived()

    harness.findings.info(
        f"{len(sent)} of {len(RESPONSE_VARIANTS)} hostile answers delivered over {sessions} session(s)"
        + (f"; no check of the IUT came to answer with: {', '.join(skipped)}" if skipped else "")
    )
