"""Candidate addresses, redundancy, credentials, the candidate grammar, and SDP-level signalling
(RFC 8445 §5.1.1.1, §5.1.3, §5.3, §10; RFC 8839 §4.2.5, §5.1, §5.2, §5.4)."""

from __future__ import annotations

import ipaddress
import re

import pytest

from conformance.adapters.base import RemoteError
from conformance.protocol.candidate import grammar_problems
from conformance.protocol.priority import candidate_priority
from conformance.tester.expect import Expect
from conformance.tester.harness import Harness
from conformance.tester.ice import IceSession, random_credentials
from conformance.tester.ice_steps import host_line, is_check, run_exchange
from conformance.verdict import UnsupportedFeature

ICE_CHARS = re.compile(r"[A-Za-z0-9+/]+")


async def _offer(h: Harness) -> IceSession:
    """The IUT's offer, on 127.0.0.1 (and ::1 when it declares IPv6)."""
    interfaces = ["127.0.0.1", "::1"] if "ipv6" in h.info.capabilities else ["127.0.0.1"]
    return await h.session("controlling", connect=False, interfaces=interfaces)


def _sdp_layer(s: IceSession, what: str) -> None:
    """SDP-level rows need an IUT with an SDP layer (contract 1.1: gather reports ice_options)."""
    if s.local is None or s.local.ice_options is None:
        raise UnsupportedFeature(f"the adapter reports no SDP-level description (contract 1.1 ice_options): {what}")


@pytest.mark.requirement("ICE-CAND-01")
@pytest.mark.selftest(fault="site-local-candidate")
async def test_no_forbidden_candidate_addresses(harness: Harness) -> None:
    """ICE-CAND-01 (RFC 8445 §5.1.1.1): no IPv4-compatible or site-local IPv6 (MUST NOT), no IPv4-mapped (SHOULD NOT).

    Loopback candidates are also forbidden, but the harness itself tells the IUT to gather on loopback only (the
    contract's ``interfaces``, for an isolated test network), so they are noted, not graded."""
    f = harness.findings
    s = await _offer(harness)
    f.check(bool(s.candidates), "ICE-CAND-01", "the IUT gathered no candidate", "forbidden_addresses")
    loopback = 0
    for c in s.candidates:
        try:
            ip = ipaddress.ip_address(c.address)
        except ValueError:
            continue  # not an IP literal: the grammar case (ICE-CAND-04) judges it
        line = f"{c.address} {c.port} typ {c.kind}"
        if ip.is_loopback:
            loopback += 1
            continue
        if isinstance(ip, ipaddress.IPv6Address):
            compatible = int(ip) >> 32 == 0 and int(ip) > 1
            f.check(not compatible, "ICE-CAND-01", f"IPv4-compatible IPv6 candidate {line}", "forbidden_addresses")
            f.check(not ip.is_site_local, "ICE-CAND-01", f"site-local IPv6 candidate {line}", "forbidden_addresses")
            f.check(ip.ipv4_mapped is None, "ICE-CAND-01", f"IPv4-mapped IPv6 candidate {line}", "ipv4_mapped")
    if loopback:
        f.info(
            f"{loopback} loopback candidates: RFC 8445 §5.1.1.1 forbids them, but the harness configured the IUT to "
            "gather on loopback only (interfaces), so they are not graded"
        )


@pytest.mark.requirement("ICE-CAND-02")
@pytest.mark.selftest(fault="redundant-candidates", verdict="NON-STRICT")
async def test_no_redundant_candidates(harness: Harness) -> None:
    """ICE-CAND-02 (RFC 8445 §5.1.3): no two candidates of a component share transport address and base."""
    s = await _offer(harness)
    seen: dict[tuple[object, ...], str] = {}
    for c in s.candidates:
        base = (c.related_address, c.related_port) if c.kind != "host" else (c.address, c.port)
        key = (c.component, c.protocol, c.address, c.port, base)
        line = f"{c.foundation} {c.component} {c.address} {c.port} typ {c.kind} prio {c.priority}"
        harness.findings.check(
            key not in seen, "ICE-CAND-02", f"redundant candidates (same address and base): {seen.get(key)} / {line}"
        )
        seen[key] = line


