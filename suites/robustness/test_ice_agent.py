"""Robustness of an ICE agent: hostile datagrams on its candidate port, a sanity check after each.

RFC 8489 §6.3 (discard what fails the basic checks), RFC 7983 §7 (demultiplexing non-STUN traffic), and the
harness's own rows ROB-CRASH-01, ROB-LIVE-01, ROB-DISC-01 (suites/catalog.toml). The loop and its verdicts are in
conformance/robustness/probe.py; the inputs, with a fixed seed per family, in conformance/robustness/inputs.py.
"""

from __future__ import annotations

import pytest

from conformance.exchange import sanity_probe
from conformance.robustness.inputs import ICE_FAMILIES, family_inputs
from conformance.robustness.probe import check_survived, run_family
from conformance.tester.endpoint import Received
from conformance.tester.harness import Harness

PROBE_TIMEOUT = 3.0  # the usual time: 0.5 s RTO doubling, three transmissions (RFC 8489 §6.2.1)


@pytest.mark.requirement("ROB-CRASH-01", "ROB-LIVE-01", "ROB-DISC-01")
@pytest.mark.budget(120)
@pytest.mark.parametrize("family", ICE_FAMILIES)
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
