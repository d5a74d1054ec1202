"""TURN server: permissions, channels, Send/Data and the security rows (RFC 8656 §9-§12, §21)."""

from __future__ import annotations

import pytest

from conformance.packets import CHANNEL_BIND, CREATE_PERMISSION, REFRESH
from conformance.tester.endpoint import Received
from conformance.tester.expect import Expect
from conformance.tester.harness import Harness
from conformance.tester.turn_client import TurnClient, TurnServerUnderTest, relayed_payload
from conformance.tester.turn_steps import (
    allocated,
    bound,
    payload,
    peer_receives,
    permitted,
    relay_peers,
    start_turn_server,
)

pytestmark = pytest.mark.needs("turn_server")

SILENCE = 3.0
PROMPT = 2.0


def _d(rec: Received | None) -> str:
    return rec.describe() if rec is not None else "no response within 3 s"


# -- permissions (RFC 8656 §9, §10) -------------------------------------------------------------------------------


@pytest.mark.requirement("TURN-PERM-02")
@pytest.mark.selftest(fault="relay-without-permission")
async def test_peers_without_a_permission_are_not_relayed(
    harness: Harness, allocation: TurnClient, expect: Expect
) -> None:
    """TURN-PERM-02 (RFC 8656 §9): datagrams from unpermitted IPs are dropped; a permitted IP from a new port passes."""
    assert allocation.relayed is not None
    good, bad1, bad2 = await relay_peers(harness, 3)
    await permitted(allocation, good)
    leaks = [payload("unpermitted-1"), payload("unpermitted-2")]
    bad1.send(leaks[0], allocation.relayed)
    bad2.send(leaks[1], allocation.relayed)
    for leak, who in zip(leaks, (bad1, bad2), strict=True):
        got = await allocation.relayed_within(leak, SILENCE if leak is leaks[0] else 0.2)
        expect(got, what=f"data from unpermitted peer {who.address}").silence("nothing relayed")
    other_port = await harness.endpoint("permitted IP, new port", good.address[0])
    data = payload("new-port")
    other_port.send(data, allocation.relayed)
    got = await allocation.relayed_within(data, PROMPT)
    expect(got, what=f"a permission on {good.address[0]}, the same IP from port {other_port.address[1]}").arrived(
        "its datagram relayed"
    )


@pytest.mark.requirement("TURN-PERM-02")
@pytest.mark.selftest(fault="permissions-shared-across-allocations")
async def test_a_permission_on_one_allocation_does_not_open_another(
    harness: Harness, turn_server: TurnServerUnderTest, expect: Expect
) -> None:
    """TURN-PERM-02 (RFC 8656 §9, §21.2): permissions belong to one allocation only."""
    a = await allocated(harness, turn_server, label="client A")
    b = await allocated(harness, turn_server, "bob", label="client B")
    assert b.relayed is not None
    (peer,) = await relay_peers(harness, 1)
    await permitted(a, peer)
    data = payload("cross")
    peer.send(data, b.relayed)
    got = await b.relayed_within(data, SILENCE)
    expect(got, what="a peer permitted on A only, sending to B's relay").silence("nothing relayed")


@pytest.mark.requirement("TURN-PERM-03")
@pytest.mark.selftest(fault="permission-port-sensitive")
async def test_one_create_permission_installs_every_peer(
    harness: Harness, allocation: TurnClient, expect: Expect
) -> None:
    """TURN-PERM-03 (RFC 8656 §10.2): two XOR-PEER-ADDRESS in one request; both IPs are relayed, ports ignored."""
    assert allocation.relayed is not None
    p1, p2 = await relay_peers(harness, 2)
    rec = await allocation.create_permission((p1.address[0], 9), (p2.address[0], 10))
    expect(rec, what="CreatePermission with two peers").success(CREATE_PERMISSION)
    for p in (p1, p2):
        data = payload(p.address[0])
        p.send(data, allocation.relayed)
        got = await allocation.relayed_within(data, PROMPT)
        expect(got, what=f"peer {p.address} after the permission").arrived("its datagram relayed")


