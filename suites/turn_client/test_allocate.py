"""TURN client: Allocate, its errors and back-off, refresh and deletion (RFC 8656 §5, §7, §8; RFC 8489 §6.3.4)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from conformance.packets import ALLOCATE, REFRESH, REQUEST, attr
from conformance.protocol.keys import long_term_key
from conformance.tester.endpoint import Received
from conformance.tester.expect import Expect
from conformance.tester.harness import Harness
from conformance.tester.relay_agent import RelayAgent, relay_session, start_relay_agent, wait_selected
from conformance.tester.turn_client import CLIENT_REALM, USERS
from conformance.tester.turn_server import TurnServer
from conformance.tester.turn_steps import payload, scripted_turn_server
from conformance.verdict import HarnessError, UnsupportedFeature

PROMPT = 3.0
SILENCE = 4.0
MD5_KEY = long_term_key("alice", CLIENT_REALM, USERS["alice"])


def _authenticated(r: Received) -> bool:
    return r.index is not None and (r.has("MESSAGE-INTEGRITY") or r.has("MESSAGE-INTEGRITY-SHA256"))


def _allocate(r: Received) -> bool:
    return r.is_type(ALLOCATE, REQUEST)


def _auth_allocate(r: Received) -> bool:
    return _allocate(r) and _authenticated(r)


def _lifetime(r: Received) -> int | None:
    raw = r.value("LIFETIME") if r.index is not None else None
    return int.from_bytes(raw, "big") if raw is not None and len(raw) == 4 else None


def _delete(r: Received) -> bool:
    return r.is_type(REFRESH, REQUEST) and _lifetime(r) == 0


def _transactions(server: TurnServer, predicate: Callable[[Received], bool], since: float = 0.0) -> list[Received]:
    """One request per transaction ID among the server's requests matching ``predicate`` since ``since``."""
    seen: dict[bytes, Received] = {}
    for r in server.requests:
        if r.time >= since and predicate(r):
            seen.setdefault(r.transaction_id, r)
    return list(seen.values())


async def _allocated(h: Harness, server: TurnServer) -> tuple[RelayAgent, Received]:
    """Start a relay agent and wait for its allocation (ERROR when the IUT does not get one)."""
    relay = await start_relay_agent(h, server)
    if not await relay.gathered(10) or not server.allocations:
        raise HarnessError("precondition: the IUT did not complete an Allocate with the scripted server")
    success = [r for r in server.requests_of(ALLOCATE) if _authenticated(r)]
    return relay, success[-1]


@pytest.mark.requirement("TURN-ALLOC-08")
@pytest.mark.needs("turn_client")
@pytest.mark.selftest(fault="no-software", verdict="NON-STRICT")
async def test_allocate_and_refresh_requests_carry_software(harness: Harness, expect: Expect) -> None:
    """TURN-ALLOC-08 (RFC 8656 §5): the client's Allocate and Refresh requests should carry SOFTWARE."""
    server = await scripted_turn_server(harness)
    relay, _ = await _allocated(harness, server)
    since = server.endpoint.now()
    await relay.close()
    refreshes = server.endpoint.find(lambda r: r.is_type(REFRESH, REQUEST), since)
    if not refreshes:
        harness.findings.info("no Refresh after close (see TURN-LIFE-06): only Allocate requests were checked")
    for r in [*server.requests_of(ALLOCATE), *refreshes]:
        assert r.index is not None
        if not expect(r, what="the client's request").has("SOFTWARE").ok:
            break


@pytest.mark.requirement("TURN-ALLOC-09")
@pytest.mark.needs("turn_client")
@pytest.mark.selftest(fault="tcp-transport")
async def test_allocate_requests_udp_with_zero_rffu(harness: Harness, expect: Expect) -> None:
    """TURN-ALLOC-09 (RFC 8656 §7.1, §18.8): every Allocate carries REQUESTED-TRANSPORT 17 (UDP), RFFU zero."""
    server = await scripted_turn_server(harness)
    await start_relay_agent(harness, server)
    await server.endpoint.expect(_auth_allocate, 10, what="authenticated Allocate")
    for r in server.requests_of(ALLOCATE):
        assert r.index is not None
        value = r.value("REQUESTED-TRANSPORT")
        expect(r).that(
            value == b"\x11\x00\x00\x00",
            f"REQUESTED-TRANSPORT 11000000, not {value.hex() if value is not None else 'absent'}",
        )


