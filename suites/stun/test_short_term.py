"""STUN message format and short-term authentication of an ICE agent (RFC 8489 §5, §9.1, §14; RFC 8445 §7.2, §7.3)."""

from __future__ import annotations

import pytest

from conformance.packets import STUN, attr, check_fingerprint, check_header, check_integrity
from conformance.tester.endpoint import Received
from conformance.tester.expect import Expect
from conformance.tester.harness import Harness
from conformance.tester.ice import BINDING, ERROR, REQUEST, SUCCESS
from conformance.tester.ice_steps import run_exchange
from conformance.vectors import load_vectors
from conformance.verdict import HarnessError


def _stun_from_iut(h: Harness) -> list[Received]:
    return h.received(lambda r: bool(r.data) and r.data[0] < 4)


@pytest.mark.requirement("STUN-MSG-01")
@pytest.mark.selftest(fault="bad-header-length")
async def test_every_message_has_a_sound_header(harness: Harness, expect: Expect, role: str) -> None:
    """STUN-MSG-01 (RFC 8489 §5): top bits 00, magic cookie, length a multiple of 4 equal to the datagram."""
    try:
        await run_exchange(harness, role)
    except HarnessError as exc:
        # Malformed messages can stall the exchange (a conforming peer drops them); judge what arrived.
        harness.findings.info(f"the exchange did not complete: {exc}")
    received = _stun_from_iut(harness)
    if not received:
        raise HarnessError("the IUT sent no STUN message to inspect")
    harness.findings.info(f"{len(received)} STUN messages from the IUT inspected")
    for rec in received:
        expect(rec, what=rec.data[:20].hex()).sound(check_header(rec.data), "a sound STUN header")


@pytest.mark.requirement("STUN-FP-01")
@pytest.mark.selftest(fault="bad-fingerprint")
@pytest.mark.selftest(fault="no-fingerprint")
async def test_checks_and_responses_carry_a_correct_fingerprint(harness: Harness, expect: Expect, role: str) -> None:
    """STUN-FP-01 (RFC 8489 §14.7, RFC 8445 §7.2.4): every check and response carries FINGERPRINT, last and correct."""
    await run_exchange(harness, role)
    received = [r for r in _stun_from_iut(harness) if r.is_stun and r.index and r.index.method == BINDING]
    received = [r for r in received if r.index and r.index.msg_class in (REQUEST, SUCCESS, ERROR)]
    harness.findings.check(bool(received), "STUN-FP-01", "the IUT sent no Binding request or response")
    for rec in received:
        expect(rec).sound(check_fingerprint(rec.data), "a correct FINGERPRINT, last")


@pytest.mark.requirement("STUN-MI-01")
@pytest.mark.selftest(fault="wrong-integrity-key")
async def test_message_integrity_is_correct(harness: Harness, expect: Expect, role: str) -> None:
    """STUN-MI-01 (RFC 8489 §14.5): MI is an HMAC-SHA1 over the message up to it."""
    x = await run_exchange(harness, role)
    peer = x.session.peer
    signed = [
        r for r in _stun_from_iut(harness) if r.index and r.index.method == BINDING and r.has("MESSAGE-INTEGRITY")
    ]
    if not signed:
        # Nothing to recompute: no verdict on MI-01 (STUN-AUTH-01 and -03 grade the missing MESSAGE-INTEGRITY).
        harness.findings.inconclusive("STUN-MI-01", "the IUT sent no Binding message with MESSAGE-INTEGRITY")
        return
    harness.findings.info(f"MESSAGE-INTEGRITY recomputed on {len(signed)} Binding messages from the IUT")
    for rec in signed:
        key = peer.local_key if rec.index and rec.index.msg_class == REQUEST else peer.remote_key
        expect(rec).sound(check_integrity(rec.data, key), "a correct MESSAGE-INTEGRITY")


@pytest.mark.requirement("STUN-AUTH-01")
@pytest.mark.selftest(fault="swapped-username")
async def test_checks_use_the_peers_short_term_credentials(harness: Harness, expect: Expect, role: str) -> None:
    """STUN-AUTH-01 (RFC 8445 §7.2.2): USERNAME '<harness ufrag>:<IUT ufrag>', MI keyed with our pwd."""
    x = await run_exchange(harness, role)
    peer = x.session.peer
    expected = f"{peer.ufrag}:{peer.remote_ufrag}".encode()
    harness.findings.check(bool(x.iut_checks), "STUN-AUTH-01", "the IUT sent no connectivity check")
    for rec in x.iut_checks:
        check = expect(rec).that(rec.value("USERNAME") == expected, f"USERNAME {expected!r}")
        check.sound(check_integrity(rec.data, peer.local_key, "sha1"), "MESSAGE-INTEGRITY keyed with the harness pwd")


