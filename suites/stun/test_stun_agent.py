"""STUN as an ICE agent speaks it: the server side of checks and the client side of its own transactions.

RFC 8489 §5, §6.2, §6.3, §7, §9, §14 and RFC 8445 §7.2, §7.3, §14.3, seen from outside: the harness sends crafted
checks to the IUT's candidates and answers (or not) the IUT's own checks.
"""

from __future__ import annotations

import ipaddress
import struct
from typing import Any

import pytest

from conformance.packets import STUN, attr, attribute_code
from conformance.packets.fast import index
from conformance.protocol.transactions import txid_randomness_problems
from conformance.tester.endpoint import Address, Received
from conformance.tester.expect import Expect
from conformance.tester.harness import Harness
from conformance.tester.ice import BINDING, REQUEST, SUCCESS, IceSession
from conformance.tester.ice_steps import (
    check_iut_alive,
    first_since,
    host_line,
    open_endpoints,
    requests_until_quiet,
    run_exchange,
    sanity_probe,
)
from conformance.tester.transactions import model_of
from conformance.verdict import HarnessError, UnsupportedFeature

MAGIC_COOKIE = 0x2112A442
UNKNOWN_REQUIRED = 0x7F31  # unassigned, comprehension-required (RFC 8489 §18.3)
UNKNOWN_OPTIONAL = 0xC0DE  # unassigned, comprehension-optional


def _stun_from_iut(h: Harness) -> list[Received]:
    return h.received(lambda r: r.is_stun)


def _xor_mapped(rec: Received) -> Address | None:
    """XOR-MAPPED-ADDRESS decoded from the raw value (RFC 8489 §14.2), independent of the Scapy layer."""
    value = rec.value("XOR-MAPPED-ADDRESS") if rec.index else None
    if value is None or len(value) not in (8, 20):
        return None
    port = struct.unpack_from("!H", value, 2)[0] ^ (MAGIC_COOKIE >> 16)
    mask = struct.pack("!I", MAGIC_COOKIE) + (rec.transaction_id if len(value) == 20 else b"")
    raw = bytes(a ^ b for a, b in zip(value[4:], mask, strict=True))
    return str(ipaddress.ip_address(raw)), port


async def _send_and_wait(
    h: Harness, s: IceSession, data: bytes, note: str, requirement: str, clause: str | None = None
) -> Received:
    ep = s.peer.endpoint
    since = ep.now()
    ep.send(data, s.iut_address, note=note)
    return await ep.expect(
        lambda r: r.is_stun and r.transaction_id == data[8:20] and r.index is not None and r.index.msg_class >= SUCCESS,
        3.0,
        since=since,
        what=f"response to the {note}",
        findings=h.findings,
        requirement=requirement,
        clause=clause,
    )


# -- transaction IDs (RFC 8489 §5) ------------------------------------------------------------------------------


@pytest.mark.requirement("STUN-MSG-02")
@pytest.mark.selftest(fault="constant-txid")
@pytest.mark.selftest(fault="recheck-not-retransmit", verdict="PASS")
@pytest.mark.selftest(variant="pinging")
async def test_transaction_ids_are_fresh_random_and_kept_on_retransmission(harness: Harness, role: str) -> None:
    """STUN-MSG-02 (RFC 8489 §5): one random ID per transaction, the same ID on each retransmission."""
    f = harness.findings
    eps = await open_endpoints(harness, 40, "silent remote")
    lines = [host_line(f"R{i}", 2130706431 - i * 256, ep.address) for i, ep in enumerate(eps)]
    await harness.session(role, remote_candidates=lines)
    # No answers: every pair stays In-Progress. The IUT may check only some of the 40 (it may limit its pairs);
    # the wait ends when no new one is reached.
    await requests_until_quiet(eps, 3.0, 15.0)
    await harness.observe(2.0, "retransmissions of the checks already sent, to compare their transaction IDs")
    # The transaction model tells a retransmission (same ID, same pair) from a new transaction: an agent that
    # checks a pair again with a fresh ID starts a new transaction, which RFC 8489 §5 wants with a new ID.
    model = model_of(eps)
    f.info(model.summary())
    transactions = model.transactions()
    problems = txid_randomness_problems([r.txid for r in transactions])
    reused = [p for p in problems if "different transactions" in p]
    for problem in reused:
        f.violation("STUN-MSG-02", problem, "unique_id")
    for problem in problems:
        if problem not in reused:
            f.violation("STUN-MSG-02", f"{problem} (over {len(transactions)} transactions)", "crypto_random")