@pytest.mark.requirement("TURN-ALLOC-10")
@pytest.mark.needs("turn_client")
@pytest.mark.selftest(fault="keep-unusable-family")
async def test_unusable_relayed_family_is_deleted_and_not_retried(harness: Harness, expect: Expect) -> None:
    """TURN-ALLOC-10 (RFC 8656 §7.3): an IPv4-only client given an IPv6 relayed address deletes the allocation and
    does not allocate on that server again."""
    if "ipv6" in harness.info.capabilities:
        raise UnsupportedFeature(f"{harness.info.name} declares ipv6: an IPv6 relayed address is usable to it")
    server = await scripted_turn_server(harness)

    def ipv6_relay(r: Received) -> bytes:
        attrs = [
            attr.XorRelayedAddress(family=2, address="::1", port=50000),
            attr.Lifetime(lifetime=600),
            attr.XorMappedAddress(family=1, address=r.src[0], port=r.src[1]),
        ]
        return server.success(r, attrs, key=MD5_KEY)

    rule = server.script(_auth_allocate, ipv6_relay)
    await start_relay_agent(harness, server)
    await server.endpoint.expect(_auth_allocate, 10, what="authenticated Allocate")
    answered = rule.hits[0]
    await server.endpoint.expect(
        _delete,
        PROMPT + 2,
        since=answered.time,
        what="Refresh LIFETIME=0 deleting the IPv6 allocation",
        findings=harness.findings,
        requirement="TURN-ALLOC-10",
    )

    def another(r: Received) -> bool:
        return _allocate(r) and r.transaction_id != answered.transaction_id

    await server.endpoint.expect_silence(another, SILENCE)
    again = next(iter(server.endpoint.find(another, answered.time)), None)
    expect(again, what="on the same server").silence("no new Allocate")


@pytest.mark.requirement("TURN-ALLOC-11")
@pytest.mark.needs("turn_client")
@pytest.mark.parametrize(
    ("code", "window"),
    [
        pytest.param(437, SILENCE + 2, id="437"),
        pytest.param(440, SILENCE, id="440"),
        pytest.param(486, SILENCE, id="486"),
        pytest.param(508, SILENCE, id="508"),
        pytest.param(401, SILENCE, id="401"),
        pytest.param(437, 125.0, marks=[pytest.mark.slow, pytest.mark.budget(200)], id="437-two-minutes"),
        pytest.param(486, 65.0, marks=[pytest.mark.slow, pytest.mark.budget(120)], id="486-one-minute"),
    ],
)
@pytest.mark.selftest(fault="retry-401-forever", verdict="NON-STRICT", params="401")
@pytest.mark.selftest(
    fault="retry-437-forever", verdict="NON-STRICT", params=["437", "486", "508", "437-two-minutes", "486-one-minute"]
)
@pytest.mark.selftest(fault="retry-437-forever", params="440")
async def test_allocate_error_back_off(harness: Harness, code: int, window: float) -> None:
    """TURN-ALLOC-11 (RFC 8656 §7.4): 437 at most three client addresses then a 2-minute pause; never retry after
    440; no Allocate for a minute after 486 or 508; nothing more after a 401 despite correct credentials."""
    server = await scripted_turn_server(harness)
    clause = {437: "mismatch_437", 440: "family_440", 486: "quota_486_508", 508: "quota_486_508"}.get(
        code, "unauthorized_401"
    )

    def refuse(r: Received) -> bytes:
        if code == 401:
            return server.challenge(r)
        return server.error(r, code, key=MD5_KEY)

    server.script(_auth_allocate, refuse, times=None)
    await start_relay_agent(harness, server)
    first = await server.endpoint.expect(_auth_allocate, 10, what="authenticated Allocate")
    await harness.observe(window, "no Allocate in the back-off time")
    tries = _transactions(server, _auth_allocate)
    if code == 437:
        sources = {r.src for r in tries}
        per_source = max(sum(r.src == s for r in tries) for s in sources)
        harness.findings.check(
            len(sources) <= 3 and per_source == 1,
            "TURN-ALLOC-11",
            f"{len(tries)} Allocate transactions from {len(sources)} client addresses within {window:g} s of a "
            f"437 to each (at most one per address, three addresses, then a 2-minute pause)",
            clause,
        )
        return
    later = [r for r in _transactions(server, _allocate, first.time) if r.transaction_id != first.transaction_id]
    if code == 401:
        later = [r for r in later if _authenticated(r)]
    harness.findings.check(
        not later,
        "TURN-ALLOC-11",
        f"{len(later)} new Allocate transaction(s) within {window:g} s of a {code}: "
        f"{[r.describe() for r in later[:2]]}",
        clause,
    )


