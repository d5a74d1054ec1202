"""TURN client: the long-term credential mechanism as the client runs it (RFC 8489 §9.2.3, §9.2.5, §14.4)."""

from __future__ import annotations

import pytest

from conformance.packets import ALLOCATE, CHANNEL_BIND, CREATE_PERMISSION, REFRESH, REQUEST, attr, check_integrity
from conformance.protocol.keys import PasswordAlgorithm, SecurityFeature, long_term_key, userhash
from conformance.tester.endpoint import Received
from conformance.tester.expect import Expect
from conformance.tester.harness import Harness
from conformance.tester.relay_agent import relay_session, start_relay_agent
from conformance.tester.turn_client import CLIENT_REALM, USERS
from conformance.tester.turn_server import TurnServer
from conformance.tester.turn_steps import scripted_turn_server
from conformance.verdict import HarnessError

#: Seconds a prompt reaction (a retry after a 401 or 438, a retransmission) may take.
PROMPT = 3.0
#: Seconds of watching for a request that must not come.
SILENCE = 4.0
#: The attributes a first, unauthenticated request carries none of (RFC 8489 §9.2.3.1).
AUTH_ATTRIBUTES = (
    "USERNAME",
    "USERHASH",
    "MESSAGE-INTEGRITY",
    "MESSAGE-INTEGRITY-SHA256",
    "REALM",
    "NONCE",
    "PASSWORD-ALGORITHM",
    "PASSWORD-ALGORITHMS",
)
MD5_KEY = long_term_key("alice", CLIENT_REALM, USERS["alice"])
SHA256_KEY = long_term_key("alice", CLIENT_REALM, USERS["alice"], PasswordAlgorithm.SHA256)


def _authenticated(r: Received) -> bool:
    return r.index is not None and (r.has("MESSAGE-INTEGRITY") or r.has("MESSAGE-INTEGRITY-SHA256"))


def _allocate(r: Received) -> bool:
    return r.is_type(ALLOCATE, REQUEST)


def _authenticated_allocates(server: TurnServer) -> list[Received]:
    """The authenticated Allocate transactions so far, one per transaction ID."""
    seen: dict[bytes, Received] = {}
    for r in server.requests_of(ALLOCATE):
        if _authenticated(r):
            seen.setdefault(r.transaction_id, r)
    return list(seen.values())


@pytest.mark.requirement("STUN-AUTH-05")
@pytest.mark.needs("turn_client")
@pytest.mark.selftest(fault="credentials-first")
@pytest.mark.selftest(fault="reuse-txid-after-401", verdict="NON-STRICT")
async def test_first_allocate_is_bare_then_retried_with_md5_credentials(harness: Harness, expect: Expect) -> None:
    """STUN-AUTH-05 (RFC 8489 §9.2.3.1, §9.2.5, §9.2.2): bare first Allocate; after the 401 a new txid, copied
    REALM and NONCE, and MESSAGE-INTEGRITY under MD5(username:realm:password)."""
    server = await scripted_turn_server(harness)
    nonces: list[bytes] = []

    def challenge(r: Received) -> bytes:
        nonces.append(server.challenge_nonce(r.src))
        return server.challenge(r, nonce=nonces[-1])

    server.script(lambda r: _allocate(r) and not _authenticated(r), challenge, times=None)
    await start_relay_agent(harness, server)
    first = await server.expect_request(ALLOCATE, 10)
    assert first.index is not None
    expect(first, clause="bare_first", what="the first Allocate").lacks(*AUTH_ATTRIBUTES)
    retry = await server.endpoint.expect(
        lambda r: _allocate(r) and _authenticated(r),
        PROMPT,
        since=first.time,
        what="authenticated Allocate after the 401",
        findings=harness.findings,
        requirement="STUN-AUTH-05",
        clause="retry_after_401",
    )
    assert retry.index is not None
    bare = {r.transaction_id for r in server.requests_of(ALLOCATE) if not _authenticated(r)}
    problems = []
    if retry.transaction_id in bare:
        problems.append(f"it reuses the transaction ID {retry.transaction_id.hex()} of the challenged request")
    if not (retry.has("USERNAME") or retry.has("USERHASH")):
        problems.append("no USERNAME")
    if retry.value("REALM") != CLIENT_REALM.encode():
        problems.append(f"REALM {retry.value('REALM')!r} is not the 401's {CLIENT_REALM!r}")
    if retry.value("NONCE") not in nonces:
        problems.append(f"NONCE {retry.value('NONCE')!r} is not copied from the 401")
    harness.findings.check(
        not problems,
        "STUN-AUTH-05",
        f"retry after the 401: {'; '.join(problems)}: {retry.describe()}",
        "retry_after_401",
    )
    expect(retry, clause="md5_key").sound(
        check_integrity(retry.data, MD5_KEY, "sha1"), f"MESSAGE-INTEGRITY under MD5(alice:{CLIENT_REALM}:password)"
    )