@pytest.mark.requirement("STUN-AUTH-02")
@pytest.mark.parametrize(
    ("variant", "expected"),
    [("no-integrity", 400), ("unknown-ufrag", 401), ("bad-integrity", 401)],
)
@pytest.mark.selftest(fault="accept-bad-integrity", params="bad-integrity-401")
@pytest.mark.selftest(fault="no-400-missing-mi", params="no-integrity-400")
@pytest.mark.selftest(fault="error-with-integrity", params="unknown-ufrag-401")
async def test_failed_short_term_authentication_gets_the_right_error(
    harness: Harness, variant: str, expected: int
) -> None:
    """STUN-AUTH-02 (RFC 8489 §9.1.3): 400 without MI, 401 for an unknown ufrag or a wrong MI, no MI/USERNAME in it."""
    s = await harness.session("controlling")
    peer = s.peer
    if variant == "no-integrity":
        data = bytes(peer.check(integrity=False))
    elif variant == "unknown-ufrag":
        data = bytes(peer.check(username=f"zzzz:{peer.ufrag}".encode()))
    else:
        msg = peer.check(fingerprint=False)
        raw = bytearray(bytes(msg))
        raw[-1] ^= 0x01  # flip one byte of MESSAGE-INTEGRITY, then add a correct FINGERPRINT
        again = STUN(bytes(raw))
        again.length = None
        again.attributes = [*again.attributes, attr.Fingerprint()]
        data = bytes(again)
    ep = peer.endpoint
    since = ep.now()
    ep.send(data, s.iut_address, note=variant)
    txid = data[8:20]
    reply = await ep.expect(
        lambda r: r.is_stun and r.transaction_id == txid,
        3.0,
        since=since,
        what=f"error response to the {variant} check",
        findings=harness.findings,
        requirement="STUN-AUTH-02",
        clause="error_code",
    )
    if harness.expect(reply, clause="error_code").error(BINDING, expected).ok:
        harness.expect(reply, clause="no_integrity").lacks("MESSAGE-INTEGRITY", "MESSAGE-INTEGRITY-SHA256", "USERNAME")


@pytest.mark.requirement("STUN-AUTH-03")
@pytest.mark.selftest(fault="response-with-username")
@pytest.mark.selftest(fault="response-wrong-key")
async def test_response_is_keyed_with_the_iuts_password(harness: Harness, expect: Expect, role: str) -> None:
    """STUN-AUTH-03 (RFC 8489 §9.1.3, RFC 8445 §7.3): response MI keyed with the IUT pwd; no USERNAME."""
    s = await harness.session(role)
    peer = s.peer
    reply = await peer.transact(peer.check(), s.iut_address, timeout=5)
    if not expect(reply, what=f"a valid check sent to {s.iut_address}").arrived().ok or reply is None:
        return
    response = expect(reply).success(BINDING)
    response.sound(check_integrity(reply.data, peer.remote_key), "MESSAGE-INTEGRITY keyed with the IUT pwd")
    response.lacks("USERNAME")


@pytest.mark.requirement("STUN-MSG-08", "STUN-AUTH-03")
@pytest.mark.selftest(fault="reject-space-padding", requirement="STUN-MSG-08")
async def test_rfc5769_sample_request_is_answered(harness: Harness, expect: Expect) -> None:
    """RFC 5769 §2.1 replayed with matching credentials: space padding ignored (RFC 8489 §14), a valid response."""
    vector = next(v for v in load_vectors() if v.name == "rfc5769-sample-request")
    iut_ufrag, harness_ufrag = "evtj", "h6vY"
    peer = await harness.peer()
    peer.ufrag = harness_ufrag
    s = await harness.session("controlling", peer=peer, ufrag=iut_ufrag, pwd=str(vector.meta["password"]))
    ep = peer.endpoint
    since = ep.now()
    ep.send(vector.data, s.iut_address, note="RFC 5769 §2.1 sample request")
    reply = await ep.expect(
        lambda r: r.is_stun and r.transaction_id == vector.data[8:20],
        3.0,
        since=since,
        what="response to the RFC 5769 sample request",
        findings=harness.findings,
        requirement="STUN-MSG-08",
        clause="aligned",
    )
    expect(reply, "STUN-MSG-08", "aligned", "the space-padded request").success(BINDING)
    reason = check_integrity(reply.data, vector.key())
    expect(reply, "STUN-AUTH-03").sound(reason, "MESSAGE-INTEGRITY keyed with the RFC 5769 password")