@pytest.mark.requirement("TURN-PERM-04", "TURN-ERR-01")
@pytest.mark.parametrize(("variant", "expected"), [("no-peer", 400), ("ipv6-peer", 443)])
@pytest.mark.selftest(fault="accept-ipv6-peer", requirement="TURN-PERM-04", params="ipv6-peer-443")
@pytest.mark.selftest(fault="accept-permission-without-peer", requirement="TURN-PERM-04", params="no-peer-400")
async def test_create_permission_rejects_bad_peers(
    allocation: TurnClient, expect: Expect, variant: str, expected: int
) -> None:
    """TURN-PERM-04, TURN-ERR-01 (RFC 8656 §10.2, §19): no XOR-PEER-ADDRESS gets 400, an IPv6 peer on IPv4 443."""
    rec = await (
        allocation.create_permission() if variant == "no-peer" else allocation.create_permission(("::1", 5000))
    )
    clause = "bad_peer" if variant == "no-peer" else "family_443"
    expect(rec, "TURN-PERM-04", clause, f"CreatePermission {variant}").code(expected)
    if variant == "ipv6-peer":
        expect(rec, "TURN-ERR-01", what="IPv6 peer on an IPv4 relay").code(443)


@pytest.mark.requirement("TURN-PERM-01")
@pytest.mark.selftest(fault="permissions-never-expire")
async def test_permission_expires_at_its_lifetime_scaled(harness: Harness) -> None:
    """TURN-PERM-01 (RFC 8656 §9), scaled: with a 6 s permission lifetime, relayed at 4 s, dropped at 8 s."""
    await _permission_lifetime(harness, 6.0, scaled=True)


@pytest.mark.slow
@pytest.mark.budget(420)
@pytest.mark.requirement("TURN-PERM-01")
@pytest.mark.selftest(fault="permissions-never-expire")
async def test_permission_lasts_300_seconds(harness: Harness) -> None:
    """TURN-PERM-01 (RFC 8656 §9): a permission lasts exactly 300 s: relayed at 290 s, dropped at 310 s."""
    await _permission_lifetime(harness, 300.0, scaled=False)


async def _permission_lifetime(h: Harness, lifetime: float, *, scaled: bool) -> None:
    options = {"permission_lifetime": int(lifetime)} if scaled else None
    srv = await start_turn_server(h, options=options)
    c = await allocated(h, srv)
    assert c.relayed is not None
    (peer,) = await relay_peers(h, 1)
    await permitted(c, peer)
    start = peer.now()
    margin = 2.0 if scaled else 10.0
    await _until(peer.now, start + lifetime - margin)
    before = payload("before-expiry")
    peer.send(before, c.relayed)
    got = await c.relayed_within(before, 1.0)
    h.expect(got, what=f"{lifetime - margin:g} s after CreatePermission").arrived("the peer's datagram relayed")
    await _until(peer.now, start + lifetime + margin)
    await c.refresh(600)  # keep the allocation: only the permission may expire
    after = payload("after-expiry")
    peer.send(after, c.relayed)
    got = await c.relayed_within(after, SILENCE)
    h.expect(got, what=f"{lifetime + margin:g} s after CreatePermission").silence("nothing relayed")


async def _until(now: object, when: float) -> None:
    """Wait out a protocol timer the case measures (RFC 8656 lifetimes); only in scaled or slow cases."""
    import asyncio

    delay = when - now()  # type: ignore[operator]
    if delay > 0:
        await asyncio.sleep(delay)


