"""TURN server: long-term credential mechanism (RFC 8489 §9.2.4, RFC 8656 §5)."""

from __future__ import annotations

import pytest

from conformance.packets import ALLOCATE, attr, check_integrity
from conformance.protocol.keys import PasswordAlgorithm, SecurityFeature, read_nonce_cookie
from conformance.tester.expect import Expect
from conformance.tester.harness import Harness
from conformance.tester.turn_client import TurnClient, TurnServerUnderTest
from conformance.tester.turn_steps import allocated, relay_peers, start_turn_server

pytestmark = pytest.mark.needs("turn_server")


@pytest.mark.requirement("STUN-AUTH-11")
@pytest.mark.selftest(fault="no-realm-in-401")
@pytest.mark.selftest(fault="rfc5389-server")
@pytest.mark.selftest(fault="rfc5389-server", revision_gap=True)
async def test_unauthenticated_allocate_gets_a_401_challenge(
    harness: Harness, turn_server: TurnServerUnderTest, expect: Expect
) -> None:
    """STUN-AUTH-11 (RFC 8489 §9.2.4, §9.2): 401 with REALM and an 'obMatJos2' NONCE, no integrity attributes."""
    c = await TurnClient.open(harness, turn_server)
    rec = await c.challenge()
    f = harness.findings
    expect(rec, clause="challenge", what="unauthenticated Allocate").code(401).has("REALM", "NONCE")
    assert rec is not None and rec.index is not None
    nonce = rec.value("NONCE")
    assert nonce is not None
    no_integrity = ("USERNAME", "USERHASH", "MESSAGE-INTEGRITY", "MESSAGE-INTEGRITY-SHA256")
    expect(rec, clause="no_integrity", what="the 401").lacks(*no_integrity)
    # Last: an RFC 5389 server has no cookie, and that finding ends the case (RFC 8489 §9.2 is new).
    try:
        cookie = read_nonce_cookie(nonce)
    except ValueError as exc:
        cookie = None
        f.violation("STUN-AUTH-11", f"NONCE {nonce!r}: malformed cookie ({exc})", "nonce_cookie")
    if cookie is None:
        f.violation("STUN-AUTH-11", f"NONCE {nonce!r} does not start with the 'obMatJos2' cookie", "nonce_cookie")
    else:
        wants = bool(cookie.features & SecurityFeature.PASSWORD_ALGORITHMS)
        f.info(f"nonce cookie features {int(cookie.features):#x}, read with {cookie.reading}")
        f.check(
            rec.has("PASSWORD-ALGORITHMS") == wants,
            "STUN-AUTH-11",
            f"nonce features {int(cookie.features):#x} ({cookie.reading}) but PASSWORD-ALGORITHMS "
            f"present={rec.has('PASSWORD-ALGORITHMS')}",
            "nonce_cookie",
        )


@pytest.mark.requirement("STUN-AUTH-12")
@pytest.mark.selftest(fault="shared-nonce")
async def test_nonces_differ_per_source_and_attempt(harness: Harness, turn_server: TurnServerUnderTest) -> None:
    """STUN-AUTH-12 (RFC 8489 §9.2.4, RFC 8656 §5): two sources never share a NONCE; attempts get fresh ones."""
    a = await TurnClient.open(harness, turn_server, label="source A")
    b = await TurnClient.open(harness, turn_server, label="source B")
    ra, rb = await a.challenge(), await b.challenge()
    na = ra.value("NONCE") if ra is not None and ra.index is not None else None
    nb = rb.value("NONCE") if rb is not None and rb.index is not None else None
    harness.findings.check(
        na is not None and na != nb, "STUN-AUTH-12", f"sources A and B both got NONCE {na!r}", "distinct_per_source"
    )
    again = await a.challenge()
    na2 = again.value("NONCE") if again is not None and again.index is not None else None
    harness.findings.check(na2 != na, "STUN-AUTH-12", f"a second attempt got the same NONCE {na!r}", "fresh_nonce")


