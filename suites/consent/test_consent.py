"""Consent freshness: no data before consent, randomized checks, expiry after 30 s, authenticated responses only,
revocation by 403, and consent across an ICE restart (RFC 7675 §5.1, §5.2)."""

from __future__ import annotations

import itertools

import pytest

from conformance.tester.endpoint import Endpoint, Received
from conformance.tester.harness import Harness
from conformance.tester.ice import IcePeer, IceSession
from conformance.tester.ice_steps import is_check, is_data, restart_iut, run_exchange, send_data
from conformance.verdict import HarnessError, UnsupportedFeature

PAYLOAD = b"\x80conformance consent probe"


async def _selected(h: Harness, role: str = "controlling") -> tuple[IceSession, IcePeer, Endpoint, float]:
    """A completed exchange: the session, the peer, the selected harness endpoint and the selection time."""
    x = await run_exchange(h, role)
    if x.selected is None:
        raise HarnessError("the IUT reported no selected pair (graded by ICE-NOM-02/05)")
    return x.session, x.session.peer, x.session.peer.endpoint, x.selected.time


async def _data_flows(h: Harness, s: IceSession, ep: Endpoint) -> None:
    """Sanity: data from the IUT reaches the selected endpoint (else the consent cases cannot judge)."""
    since = ep.now()
    await send_data(h, s.agent, PAYLOAD)
    try:
        await ep.expect(lambda r: r.data == PAYLOAD, 3, since=since, what="data from the IUT on the selected pair")
    except HarnessError as exc:
        raise HarnessError(f"{exc}: without data on the selected pair, consent cannot be judged") from None


def _consent_checks(ep: Endpoint, since: float, known: set[bytes]) -> list[Received]:
    return [r for r in ep.find(is_check, since) if r.transaction_id not in known]


@pytest.mark.requirement("CONS-01")
@pytest.mark.selftest(fault="data-before-consent")
async def test_no_data_before_consent(harness: Harness) -> None:
    """CONS-01 (RFC 7675 §5.1): with every check unanswered, the IUT sends no application data."""
    peer = await harness.peer()
    peer.auto_respond = False
    s = await harness.session("controlling", peer=peer)
    ep = peer.endpoint
    await ep.expect(is_check, 10, what="connectivity check from the IUT")
    for _ in range(8):
        await send_data(harness, s.agent, PAYLOAD)
        await harness.observe(0.5, "no data before consent")
    data = ep.find(is_data)
    harness.findings.check(
        not data,
        "CONS-01",
        f"no check of the IUT was answered (no consent), yet it sent data: {data[0].describe() if data else ''}",
    )


@pytest.mark.requirement("CONS-02")
@pytest.mark.slow
@pytest.mark.budget(90)
@pytest.mark.selftest(fault="no-consent")
async def test_consent_checks_are_randomized_and_never_retransmitted(harness: Harness) -> None:
    """CONS-02 (RFC 7675 §5.1): consent checks every 5 s x U(0.8, 1.2), never under 4 s, new txid, no retransmit."""
    f = harness.findings
    s, peer, ep, t_sel = await _selected(harness)
    known = {r.transaction_id for r in ep.find(is_check) if r.time <= t_sel + 1.0}
    first = await ep.expect(
        lambda r: is_check(r) and r.transaction_id not in known and r.time > t_sel + 1.0,
        12,
        what="a consent check on the selected pair",
        findings=f,
        requirement="CONS-02",
        clause="randomized",
    )
    await harness.observe(30, "consent checks over 30 s, for their intervals")
    checks = _consent_checks(ep, first.time, known)
    txids = [r.transaction_id for r in checks]
    repeated = {t.hex() for t in txids if txids.count(t) > 1}
    f.check(not repeated, "CONS-02", f"consent checks retransmitted (txid repeats): {sorted(repeated)}", "randomized")
    times = sorted({r.transaction_id: r.time for r in checks}.values())
    gaps = [b - a for a, b in itertools.pairwise(times)]
    f.check(len(gaps) >= 3, "CONS-02", f"only {len(times)} consent checks in 30 s: {gaps}", "randomized")
    f.check(
        min(gaps) >= 3.95,
        "CONS-02",
        f"a consent interval of {min(gaps):.2f} s, under the 4 s floor; intervals {[round(g, 2) for g in gaps]}",
        "randomized",
    )
    f.check(
        max(gaps) - min(gaps) >= 0.05,
        "CONS-02",
        f"consent intervals are constant ({[round(g, 2) for g in gaps]}); they must be randomized",
        "randomized",
    )
    f.check(
        max(gaps) <= 6.05,
        "CONS-02",
        f"consent intervals {[round(g, 2) for g in gaps]} exceed the default 4-6 s",
        "default_5s",
    )
    f.info(f"agent {s.agent}: {len(times)} consent checks, intervals {[round(g, 2) for g in gaps]} s")
    del peer