@pytest.mark.requirement("ICE-CAND-03")
@pytest.mark.selftest(fault="short-credentials")
async def test_local_credentials_have_enough_entropy(harness: Harness) -> None:
    """ICE-CAND-03 (RFC 8445 §5.3, RFC 8839 §5.4): ufrag 4-32 ice-chars, pwd 22-256 ice-chars."""
    f = harness.findings
    s = await _offer(harness)
    assert s.local is not None
    ufrag, pwd = s.local.ufrag, s.local.pwd
    f.check(4 <= len(ufrag) <= 32, "ICE-CAND-03", f"ufrag {ufrag!r} has {len(ufrag)} characters (4 to 32)")
    f.check(22 <= len(pwd) <= 256, "ICE-CAND-03", f"pwd has {len(pwd)} characters (22 to 256)")
    f.check(bool(ICE_CHARS.fullmatch(ufrag)), "ICE-CAND-03", f"ufrag {ufrag!r} has characters outside ice-char")
    f.check(bool(ICE_CHARS.fullmatch(pwd)), "ICE-CAND-03", "pwd has characters outside ice-char")


@pytest.mark.requirement("ICE-CAND-03")
@pytest.mark.parametrize("role", ["controlling", "controlled"])
@pytest.mark.selftest(fault="truncate-remote-credentials")
async def test_256_character_remote_credentials_are_accepted(harness: Harness, role: str) -> None:
    """ICE-CAND-03 (RFC 8839 §5.4): with the harness's ufrag and pwd 256 characters long, ICE completes."""
    peer = await harness.peer()
    peer.ufrag, peer.pwd = random_credentials(256, 256)
    x = await run_exchange(harness, role, peer=peer)
    harness.findings.check(
        x.selected is not None,
        "ICE-CAND-03",
        "with a 256-character ufrag and pwd from the harness, ICE did not complete",
    )


@pytest.mark.requirement("ICE-CAND-04")
@pytest.mark.selftest(fault="bad-foundation")
async def test_candidates_follow_the_grammar(harness: Harness) -> None:
    """ICE-CAND-04 (RFC 8839 §5.1): every candidate attribute parses and follows the grammar."""
    s = await _offer(harness)
    assert s.local is not None
    for line in s.local.candidates:
        problems = grammar_problems(line)
        harness.findings.check(not problems, "ICE-CAND-04", f"{line!r}: {'; '.join(problems)}")


@pytest.mark.requirement("ICE-CAND-05")
@pytest.mark.selftest(fault="reject-unknown-extensions")
async def test_fqdn_and_unknown_extensions_are_ignored(harness: Harness) -> None:
    """ICE-CAND-05 (RFC 8839 §5.1): an FQDN candidate is ignored, an unknown extension pair skipped; ICE completes."""
    f = harness.findings
    peer = await harness.peer()
    ep = peer.endpoint
    lines = [
        f"candidate:F1 1 udp {candidate_priority(126, 65534, 1)} fqdn.invalid 9 typ host",
        host_line("X1", candidate_priority(126, 65535, 1), ep.address) + " foo bar",
    ]
    try:
        await harness.session("controlling", peer=peer, remote_candidates=lines)
    except RemoteError as exc:
        f.violation("ICE-CAND-05", f"the description with an FQDN candidate and an extension pair was refused: {exc}")
        return
    first = await ep.expect(
        is_check, 10, what="a check to the candidate with an extension", findings=f, requirement="ICE-CAND-05"
    )
    await peer.transact(peer.check(), first.src, timeout=5)
    selected = await harness.log.wait("selected_pair", timeout=10)
    f.check(selected is not None, "ICE-CAND-05", "with an FQDN candidate and an extension pair, ICE did not complete")