# -- the server side of checks (RFC 8489 §6.3, RFC 8445 §7.3) ------------------------------------------------------


@pytest.mark.requirement("STUN-MSG-03")
@pytest.mark.selftest(fault="asymmetric-response")
async def test_response_leaves_from_the_request_destination(harness: Harness, expect: Expect) -> None:
    """STUN-MSG-03 (RFC 8489 §6.3.1.2): the response goes from the request's destination to its source."""
    s = await harness.session("controlling")
    data = bytes(s.peer.check())
    reply = await _send_and_wait(harness, s, data, "valid check", "STUN-MSG-03")
    response = expect(reply).that(
        reply.src == s.iut_address, f"the response from {s.iut_address[0]}:{s.iut_address[1]}, where the check went"
    )
    response.that(reply.index is not None and reply.index.method == BINDING, "a Binding response")


def _malformed(s: IceSession, variant: str) -> bytes:
    if variant == "indication":
        return bytes(STUN(type=0x0011, attributes=[attr.Fingerprint()]))
    raw = bytearray(bytes(s.peer.check()))
    if variant == "top-bits":
        raw[0] |= 0x40
    elif variant == "bad-cookie":
        raw[7] ^= 0x01
    elif variant == "length-plus-4":
        struct.pack_into("!H", raw, 2, struct.unpack_from("!H", raw, 2)[0] + 4)
    return bytes(raw)


@pytest.mark.requirement("STUN-MSG-04")
@pytest.mark.parametrize("variant", ["top-bits", "bad-cookie", "length-plus-4", "indication"])
@pytest.mark.selftest(fault="lenient-header", params=["top-bits", "bad-cookie", "length-plus-4"])
@pytest.mark.selftest(fault="answer-indication", params="indication")
async def test_malformed_messages_and_indications_get_no_response(
    harness: Harness, expect: Expect, variant: str
) -> None:
    """STUN-MSG-04 (RFC 8489 §6.3, §6.3.2): silent discard of bad headers; no response to an indication."""
    s = await harness.session("controlling")
    await sanity_probe(harness, s, "before the hostile message")
    hostile = await harness.endpoint("hostile sender")
    data = _malformed(s, variant)
    hostile.send(data, s.iut_address, note=variant)
    answer = await hostile.expect_silence(lambda r: True, 3.0)
    expect(answer, what=f"a {variant} message ({data[:8].hex()}…)").silence()
    await sanity_probe(harness, s, f"after the {variant} message", "STUN-MSG-04")


@pytest.mark.requirement("STUN-MSG-05")
@pytest.mark.parametrize(
    ("variant", "clause"), [("unknown-optional", "unknown_optional"), ("known-unexpected", "unexpected_known")]
)
@pytest.mark.selftest(fault="strict-attributes", verdict="NON-STRICT", params="known-unexpected-unexpected_known")
@pytest.mark.selftest(fault="strict-attributes", params="unknown-optional-unknown_optional")
async def test_unknown_optional_and_unexpected_attributes_are_ignored(
    harness: Harness, expect: Expect, variant: str, clause: str
) -> None:
    """STUN-MSG-05 (RFC 8489 §6.3): an unknown comprehension-optional (or a known, unexpected) attribute is ignored."""
    s = await harness.session("controlling")
    extra: list[Any] = (
        [attr.StunAttribute(type=UNKNOWN_OPTIONAL, value=b"harness")]
        if variant == "unknown-optional"
        else [attr.Realm(realm=b"example.org")]
    )
    data = bytes(s.peer.check(extra=extra))
    reply = await _send_and_wait(harness, s, data, f"check with an {variant} attribute", "STUN-MSG-05", clause)
    expect(reply, clause=clause, what=f"a valid check carrying {extra[0].attribute_name}").success(BINDING)