@pytest.mark.requirement("STUN-AUTH-06")
@pytest.mark.needs("turn_client")
@pytest.mark.selftest(fault="ignore-password-algorithms")
@pytest.mark.selftest(fault="rfc5389-client")
@pytest.mark.selftest(fault="rfc5389-client", revision_gap=True)
async def test_password_algorithms_are_echoed_and_sha256_is_used(harness: Harness) -> None:
    """STUN-AUTH-06 (RFC 8489 §9.2.5, §18.5.1.2): PASSWORD-ALGORITHMS echoed, PASSWORD-ALGORITHM SHA-256 and
    MESSAGE-INTEGRITY-SHA256 only, in the retry and in later requests."""
    server = await scripted_turn_server(harness, features=SecurityFeature.PASSWORD_ALGORITHMS)
    relay = await start_relay_agent(harness, server)
    retry = await server.endpoint.expect(
        lambda r: _allocate(r) and _authenticated(r), 10, what="authenticated Allocate after the 401"
    )
    offered = bytes(TurnServer._algorithms_attribute())[4:]

    def problems_of(r: Received, what: str) -> list[str]:
        assert r.index is not None
        out = []
        if r.value("PASSWORD-ALGORITHMS") != offered:
            out.append(f"PASSWORD-ALGORITHMS {r.value('PASSWORD-ALGORITHMS')!r} is not the 401's {offered!r}")
        chosen = r.value("PASSWORD-ALGORITHM")
        if chosen is None or chosen[:2] != b"\x00\x02":
            out.append(f"PASSWORD-ALGORITHM {chosen!r} is not SHA-256 (0x0002), the first supported entry")
        if r.has("MESSAGE-INTEGRITY"):
            out.append("it carries MESSAGE-INTEGRITY")
        if not r.has("MESSAGE-INTEGRITY-SHA256"):
            out.append("no MESSAGE-INTEGRITY-SHA256")
        elif (reason := check_integrity(r.data, SHA256_KEY, "sha256")) is not None:
            out.append(f"MESSAGE-INTEGRITY-SHA256 is not keyed with SHA-256(alice:realm:password): {reason}")
        return [f"{what}: {p}" for p in out]

    problems = problems_of(retry, "Allocate retry")
    harness.findings.check(not problems, "STUN-AUTH-06", "; ".join(problems) + f": {retry.describe()}")
    await relay.gathered(10)
    since = server.endpoint.now()
    await relay.close()
    later = server.endpoint.find(lambda r: r.is_type(REFRESH, REQUEST), since)
    if not later:
        harness.findings.info("no Refresh after close: only the Allocate was checked")
        return
    problems = problems_of(later[0], "Refresh")
    harness.findings.check(not problems, "STUN-AUTH-06", "; ".join(problems) + f": {later[0].describe()}")


@pytest.mark.requirement("STUN-AUTH-07")
@pytest.mark.needs("turn_client")
@pytest.mark.parametrize("variant", ["bit-without-list", "no-supported-algorithm", "fresh-nonce-every-401"])
@pytest.mark.selftest(fault="ignore-password-algorithms", params=["bit-without-list", "no-supported-algorithm"])
@pytest.mark.selftest(fault="rfc5389-client", params=["bit-without-list", "no-supported-algorithm"])
@pytest.mark.selftest(fault="rfc5389-client", params=["bit-without-list", "no-supported-algorithm"], revision_gap=True)
@pytest.mark.selftest(fault="retry-401-forever", params="fresh-nonce-every-401")
async def test_no_authenticated_retry_when_forbidden(harness: Harness, expect: Expect, variant: str) -> None:
    """STUN-AUTH-07 (RFC 8489 §9.2.5): no retry after a 401 whose algorithms bit lacks PASSWORD-ALGORITHMS or
    lists nothing supported; at most one authenticated retry when every attempt gets a 401."""
    features = SecurityFeature.NONE if variant == "fresh-nonce-every-401" else SecurityFeature.PASSWORD_ALGORITHMS
    server = await scripted_turn_server(harness, features=features)

    def challenge(r: Received) -> bytes:
        extra = [attr.Realm(realm=CLIENT_REALM.encode()), attr.Nonce(nonce=server.challenge_nonce(r.src))]
        if variant == "no-supported-algorithm":
            unregistered = 0x0003  # deliberately not a registered password algorithm (RFC 8489 §18.5)
            extra.append(attr.PasswordAlgorithms(algorithms=[attr.AlgorithmEntry(algorithm=unregistered)]))
        return server.error(r, 401, extra=extra)

    server.script(_allocate, challenge, times=None)
    await start_relay_agent(harness, server)
    first = await server.expect_request(ALLOCATE, 10)
    if variant == "fresh-nonce-every-401":
        await harness.observe(SILENCE + 2, "at most one authenticated retry")
        tries = _authenticated_allocates(server)
        harness.findings.check(
            len(tries) <= 1,
            "STUN-AUTH-07",
            f"{len(tries)} authenticated Allocate transactions with unchanged credentials, each answered by a 401 "
            f"with a fresh nonce (at most one retry): {[t.describe() for t in tries[:3]]}",
            "unchanged",
        )
        return
    await server.endpoint.expect_silence(lambda r: _allocate(r) and _authenticated(r), SILENCE)
    got = next(iter(server.endpoint.find(lambda r: _allocate(r) and _authenticated(r), first.time)), None)
    after = f"after a 401 ({variant}, first Allocate {first.transaction_id.hex()})"
    expect(got, clause="algorithms", what=after).silence("no authenticated retry")