@pytest.mark.requirement("ICE-CAND-06")
@pytest.mark.selftest(fault="no-ice2")
async def test_ice2_option_is_advertised(harness: Harness) -> None:
    """ICE-CAND-06 (RFC 8445 §10): the IUT's a=ice-options carries ice2."""
    s = await _offer(harness)
    _sdp_layer(s, "a=ice-options")
    assert s.local is not None and s.local.ice_options is not None
    harness.findings.check(
        "ice2" in s.local.ice_options, "ICE-CAND-06", f"a=ice-options {s.local.ice_options} lack the ice2 token"
    )


@pytest.mark.requirement("ICE-CAND-07")
@pytest.mark.selftest(fault="null-default-destination-fails")
async def test_null_default_destination_is_not_a_failure(harness: Harness) -> None:
    """ICE-CAND-07 (RFC 8839 §4.2.5): an answer with c=IN IP4 0.0.0.0 and port 9 but real candidates runs ICE."""
    f = harness.findings
    peer = await harness.peer()
    s = await harness.session("controlling", peer=peer, remote_options={"default_destination": "0.0.0.0:9"})
    _sdp_layer(s, "the default destination")
    s.require_option("default_destination", "the c=/m= lines of the harness's answer, RFC 8839 §4.2.5")
    first = await peer.endpoint.expect(is_check, 10, what="a check from the IUT", findings=f, requirement="ICE-CAND-07")
    await peer.transact(peer.check(), first.src, timeout=5)
    selected = await harness.log.wait("selected_pair", timeout=10)
    f.check(selected is not None, "ICE-CAND-07", "with the default destination 0.0.0.0:9, ICE did not complete")


@pytest.mark.requirement("SDP-01")
@pytest.mark.parametrize("role", ["controlling", "controlled"])
@pytest.mark.selftest(fault="remote-candidates-in-answer", params="controlled")
@pytest.mark.selftest(fault="no-remote-candidates", params="controlling")
async def test_remote_candidates_only_in_a_controlling_re_offer(harness: Harness, role: str) -> None:
    """SDP-01 (RFC 8839 §5.2): a=remote-candidates in the controlling side's re-offer after completion only."""
    f = harness.findings
    x = await run_exchange(harness, role)
    s = x.session
    _sdp_layer(s, "a=remote-candidates")
    assert s.local is not None
    f.check(
        not s.local.remote_candidates,
        "SDP-01",
        f"the initial description carries a=remote-candidates {s.local.remote_candidates}",
        "otherwise_absent",
    )
    if x.selected is None:
        f.info("ICE did not complete; the re-offer is not judged")
        return
    again = await harness.iut.gather(s.agent)
    remote = again.remote_candidates or []
    if role == "controlled":
        f.check(
            not remote,
            "SDP-01",
            f"the controlled IUT's description carries a=remote-candidates {remote}",
            "otherwise_absent",
        )
        return
    port = str(s.peer.endpoint.address[1])
    f.check(
        any(port in r.split() for r in remote),
        "SDP-01",
        f"the controlling IUT's re-offer after completion lacks the selected remote candidate: {remote}",
        "when_allowed",
    )


@pytest.mark.requirement("SDP-02")
@pytest.mark.selftest(fault="ignore-ice-mismatch")
async def test_ice_mismatch_answer_ends_ice(harness: Harness, expect: Expect) -> None:
    """SDP-02 (RFC 8839 §4.2.5, §5.3): an answer with a=ice-mismatch and no candidates: no checks at all."""
    peer = await harness.peer()
    ep = peer.endpoint
    destination = f"{ep.address[0]}:{ep.address[1]}"
    s = await harness.session(
        "controlling",
        peer=peer,
        remote_candidates=[],
        remote_options={"ice_mismatch": True, "default_destination": destination},
    )
    _sdp_layer(s, "a=ice-mismatch")
    s.require_option("ice_mismatch", "the a=ice-mismatch of the harness's answer, RFC 8839 §4.2.5")
    hit = await ep.expect_silence(is_check, 4.0)
    expect(hit, what="after an a=ice-mismatch answer").silence("no check")
