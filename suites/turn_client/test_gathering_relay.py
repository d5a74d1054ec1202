"""Gathering relayed candidates through the harness's TURN server (RFC 8445 §5.1.1.2, §5.1.1.4; RFC 8839 §5.1).

The IUT gets one TURN server (``create_agent`` ``turn_servers``, not relay-only) that maps it behind a scripted NAT
address (127.0.0.97), so the mapped address of the Allocate success differs from the IUT's host address and the
candidate lines show which address the IUT took from where. Gathering does not depend on the ICE role: the cases run
with the IUT as the offerer (controlling). The server-reflexive side is in suites/ice/test_gathering.py.
"""

from __future__ import annotations

import pytest

from conformance.adapters.base import AdapterError
from conformance.adapters.base import TurnServer as TurnServerConfig
from conformance.packets import ALLOCATE, BINDING, REFRESH, REQUEST
from conformance.protocol.candidate import Candidate, format_candidate
from conformance.protocol.keys import long_term_key
from conformance.tester.endpoint import Address, Received
from conformance.tester.expect import Expect
from conformance.tester.harness import Harness
from conformance.tester.ice import IceSession
from conformance.tester.stun_server import StunServer, nat_mapping
from conformance.tester.turn_client import CLIENT_REALM, USERS
from conformance.tester.turn_server import TurnServer
from conformance.tester.turn_steps import scripted_turn_server
from conformance.verdict import UnsupportedFeature

PRIVACY = {("0.0.0.0", 9), ("::", 9)}
#: The scaled allocation lifetime of the keep-alive case (RFC 8656 §8 suggests 600 s; the server may grant less).
SCALED_LIFETIME = 15


def _authenticated_allocate(r: Received) -> bool:
    return (
        r.is_type(ALLOCATE, REQUEST)
        and r.index is not None
        and (r.has("MESSAGE-INTEGRITY") or r.has("MESSAGE-INTEGRITY-SHA256"))
    )


async def _gather(h: Harness, server: TurnServer, *, stun: StunServer | None = None) -> IceSession:
    """An IUT agent (controlling, not relay-only) given ``server`` (and ``stun``); returns once gathering is complete
    (checks are never started)."""
    config = TurnServerConfig(server.uri(), "alice", server.users["alice"])
    stun_servers = [stun.spec] if stun is not None else []
    session = await h.session("controlling", turn_servers=[config], stun_servers=stun_servers, connect=False)

    async def close_agent() -> None:
        await session.close()  # before the server closes, so that the IUT's delete is answered (RFC 8656 §8)

    h.defer(close_agent)
    offered = session.local.candidates if session.local is not None else []
    h.findings.info(f"{len(server.requests)} requests at the TURN server; candidates offered: {' | '.join(offered)}")
    return session


def _allocated(server: TurnServer) -> list[tuple[Address, Address, Address]]:
    """(client, relayed address reported, mapped address reported) of every allocation the server made."""
    out = []
    for a in list(server.allocations.values()) + server.deleted:
        relayed = server.report_relayed(a) if server.report_relayed is not None else a.relay.address
        mapped = server.mapping(a.client) if server.mapping is not None else a.client
        out.append((a.client, relayed, mapped))
    return out


def _line(c: Candidate) -> str:
    return format_candidate(c)