@pytest.mark.requirement("STUN-MSG-06")
@pytest.mark.selftest(fault="ignore-unknown-required")
async def test_unknown_comprehension_required_attribute_gets_420(harness: Harness, expect: Expect) -> None:
    """STUN-MSG-06 (RFC 8489 §6.3.1, §14.13): 420 with UNKNOWN-ATTRIBUTES listing the unknown type."""
    s = await harness.session("controlling")
    extra = [attr.StunAttribute(type=UNKNOWN_REQUIRED, value=b"\x00\x00\x00\x00")]
    data = bytes(s.peer.check(extra=extra))
    reply = await _send_and_wait(
        harness, s, data, "check with an unknown comprehension-required attribute", "STUN-MSG-06"
    )
    error = expect(reply, what=f"attribute 0x{UNKNOWN_REQUIRED:04x}").error(BINDING, 420)
    raw = reply.value("UNKNOWN-ATTRIBUTES") if reply.index else None
    listed = [struct.unpack_from("!H", raw, i)[0] for i in range(0, len(raw) - 1, 2)] if raw else []
    error.that(
        UNKNOWN_REQUIRED in listed,
        f"UNKNOWN-ATTRIBUTES listing 0x{UNKNOWN_REQUIRED:04x}, not {[hex(c) for c in listed]}",
    )


@pytest.mark.requirement("STUN-MSG-07")
@pytest.mark.selftest(fault="check-after-integrity")
async def test_attributes_after_message_integrity_are_ignored(harness: Harness, expect: Expect) -> None:
    """STUN-MSG-07 (RFC 8489 §9, §14.5): an unknown attribute after MI (FINGERPRINT recomputed) changes nothing."""
    s = await harness.session("controlling")
    msg = STUN(bytes(s.peer.check(fingerprint=False)))
    msg.length = None
    msg.attributes = [
        *msg.attributes,
        attr.StunAttribute(type=UNKNOWN_REQUIRED, value=b"\x00\x00\x00\x00"),
        attr.Fingerprint(),
    ]
    data = bytes(msg)
    reply = await _send_and_wait(
        harness, s, data, "check with an unknown attribute after MESSAGE-INTEGRITY", "STUN-MSG-07"
    )
    expect(reply, what=f"attribute 0x{UNKNOWN_REQUIRED:04x} after MESSAGE-INTEGRITY").success(BINDING)


@pytest.mark.requirement("STUN-MSG-08")
@pytest.mark.selftest(fault="nonzero-padding")
@pytest.mark.selftest(
    fault="nonzero-padding", requirement="STUN-MSG-08", message="RFC 8489 mechanism not implemented", revision_gap=True
)
async def test_attribute_padding_sent_by_the_iut_is_zero(harness: Harness, expect: Expect, role: str) -> None:
    """STUN-MSG-08 (a) (RFC 8489 §14): padding bytes are zero in every message the IUT sends."""
    await run_exchange(harness, role)
    received = _stun_from_iut(harness)
    padded = 0
    for rec in received:
        assert rec.index is not None
        for code, offset, length in rec.index.attributes:
            pad = rec.data[offset + length : offset + length + (-length & 3)]
            if not pad:
                continue
            padded += 1
            expect(rec, clause="zero_sent", what=f"attribute 0x{code:04x} padded with {pad.hex()}").that(
                not any(pad), "zeros (RFC 8489 §14; RFC 5389 allowed any value)"
            )
    harness.findings.info(f"{padded} padded attributes in {len(received)} STUN messages from the IUT")


@pytest.mark.requirement("STUN-MSG-09")
@pytest.mark.parametrize("family", ["ipv4", "ipv6"])
@pytest.mark.selftest(fault="no-software", verdict="NON-STRICT", params="ipv4")
@pytest.mark.selftest(fault="plain-mapped-address")
async def test_success_carries_the_source_as_xor_mapped_address(harness: Harness, expect: Expect, family: str) -> None:
    """STUN-MSG-09 (RFC 8489 §14.2, §6.3.1.1): XOR-MAPPED-ADDRESS = the request's source; SOFTWARE (SHOULD)."""
    if family == "ipv6":
        harness.require("ipv6")
        s = await harness.session("controlling", interfaces=["127.0.0.1", "::1"])
        targets = [a for a in s.iut_addresses() if ":" in a[0]]
        if not targets:
            raise HarnessError(f"the IUT declares ipv6 but gathered no ::1 candidate: {s.local}")
        ep = await harness.endpoint("harness IPv6", "::1")
        target = targets[0]
    else:
        s = await harness.session("controlling")
        ep = s.peer.endpoint
        target = s.iut_address
    data = bytes(s.peer.check())
    since = ep.now()
    ep.send(data, target, note="valid check")
    reply = await ep.expect(
        lambda r: r.is_stun and r.transaction_id == data[8:20],
        3.0,
        since=since,
        what="response to a valid check",
        findings=harness.findings,
        requirement="STUN-MSG-09",
        clause="xor_mapped",
    )
    success = expect(reply, clause="xor_mapped").success(BINDING)
    mapped = _xor_mapped(reply)
    source = (str(ipaddress.ip_address(ep.address[0])), ep.address[1])
    success.that(mapped == source, f"XOR-MAPPED-ADDRESS {source[0]}:{source[1]} (the request's source), not {mapped}")
    value = reply.value("XOR-MAPPED-ADDRESS") if reply.index else None
    first = value.hex() if value else None
    success.that(value is not None and value[0] == 0, f"XOR-MAPPED-ADDRESS starting with a zero byte, not {first}")
    expect(reply, clause="software").has("SOFTWARE")