async def _expiry(harness: Harness, wrong_key: bool) -> tuple[IceSession, IcePeer, Endpoint, float, list[Received]]:
    """Stop refreshing consent at T0 (no answer, or answers with a wrong MESSAGE-INTEGRITY) and send data for 31 s.

    Returns the session, peer, endpoint, T0 and the consent requests left unanswered."""
    f = harness.findings
    s, peer, ep, _ = await _selected(harness)
    await _data_flows(harness, s, ep)
    held: list[Received] = []

    def responder(rec: Received) -> bytes | None:
        if wrong_key:
            return bytes(peer.success(rec, key=b"not the password"))
        held.append(rec)
        return b""

    t0 = ep.now()
    peer.responder = responder
    stopped_by = t0 + 31.0
    while ep.now() < stopped_by + 2.0:
        await send_data(harness, s.agent, PAYLOAD)
        await harness.observe(1.0, "data must cease 30 s after the last consent response")
    late = ep.find(is_data, stopped_by)
    requirement = "CONS-05" if wrong_key else "CONS-03"
    if late:
        f.violation(
            requirement,
            f"no {'authenticated ' if wrong_key else ''}consent response since T0, yet data still reached the "
            f"harness {late[0].time - t0:.1f} s after T0 (must cease by 30 s): {late[0].describe()}",
        )
    return s, peer, ep, t0, held


@pytest.mark.requirement("CONS-03", "CONS-04")
@pytest.mark.slow
@pytest.mark.budget(100)
@pytest.mark.selftest(fault="consent-no-expiry", requirement="CONS-03")
@pytest.mark.selftest(fault="late-response-restores-consent", requirement="CONS-04")
async def test_consent_expires_after_30_s_and_late_responses_do_not_restore_it(harness: Harness) -> None:
    """CONS-03, CONS-04 (RFC 7675 §5.1): data stops 30 s after the last response; late answers change nothing."""
    f = harness.findings
    s, peer, ep, t0, held = await _expiry(harness, wrong_key=False)
    peer.responder = None
    late_from = ep.now()
    for rec in held[-3:]:  # the most recent requests, answered late, properly authenticated
        ep.send(bytes(peer.success(rec)), rec.src, "late consent response")
    for _ in range(4):
        await send_data(harness, s.agent, PAYLOAD)
        await harness.observe(1.0, "late consent responses must not restore the data flow")
    resumed = ep.find(is_data, late_from)
    f.check(
        not resumed,
        "CONS-04",
        f"late responses to {len(held[-3:])} consent checks restored the data flow: "
        f"{resumed[0].describe() if resumed else ''}",
        "no_restore",
    )
    old_user = f"{peer.ufrag}:{peer.remote_ufrag}".encode()
    reused = [r for r in ep.find(is_check, t0 + 31.0) if r.index and r.value("USERNAME") == old_user]
    f.check(
        not reused,
        "CONS-04",
        f"after consent expired the IUT checks the same 5-tuple with the same credentials: "
        f"{reused[0].describe() if reused else ''}",
        "new_credentials",
    )