@pytest.mark.requirement("STUN-AUTH-13")
@pytest.mark.parametrize(
    ("variant", "expected"),
    [("no-realm", 400), ("no-nonce", 400), ("no-username", 400), ("wrong-password", 401), ("unknown-user", 401)],
)
@pytest.mark.selftest(fault="no-400-on-missing-realm", params=["no-realm-400", "no-nonce-400", "no-username-400"])
@pytest.mark.selftest(fault="unknown-user-gets-400", params="unknown-user-401")
@pytest.mark.selftest(fault="accept-wrong-key", params="wrong-password-401")
async def test_bad_credentials_get_400_or_401(
    harness: Harness, turn_server: TurnServerUnderTest, expect: Expect, variant: str, expected: int
) -> None:
    """STUN-AUTH-13 (RFC 8489 §9.2.4): missing REALM/NONCE/USERNAME with MI: 400; wrong key or user: 401."""
    c = await TurnClient.open(harness, turn_server)
    await c.challenge()
    omit = {"no-realm": ("REALM",), "no-nonce": ("NONCE",), "no-username": ("USERNAME",)}.get(variant, ())
    if variant == "wrong-password":
        c.password = "not-the-password"
    if variant == "unknown-user":
        c.username = "mallory"
    rec = await c.transact(c.build(ALLOCATE, attributes=[attr.RequestedTransport()], omit=omit))
    expect(rec, what=variant).code(expected)
    assert rec is not None and rec.index is not None
    if expected == 400:
        expect(rec, what="the 400").lacks("MESSAGE-INTEGRITY")
    else:
        expect(rec, what="the 401").has("REALM", "NONCE")
        if variant == "unknown-user" and not rec.has("PASSWORD-ALGORITHMS"):
            harness.findings.info("8489 literal: the 401 for an unknown user has no PASSWORD-ALGORITHMS")


@pytest.mark.requirement("STUN-AUTH-14")
@pytest.mark.selftest(fault="stale-nonce-not-438")
async def test_stale_nonce_gets_438_scaled(harness: Harness, expect: Expect) -> None:
    """STUN-AUTH-14 (RFC 8489 §9.2.4), scaled: with a 3 s nonce lifetime, a 6 s old nonce gets 438 and a new NONCE."""
    import asyncio

    srv = await start_turn_server(harness, options={"stale_nonce": 3})
    c = await allocated(harness, srv)
    old = c.nonce
    await asyncio.sleep(6.0)  # the nonce lifetime this case measures
    rec = await c.transact(c.build(0x004, attributes=[attr.Lifetime(lifetime=600)]))
    stale = expect(rec, what="Refresh with a nonce 6 s old (lifetime 3 s)").code(438)
    assert rec is not None and rec.index is not None
    new = rec.value("NONCE")
    stale.that(new is not None and new != old and rec.has("REALM"), f"a new NONCE (not {old!r}) and REALM")


@pytest.mark.requirement("STUN-AUTH-15")
@pytest.mark.selftest(fault="md5-answered-with-sha256")
async def test_no_algorithm_attributes_means_md5(
    harness: Harness, turn_server: TurnServerUnderTest, expect: Expect
) -> None:
    """STUN-AUTH-15 (RFC 8489 §9.2.4): without algorithm attributes the request is MD5 and succeeds with MI."""
    c = await TurnClient.open(harness, turn_server)
    first = await c.challenge()
    rec = await c.allocate()
    md5 = expect(rec, what="MD5 Allocate").success(ALLOCATE)
    assert rec is not None
    md5.sound(check_integrity(rec.data, c.key, "sha1"), "a valid MESSAGE-INTEGRITY (MD5 key)")
    features = SecurityFeature.NONE
    if first is not None and first.index is not None and first.value("NONCE"):
        cookie = read_nonce_cookie(first.value("NONCE") or b"")
        features = cookie.features if cookie is not None else SecurityFeature.NONE
    if not features & SecurityFeature.PASSWORD_ALGORITHMS:
        harness.findings.info(
            "the server's nonce does not set the password-algorithms bit: the 400 sub-cases do not apply"
        )
        return
    for label, extra in (
        ("PASSWORD-ALGORITHM without PASSWORD-ALGORITHMS", [attr.PasswordAlgorithm(algorithm=PasswordAlgorithm.MD5)]),
        ("unlisted algorithm", [attr.PasswordAlgorithm(algorithm=0x0007)]),  # deliberately unregistered
    ):
        d = await TurnClient.open(harness, turn_server, label=label)
        await d.challenge()
        r = await d.allocate(*extra)
        expect(r, what=label).code(400)


@pytest.mark.requirement("STUN-AUTH-16")
@pytest.mark.selftest(fault="no-integrity-on-channelbind")
async def test_every_response_to_an_authenticated_request_has_integrity(
    harness: Harness, allocation: TurnClient, expect: Expect
) -> None:
    """STUN-AUTH-16 (RFC 8489 §9.2.4): Allocate, Refresh, CreatePermission, ChannelBind and errors carry valid MI."""
    (peer,) = await relay_peers(harness, 1)
    responses = [allocation.last]
    responses.append(await allocation.create_permission(peer.address))
    responses.append(await allocation.channel_bind(0x4000, peer.address))
    responses.append(await allocation.refresh(600))
    responses.append(await allocation.allocate())  # a 437 error after authentication
    for rec in responses:
        reason = check_integrity(rec.data, allocation.key) if rec is not None else None
        expect(rec, what="response to an authenticated request").arrived().sound(reason, "a valid MESSAGE-INTEGRITY")