_LIMITS = {
    attribute_code(name): (name, limit, unit)
    for name, limit, unit in (
        ("USERNAME", 509, "bytes"),
        ("REALM", 128, "chars"),
        ("NONCE", 128, "chars"),
        ("SOFTWARE", 128, "chars"),
    )
}


def _limit_problems(rec: Received) -> list[str]:
    out = []
    assert rec.index is not None
    for code, offset, length in rec.index.attributes:
        value = rec.data[offset : offset + length]
        if code in _LIMITS:
            name, limit, unit = _LIMITS[code]
            size = len(value) if unit == "bytes" else len(value.decode("utf-8", "replace"))
            if size >= limit:
                out.append(f"{name} is {size} {unit} (must be < {limit})")
        elif code == attribute_code("ERROR-CODE") and length >= 4:
            cls, number = value[2] & 0x07, value[3]
            reason = value[4:].decode("utf-8", "replace")
            if not 3 <= cls <= 6 or number > 99:
                out.append(f"ERROR-CODE class {cls} number {number} (class 3-6, number 0-99)")
            if len(reason) >= 128:
                out.append(f"ERROR-CODE reason phrase is {len(reason)} characters (must be < 128)")
    return out


@pytest.mark.requirement("STUN-MSG-10")
@pytest.mark.selftest(fault="long-software")
async def test_fields_sent_by_the_iut_respect_the_size_limits(harness: Harness, role: str) -> None:
    """STUN-MSG-10 (RFC 8489 §14.3, §14.8-14.10, §14.14): USERNAME, SOFTWARE, ERROR-CODE within their limits."""
    x = await run_exchange(harness, role)
    peer = x.session.peer
    # Provoke the error responses the IUT can send: 400 (no MI), 401 (bad MI), 420 (unknown attribute).
    provoked = [
        peer.check(integrity=False),
        peer.check(username=f"zzzz:{peer.ufrag}".encode()),
        peer.check(extra=[attr.StunAttribute(type=UNKNOWN_REQUIRED, value=b"\x00\x00\x00\x00")]),
    ]
    for msg in provoked:
        await peer.transact(msg, x.session.iut_address, timeout=2.0, note="provoking an error response")
    received = _stun_from_iut(harness)
    harness.findings.info(f"{len(received)} STUN messages from the IUT inspected")
    for rec in received:
        for problem in _limit_problems(rec):
            harness.findings.violation("STUN-MSG-10", f"{problem}: {rec.describe()}")


@pytest.mark.requirement("STUN-FP-02")
@pytest.mark.parametrize("variant", ["missing", "wrong"])
@pytest.mark.selftest(fault="accept-bad-fingerprint")
async def test_check_with_missing_or_wrong_fingerprint_is_discarded(
    harness: Harness, expect: Expect, variant: str
) -> None:
    """STUN-FP-02 (RFC 8489 §6.3, §7): with FINGERPRINT in use, a check without it or with a bad CRC is dropped."""
    s = await harness.session("controlling")
    await sanity_probe(harness, s, "before the hostile check")
    if variant == "missing":
        data = bytes(s.peer.check(fingerprint=False))
    else:
        raw = bytearray(bytes(s.peer.check()))
        raw[-1] ^= 0x01
        data = bytes(raw)
    hostile = await harness.endpoint("hostile sender")
    hostile.send(data, s.iut_address, note=f"check with a {variant} FINGERPRINT")
    answer = await hostile.expect_silence(lambda r: True, 3.0)
    expect(answer, what=f"a valid-MI check with a {variant} FINGERPRINT").silence()

    await sanity_probe(harness, s, f"after the {variant}-FINGERPRINT check", "STUN-FP-02")