@pytest.mark.requirement("TURN-ALLOC-12")
@pytest.mark.needs("turn_client")
@pytest.mark.parametrize("authenticated", [False, True], ids=["without-integrity", "with-integrity"])
@pytest.mark.selftest(fault="ignore-alternate", verdict="NON-STRICT", params="with-integrity")
@pytest.mark.selftest(fault="follow-unauthenticated-alternate", params="without-integrity")
@pytest.mark.selftest(fault="rfc5389-client", params="without-integrity")
@pytest.mark.selftest(fault="rfc5389-client", params="without-integrity", revision_gap=True)
async def test_try_alternate_needs_integrity(harness: Harness, expect: Expect, authenticated: bool) -> None:
    """TURN-ALLOC-12 (RFC 8489 §14.15, §9.2.5, RFC 8656 §7.4): a 300 without integrity is ignored; with integrity
    the client should try the ALTERNATE-SERVER first."""
    server = await scripted_turn_server(harness)
    alternate = await scripted_turn_server(harness, label="alternate TURN server")
    host, port = alternate.address

    def redirect(r: Received) -> bytes:
        extra = [attr.AlternateServer(family=1, address=host, port=port)]
        return server.error(r, 300, key=MD5_KEY if authenticated else None, extra=extra)

    server.script(_auth_allocate, redirect)
    await start_relay_agent(harness, server)
    await server.endpoint.expect(_auth_allocate, 10, what="authenticated Allocate")
    if not authenticated:
        await alternate.endpoint.expect_silence(lambda r: True, SILENCE)
        got = next(iter(alternate.endpoint.history), None)
        expect(got, clause="integrity_required", what=f"a 300 without MESSAGE-INTEGRITY to {host}:{port}").silence(
            "nothing sent there"
        )
        return
    await alternate.endpoint.expect(
        _allocate,
        PROMPT + 2,
        what="Allocate to the ALTERNATE-SERVER",
        findings=harness.findings,
        requirement="TURN-ALLOC-12",
        clause="try_alternate",
    )


@pytest.mark.requirement("TURN-ALLOC-15")
@pytest.mark.needs("turn_client")
@pytest.mark.selftest(fault="ignore-437")
async def test_437_to_refresh_ends_use_of_the_relay(harness: Harness) -> None:
    """TURN-ALLOC-15 (RFC 8656 §5): after a 437 to its Refresh the client treats the allocation as gone and sends
    nothing more through it."""
    server = await scripted_turn_server(harness)
    server.grant_lifetime = 6
    server.script(lambda r: r.is_type(REFRESH, REQUEST) and not _delete(r), lambda r: server.error(r, 437, key=MD5_KEY))
    session, _ = await relay_session(harness, server)
    if not await wait_selected(harness, session):
        if server.allocations:
            # A 6 s allocation is far below the 10 minute default (RFC 8656 §3.2): an IUT that holds it and never
            # relays through it (Firefox ESR) cannot be given the 437 this case needs; that is no harness failure.
            raise UnsupportedFeature(
                "the IUT was granted a 6 s allocation but ICE through the relay did not complete, so its handling "
                "of a 437 to a Refresh of a relay in use cannot be observed"
            )
        raise HarnessError("precondition: ICE through the relay did not complete")
    client = next(iter(server.allocations))
    refresh = await server.endpoint.expect_silence(lambda r: r.is_type(REFRESH, REQUEST) and not _delete(r), 12)
    if refresh is None:  # the stimulus cannot be delivered; TURN-LIFE-05 judges the missing refresh itself
        raise UnsupportedFeature(
            "the IUT sent no Refresh of a 6 s allocation within 12 s, so its handling of a 437 to Refresh "
            "cannot be observed (TURN-LIFE-05 judges the refresh)"
        )
    await harness.observe(0.3, "the 437 reaches the client and is handled")
    cutoff = server.endpoint.now()
    try:
        await harness.iut.send(session.agent, 1, payload("after-437"))
    except Exception as exc:  # refusing to send is a fine reaction
        harness.findings.info(f"send after the 437 was refused: {exc}")

    def relayed_traffic(r: Received) -> bool:
        is_data = bool(r.data[:1]) and 0x40 <= r.data[0] <= 0x4F
        return r.src == client and (is_data or r.is_type(0x006, 1))

    await server.endpoint.expect_silence(relayed_traffic, SILENCE - 1)
    got = server.endpoint.find(relayed_traffic, cutoff)
    harness.findings.check(
        not got,
        "TURN-ALLOC-15",
        f"{cutoff - refresh.time:.1f} s after the 437 to its Refresh the client still sends through the "
        f"allocation: {got[0].describe() if got else ''}",
    )


