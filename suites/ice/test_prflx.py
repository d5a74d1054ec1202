"""Peer-reflexive candidates (RFC 8445 §7.2.5.3, §7.3.1.3; RFC 8838 §11): learnt from checks and from responses."""

from __future__ import annotations

import pytest

from conformance.protocol.candidate import parse_candidate
from conformance.tester.endpoint import Received
from conformance.tester.expect import Expect
from conformance.tester.harness import Harness
from conformance.tester.ice import BINDING, REQUEST
from conformance.tester.ice_steps import first_since, host_line, run_exchange


def _is_request(r: Received) -> bool:
    return r.is_type(BINDING, REQUEST)


@pytest.mark.requirement("ICE-PRFLX-01")
@pytest.mark.selftest(fault="no-triggered-check")
async def test_check_from_an_unknown_source_makes_a_remote_prflx(harness: Harness, expect: Expect, role: str) -> None:
    """ICE-PRFLX-01 (RFC 8445 §7.3.1.3-4): an unknown source becomes a prflx candidate, checked and usable."""
    peer = await harness.peer()
    signalled = await harness.endpoint("signalled remote (never answers)")
    priority = 1862270975 - 7
    s = await harness.session(role, peer=peer, remote_candidates=[host_line("S", 2130706431, signalled.address)])
    x_peer_ep = peer.endpoint
    f = harness.findings
    reply = await peer.transact(peer.check(priority=priority), s.iut_address, timeout=3.0, note="check from S")
    expect(reply, what=f"the check from the unsignalled {x_peer_ep.address}").success(BINDING)
    await x_peer_ep.expect(
        lambda r: peer.is_valid_check(r),
        2.0,
        what=f"check to the peer-reflexive candidate {x_peer_ep.address[0]}:{x_peer_ep.address[1]}",
        findings=f,
        requirement="ICE-PRFLX-01",
    )
    if role == "controlled":
        await peer.transact(peer.check(use_candidate=True, priority=priority), s.iut_address, timeout=3.0)
    selected = await harness.log.wait("selected_pair", timeout=10.0)
    f.check(selected is not None, "ICE-PRFLX-01", "ICE did not complete on the peer-reflexive candidate")
    assert selected is not None
    remote = parse_candidate(str(selected.params["remote"]))
    f.check(
        remote.port == x_peer_ep.address[1],
        "ICE-PRFLX-01",
        f"the selected remote is {remote.address}:{remote.port}, not the peer-reflexive {x_peer_ep.address}",
    )
    f.info(f"selected remote {selected.params['remote']} (PRIORITY sent: {priority})")


@pytest.mark.requirement("ICE-PRFLX-02")
@pytest.mark.selftest(fault="reject-unknown-mapped")
async def test_unknown_mapped_address_still_validates_the_pair(harness: Harness, role: str) -> None:
    """ICE-PRFLX-02 (RFC 8445 §7.2.5.3.1-2): a mapped address matching no local candidate still yields a valid pair."""
    peer = await harness.peer()
    nat = ("127.0.0.66", 40066)  # as if a NAT sat between the IUT and the harness
    peer.responder = lambda rec: bytes(peer.success(rec, mapped=nat))
    x = await run_exchange(harness, role, peer=peer)
    f = harness.findings
    if role == "controlling":
        f.check(
            bool(x.nominations),
            "ICE-PRFLX-02",
            f"the IUT never nominated the pair whose response mapped it to {nat[0]}:{nat[1]}",
        )
    f.check(
        x.selected is not None,
        "ICE-PRFLX-02",
        f"no pair was selected after responses that mapped the IUT to {nat[0]}:{nat[1]}",
    )
    if x.selected is not None:
        f.info(f"selected local {x.selected.params.get('local')}")


@pytest.mark.requirement("ICE-PRFLX-03")
@pytest.mark.selftest(fault="duplicate-prflx-pair", verdict="NON-STRICT")
async def test_trickled_duplicate_of_a_prflx_adds_no_pair(harness: Harness) -> None:
    """ICE-PRFLX-03 (RFC 8838 §11): a trickled candidate equal to a known prflx one adds no pair and no checks."""
    harness.require("trickle")
    peer = await harness.peer()
    signalled = await harness.endpoint("signalled remote (never answers)")
    s = await harness.session(
        "controlled", peer=peer, trickle=True, remote_candidates=[host_line("S", 2130706431, signalled.address)]
    )
    ep = peer.endpoint
    f = harness.findings
    await peer.transact(peer.check(), s.iut_address, timeout=3.0, note="check from the unsignalled S")
    await ep.expect(lambda r: peer.is_valid_check(r), 2.0, what="triggered check to S")
    await harness.observe(0.3, "stragglers of the triggered check, before the known transactions are listed")
    before = {r.transaction_id for r in ep.find(_is_request)}
    last = max(r.time for r in ep.find(_is_request))
    trickled = ep.now()
    line = f"candidate:T 1 udp 1694498815 {ep.address[0]} {ep.address[1]} typ srflx raddr 0.0.0.0 rport 9"
    await harness.iut.add_remote_candidate(s.agent, line)
    extra = await first_since(ep, lambda r: _is_request(r) and r.transaction_id not in before, trickled, 2.0)
    if extra is not None and extra.time - last >= 3.5:  # a consent check, not a new pair (RFC 7675 §5.1)
        f.info(f"a request {extra.time - last:.1f} s after the previous one, taken as a consent check")
        extra = None
    f.check(
        extra is None,
        "ICE-PRFLX-03",
        f"after trickling {ep.address[0]}:{ep.address[1]} (already a peer-reflexive remote) the IUT started a new "
        f"check to it {(extra.time - trickled) * 1000:.0f} ms later: {extra.describe()}"
        if extra
        else "",
    )