# -- the client side: the IUT's own transactions (RFC 8489 §6.2, §6.3.3-4, §9.1.4; RFC 8445 §14.3) ------------------


@pytest.mark.requirement("STUN-AUTH-04")
@pytest.mark.selftest(fault="accept-unauthenticated-response")
@pytest.mark.selftest(variant="pinging", verdict=["PASS", "UNSUPPORTED"])
async def test_response_with_bad_integrity_is_discarded(harness: Harness, role: str) -> None:
    """STUN-AUTH-04 (RFC 8489 §9.1.4): a success with a wrong MI is dropped; the same txid is retransmitted."""
    peer = await harness.peer()
    peer.auto_respond = False
    await harness.session(role, peer=peer)
    ep = peer.endpoint
    first = await ep.expect(lambda r: r.is_type(BINDING, REQUEST), 10.0, what="connectivity check from the IUT")
    fixed = _corrupt_integrity(bytes(peer.success(first)))

    def answer_badly(rec: Received) -> None:
        if rec.is_type(BINDING, REQUEST) and rec.transaction_id == first.transaction_id:
            ep.send(fixed, rec.src, note="success with a wrong MESSAGE-INTEGRITY")

    ep.send(fixed, first.src, note="success with a wrong MESSAGE-INTEGRITY")
    unhook = ep.on_datagram(answer_badly)
    harness.defer(lambda: _unhook(unhook))

    def same_txid(r: Received) -> bool:
        return r.is_type(BINDING, REQUEST) and r.transaction_id == first.transaction_id

    again = await first_since(ep, same_txid, first.time + 0.001, 4.0)
    if again is None:
        model = model_of([ep])
        harness.findings.info(model.summary())
        selected = harness.log.of("selected_pair")
        harness.findings.check(
            not selected,
            "STUN-AUTH-04",
            f"the IUT selected a pair whose only response had a wrong MESSAGE-INTEGRITY: {selected}",
        )
        if model.retransmits is False:
            # RFC 8489 §6.2.1 makes retransmission a SHOULD (STUN-RTX-01): without it the discard has no effect
            # on the wire to observe, and no selected pair means nothing shows it was accepted either.
            raise UnsupportedFeature(
                "STUN-AUTH-04 needs a retransmission to observe the discard: the IUT never retransmits (it checks "
                "the pair again with new transactions) and did not select the pair"
            )
        harness.findings.violation(
            "STUN-AUTH-04",
            f"no retransmission of {first.transaction_id.hex()} within 4 s of a response with a wrong "
            "MESSAGE-INTEGRITY, and no new check of the pair: the response ended the transaction instead of being "
            "discarded",
        )
        return
    harness.findings.info(f"retransmitted {again.arrived - first.arrived:.3f} s after the first transmission")
    if role == "controlling":
        # An aggressive nominator puts USE-CANDIDATE in its first check already: only a new transaction counts.
        earlier = {r.transaction_id for r in ep.find(lambda r: r.is_type(BINDING, REQUEST))}
        nomination = await ep.expect_silence(
            lambda r: (
                r.is_type(BINDING, REQUEST)
                and r.transaction_id not in earlier
                and r.index is not None
                and r.has("USE-CANDIDATE")
            ),
            2.0,
        )
        harness.findings.check(
            nomination is None and not harness.log.of("selected_pair"),
            "STUN-AUTH-04",
            "the IUT treated the pair as valid after a response with a wrong MESSAGE-INTEGRITY: "
            + (nomination.describe() if nomination else "it reported a selected pair"),
        )


def _corrupt_integrity(data: bytes) -> bytes:
    """The same message with one MESSAGE-INTEGRITY byte flipped and FINGERPRINT recomputed."""
    idx = index(data)
    assert idx is not None
    offset = next(off for code, off, _ in idx.attributes if code == attribute_code("MESSAGE-INTEGRITY"))
    raw = bytearray(data)
    raw[offset] ^= 0xFF
    msg = STUN(bytes(raw))
    msg.length = None
    msg.attributes = [a for a in msg.attributes if a.attribute_name != "FINGERPRINT"] + [attr.Fingerprint()]
    return bytes(msg)


async def _unhook(unhook: Any) -> None:
    unhook()