@pytest.mark.requirement("TURN-PERM-06")
@pytest.mark.selftest(fault="channeldata-refreshes-permission")
async def test_channel_data_does_not_refresh_the_permission_scaled(harness: Harness) -> None:
    """TURN-PERM-06 (RFC 8656 §12.6), scaled: ChannelData alone does not keep a 6 s permission alive.

    The lifetime is scaled by server configuration, so a control channel to a second peer gets no ChannelData: if
    its permission outlives 6 s too, the scaled lifetime does not govern channel permissions on this server and the
    survival of the first says nothing about ChannelData (INFO, not FAIL).
    """
    srv = await start_turn_server(harness, options={"permission_lifetime": 6, "channel_lifetime": 600})
    c = await allocated(harness, srv)
    assert c.relayed is not None
    peer, control = await relay_peers(harness, 2)
    await bound(c, 0x4000, peer)
    await bound(c, 0x4001, control)
    start = peer.now()
    for i in range(8):
        await _until(peer.now, start + i + 1)
        c.channel_data(0x4000, payload(f"keepalive-{i}"))
    quiet = payload("control-after-permission-expiry")
    control.send(quiet, c.relayed)
    control_got = await c.relayed_within(quiet, SILENCE)
    late = payload("after-permission-expiry")
    peer.send(late, c.relayed)
    got = await c.relayed_within(late, SILENCE)
    f = harness.findings
    if control_got is not None:
        f.inconclusive(
            "TURN-PERM-06",
            f"the control channel's permission (no ChannelData at all) also outlived the configured 6 s "
            f"({_d(control_got)}): the scaled lifetime does not apply to channel permissions here, so whether "
            f"ChannelData refreshes them cannot be told ({'relayed' if got else 'not relayed'} on the channel "
            "that carried ChannelData)",
        )
        return
    harness.expect(got, what="past 6 s with only ChannelData, while the control channel's permission expired").silence(
        "nothing relayed"
    )


# -- channels (RFC 8656 §12) ---------------------------------------------------------------------------------------


@pytest.mark.requirement("TURN-CHAN-01")
@pytest.mark.parametrize("variant", ["0x3fff", "0x5000", "0x7fff", "rebind-number", "rebind-peer"])
@pytest.mark.selftest(fault="accept-bad-channel-number", params=["0x3fff", "0x5000", "0x7fff"])
@pytest.mark.selftest(fault="accept-bad-channel-number", params=["0x5000", "0x7fff"], revision_gap=True)
@pytest.mark.selftest(fault="allow-channel-rebinding", params=["rebind-number", "rebind-peer"])
async def test_channel_bind_rejects_bad_numbers_and_conflicts(
    harness: Harness, allocation: TurnClient, expect: Expect, variant: str
) -> None:
    """TURN-CHAN-01 (RFC 8656 §12.2): numbers outside 0x4000-0x4FFF and conflicting bindings get 400."""
    p1, p2 = await relay_peers(harness, 2)
    if variant.startswith("0x"):
        rec = await allocation.channel_bind(int(variant, 16), p1.address)
    else:
        await bound(allocation, 0x4000, p1)
        rec = await (
            allocation.channel_bind(0x4000, p2.address)
            if variant == "rebind-number"
            else allocation.channel_bind(0x4001, p1.address)
        )
    # 0x5000-0x7FFF were valid channels in RFC 5766 §11; RFC 8656 §12 narrowed the range.
    clause = "range" if variant in ("0x5000", "0x7fff") else "attributes"
    expect(rec, clause=clause, what=f"ChannelBind {variant}").code(400)


@pytest.mark.requirement("TURN-CHAN-02", "TURN-CHAN-03", "TURN-CHAN-06")
@pytest.mark.selftest(fault="data-indication-despite-channel", requirement="TURN-CHAN-03")
async def test_channel_bind_installs_permission_and_uses_channel_data(
    harness: Harness, allocation: TurnClient, expect: Expect
) -> None:
    """TURN-CHAN-02/03/06 (RFC 8656 §12.2, §12.4, §12.5): bind alone relays, twice succeeds, ChannelData back."""
    assert allocation.relayed is not None
    (peer,) = await relay_peers(harness, 1)
    await bound(allocation, 0x4000, peer)
    again = await allocation.channel_bind(0x4000, peer.address)
    expect(again, "TURN-CHAN-02", what="the same bind twice").success(CHANNEL_BIND)
    data = payload("to-client")
    peer.send(data, allocation.relayed)
    got = await allocation.relayed_within(data, PROMPT)
    expect(got, "TURN-CHAN-02", what="after only a ChannelBind").arrived("the peer's datagram relayed")
    assert got is not None
    kind = relayed_payload(got)
    expect(got, "TURN-CHAN-03", what="a bound peer's data").that(
        kind is not None and kind[0] == "channel", "ChannelData"
    )
    import struct

    number, length = struct.unpack_from("!HH", got.data)
    harness.findings.check(
        number == 0x4000 and length == len(data) and len(got.data) - 4 - length < 4,
        "TURN-CHAN-06",
        f"ChannelData header channel 0x{number:04x} length {length} for a {len(data)}-byte payload",
        "format",
    )


