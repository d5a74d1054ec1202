"""TURN server: Allocate, its checks and its response (RFC 8656 §5, §7.2; RFC 8489 §6.3, §14)."""

from __future__ import annotations

from typing import Any

import pytest

from conformance.packets import (
    ALLOCATE,
    ATTRIBUTE_NAMES,
    BINDING,
    REFRESH,
    STUN,
    SUCCESS,
    attr,
    attribute_code,
    message_type,
)
from conformance.tester.expect import Expect
from conformance.tester.harness import Harness
from conformance.tester.turn_client import TurnClient, TurnServerUnderTest, xor_address
from conformance.tester.turn_steps import allocated, payload, peer_receives, relay_peers

pytestmark = pytest.mark.needs("turn_server")

SILENCE = 3.0


def _described(rec: object) -> str:
    return rec.describe() if rec is not None else "no response within 3 s"  # type: ignore[attr-defined]


@pytest.mark.requirement("TURN-ALLOC-01")
@pytest.mark.parametrize(("variant", "expected"), [("missing", 400), ("length-3", 400), ("protocol-254", 442)])
@pytest.mark.selftest(fault="no-requested-transport-check")
async def test_requested_transport_is_checked(
    harness: Harness, turn_server: TurnServerUnderTest, variant: str, expected: int
) -> None:
    """TURN-ALLOC-01 (RFC 8656 §7.2 step 3): no or malformed REQUESTED-TRANSPORT gets 400, protocol 254 gets 442."""
    c = await TurnClient.open(harness, turn_server)
    if variant == "missing":
        rec = await c.allocate(transport=False)
    elif variant == "length-3":
        rec = await c.allocate(
            attr.StunAttribute(type=attribute_code("REQUESTED-TRANSPORT"), value=b"\x11\x00\x00"), transport=False
        )
    else:
        rec = await c.allocate(attr.RequestedTransport(protocol=254), transport=False)
    harness.expect(rec, what=f"Allocate with REQUESTED-TRANSPORT {variant}").error(ALLOCATE, expected)


@pytest.mark.requirement("TURN-ALLOC-02")
@pytest.mark.selftest(fault="no-437-on-second-allocate")
async def test_second_allocate_on_a_5_tuple_gets_437(harness: Harness, allocation: TurnClient) -> None:
    """TURN-ALLOC-02 (RFC 8656 §7.2 step 2): a new Allocate (new txid) on a 5-tuple in use gets 437."""
    rec = await allocation.allocate()
    harness.expect(rec, what="second Allocate with a new transaction ID").error(ALLOCATE, 437)


@pytest.mark.requirement("TURN-ALLOC-03")
@pytest.mark.selftest(fault="wrong-mapped-address")
async def test_allocate_success_carries_relayed_mapped_and_lifetime(
    harness: Harness, turn_server: TurnServerUnderTest, expect: Expect
) -> None:
    """TURN-ALLOC-03 (RFC 8656 §7.2): XOR-RELAYED-ADDRESS, LIFETIME and XOR-MAPPED-ADDRESS = the client's address."""
    c = await TurnClient.open(harness, turn_server)
    rec = await c.allocate()
    reply = expect(rec, what="Allocate").success(ALLOCATE).has("XOR-RELAYED-ADDRESS", "LIFETIME", "XOR-MAPPED-ADDRESS")
    mapped = xor_address(rec, "XOR-MAPPED-ADDRESS") if rec is not None else None
    reply.that(mapped == c.address, f"XOR-MAPPED-ADDRESS {c.address} (the client's address), not {mapped}")


@pytest.mark.requirement("TURN-ALLOC-04")
@pytest.mark.selftest(fault="low-relay-ports", verdict="NON-STRICT")
async def test_relayed_ports_come_from_the_dynamic_range(harness: Harness, turn_server: TurnServerUnderTest) -> None:
    """TURN-ALLOC-04 (RFC 8656 §7.2): 20 relayed ports, all in 49152-65535 and none in 0-1023."""
    ports = []
    for i in range(20):
        c = await allocated(harness, turn_server, label=f"client {i + 1}")
        assert c.relayed is not None
        ports.append(c.relayed[1])
    harness.findings.info(f"relayed ports: {sorted(ports)}")
    low = [p for p in ports if p < 1024]
    harness.findings.check(not low, "TURN-ALLOC-04", f"relayed ports in 0-1023: {low}", "no_well_known")
    outside = [p for p in ports if not 49152 <= p <= 65535]
    harness.findings.check(
        not outside, "TURN-ALLOC-04", f"relayed ports outside 49152-65535: {outside}", "dynamic_range"
    )