@pytest.mark.requirement("STUN-RTX-06")
@pytest.mark.selftest(fault="fast-retransmit")
@pytest.mark.selftest(fault="recheck-not-retransmit", verdict="UNSUPPORTED")
@pytest.mark.selftest(variant="pinging", verdict="UNSUPPORTED")
async def test_first_retransmission_waits_at_least_500_ms(harness: Harness, role: str) -> None:
    """STUN-RTX-06 (RFC 8445 §14.3): RTO >= 500 ms, so a first retransmission comes >= 490 ms after the original."""
    eps = await open_endpoints(harness, 3, "silent remote")
    lines = [host_line(f"R{i}", 2130706431 - i * 256, ep.address) for i, ep in enumerate(eps)]
    await harness.session(role, remote_candidates=lines)
    f = harness.findings
    for ep in eps:
        first = await ep.expect(lambda r: r.is_type(BINDING, REQUEST), 10.0, what="connectivity check from the IUT")
        txid = first.transaction_id

        def retransmitted(r: Received, t: bytes = txid) -> bool:
            return r.is_type(BINDING, REQUEST) and r.transaction_id == t

        after = first.time + 0.0001
        earlier = ep.find(retransmitted, after)
        again = earlier[0] if earlier else await ep.expect_silence(retransmitted, max(0.0, after + 5.0 - ep.now()))
        what = f"the check {txid.hex()} was retransmitted"
        if again is None:
            # RFC 8445 §14.3's floor is on the RTO, which times retransmissions only: a new check to the same
            # destination is a new transaction (RFC 8489 §5), and an agent that never retransmits has no RTO to time.
            model = model_of(eps)
            f.info(model.summary())
            if model.retransmits is False:
                raise UnsupportedFeature(
                    f"STUN-RTX-06 times retransmissions: the IUT never retransmitted {txid.hex()} and checks "
                    "unanswered pairs again with new transaction IDs instead, so there is no RTO to time "
                    "(STUN-RTX-01 grades the missing retransmissions, a SHOULD of RFC 8489 §6.2.1)"
                )
            raise UnsupportedFeature(
                f"STUN-RTX-06: no retransmission of {txid.hex()} to the unanswered {ep.address[0]}:{ep.address[1]} "
                "within 5 s: no retransmission to time (STUN-RTX-01 judges the schedule)"
            )
        gap = again.arrived - first.arrived  # kernel arrivals: the IUT's own spacing, not the harness's reads
        f.info(
            f"first retransmission to {ep.address[0]}:{ep.address[1]} after {gap * 1000:.0f} ms ({again.describe()})"
        )
        f.check(
            gap >= 0.490,
            "STUN-RTX-06",
            f"{what} {gap * 1000:.0f} ms after it was first sent (RTO < 500 ms)",
            "rto_floor",
        )