@pytest.mark.requirement("TURN-CHAN-04")
@pytest.mark.parametrize("variant", ["unbound", "reserved-0x5000", "short"])
@pytest.mark.selftest(fault="relay-bad-channel-data", params=["reserved-0x5000", "short"])
@pytest.mark.selftest(fault="relay-on-unbound-channel", params="unbound")
async def test_bad_channel_data_is_dropped(
    harness: Harness, allocation: TurnClient, expect: Expect, variant: str
) -> None:
    """TURN-CHAN-04 (RFC 8656 §12.6): ChannelData on an unbound or reserved channel, or truncated, is dropped."""
    (peer,) = await relay_peers(harness, 1)
    await bound(allocation, 0x4000, peer)
    data = payload(variant)
    if variant == "unbound":
        allocation.channel_data(0x4001, data)
    elif variant == "reserved-0x5000":
        allocation.channel_data(0x5000, data)
    else:
        allocation.channel_data(0x4000, data, length=len(data) + 8)
    got = await peer_receives(peer, data, SILENCE)
    if got is None and variant == "short":
        got = next((r for r in peer.history if r.data.startswith(data[:8])), None)
    expect(got, what=f"ChannelData {variant}").silence("nothing at the peer")
    sanity = payload("sanity")
    allocation.channel_data(0x4000, sanity)
    harness.findings.info(
        f"sanity ChannelData afterwards relayed: {await peer_receives(peer, sanity, PROMPT) is not None}"
    )


@pytest.mark.requirement("TURN-CHAN-05")
@pytest.mark.selftest(fault="drop-empty-channeldata")
async def test_empty_channel_data_becomes_an_empty_datagram(
    harness: Harness, allocation: TurnClient, expect: Expect
) -> None:
    """TURN-CHAN-05 (RFC 8656 §12.4, §12.6): ChannelData of length 0 gives a 0-byte UDP datagram from the relay."""
    (peer,) = await relay_peers(harness, 1)
    await bound(allocation, 0x4000, peer)
    allocation.channel_data(0x4000, b"")
    got = next((r for r in peer.history if r.data == b""), None) or await peer.expect_silence(
        lambda r: r.data == b"", PROMPT
    )
    expect(got).that(got is not None and got.src == allocation.relayed, f"an empty datagram from {allocation.relayed}")


# -- Send and Data (RFC 8656 §11) ----------------------------------------------------------------------------------


@pytest.mark.requirement("TURN-DATA-01")
@pytest.mark.parametrize("variant", ["no-data", "no-peer", "no-permission", "ipv6-peer"])
@pytest.mark.selftest(fault="lenient-send-indications", params=["no-data", "no-peer", "ipv6-peer"])
@pytest.mark.selftest(fault="relay-without-permission", params="no-permission")
async def test_bad_send_indications_are_discarded(
    harness: Harness, allocation: TurnClient, expect: Expect, variant: str
) -> None:
    """TURN-DATA-01, TURN-ERR-01 (RFC 8656 §11.2): Send without DATA, peer or permission is discarded."""
    permitted_peer, stranger = await relay_peers(harness, 2)
    await permitted(allocation, permitted_peer)
    data = payload(variant)
    if variant == "no-data":
        allocation.send_indication(permitted_peer.address, None)
        got = await permitted_peer.expect_silence(lambda r: True, SILENCE)
    elif variant == "no-peer":
        allocation.send_indication(None, data)
        got = await peer_receives(permitted_peer, data, SILENCE)
    elif variant == "no-permission":
        allocation.send_indication(stranger.address, data)
        got = await peer_receives(stranger, data, SILENCE)
    else:
        allocation.send_indication(("::1", permitted_peer.address[1]), data)
        got = await peer_receives(permitted_peer, data, SILENCE)
    expect(got, what=f"Send indication {variant}").silence("nothing relayed")