#: variant: (attributes, accepted error codes, the RFC 8656 §7.2 step that requires the answer)
_ALLOC05: dict[str, tuple[list[Any], tuple[int, ...], int]] = {
    "requested-and-additional-family": (
        [attr.RequestedAddressFamily(family=1), attr.AdditionalAddressFamily(family=2)],
        (400,),
        6,
    ),
    "additional-family-ipv4": ([attr.AdditionalAddressFamily(family=1)], (400,), 9),
    "token-with-even-port": ([attr.ReservationToken(token=b"\x01" * 8), attr.EvenPort(reserve=0)], (400,), 5),
    "token-with-family": (
        [attr.ReservationToken(token=b"\x01" * 8), attr.RequestedAddressFamily(family=1)],
        (400,),
        5,
    ),
    "even-port-r-with-additional": ([attr.EvenPort(reserve=1), attr.AdditionalAddressFamily(family=2)], (400,), 8),
    "unknown-token": ([attr.ReservationToken(token=b"\x5a" * 8)], (508,), 5),
    "family-ipv6-unsupported": ([attr.RequestedAddressFamily(family=2)], (440,), 7),
}


@pytest.mark.requirement("TURN-ALLOC-05")
@pytest.mark.parametrize("variant", sorted(_ALLOC05))
@pytest.mark.selftest(fault="skip-allocate-family-checks")
@pytest.mark.selftest(fault="skip-allocate-family-checks", params="additional-family-ipv4", revision_gap=True)
async def test_address_family_and_reservation_checks(
    harness: Harness, turn_server: TurnServerUnderTest, expect: Expect, variant: str
) -> None:
    """TURN-ALLOC-05 (RFC 8656 §7.2 steps 5-9): 400 for bad combinations, 508 for an unknown token, 440 for IPv6."""
    c = await TurnClient.open(harness, turn_server)
    extra, expected, step = _ALLOC05[variant]
    rec = await c.allocate(*extra)
    if variant == "family-ipv6-unsupported" and rec is not None and rec.is_type(ALLOCATE, SUCCESS):
        relayed = xor_address(rec, "XOR-RELAYED-ADDRESS")
        granted = expect(rec, clause="checks", what="REQUESTED-ADDRESS-FAMILY IPv6 granted")
        granted.that(relayed is not None and ":" in relayed[0], "an IPv6 relayed address")
        harness.findings.info(f"the IUT relays IPv6: {relayed}")
        return
    # ADDITIONAL-ADDRESS-FAMILY is new in RFC 8656; the other checks were in RFC 5766 and RFC 6156.
    clause = "additional_family" if "additional" in variant else "checks"
    expect(rec, clause=clause, what=f"Allocate {variant} (RFC 8656 §7.2 step {step})").error(ALLOCATE, *expected)


@pytest.mark.requirement("TURN-ALLOC-05")
@pytest.mark.selftest(fault="ipv6-relay-by-default")
async def test_default_relay_family_is_ipv4(harness: Harness, allocation: TurnClient) -> None:
    """TURN-ALLOC-05 (RFC 8656 §7.2 step 7): without REQUESTED-ADDRESS-FAMILY the relayed address is IPv4."""
    assert allocation.relayed is not None
    harness.findings.check(
        ":" not in allocation.relayed[0], "TURN-ALLOC-05", f"relayed address {allocation.relayed} is not IPv4", "checks"
    )


@pytest.mark.requirement("TURN-ALLOC-06")
@pytest.mark.selftest(fault="ignore-even-port")
async def test_even_port_reserves_the_next_port(
    harness: Harness, turn_server: TurnServerUnderTest, expect: Expect
) -> None:
    """TURN-ALLOC-06 (RFC 8656 §7.2, §18.7, §18.10): EVEN-PORT R=1 gives an even port N and a token for N+1."""
    c = await TurnClient.open(harness, turn_server)
    rec = await c.allocate(attr.EvenPort(reserve=1))
    reply = expect(rec, what="Allocate with EVEN-PORT R=1").success(ALLOCATE)
    assert rec is not None and c.relayed is not None
    port = c.relayed[1]
    reply.that(port % 2 == 0, f"an even relayed port, not {port}")
    token = rec.value("RESERVATION-TOKEN") if rec.index is not None else None
    reply.that(token is not None and len(token) == 8, "an 8-byte RESERVATION-TOKEN")
    assert token is not None
    other = await TurnClient.open(harness, turn_server, label="TURN client 2")
    rec2 = await other.allocate(attr.ReservationToken(token=token))
    expect(rec2, what="Allocate with the token from another socket").that(
        rec2 is not None and rec2.is_type(ALLOCATE, SUCCESS) and other.relayed == (c.relayed[0], port + 1),
        f"an Allocate success response with relayed port {port + 1}",
    )