@pytest.mark.requirement("CONS-05")
@pytest.mark.slow
@pytest.mark.budget(100)
@pytest.mark.selftest(fault="accept-unauthenticated-response")
async def test_only_authenticated_responses_refresh_consent(harness: Harness) -> None:
    """CONS-05 (RFC 7675 §5.1): responses with a wrong MESSAGE-INTEGRITY do not refresh consent; data stops."""
    await _expiry(harness, wrong_key=True)


@pytest.mark.requirement("CONS-06")
@pytest.mark.selftest(fault="ignore-403")
async def test_an_authenticated_403_revokes_consent(harness: Harness) -> None:
    """CONS-06 (RFC 7675 §5.2): an authenticated 403 to a consent check stops the data within 1 s."""
    f = harness.findings
    s, peer, ep, t_sel = await _selected(harness)
    await _data_flows(harness, s, ep)
    known = {r.transaction_id for r in ep.find(is_check)}
    revoked: list[Received] = []

    def responder(rec: Received) -> bytes | None:
        if rec.transaction_id in known or (revoked and rec is not revoked[0]):
            return None
        revoked.append(rec)
        return bytes(peer.error(rec, 403))

    peer.responder = responder
    try:
        check = await ep.expect(
            lambda r: is_check(r) and r.transaction_id not in known, 12, what="a consent check on the selected pair"
        )
    except HarnessError:
        # The stimulus (a 403 to a consent check) cannot be delivered; CONS-02 judges the missing consent checks.
        if "consent" in harness.info.capabilities:
            raise
        raise UnsupportedFeature(
            "the IUT declares no consent freshness and sent no consent check within 12 s, so a 403 to one cannot "
            "be delivered (CONS-02 judges consent checks)"
        ) from None
    t403 = check.time
    for _ in range(12):
        await send_data(harness, s.agent, PAYLOAD)
        await harness.observe(0.25, "no data after the 403 revoked consent")
    late = ep.find(is_data, t403 + 1.0)
    if late:
        f.violation(
            "CONS-06",
            f"consent was revoked by a 403 to {check.describe()}, yet data reached the harness "
            f"{late[0].time - t403:.1f} s later: {late[0].describe()}",
        )
    del t_sel


@pytest.mark.requirement("CONS-07")
@pytest.mark.needs("restart")
@pytest.mark.slow
@pytest.mark.budget(90)
@pytest.mark.selftest(fault="no-consent-during-restart")
async def test_consent_continues_on_the_old_pair_during_a_restart(harness: Harness) -> None:
    """CONS-07 (RFC 7675 §5.1): while a restart runs, consent checks keep coming on the old pair, 4-6 s apart."""
    f = harness.findings
    s, peer, ep, _ = await _selected(harness)
    old_user = f"{peer.ufrag}:{peer.remote_ufrag}".encode()
    peer.responder = lambda rec: b"" if peer.generation_of(rec) == 0 else None  # new-generation checks unanswered
    await restart_iut(harness, s)
    t_rst = ep.now()
    while ep.now() < t_rst + 14:
        await send_data(harness, s.agent, PAYLOAD)
        await harness.observe(1.0, "consent checks on the old pair during the restart")
    old = sorted(r.time for r in ep.find(is_check, t_rst) if r.index and r.value("USERNAME") == old_user)
    marks = [t_rst, *old, ep.now()]
    gaps = [b - a for a, b in itertools.pairwise(marks)]
    f.check(
        len(old) >= 2 and max(gaps) <= 7.5,
        "CONS-07",
        f"during the restart, consent checks on the old pair came at {[round(t - t_rst, 1) for t in old]} s "
        f"(expected one every 4-6 s)",
    )
    data = ep.find(is_data, t_rst)
    f.info(f"{len(data)} data datagrams on the old pair during the restart")