@pytest.mark.requirement("TURN-DATA-02", "TURN-DATA-03", "TURN-DATA-04")
@pytest.mark.selftest(fault="data-indication-wrong-peer", requirement="TURN-DATA-03")
@pytest.mark.selftest(fault="drop-send-indications", requirement="TURN-DATA-04")
async def test_send_and_data_indications_relay_both_ways(
    harness: Harness, allocation: TurnClient, expect: Expect
) -> None:
    """TURN-DATA-02/03/04 (RFC 8656 §5, §11.2, §11.3): an unauthenticated Send is relayed; peer data comes back."""
    (peer,) = await relay_peers(harness, 1)
    await permitted(allocation, peer)
    data = payload("send")
    allocation.send_indication(peer.address, data)
    got = await peer_receives(peer, data, PROMPT)
    expect(got, "TURN-DATA-04", what="a Send indication (no MESSAGE-INTEGRITY)").arrived("its data at the peer")
    assert got is not None
    expect(got, "TURN-DATA-02").that(got.src == allocation.relayed, f"the data from the relay {allocation.relayed}")
    back = payload("data")
    assert allocation.relayed is not None
    peer.send(back, allocation.relayed)
    rec = await allocation.relayed_within(back, PROMPT)
    expect(rec, "TURN-DATA-03", what="the peer's datagram").arrived("it at the client")
    assert rec is not None
    kind = relayed_payload(rec)
    expect(rec, "TURN-DATA-03").that(
        kind is not None and kind[0] == "data-indication" and kind[2] == peer.address,
        f"a Data indication with XOR-PEER-ADDRESS {peer.address}",
    )


# -- lifetime (RFC 8656 §6, §7.2, §8) -------------------------------------------------------------------------------


@pytest.mark.requirement("TURN-LIFE-01")
@pytest.mark.selftest(fault="default-lifetime-300")
async def test_default_lifetime_is_600(harness: Harness, allocation: TurnClient) -> None:
    """TURN-LIFE-01 (RFC 8656 §6, §7.2): an Allocate without LIFETIME gets LIFETIME 600."""
    harness.findings.check(
        allocation.lifetime == 600, "TURN-LIFE-01", f"granted LIFETIME {allocation.lifetime}, expected 600"
    )


@pytest.mark.requirement("TURN-LIFE-02")
@pytest.mark.selftest(fault="lifetime-missing-in-refresh")
@pytest.mark.selftest(fault="short-lifetime-granted")
async def test_lifetime_rule_and_maximum(harness: Harness, turn_server: TurnServerUnderTest, expect: Expect) -> None:
    """TURN-LIFE-02 (RFC 8656 §7.2, §8.2): 30 gives the default 600; 1e6 gives at most 3600; Refresh has LIFETIME."""
    short = await allocated(harness, turn_server, lifetime=30, label="asks 30 s")
    harness.findings.check(
        short.lifetime == 600, "TURN-LIFE-02", f"asked 30 s, granted {short.lifetime} (expected 600)", "lifetime_rule"
    )
    rec = await short.refresh(30)
    expect(rec, clause="lifetime_rule", what="Refresh success").has("LIFETIME")
    long = await allocated(harness, turn_server, lifetime=1_000_000, label="asks 1e6 s")
    assert long.lifetime is not None
    harness.findings.check(
        long.lifetime >= 600, "TURN-LIFE-02", f"asked 1e6 s, granted {long.lifetime}", "lifetime_rule"
    )
    harness.findings.check(
        long.lifetime <= 3600, "TURN-LIFE-02", f"asked 1e6 s, granted {long.lifetime} (> 3600)", "max_3600"
    )