@pytest.mark.requirement("TURN-ERR-02")
@pytest.mark.needs("turn_client")
@pytest.mark.parametrize("code", [499, 599, 699])
@pytest.mark.selftest(fault="retry-5xx-forever")
async def test_unknown_error_codes_do_not_loop(harness: Harness, code: int) -> None:
    """TURN-ERR-02 (RFC 8489 §6.3.4, RFC 8656 §7.4): an unknown 4xx or 6xx fails the transaction; a 5xx is
    retried a limited number of times; no loop."""
    server = await scripted_turn_server(harness)
    server.script(_auth_allocate, lambda r: server.error(r, code, key=MD5_KEY), times=None)
    await start_relay_agent(harness, server)
    await server.endpoint.expect(_auth_allocate, 10, what="authenticated Allocate")
    await harness.observe(SILENCE + 1, "no loop of retries after the unknown error")
    tries = _transactions(server, _auth_allocate)
    limit = 3
    harness.findings.check(
        len(tries) <= limit,
        "TURN-ERR-02",
        f"{len(tries)} Allocate transactions within {SILENCE + 1:g} s, each answered {code} (at most {limit})",
    )


@pytest.mark.requirement("TURN-LIFE-05")
@pytest.mark.needs("turn_client")
@pytest.mark.parametrize(
    "lifetime",
    [15, pytest.param(600, marks=[pytest.mark.slow, pytest.mark.budget(700)], id="600")],
)
@pytest.mark.selftest(fault="no-refresh")
@pytest.mark.selftest(fault="refresh-at-expiry", params="15")
async def test_allocation_is_refreshed_before_it_expires(harness: Harness, lifetime: int) -> None:
    """TURN-LIFE-05 (RFC 8656 §8): the client refreshes before the granted LIFETIME runs out (about 1 minute
    early is suggested); 15 s is the scaled variant.

    The Refresh must reach the server at least one minimum RTO (0.5 s, RFC 8489 §6.2.1) before expiry: a later one
    could not be retransmitted in time, and a verdict on a refresh at the very instant of expiry would hang on
    milliseconds. The watch runs 2 s past expiry so that a late refresh is measured, not missed."""
    server = await scripted_turn_server(harness)
    server.grant_lifetime = lifetime
    await start_relay_agent(harness, server)
    granted = await server.endpoint.expect(_auth_allocate, 10, what="authenticated Allocate")
    refresh = await server.endpoint.expect(
        lambda r: r.is_type(REFRESH, REQUEST) and not _delete(r),
        max(0.0, granted.time + lifetime + 2.0 - server.endpoint.now()),
        since=granted.time,
        what=f"Refresh before the {lifetime} s allocation expires",
        findings=harness.findings,
        requirement="TURN-LIFE-05",
        clause="refresh_before_expiry",
        deliberate=True,
    )
    lead = lifetime - (refresh.arrived - granted.time)  # the Refresh's kernel arrival; the lifetime ran from the reply
    harness.findings.info(f"refreshed {lead:.2f} s before expiry (LIFETIME {lifetime})")
    harness.findings.check(
        lead >= 0.5,
        "TURN-LIFE-05",
        f"the Refresh reached the server {lead:.2f} s before the {lifetime} s allocation expired "
        f"({-lead:.2f} s after, if negative): too late for even one retransmission",
        "refresh_before_expiry",
    )
    if lifetime > 120:
        harness.findings.check(
            30 <= lead <= 90,
            "TURN-LIFE-05",
            f"refreshed {lead:.0f} s before expiry, not roughly 1 minute",
            "one_minute_early",
        )


@pytest.mark.requirement("TURN-LIFE-06")
@pytest.mark.needs("turn_client")
@pytest.mark.selftest(fault="no-delete", verdict="NON-STRICT")
async def test_closing_deletes_the_allocation_and_437_ends_it(harness: Harness, expect: Expect) -> None:
    """TURN-LIFE-06 (RFC 8656 §8, §8.3): a client done with its allocation deletes it (Refresh LIFETIME=0); a 437
    to that delete counts as success, with no retry."""
    server = await scripted_turn_server(harness)
    rule = server.script(_delete, lambda r: server.error(r, 437, key=MD5_KEY))
    relay, _ = await _allocated(harness, server)
    since = server.endpoint.now()
    await relay.close()
    await server.endpoint.expect(
        _delete,
        PROMPT + 2,
        since=since,
        what="Refresh LIFETIME=0 after close",
        findings=harness.findings,
        requirement="TURN-LIFE-06",
    )
    request = rule.hits[0] if rule.hits else None

    def retried(r: Received) -> bool:
        return _delete(r) and request is not None and r.transaction_id != request.transaction_id

    await server.endpoint.expect_silence(retried, SILENCE - 1)
    again = next(iter(server.endpoint.find(retried, since)), None)
    expect(again, what="the delete answered with 437").silence("no retry")
