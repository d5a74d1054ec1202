"""Security-relevant behaviour of an ICE agent (RFC 8445 §5.1.1.2, §6.1.2.5, §7.3, §19.5.1; RFC 8489 §9.1.3)."""

from __future__ import annotations

import pytest

from conformance.tester.endpoint import Received
from conformance.tester.expect import Expect
from conformance.tester.harness import Harness
from conformance.tester.ice import BINDING, REQUEST
from conformance.tester.ice_steps import host_line, open_endpoints, requests_from_iut
from conformance.tester.stun_server import StunServer


def _is_request(r: Received) -> bool:
    return r.is_type(BINDING, REQUEST)


@pytest.mark.requirement("SEC-01")
@pytest.mark.budget(90)
@pytest.mark.selftest(fault="no-pair-limit", verdict="NON-STRICT")
async def test_candidate_pairs_are_limited(harness: Harness) -> None:
    """SEC-01 (RFC 8445 §6.1.2.5, §19.5.1): at most 100 pairs by default, the lower-priority ones discarded."""
    hosts = [f"127.0.0.{i}" for i in range(2, 52)]
    eps = await open_endpoints(harness, 150, "remote", hosts)
    priorities = {ep.address: 2130706431 - i * 256 for i, ep in enumerate(eps)}
    lines = [host_line(f"A{i}", priorities[ep.address], ep.address) for i, ep in enumerate(eps)]
    await harness.session("controlling", remote_candidates=lines)
    await eps[0].expect(_is_request, 10.0, what="connectivity check from the IUT")
    # Watch until no new destination shows up for 3 s (pairs are paced by Ta; 150 take about 7.5 s at 50 ms).
    loop_end = eps[0].now() + 40.0
    count = 0
    while eps[0].now() < loop_end:
        await harness.observe(3.0, "new destinations of checks, until none shows up (the pair limit)")
        probed = {r.dst for r in requests_from_iut(eps)}
        if len(probed) == count:
            break
        count = len(probed)
    probed = {r.dst for r in requests_from_iut(eps)}
    f = harness.findings
    f.info(f"{len(probed)} of {len(eps)} remote candidates probed")
    f.check(
        len(probed) <= 100,
        "SEC-01",
        f"the IUT sent checks to {len(probed)} distinct destinations out of 150 offered (default limit 100)",
        "default_100",
    )
    top = sorted(priorities, key=lambda a: -priorities[a])[: len(probed)]
    skipped = [a for a in top if a not in probed]
    f.check(
        not skipped,
        "SEC-01",
        f"the IUT probed {len(probed)} candidates but skipped {len(skipped)} of the {len(probed)} highest-priority "
        f"ones (e.g. {skipped[:3]}): the lower-priority pairs are the ones to discard",
        "limit",
    )


@pytest.mark.requirement("SEC-02")
@pytest.mark.selftest(fault="accept-bad-integrity")
async def test_check_with_bad_integrity_creates_no_prflx(harness: Harness, expect: Expect, role: str) -> None:
    """SEC-02 (RFC 8445 §7.3, RFC 8489 §9.1.3): a bad-MI check from an unknown source: 401, no check back."""
    s = await harness.session(role)
    intruder = await harness.endpoint("unsignalled source (wrong password)")
    msg = s.peer.check(key=b"not the IUT's password")
    data = bytes(msg)
    intruder.send(data, s.iut_address, note="check with a wrong MESSAGE-INTEGRITY")
    seen = await intruder.expect_silence(_is_request, 3.0)
    expect(seen, what=f"after a check with a wrong MESSAGE-INTEGRITY from {intruder.address}").silence(
        "no check of that address"
    )
    replies = intruder.find(lambda r: r.is_stun and r.transaction_id == data[8:20])
    harness.findings.info("the bad check got " + (replies[0].describe() if replies else "no response"))


@pytest.mark.requirement("SEC-03")
@pytest.mark.needs("stun_client")
@pytest.mark.selftest(fault="follow-alternate-server")
async def test_alternate_server_is_ignored_while_gathering(harness: Harness, expect: Expect) -> None:
    """SEC-03 (RFC 8445 §5.1.1.2, §7.3): a 300 with ALTERNATE-SERVER from the STUN server is not followed."""
    server = await StunServer.open(harness.capture)
    harness.defer(lambda: _close(server))
    alternate = await harness.endpoint("alternate STUN server")
    server.responder = lambda rec: StunServer.try_alternate(rec, alternate.address)
    await harness.session("controlling", stun_servers=[server.spec], connect=False)
    f = harness.findings
    f.info(f"{len(server.requests)} Binding requests reached the STUN server while gathering")
    if not server.requests:
        f.info("the IUT never queried the STUN server it was given: nothing to ignore")
    contact = next(iter(alternate.find(lambda r: r.is_stun)), None)
    contact = contact or await alternate.expect_silence(lambda r: r.is_stun, 3.0)
    followed = f"ALTERNATE-SERVER {alternate.address} in the gathering response"
    expect(contact, clause="ignore_alternate", what=followed).silence("nothing sent to it")


async def _close(server: StunServer) -> None:
    server.close()