@pytest.mark.requirement("TURN-LIFE-03")
@pytest.mark.selftest(fault="ignore-lifetime-zero")
@pytest.mark.selftest(fault="relay-after-delete")
async def test_refresh_zero_deletes_the_allocation(harness: Harness, allocation: TurnClient, expect: Expect) -> None:
    """TURN-LIFE-03 (RFC 8656 §8.2): Refresh 0 succeeds; then Refresh gets 437 and peer data is not relayed."""
    assert allocation.relayed is not None
    (peer,) = await relay_peers(harness, 1)
    await permitted(allocation, peer)
    rec = await allocation.refresh(0)
    expect(rec, what="Refresh LIFETIME=0").success(REFRESH)
    # RFC 8656 §8.2 deletes at once; a server that deletes on its next timer tick gets PROMPT s, so neither the relay
    # check nor the 437 races the deletion.
    await harness.observe(PROMPT, "a server that deletes on its next timer tick is given its tick")
    data = payload("after-delete")
    peer.send(data, allocation.relayed)
    got = await allocation.relayed_within(data, SILENCE)
    deleted = "after Refresh LIFETIME=0 deleted the allocation (RFC 8656 §8.2)"
    expect(got, what=f"{PROMPT:g} s {deleted}").silence("nothing relayed")
    after = await allocation.refresh(600)
    expect(after, what=f"Refresh {PROMPT + SILENCE:g} s {deleted}, RFC 8656 §5").code(437)


@pytest.mark.requirement("TURN-LIFE-04")
@pytest.mark.selftest(fault="data-refreshes-allocation")
async def test_data_does_not_refresh_the_allocation_scaled(harness: Harness) -> None:
    """TURN-LIFE-04 (RFC 8656 §6), scaled: ChannelData every second does not keep a short allocation alive."""
    await _allocation_expiry(harness, {"max_allocation_lifetime": 6, "default_allocation_lifetime": 6}, 30)


@pytest.mark.slow
@pytest.mark.budget(720)
@pytest.mark.requirement("TURN-LIFE-04")
@pytest.mark.selftest(fault="data-refreshes-allocation")
async def test_data_does_not_refresh_the_allocation(harness: Harness) -> None:
    """TURN-LIFE-04 (RFC 8656 §6): with only ChannelData for 600 s the allocation expires at its lifetime."""
    await _allocation_expiry(harness, None, 700)


async def _allocation_expiry(h: Harness, options: dict[str, int] | None, limit: int) -> None:
    from conformance.verdict import UnsupportedFeature

    srv = await start_turn_server(h, options=options)
    c = await allocated(h, srv)
    assert c.relayed is not None and c.lifetime is not None
    if c.lifetime > limit:
        raise UnsupportedFeature(f"the IUT granted {c.lifetime} s: the lifetime could not be shortened to test this")
    (peer,) = await relay_peers(h, 1)
    await bound(c, 0x4000, peer)
    start = peer.now()
    margin = 2.0 if c.lifetime < 60 else 5.0
    step = 1.0 if c.lifetime < 60 else 20.0
    t = step
    while t < c.lifetime + margin:
        await _until(peer.now, start + t)
        c.channel_data(0x4000, payload("keep-sending"))
        t += step
    rec = await c.refresh(600)
    h.expect(rec, what=f"Refresh {c.lifetime + margin:g} s after a {c.lifetime} s grant").code(437)


# -- security (RFC 8656 §21) ---------------------------------------------------------------------------------------


@pytest.mark.requirement("SEC-04", "TURN-ALLOC-14")
@pytest.mark.selftest(fault="allocation-by-username", requirement="SEC-04")
async def test_forged_refresh_cannot_delete_another_allocation(
    harness: Harness, turn_server: TurnServerUnderTest, expect: Expect
) -> None:
    """SEC-04 (RFC 8656 §21.1.3, §5): Refresh 0 as the same user from another 5-tuple gets 437; the victim relays."""
    victim = await allocated(harness, turn_server, label="victim")
    assert victim.relayed is not None
    (peer,) = await relay_peers(harness, 1)
    await permitted(victim, peer)
    attacker = await TurnClient.open(harness, turn_server, label="attacker (same user)")
    rec = await attacker.refresh(0)
    expect(rec, "SEC-04", what="forged Refresh 0 from another 5-tuple").code(437)
    perm = await attacker.create_permission(("127.0.0.5", 1))
    code = perm.error_code if perm is not None else None
    expect(perm, "SEC-04", what="forged CreatePermission from another 5-tuple").that(
        code is not None and code >= 400, "an error"
    )
    expect(perm, "TURN-ALLOC-14", what="CreatePermission without an allocation").code(437)

    data = payload("victim-alive")
    peer.send(data, victim.relayed)
    got = await victim.relayed_within(data, PROMPT)
    expect(got, "SEC-04", what="after the forgery").arrived("the victim's allocation still relaying")


