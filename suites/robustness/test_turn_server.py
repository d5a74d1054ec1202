"""Robustness of a TURN server: hostile datagrams on its listening port, a sanity request after each.

The STUN families of conformance/robustness/inputs.py are built from an authenticated Allocate; the TURN families
(ChannelData with lying lengths, Send indications without permission, a Refresh storm) from an allocated client.
Verdicts under ROB-CRASH-01, ROB-LIVE-01, ROB-DISC-01 (suites/catalog.toml), as in conformance/robustness/probe.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from conformance.packets import ALLOCATE, CHANNEL_BIND, REQUEST, SUCCESS, attr
from conformance.robustness.inputs import ICE_FAMILIES, TURN_FAMILIES, family_inputs, turn_family_inputs
from conformance.robustness.probe import check_survived, run_family
from conformance.tester.endpoint import Received
from conformance.tester.expect import Expect
from conformance.tester.harness import Harness
from conformance.tester.turn_client import TurnClient, TurnServerUnderTest
from conformance.tester.turn_steps import allocated, relay_peers

pytestmark = pytest.mark.needs("turn_server")

PROBE_TIMEOUT = 3.0  # the usual time: 0.5 s RTO doubling, three transmissions (RFC 8489 §6.2.1)
#: Inputs between two probes: the storms are judged as a whole, the rest one input at a time.
PROBE_EVERY = {"refresh-storm": 100, "send-without-permission": 10}


@pytest.mark.requirement("ROB-CRASH-01", "ROB-LIVE-01", "ROB-DISC-01")
@pytest.mark.budget(150)
@pytest.mark.parametrize("family", ICE_FAMILIES + TURN_FAMILIES)
async def test_turn_server_survives_hostile_datagrams(
    harness: Harness, turn_server: TurnServerUnderTest, expect: Expect, family: str
) -> None:
    """A full Allocate works before; each input, then an unauthenticated Allocate must get its 401; then a full
    Allocate from a new client must still succeed (RFC 8656 §7.2)."""
    await allocated(harness, turn_server, label="sanity client before")
    prober = await TurnClient.open(harness, turn_server, label="probe client")

    async def probe(when: str) -> Received | None:
        request = prober.build(ALLOCATE, REQUEST, [attr.RequestedTransport()], auth=False)
        return await prober.transact(request, PROBE_TIMEOUT, note=f"probe {when}")

    if family in ICE_FAMILIES:
        attacker = await TurnClient.open(harness, turn_server, label="attacker")
        await attacker.challenge()
        inputs = family_inputs(family, attacker.build(ALLOCATE, REQUEST, [attr.RequestedTransport()]))
    else:
        attacker = await allocated(harness, turn_server, label="attacker")
        [peer] = await relay_peers(harness, 1)
        if family == "channel-data":
            bound = await attacker.channel_bind(0x4000, peer.address)
            if bound is None or not bound.is_type(CHANNEL_BIND, SUCCESS):
                harness.findings.info(f"ChannelBind 0x4000 was refused ({bound}); the lengths go to an unbound channel")

        def build(method: int, cls: int, attributes: list[Any]) -> bytes:
            return bytes(attacker.build(method, cls, attributes))

        inputs = turn_family_inputs(family, build, peer.address)
    sent = await run_family(
        harness, inputs, attacker.endpoint, turn_server.address, probe, probe_every=PROBE_EVERY.get(family, 1)
    )
    after = await TurnClient.open(harness, turn_server, label="sanity client after")
    rec = await after.allocate()
    check_survived(harness, f"the {family} family")
    expect(rec, "ROB-LIVE-01", what=f"a plain Allocate after {sent} {family} inputs").success(ALLOCATE)

    harness.findings.info(f"{sent} {family} inputs sent; the server answered a valid request after each batch")