@pytest.mark.requirement("TURN-ALLOC-07")
@pytest.mark.selftest(fault="dont-fragment-400")
async def test_dont_fragment_is_honoured_or_rejected_with_420(
    harness: Harness, turn_server: TurnServerUnderTest, expect: Expect
) -> None:
    """TURN-ALLOC-07 (RFC 8656 §7.2 step 4): DONT-FRAGMENT gets success, or 420 listing 0x001A."""
    c = await TurnClient.open(harness, turn_server)
    rec = await c.allocate(attr.DontFragment())
    ok = rec is not None and rec.is_type(ALLOCATE, SUCCESS)
    if not ok and rec is not None and rec.error_code == 420 and rec.msg is not None:
        unknown = rec.msg.attr("UNKNOWN-ATTRIBUTES")
        ok = unknown is not None and attribute_code("DONT-FRAGMENT") in list(getattr(unknown, "types", []))
    expect(rec, what="Allocate with DONT-FRAGMENT").that(ok, "a success, or 420 listing DONT-FRAGMENT")


@pytest.mark.requirement("TURN-ALLOC-08")
@pytest.mark.selftest(fault="no-software", verdict="NON-STRICT")
async def test_allocate_and_refresh_responses_carry_software(allocation: TurnClient, expect: Expect) -> None:
    """TURN-ALLOC-08 (RFC 8656 §5): the server SHOULD put SOFTWARE in Allocate and Refresh responses."""
    rec = await allocation.refresh(600)
    alloc = next((r for r in allocation.endpoint.history if r.is_type(ALLOCATE, SUCCESS)), None)
    for what, r in (("Allocate", alloc), ("Refresh", rec)):
        if r is None or r.index is None:
            continue
        expect(r, what=f"{what} response").has("SOFTWARE")


@pytest.mark.requirement("TURN-ALLOC-13")
@pytest.mark.selftest(fault="no-441")
async def test_other_username_on_an_allocation_gets_441(
    harness: Harness, turn_server: TurnServerUnderTest, expect: Expect
) -> None:
    """TURN-ALLOC-13 (RFC 8656 §5): a Refresh on alice's allocation authenticated as bob gets 441."""
    alice = await allocated(harness, turn_server)
    bob = TurnClient(alice.endpoint, turn_server.address, "bob", turn_server.users["bob"])
    bob.realm, bob.nonce = alice.realm, alice.nonce
    rec = await bob.refresh(600)
    if rec is not None and rec.error_code == 438:
        bob.learn(rec)
        rec = await bob.refresh(600)
    expect(rec, what="Refresh as bob on alice's allocation (same 5-tuple)").code(441)


@pytest.mark.requirement("TURN-ALLOC-14")
@pytest.mark.selftest(fault="no-437-without-allocation")
async def test_without_an_allocation_requests_get_437_and_data_is_ignored(
    harness: Harness, turn_server: TurnServerUnderTest, expect: Expect
) -> None:
    """TURN-ALLOC-14 (RFC 8656 §5): no allocation: Refresh gets 437; Send and ChannelData are silently ignored."""
    (peer,) = await relay_peers(harness, 1)
    owner = await allocated(harness, turn_server, label="owner")
    assert owner.relayed is not None
    perm = await owner.create_permission(peer.address)
    bind = await owner.channel_bind(0x4000, peer.address)
    harness.findings.info(f"owner set-up: {_described(perm)}; {_described(bind)}")
    stranger = await TurnClient.open(harness, turn_server, label="no allocation")
    rec = await stranger.refresh(600)
    expect(rec, what="Refresh from a 5-tuple without an allocation").code(437)
    a, b = payload("send"), payload("chan")
    stranger.send_indication(peer.address, a)
    stranger.channel_data(0x4000, b)
    got = await peer_receives(peer, a, SILENCE) or await peer_receives(peer, b, 0.1)
    expect(got, what="data from a 5-tuple without an allocation").silence("nothing at the peer")
    replies = [r for r in stranger.endpoint.history if r.index is not None and r.index.msg_class >= SUCCESS]
    answered = [r for r in replies if r.index is not None and r.index.method != REFRESH]
    harness.findings.check(not answered, "TURN-ALLOC-14", f"the indication or ChannelData got an answer: {answered}")


@pytest.mark.requirement("STUN-MSG-06")
@pytest.mark.selftest(fault="ignore-unknown-attributes")
async def test_unknown_comprehension_required_attribute_gets_420(
    harness: Harness, turn_server: TurnServerUnderTest, expect: Expect
) -> None:
    """STUN-MSG-06 (RFC 8489 §6.3.1, §14.13): an authenticated Allocate with 0x7F01 gets 420 listing it."""
    c = await TurnClient.open(harness, turn_server)
    await c.challenge()
    rec = await c.allocate(attr.StunAttribute(type=UNKNOWN_REQUIRED, value=b"\x00\x00\x00\x00"))
    unknown = rec.msg.attr("UNKNOWN-ATTRIBUTES") if rec is not None and rec.msg is not None else None
    listed = list(getattr(unknown, "types", [])) if unknown is not None else []
    expect(rec).that(
        rec is not None and rec.error_code == 420 and UNKNOWN_REQUIRED in listed, "420 with UNKNOWN-ATTRIBUTES [0x7f01]"
    )