@pytest.mark.requirement("STUN-RTX-05")
@pytest.mark.parametrize("variant", ["500", "403", "unknown-required-in-success"])
@pytest.mark.selftest(fault="retry-errors", verdict="NON-STRICT", params="403")
@pytest.mark.selftest(variant="pinging")
@pytest.mark.selftest(fault="retry-errors", params="500")
@pytest.mark.selftest(
    fault="accept-unknown-required-response", verdict="NON-STRICT", params="unknown-required-in-success"
)
async def test_error_and_malformed_responses_end_the_transaction(harness: Harness, variant: str) -> None:
    """STUN-RTX-05 (RFC 8489 §6.3.3, §6.3.4; RFC 8445 §7.2.5.2.4): 5xx resends limited, 4xx fails, bad success fails."""
    peer = await harness.peer()
    f = harness.findings
    code = {"500": 500, "403": 403}.get(variant)
    control = 1.0 if variant == "500" else 0.0
    started: list[float] = []

    def respond(rec: Received) -> bytes | None:
        started.append(started[0] if started else rec.time)
        if rec.time < started[0] + control:
            return b""  # the control window: how often does the IUT check the pair with no answer at all?
        if code is not None:
            return bytes(peer.error(rec, code))
        host, port = rec.src
        msg = STUN(
            type=0x0101,
            transaction_id=rec.transaction_id,
            key=peer.local_key,
            attributes=[
                attr.XorMappedAddress(family=2 if ":" in host else 1, address=host, port=port),
                attr.StunAttribute(type=UNKNOWN_REQUIRED, value=b"\x00\x00\x00\x00"),
                attr.MessageIntegrity(),
                attr.Fingerprint(),
            ],
        )
        return bytes(msg)

    peer.responder = respond
    await harness.session("controlling", peer=peer)
    ep = peer.endpoint
    first = await ep.expect(lambda r: r.is_type(BINDING, REQUEST), 10.0, what="connectivity check from the IUT")
    window = 8.0 if variant == "500" else 3.0
    await harness.observe(window + control, "how often the pair is checked again after the error (a rate)")
    check_iut_alive(harness, f"after the {variant} responses")  # silence from a crashed IUT proves nothing
    model = model_of([ep])
    f.info(model.summary())
    answered_from = first.time + control
    later = [r for r in ep.find(lambda r: r.is_type(BINDING, REQUEST), since=answered_from) if r is not first]
    new_txids = list(dict.fromkeys(r.transaction_id for r in later if r.transaction_id != first.transaction_id))
    same = [r for r in later if r.transaction_id == first.transaction_id]
    if variant == "500":
        before = len([r for r in model.transactions() if r.time < answered_from])
        rate_before, rate_after = before / control, len(new_txids) / window
        rates = f"{rate_before:.1f}/s unanswered, {rate_after:.1f}/s answered with 500"
        f.info(f"{len(new_txids)} new checks in {window:g} s after answering 500 to each; rates {rates}")
        if before > 1 and len(new_txids) > 4 and rate_after <= 2 * rate_before + 1:
            # The IUT checks the pair as new transactions at its own rate whether or not it gets an answer: the
            # checks after a 500 are not shown to be resends caused by it (RFC 8489 §6.3.4), so no verdict.
            f.inconclusive(
                "STUN-RTX-05",
                f"the IUT checks the pair again at about the same rate with no answer and with 500 answers "
                f"({rates}): the 500s caused no resends that could be counted",
                "limit_5xx",
            )
            return
        f.check(
            len(new_txids) <= 10,
            "STUN-RTX-05",
            f"the IUT resent the check {len(new_txids)} times in {window:g} s, each answered with 500: no limit "
            f"({rates})",
            "limit_5xx",
        )
        f.check(
            len(new_txids) <= 4,
            "STUN-RTX-05",
            f"the IUT resent the check {len(new_txids)} times after 500 responses (at most 4 recommended)",
            "max_4_resends",
        )
        return
    what = "a 403 error" if variant == "403" else f"a success carrying unknown attribute 0x{UNKNOWN_REQUIRED:04x}"
    f.check(
        not same,
        "STUN-RTX-05",
        f"the IUT retransmitted {first.transaction_id.hex()} after {what}, as if it had not ended the transaction",
        "fail_4xx",
    )
    # The transaction failed (RFC 8489 §6.3.3, §6.3.4); that the pair then fails and is not checked again is a
    # SHOULD of RFC 8445 §7.2.5.2.4 (an unrecoverable error response).
    f.check(
        not new_txids,
        "STUN-RTX-05",
        f"after {what} the IUT checked the pair again with {len(new_txids)} new transactions "
        f"({', '.join(t.hex() for t in new_txids[:3])}): the pair should have failed",
        "pair_failed",
    )
    if variant != "403":
        f.check(
            not harness.log.of("selected_pair"),
            "STUN-RTX-05",
            f"the IUT selected a pair validated only by {what}",
            "fail_4xx",
        )


@pytest.mark.slow
@pytest.mark.budget(90)
@pytest.mark.requirement("STUN-RTX-02")
@pytest.mark.selftest(fault="retransmit-indication")
async def test_indications_are_never_retransmitted(harness: Harness, role: str) -> None:
    """STUN-RTX-02 (RFC 8489 §6.2.1, §6.3.2): every Binding indication (keepalive) carries a transaction ID once."""
    x = await run_exchange(harness, role)
    ep = x.session.peer.endpoint
    # Keepalives come after Tr = 15 s without traffic (RFC 8445 §11); libnice's timer is 25 s: watch 30 s.
    await harness.observe(30.0, "keepalive indications, each of which must be sent once")
    indications = ep.find(lambda r: r.is_type(BINDING, 1))
    harness.findings.info(f"{len(indications)} Binding indications from the IUT in the exchange and 30 s after it")
    seen: dict[bytes, Received] = {}
    for rec in indications:
        harness.findings.check(
            rec.transaction_id not in seen,
            "STUN-RTX-02",
            f"the indication {rec.transaction_id.hex()} was sent again "
            f"{rec.time - seen[rec.transaction_id].time:.2f} s after the first copy: {rec.describe()}"
            if rec.transaction_id in seen
            else "",
        )
        seen[rec.transaction_id] = rec