@pytest.mark.requirement("STUN-AUTH-08")
@pytest.mark.needs("turn_client")
@pytest.mark.selftest(fault="no-438-retry")
async def test_stale_nonce_438_is_retried_with_the_new_nonce(harness: Harness) -> None:
    """STUN-AUTH-08 (RFC 8489 §9.2.5, RFC 8656 §8.3): a 438 to a request after the Allocate is retried at once
    with the new NONCE, USERNAME, REALM and integrity."""
    server = await scripted_turn_server(harness)
    stale: list[tuple[Received, bytes]] = []
    methods = (CREATE_PERMISSION, CHANNEL_BIND, REFRESH)

    def later_request(r: Received) -> bool:
        return any(r.is_type(m, REQUEST) for m in methods) and _authenticated(r)

    def answer_438(r: Received) -> bytes:
        stale.append((r, server.challenge_nonce(r.src)))
        return server.challenge(r, 438, nonce=stale[-1][1])

    server.script(later_request, answer_438)
    await relay_session(harness, server)
    hit = await server.endpoint.expect(later_request, 15, what="CreatePermission, ChannelBind or Refresh")
    if not stale:
        raise HarnessError("the 438 rule did not fire")
    request, nonce = stale[0]
    assert request.index is not None
    method = request.index.method
    retry = await server.endpoint.expect(
        lambda r: r.is_type(method, REQUEST) and r.transaction_id != request.transaction_id,
        PROMPT,
        since=hit.time,
        what="retry after the 438",
        findings=harness.findings,
        requirement="STUN-AUTH-08",
    )
    assert retry.index is not None
    problems = []
    if retry.value("NONCE") != nonce:
        problems.append(f"NONCE {retry.value('NONCE')!r} is not the 438's {nonce!r}")
    if not (retry.has("USERNAME") or retry.has("USERHASH")) or retry.value("REALM") is None:
        problems.append("USERNAME/USERHASH or REALM missing")
    if check_integrity(retry.data, MD5_KEY) is not None and check_integrity(retry.data, SHA256_KEY) is not None:
        problems.append("no valid MESSAGE-INTEGRITY(-SHA256)")
    harness.findings.check(
        not problems, "STUN-AUTH-08", f"retry after the 438: {'; '.join(problems)}: {retry.describe()}"
    )


@pytest.mark.requirement("STUN-AUTH-09")
@pytest.mark.needs("turn_client")
@pytest.mark.selftest(fault="accept-unauthenticated-400")
async def test_unauthenticated_400_is_discarded_and_retransmission_goes_on(harness: Harness) -> None:
    """STUN-AUTH-09 (RFC 8489 §9.2.5): a 400 without integrity to an authenticated Allocate is ignored; the same
    transaction is retransmitted."""
    server = await scripted_turn_server(harness)
    rule = server.script(lambda r: _allocate(r) and _authenticated(r), lambda r: server.error(r, 400))
    await start_relay_agent(harness, server)
    await server.endpoint.expect(lambda r: _allocate(r) and _authenticated(r), 10, what="authenticated Allocate")
    request = rule.hits[0]
    await server.endpoint.expect(
        lambda r: _allocate(r) and r.transaction_id == request.transaction_id,
        PROMPT + 1,
        since=request.time + 1e-6,
        what=f"retransmission of Allocate {request.transaction_id.hex()} after an unauthenticated 400",
        findings=harness.findings,
        requirement="STUN-AUTH-09",
    )


@pytest.mark.requirement("STUN-AUTH-10")
@pytest.mark.needs("turn_client")
@pytest.mark.selftest(fault="no-userhash")
@pytest.mark.selftest(fault="rfc5389-client")
@pytest.mark.selftest(fault="rfc5389-client", revision_gap=True)
async def test_username_anonymity_bit_gets_userhash(harness: Harness) -> None:
    """STUN-AUTH-10 (RFC 8489 §14.4, §9.2.5): with the username-anonymity nonce bit the retry carries USERHASH
    (SHA-256 of username:realm) and no USERNAME."""
    server = await scripted_turn_server(harness, features=SecurityFeature.USERNAME_ANONYMITY)
    await start_relay_agent(harness, server)
    retry = await server.endpoint.expect(
        lambda r: _allocate(r) and _authenticated(r), 10, what="authenticated Allocate after the 401"
    )
    assert retry.index is not None
    expected = userhash("alice", CLIENT_REALM)
    problems = []
    if retry.has("USERNAME"):
        problems.append(f"USERNAME {retry.value('USERNAME')!r} is present")
    if retry.value("USERHASH") != expected:
        problems.append(f"USERHASH {retry.value('USERHASH')!r}, expected {expected.hex()}")
    harness.findings.check(not problems, "STUN-AUTH-10", f"{'; '.join(problems)}: {retry.describe()}")