@pytest.mark.requirement("ICE-GATH-08")
@pytest.mark.needs("turn_client")
@pytest.mark.selftest(fault="relay-raddr-base", verdict="NON-STRICT")
async def test_allocate_success_yields_relayed_and_server_reflexive_candidates(harness: Harness) -> None:
    """ICE-GATH-08 (RFC 8445 §5.1.1.2, RFC 8839 §5.1): a relay candidate at XOR-RELAYED-ADDRESS whose raddr/rport
    are the XOR-MAPPED-ADDRESS of the same response, and a srflx candidate at that mapped address."""
    server = await scripted_turn_server(harness, mapping=nat_mapping("127.0.0.97"))
    session = await _gather(harness, server)
    f = harness.findings
    allocations = _allocated(server)
    if not allocations:
        raise UnsupportedFeature("no allocation was made: the IUT did not allocate on the TURN server it was given")
    client, relayed, mapped = allocations[0]
    hosts = {(c.address, c.port) for c in session.candidates if c.kind == "host"}
    if client not in hosts:
        f.info(f"the Allocate left from {client[0]}:{client[1]}, none of the IUT's host candidates {sorted(hosts)}")
    relays = [c for c in session.candidates if c.kind == "relay" and (c.address, c.port) == relayed]
    f.check(
        bool(relays),
        "ICE-GATH-08",
        f"the Allocate success gave XOR-RELAYED-ADDRESS {relayed[0]}:{relayed[1]} and the IUT offered no relay "
        f"candidate there: {[_line(c) for c in session.candidates]}",
        "relayed",
    )
    for c in relays:
        f.check(
            c.related_address is not None and c.related_port is not None,
            "ICE-GATH-08",
            f"relay candidate {_line(c)} has no raddr/rport",
            "raddr_present",
        )
        related = (c.related_address, c.related_port)
        f.check(
            related == mapped or related in PRIVACY,
            "ICE-GATH-08",
            f"relay candidate {_line(c)} gives raddr {related[0]} rport {related[1]}; the XOR-MAPPED-ADDRESS of the "
            f"Allocate success that provided it is {mapped[0]}:{mapped[1]}",
            "raddr_mapped",
        )
    srflx = [c for c in session.candidates if c.kind == "srflx" and (c.address, c.port) == mapped]
    f.check(
        bool(srflx),
        "ICE-GATH-08",
        f"the Allocate success mapped the IUT to {mapped[0]}:{mapped[1]} and the IUT offered no srflx candidate there",
        "srflx",
    )


@pytest.mark.requirement("ICE-GATH-09")
@pytest.mark.needs("turn_client")
@pytest.mark.selftest(fault="keep-host-identical-relay")
async def test_relayed_candidate_identical_to_a_host_candidate_is_discarded(harness: Harness) -> None:
    """ICE-GATH-09 (RFC 8445 §5.1.1.2): the TURN server reports the IUT's own source (its host candidate) as
    XOR-RELAYED-ADDRESS; the IUT offers no relay candidate at that address."""
    server = await scripted_turn_server(harness)
    server.report_relayed = lambda a: a.client
    session = await _gather(harness, server)
    f = harness.findings
    identical = {client for client, relayed, _ in _allocated(server) if client == relayed}
    if not identical:
        raise UnsupportedFeature("no allocation was made: nothing to discard")
    hosts = {(c.address, c.port) for c in session.candidates if c.kind == "host"}
    if not identical & hosts:
        # The Allocate left from a socket the IUT does not offer as a host candidate: the relayed address then
        # equals that socket, not a host candidate, and the MUST does not apply as written.
        raise UnsupportedFeature(
            f"the Allocate left from {sorted(identical)}, which is none of the IUT's host candidates {sorted(hosts)}: "
            "the relayed address equal to it is not identical to a host candidate; the case cannot be produced"
        )
    kept = [c for c in session.candidates if c.kind == "relay" and (c.address, c.port) in hosts]
    f.check(
        not kept,
        "ICE-GATH-09",
        f"the relayed address reported, {sorted(identical)}, is the IUT's own host address, and the IUT still "
        f"offered it as a relay candidate: {[_line(c) for c in kept]}",
    )