@pytest.mark.requirement("SEC-04")
@pytest.mark.selftest(fault="unauthenticated-refresh")
async def test_unauthenticated_refresh_on_the_victims_5_tuple_is_refused(
    harness: Harness, turn_server: TurnServerUnderTest, expect: Expect
) -> None:
    """SEC-04 (RFC 8656 §21.1.3): Refresh 0 without MI on the victim's own 5-tuple gets 401; the allocation lives."""
    victim = await allocated(harness, turn_server, label="victim")
    assert victim.relayed is not None
    (peer,) = await relay_peers(harness, 1)
    await permitted(victim, peer)
    from conformance.packets import attr

    rec = await victim.transact(victim.build(REFRESH, attributes=[attr.Lifetime(lifetime=0)], auth=False))
    expect(rec, what="unauthenticated Refresh 0").code(401)
    data = payload("still-alive")
    peer.send(data, victim.relayed)
    got = await victim.relayed_within(data, PROMPT)
    expect(got, what="after an unauthenticated Refresh").arrived("the allocation still relaying")


@pytest.mark.requirement("SEC-05")
@pytest.mark.selftest(fault="unauthenticated-permissions")
async def test_only_authenticated_requests_create_permissions(
    harness: Harness, allocation: TurnClient, expect: Expect
) -> None:
    """SEC-05 (RFC 8656 §21.2.1): CreatePermission without MI gets 401 and the peer stays blocked."""
    assert allocation.relayed is not None
    (peer,) = await relay_peers(harness, 1)
    from conformance.packets import attr

    msg = allocation.build(
        CREATE_PERMISSION, attributes=[attr.XorPeerAddress(family=1, address=peer.address[0], port=1)], auth=False
    )
    rec = await allocation.transact(msg)
    expect(rec, what="unauthenticated CreatePermission").code(401)
    data = payload("blocked")
    peer.send(data, allocation.relayed)
    got = await allocation.relayed_within(data, SILENCE)
    expect(got, what="after an unauthenticated CreatePermission").silence("nothing relayed")


@pytest.mark.requirement("SEC-06")
@pytest.mark.selftest(fault="quota-by-address", verdict="NON-STRICT")
async def test_allocation_quota_is_per_username(harness: Harness, expect: Expect) -> None:
    """SEC-06 (RFC 8656 §7.2 step 10): with a quota of 2, the third Allocate of one username gets 486."""
    srv = await start_turn_server(harness, options={"user_quota": 2})
    for i in range(2):
        await allocated(harness, srv, label=f"alice {i + 1}")
    third = await TurnClient.open(harness, srv, label="alice 3")
    rec = await third.allocate()
    expect(rec, clause="by_username", what="third allocation of alice").code(486)


@pytest.mark.requirement("SEC-07")
@pytest.mark.selftest(verdict="INFO")
@pytest.mark.selftest(fault="amplify-challenges", verdict="INFO")
async def test_reflection_ratio_of_unauthenticated_requests(harness: Harness, turn_server: TurnServerUnderTest) -> None:
    """SEC-07 (harness metric): response bytes / request bytes for a minimal Binding and a minimal Allocate."""
    from conformance.packets import STUN, attr, message_type

    c = await TurnClient.open(harness, turn_server)
    ratios = []
    for name, msg in (
        ("Binding", STUN(type=message_type("Binding", "request"))),
        ("Allocate", STUN(type=message_type("Allocate", "request"), attributes=[attr.RequestedTransport()])),
    ):
        data = bytes(msg)
        rec = await c.transact(data)
        size = len(rec.data) if rec is not None else 0
        ratios.append(f"{name}: {len(data)} -> {size} bytes ({size / len(data):.2f}x)")
        if size > 3 * len(data):
            harness.findings.violation("SEC-07", f"{name} reflection {size / len(data):.2f}x exceeds 3x: {_d(rec)}")
    harness.findings.info("reflection: " + "; ".join(ratios))