@pytest.mark.requirement("STUN-RTX-04")
@pytest.mark.selftest(fault="forget-retransmission")
async def test_retransmitted_allocate_gets_the_same_success(
    harness: Harness, turn_server: TurnServerUnderTest, expect: Expect
) -> None:
    """STUN-RTX-04 (RFC 8489 §6.3.1, RFC 8656 §5): a replayed Allocate (same txid, 5-tuple) gets the same success."""
    c = await TurnClient.open(harness, turn_server)
    await c.challenge()
    msg = c.build(ALLOCATE, attributes=[attr.RequestedTransport()])
    first = await c.transact(msg)
    if not expect(first, what="precondition: Allocate").success(ALLOCATE).ok or first is None:
        return
    again = await c.transact(bytes(msg), note="replay of the successful Allocate")
    same = again is not None and again.is_type(ALLOCATE, SUCCESS)
    same = same and xor_address(again, "XOR-RELAYED-ADDRESS") == xor_address(first, "XOR-RELAYED-ADDRESS")
    expect(again, what=f"retransmission of {first.describe()}").that(same, "the same success")
    bmsg = STUN(type=message_type("Binding", "request"), attributes=[attr.Fingerprint()])
    b1 = await c.transact(bmsg)
    b2 = await c.transact(bytes(bmsg), note="replay of the Binding")
    expect(b1, what="Binding").success(BINDING)
    expect(b2, what="its retransmission").success(BINDING)


#: Attributes whose value must be shorter than 128 characters (RFC 8489 §14.9, §14.10, §14.14).
_CHARACTER_LIMITED = {attribute_code(name) for name in ("REALM", "NONCE", "SOFTWARE")}
#: An unassigned comprehension-required code (RFC 8489 §14, §18.3): deliberately unknown to every agent.
UNKNOWN_REQUIRED = 0x7F01


@pytest.mark.requirement("STUN-MSG-10")
@pytest.mark.selftest(fault="crash-on-long-username")
async def test_long_username_gets_401_and_limits_hold(
    harness: Harness, turn_server: TurnServerUnderTest, expect: Expect
) -> None:
    """STUN-MSG-10 (RFC 8489 §14.3, §14.8-14.10): a 700-byte USERNAME gets 401; the IUT's fields respect the limits."""
    c = await TurnClient.open(harness, turn_server)
    await c.challenge()
    rec = await c.allocate(username="u" * 700)
    expect(rec, what="Allocate with a 700-byte USERNAME").code(401, 400)
    sanity = await allocated(harness, turn_server, label="sanity client")
    assert sanity.relayed is not None
    for r in c.endpoint.history + sanity.endpoint.history:
        if r.index is None:
            continue
        for code, off, length in r.index.attributes:
            if code == attribute_code("ERROR-CODE") and length >= 4:
                cls, num = r.data[off + 2] & 0x07, r.data[off + 3]
                harness.findings.check(
                    3 <= cls <= 6 and num < 100, "STUN-MSG-10", f"ERROR-CODE class {cls} number {num}: {r.describe()}"
                )
            if code in _CHARACTER_LIMITED:
                text = r.data[off : off + length].decode("utf-8", "replace")
                harness.findings.check(
                    len(text) < 128,
                    "STUN-MSG-10",
                    f"{ATTRIBUTE_NAMES[code]} has {len(text)} characters: {r.describe()}",
                )


@pytest.mark.requirement("STUN-MSG-11")
@pytest.mark.selftest(fault="require-auth-for-binding")
async def test_binding_without_credentials_or_fingerprint_succeeds(
    harness: Harness, turn_server: TurnServerUnderTest, expect: Expect
) -> None:
    """STUN-MSG-11 (RFC 5389 §13): a plain Binding (no credentials, no FINGERPRINT) gets XOR-MAPPED-ADDRESS."""
    c = await TurnClient.open(harness, turn_server)
    rec = await c.transact(STUN(type=message_type("Binding", "request")))
    mapped = xor_address(rec, "XOR-MAPPED-ADDRESS")
    expect(rec, what="plain Binding").that(
        rec is not None and rec.is_type(BINDING, SUCCESS) and mapped == c.address,
        f"a Binding success response with XOR-MAPPED-ADDRESS {c.address}",
    )