@pytest.mark.requirement("ICE-GATH-10")
@pytest.mark.needs("turn_client")
@pytest.mark.parametrize("code", [486, 508])
@pytest.mark.selftest(fault="no-binding-after-486", verdict="NON-STRICT")
async def test_allocate_refused_for_resources_falls_back_to_binding(
    harness: Harness, expect: Expect, code: int
) -> None:
    """ICE-GATH-10 (RFC 8445 §5.1.1.2): every authenticated Allocate gets an authenticated 486 (Allocation Quota
    Reached) or 508 (Insufficient Capacity); a Binding request then reaches the server from the same source (one
    sent before the refusal from that source counts too)."""
    server = await scripted_turn_server(harness, mapping=nat_mapping("127.0.0.97"))
    key = long_term_key("alice", CLIENT_REALM, USERS["alice"])
    rule = server.script(_authenticated_allocate, lambda r: server.error(r, code, key=key), times=None)
    try:
        await _gather(harness, server)
    except AdapterError as exc:  # an IUT may report gathering as failed once its only TURN server refused it
        harness.findings.info(f"gather after the {code}: {exc}")
    f = harness.findings
    if not rule.hits:
        raise UnsupportedFeature(f"no authenticated Allocate reached the server: the {code} was never sent")
    refused = rule.hits[0]
    bindings = [r for r in server.requests if r.is_type(BINDING, REQUEST) and r.time > refused.time]
    binding = bindings[0] if bindings else None
    if binding is None:
        binding = await server.endpoint.expect_silence(
            lambda r: r.is_type(BINDING, REQUEST) and r.src == refused.src, 3.0
        )
    earlier = [
        r for r in server.requests if r.is_type(BINDING, REQUEST) and r.time < refused.time and r.src == refused.src
    ]
    if earlier and binding is None:
        # The agent had already asked for its server-reflexive address (e.g. it uses every TURN server as a STUN
        # server too): the Binding the SHOULD asks for has been sent, only earlier.
        f.info(f"{len(earlier)} Binding request(s) from {refused.src[0]}:{refused.src[1]} preceded the {code}")
        return
    refusal = f"the Allocate from {refused.src[0]}:{refused.src[1]} refused with {code} (lack of resources)"
    expect(binding, what=refusal).arrived("a Binding request for a server-reflexive candidate")


@pytest.mark.requirement("ICE-GATH-12")
@pytest.mark.needs("turn_client")
@pytest.mark.slow
@pytest.mark.budget(90)
@pytest.mark.selftest(fault="no-refresh")
async def test_candidates_are_kept_alive_until_ice_completes(harness: Harness) -> None:
    """ICE-GATH-12 (RFC 8445 §5.1.1.4, RFC 8656 §8): the allocation is refreshed while ICE has not completed.

    Scaled timer: the server grants LIFETIME 15 s instead of the usual 600 s (RFC 8656 §8 lets the server choose);
    the agent is never told to connect, so ICE processing cannot complete and the candidates must stay alive. The
    Refresh must arrive 0.5 s (one minimum RTO) before expiry. TURN-LIFE-05 judges the same timer relay-only.
    A STUN server is given too: RFC 8445 names no interval for the Binding keepalives of a srflx candidate, so the
    Binding requests it gets after gathering are reported as INFO only."""
    server = await scripted_turn_server(harness, mapping=nat_mapping("127.0.0.97"))
    server.grant_lifetime = SCALED_LIFETIME
    stun = await StunServer.open(harness.capture, "127.0.0.2", mapping=nat_mapping())

    async def close_stun() -> None:
        stun.close()

    harness.defer(close_stun)
    await _gather(harness, server, stun=stun)
    gathered = stun.endpoint.now()
    f = harness.findings
    allocates = [r for r in server.requests if _authenticated_allocate(r)]
    if not server.allocations or not allocates:
        raise UnsupportedFeature("no allocation was made: no allocation to keep alive")
    granted = allocates[-1]  # the request the allocation answered (its success left within milliseconds)
    refresh = await server.endpoint.expect_silence(
        lambda r: r.is_type(REFRESH, REQUEST), max(0.0, granted.time + SCALED_LIFETIME + 1.0 - server.endpoint.now())
    )
    later = [r for r in stun.requests if r.time > gathered]
    harness.findings.info(f"{len(later)} Binding request(s) reached the STUN server after gathering (srflx keepalive)")
    state = harness.log.of("state")
    ended = [n for n in state if n.params.get("state") in ("completed", "failed", "closed")]
    if refresh is None and ended:
        f.info(f"ICE processing ended ({ended[0].params.get('state')}) before the allocation was due: nothing owed")
        return
    # The Refresh's kernel arrival: a loaded harness reads it late, which is not the client's lateness.
    lead = SCALED_LIFETIME - (refresh.arrived - granted.time) if refresh is not None else None
    f.check(
        lead is not None and lead >= 0.5,
        "ICE-GATH-12",
        f"the allocation granted LIFETIME {SCALED_LIFETIME} s at {granted.time:.2f} was "
        + (f"refreshed only {lead:.2f} s before expiry" if lead is not None else "not refreshed before it expired")
        + " while ICE had not completed",
    )
