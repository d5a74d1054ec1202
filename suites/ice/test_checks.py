"""The checklist and connectivity checks: pair order, pairing rules, pacing, role attributes, failures, data.

RFC 8445 §6.1.2, §6.1.4, §7.1-§7.3, §12.1, §14.2 and RFC 8489 §6.2.1, observed on the checks the IUT sends to
harness candidates the case chose (priorities, addresses, families, components) and on what it answers.
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import struct

import pytest

from conformance.packets import attribute_code
from conformance.protocol.candidate import parse_candidate
from conformance.protocol.priority import pair_priority
from conformance.tester.endpoint import Address, Endpoint, Received
from conformance.tester.expect import Expect
from conformance.tester.harness import Harness
from conformance.tester.ice import BINDING, REQUEST, SUCCESS
from conformance.tester.ice_steps import host_line, open_endpoints, requests_from_iut, run_exchange, sanity_probe
from conformance.tester.transactions import model_of
from conformance.verdict import HarnessError

ICE_CONTROLLED, ICE_CONTROLLING = attribute_code("ICE-CONTROLLED"), attribute_code("ICE-CONTROLLING")


def _norm(address: Address) -> Address:
    return str(ipaddress.ip_address(address[0])), address[1]


def _is_request(r: Received) -> bool:
    return r.is_type(BINDING, REQUEST)


def _sent_data(r: Received) -> bool:
    """One of the datagrams the case asks the IUT to send (``0x80`` and a number, RFC 7983 §7: not STUN)."""
    return not r.is_stun and r.data[:1] == b"\x80"


def _first_sends(checks: list[Received]) -> list[Received]:
    """The first transmission of each transaction, in arrival order (retransmissions dropped)."""
    seen: set[bytes] = set()
    out = []
    for rec in checks:
        if rec.transaction_id not in seen:
            seen.add(rec.transaction_id)
            out.append(rec)
    return out


async def _checked_within(eps: list[Endpoint], timeout: float) -> list[Endpoint]:
    """The endpoints that got a connectivity check from the IUT within ``timeout`` seconds (one shared window)."""

    async def one(ep: Endpoint) -> Endpoint | None:
        try:
            await ep.expect(_is_request, timeout, what="connectivity check from the IUT")
        except HarnessError:
            return None
        return ep

    got = await asyncio.gather(*(one(ep) for ep in eps))
    return [ep for ep in got if ep is not None]


# -- the checklist (RFC 8445 §6.1.2) ------------------------------------------------------------------------------


@pytest.mark.requirement("ICE-PAIR-01")
@pytest.mark.selftest(fault="unordered-checks")
async def test_first_checks_follow_pair_priority(harness: Harness, role: str) -> None:
    """ICE-PAIR-01 (RFC 8445 §6.1.2.3, §6.1.4.2): ordinary checks start in decreasing pair priority."""
    # Distinct foundations put every pair in Waiting (§6.1.2.6); the priorities are deliberately not in port order.
    priorities = [1694498815, 2130706431, 16777215, 1862270975, 2113929471, 1677721855]
    eps = await open_endpoints(harness, len(priorities), "silent remote")
    lines = [host_line(f"F{i}", p, ep.address) for i, (p, ep) in enumerate(zip(priorities, eps, strict=True))]
    s = await harness.session(role, remote_candidates=lines)
    checked = await _checked_within(eps, 10.0)
    if len(checked) < 2:
        raise HarnessError(f"only {len(checked)} of {len(eps)} remotes got a check within 10 s: no order to judge")
    if len(checked) < len(eps):
        harness.findings.info(
            f"only {len(checked)} of {len(eps)} remotes got a check within 10 s (ICE-CHK-01 judges the pacing); "
            "the order is judged among those"
        )
    local = {(c.address, c.port): c.priority for c in s.candidates}
    firsts = [r for r in _first_sends(requests_from_iut(eps)) if r.src in local]
    by_ep = {ep.address: p for ep, p in zip(eps, priorities, strict=True)}
    seen: set[tuple[Address, Address]] = set()
    order: list[tuple[int, Received]] = []
    for rec in firsts:
        if (rec.src, rec.dst) in seen:
            continue
        seen.add((rec.src, rec.dst))
        mine, theirs = local[rec.src], by_ep[rec.dst]
        g, d = (mine, theirs) if role == "controlling" else (theirs, mine)
        order.append((pair_priority(g, d), rec))
    harness.findings.info("first checks: " + ", ".join(f"{r.dst[1]} (pair {p})" for p, r in order))
    signalled = [ep.address for ep in eps]  # the order the description listed the candidates in
    for i, ((p1, r1), (p2, r2)) in enumerate(itertools.pairwise(order)):
        earlier = signalled[: signalled.index(r1.dst)]
        if i == 0 and p1 < p2 and all(by_ep[a] < by_ep[r1.dst] for a in earlier):
            # An agent that forms pairs as it reads the candidates may check the first pair before the higher ones
            # exist (no higher candidate was listed before it); from the second check on, every pair exists.
            harness.findings.info(
                f"the first check went to {r1.dst[0]}:{r1.dst[1]} before higher pairs; no higher-priority candidate "
                "was listed before it, so its pair may have been the only one yet: not judged"
            )
            continue
        harness.findings.check(
            p1 >= p2,
            "ICE-PAIR-01",
            f"the pair {r2.src[0]}:{r2.src[1]} -> {r2.dst[0]}:{r2.dst[1]} (pair priority {p2}) was checked after "
            f"{r1.src[0]}:{r1.src[1]} -> {r1.dst[0]}:{r1.dst[1]} (pair priority {p1}); the higher one goes first",
        )


@pytest.mark.requirement("ICE-PAIR-02")
@pytest.mark.selftest(fault="cross-component-pairs")
@pytest.mark.selftest(fault="unpruned-redundant-pair")
@pytest.mark.selftest(variant="pinging")
async def test_pairs_stay_within_component_and_family(harness: Harness) -> None:
    """ICE-PAIR-02 (RFC 8445 §6.1.2.2, §6.1.2.4): one component, one IP family per pair; checks from a base."""
    ipv6 = "ipv6" in harness.info.capabilities
    components = 2 if "multi_component" in harness.info.capabilities else 1
    hosts = ["127.0.0.1", "::1"]
    remote: dict[Address, tuple[int, int]] = {}
    lines = []
    eps: list[Endpoint] = []
    for component in range(1, components + 1):
        for host in hosts:
            ep = await harness.endpoint(f"remote c{component} {host}", host)
            eps.append(ep)
            remote[_norm(ep.address)] = (component, 6 if ":" in host else 4)
            prio = (126 << 24) + (65535 << 8) + 256 - component - (1 if ":" in host else 0) * 256
            lines.append(host_line(f"C{component}{host[:2]}", prio, ep.address, component))
    s = await harness.session(
        "controlling",
        components=components,
        remote_candidates=lines,
        interfaces=["127.0.0.1", "::1"] if ipv6 else ["127.0.0.1"],
    )
    for ep in eps:
        if ep.address[0] == "127.0.0.1":
            await ep.expect(_is_request, 10.0, what="connectivity check from the IUT")
    await harness.observe(1.5, "further checks, none of which may cross a component or an IP family")
    local = {_norm((c.address, c.port)): c for c in s.candidates}
    f = harness.findings
    checks = requests_from_iut(eps)
    f.info(f"{len(checks)} checks from {len(local)} IUT candidates to {len(eps)} harness candidates")
    for rec in checks:
        src, dst = _norm(rec.src), _norm(rec.dst)
        base = local.get(src)
        f.check(
            base is not None, "ICE-PAIR-02", f"a check left from {src}, which is no IUT candidate: {rec.describe()}"
        )
        assert base is not None
        component, version = remote[dst]
        f.check(
            base.component == component,
            "ICE-PAIR-02",
            f"a check from the IUT's component-{base.component} candidate {src[0]}:{src[1]} went to the harness's "
            f"component-{component} candidate {dst[0]}:{dst[1]}: {rec.describe()}",
        )
        f.check(
            ipaddress.ip_address(src[0]).version == version,
            "ICE-PAIR-02",
            f"a check crossed IP families, {src[0]}:{src[1]} -> {dst[0]}:{dst[1]}: {rec.describe()}",
        )
    # A redundant pair (same base, same remote; RFC 8445 §6.1.2.4) shows on the wire as two transactions alive at
    # once on one (base, remote): the older one still retransmitted after the newer started. Repeated checks of one
    # pair as new transactions, one after the other, are one pair checked again (the transaction model's repeats).
    model = model_of(eps)
    f.info(f"{len(model.pairs())} distinct (base, remote) pairs; {model.summary()}")
    for pair in model.pairs():
        txs = model.transactions(pair)
        for older, newer in itertools.combinations(txs, 2):
            overlap = [r for r in model.sends(older.txid) if r.pair == pair and r.time > newer.time]
            f.check(
                not overlap,
                "ICE-PAIR-02",
                f"two transactions alive at once on the pair {pair[0][0]}:{pair[0][1]} -> {pair[1][0]}:{pair[1][1]}: "
                f"{older.txid.hex()} was still retransmitted after {newer.txid.hex()} started (a redundant pair "
                "was not pruned)"
                if overlap
                else "",
            )


@pytest.mark.requirement("ICE-CHK-01")
@pytest.mark.selftest(fault="no-pacing")
async def test_new_checks_are_paced(harness: Harness, role: str) -> None:
    """ICE-CHK-01 (RFC 8445 §14.2): new transactions paced by Ta (50 ms default); never more than one per 5 ms."""
    eps = await open_endpoints(harness, 10, "silent remote")
    lines = [host_line(f"P{i}", 2130706431 - i * 256, ep.address) for i, ep in enumerate(eps)]
    await harness.session(role, remote_candidates=lines)
    checked = await _checked_within(eps, 10.0)
    f = harness.findings
    if len(checked) < 2:
        raise HarnessError(f"only {len(checked)} of {len(eps)} remotes got a check within 10 s: no pacing to judge")
    f.check(
        len(checked) == len(eps),
        "ICE-CHK-01",
        f"only {len(checked)} of {len(eps)} Waiting pairs got a first check within 10 s, where one new check per "
        "Ta (50 ms) would start them all in about 0.5 s",
        "pacing_ta",
    )
    firsts = _first_sends(requests_from_iut(eps))
    gaps = [b.arrived - a.arrived for a, b in itertools.pairwise(firsts)]
    f.info("gaps between new checks (ms): " + ", ".join(f"{g * 1000:.0f}" for g in gaps))
    # Kernel arrival times (not the loop's read times, which a loaded harness bunches up); loopback still adds
    # some jitter: one compressed gap is not a burst, a quarter of them is.
    tight = [g for g in gaps if g < 0.005]
    burst = any(c.arrived - a.arrived < 0.005 for a, _, c in zip(firsts, firsts[1:], firsts[2:], strict=False))
    f.check(
        len(tight) * 4 < max(len(gaps), 1) and not burst,
        "ICE-CHK-01",
        f"{len(tight)} of {len(gaps)} new checks followed the previous one within 5 ms"
        + (" (three within 5 ms)" if burst else ""),
        "global_floor",
    )
    span = firsts[-1].arrived - firsts[0].arrived
    mean = span / max(len(gaps), 1)
    f.check(
        mean >= 0.045,
        "ICE-CHK-01",
        f"{len(firsts)} new checks in {span * 1000:.0f} ms: {mean * 1000:.1f} ms apart on average, Ta is 50 ms",
        "pacing_ta",
    )


@pytest.mark.requirement("ICE-CHK-02")
@pytest.mark.selftest(fault="tiebreaker-per-check")
async def test_checks_carry_one_role_attribute_and_a_constant_tiebreaker(
    harness: Harness, expect: Expect, role: str
) -> None:
    """ICE-CHK-02 (RFC 8445 §7.1.3, §16.1): exactly one role attribute, for the role; one tie-breaker per session."""
    eps = await open_endpoints(harness, 5, "silent remote")
    lines = [host_line(f"T{i}", 2130706431 - i * 256, ep.address) for i, ep in enumerate(eps)]
    await harness.session(role, remote_candidates=lines)
    for ep in eps:
        await ep.expect(_is_request, 10.0, what="connectivity check from the IUT")
    await harness.observe(0.7, "a few retransmissions too, which must keep the role attribute and tiebreaker")
    checks = requests_from_iut(eps)
    f = harness.findings
    expected = ICE_CONTROLLING if role == "controlling" else ICE_CONTROLLED
    tiebreakers: dict[bytes, Received] = {}
    for rec in checks:
        assert rec.index is not None
        roles = [c for c, _, _ in rec.index.attributes if c in (ICE_CONTROLLED, ICE_CONTROLLING)]
        expect(rec, what=f"a check of the {role} IUT").that(
            roles == [expected], f"exactly one role attribute, 0x{expected:04x}, not {[hex(c) for c in roles]}"
        )
        value = rec.index.value(expected)
        if value is not None:
            tiebreakers.setdefault(value, rec)
    f.info(f"{len(checks)} checks, tie-breakers {[v.hex() for v in tiebreakers]}")
    f.check(
        len(tiebreakers) <= 1,
        "ICE-CHK-02",
        "the tie-breaker changed within the session without a 487: "
        + "; ".join(r.describe() for r in list(tiebreakers.values())[:3]),
    )


@pytest.mark.requirement("ICE-CHK-03")
@pytest.mark.selftest(fault="rfc3489-compat")
async def test_no_rfc3489_compatibility_and_no_alternate_server(harness: Harness) -> None:
    """ICE-CHK-03 (RFC 8445 §7.2.4, §7.3): a cookie-less Binding request gets no MAPPED-ADDRESS; never a 300."""
    x = await run_exchange(harness, "controlling")
    s = x.session
    f = harness.findings
    sender = await harness.endpoint("RFC 3489 client")
    legacy = struct.pack("!HH", 0x0001, 0) + bytes(range(1, 17))  # RFC 3489 §11.1: a 128-bit transaction ID
    sender.send(legacy, s.iut_address, note="RFC 3489 Binding request (no magic cookie)")
    answer = await sender.expect_silence(lambda r: len(r.data) >= 20 and r.data[4:20] == legacy[4:20], 3.0)
    f.check(
        answer is None or answer.data[:2] != b"\x01\x01",
        "ICE-CHK-03",
        "a cookie-less (RFC 3489) Binding request was answered with success: "
        + (answer.data[:40].hex() if answer else ""),
    )
    await sanity_probe(harness, s, "after the RFC 3489 request", "ICE-CHK-03")
    for rec in harness.received(lambda r: r.is_stun):
        assert rec.index is not None
        code = rec.value("ERROR-CODE")
        f.check(
            not rec.has("ALTERNATE-SERVER") and not (code is not None and len(code) >= 4 and code[2] & 7 == 3),
            "ICE-CHK-03",
            f"the ICE agent used ALTERNATE-SERVER or a 300: {rec.describe()}",
        )


@pytest.mark.requirement("ICE-CHK-04")
@pytest.mark.parametrize("variant", ["other-port", "other-ip"])
@pytest.mark.selftest(fault="accept-asymmetric")
@pytest.mark.selftest(variant="pinging", verdict="INFO")
async def test_response_from_a_wrong_address_fails_the_pair(harness: Harness, expect: Expect, variant: str) -> None:
    """ICE-CHK-04 (RFC 8445 §7.2.5.2.1): a response that does not mirror the request fails the pair."""
    peer = await harness.peer()
    peer.auto_respond = False
    ep = peer.endpoint
    if variant == "other-port":
        forger = await harness.endpoint("forged responder")
    else:  # the same port on another loopback address: only the IP differs
        forger = await harness.endpoint("forged responder", "127.0.0.2", ep.address[1])

    def forge(rec: Received) -> None:
        if peer.is_valid_check(rec):
            forger.send(bytes(peer.success(rec)), rec.src, note=f"response from {forger.address}")

    unhook = ep.on_datagram(forge)
    await harness.session("controlling", peer=peer)
    first = await ep.expect(_is_request, 10.0, what="connectivity check from the IUT")
    f = harness.findings
    earlier = {r.transaction_id for r in ep.find(_is_request)}
    nomination = await ep.expect_silence(
        lambda r: _is_request(r) and r.transaction_id not in earlier and r.index is not None and r.has("USE-CANDIDATE"),
        3.0,
    )
    unhook()
    # An agent that puts USE-CANDIDATE on its checks before any pair succeeded (aggressive nomination) sends the
    # next one whatever the response was: only its selecting the pair, not a new USE-CANDIDATE check, shows that
    # the forged response validated it.
    aggressive = [r for r in ep.find(_is_request) if r.index is not None and r.has("USE-CANDIDATE")]
    if nomination is not None and aggressive and aggressive[0].time <= first.time:
        if not harness.log.of("selected_pair"):
            f.inconclusive(
                "ICE-CHK-04",
                f"USE-CANDIDATE already on the IUT's first check ({aggressive[0].describe()}): a later "
                f"USE-CANDIDATE check ({nomination.describe()}) proves nothing about the forged response, and the "
                "IUT selected no pair",
            )
        nomination = None
    forged = (
        f"after its check {first.transaction_id.hex()} was answered from {forger.address[0]}:{forger.address[1]} "
        f"instead of {ep.address[0]}:{ep.address[1]}"
    )
    expect(nomination, what=forged).silence("no nomination of the pair")
    selected = harness.log.of("selected_pair")
    f.check(not selected, "ICE-CHK-04", f"the IUT selected a pair validated only by a forged response: {selected}")
    failed = await harness.log.wait("state", lambda n: n.params.get("state") == "failed", 0.5)
    f.info("ICE failed, as it should with its only pair failed" if failed else "no 'failed' state reported yet")


@pytest.mark.slow
@pytest.mark.budget(120)
@pytest.mark.requirement("STUN-RTX-01", "ICE-CHK-05")
@pytest.mark.selftest(fault="fast-retransmit", verdict="NON-STRICT", requirement="STUN-RTX-01")
@pytest.mark.selftest(fault="never-fail-pair", requirement="ICE-CHK-05")
async def test_unanswered_check_retransmits_on_schedule_then_fails_the_pair(harness: Harness) -> None:
    """STUN-RTX-01 (RFC 8489 §6.2.1), ICE-CHK-05 (RFC 8445 §7.2.5.2.3): Rc = 7 sends doubling from RTO, then Failed."""
    peer = await harness.peer()
    peer.auto_respond = False
    await harness.session("controlling", peer=peer)
    ep = peer.endpoint
    first = await ep.expect(_is_request, 10.0, what="connectivity check from the IUT")
    txid = first.transaction_id
    watch = 75.0  # 39.5 s at RFC timers; the last 20 s of the window catch a pair that never fails
    failed = await harness.log.wait("state", lambda n: n.params.get("state") == "failed", watch)
    if failed is not None:
        await harness.observe(2.0, "no further transmission of the failed check")
    sends = [r for r in ep.find(_is_request) if r.transaction_id == txid]
    everything = ep.find(_is_request)
    offsets = [r.arrived - first.arrived for r in sends]  # kernel arrivals: the IUT's schedule, not our reads
    f = harness.findings
    failed_at = failed.time - first.arrived if failed is not None else None
    f.info(
        "sends at "
        + ", ".join(f"{o:.2f}" for o in offsets)
        + " s; "
        + (f"ICE failed at {failed_at:.1f} s" if failed_at is not None else f"no 'failed' state within {watch:g} s")
    )
    gaps = [b - a for a, b in itertools.pairwise(offsets)]
    f.check(len(sends) == 7, "STUN-RTX-01", f"{len(sends)} transmissions of {txid.hex()}, Rc is 7", "schedule")
    if gaps:
        f.check(
            gaps[0] >= 0.49,
            "STUN-RTX-01",
            f"first retransmission after {gaps[0] * 1000:.0f} ms (RTO >= 500 ms)",
            "schedule",
        )
        doubling = all(0.8 * 2 * a <= b <= 1.25 * 2 * a + 0.1 for a, b in itertools.pairwise(gaps))
        f.check(doubling, "STUN-RTX-01", f"gaps {[round(g, 2) for g in gaps]} s do not double", "schedule")
    if failed_at is None:
        # The pair never showed as failed: it must at least have stopped (no transmission late in the window).
        late = [r for r in everything if r.time - first.time > watch - 20.0]
        f.check(
            not late,
            "ICE-CHK-05",
            f"the only pair's checks went unanswered and the IUT still checked it {late[0].time - first.time:.1f} s "
            f"after the first send ({len(everything)} transmissions, ICE never failed): the transaction timeout did "
            "not fail the pair"
            if late
            else "",
        )
        f.info("the IUT stopped checking the pair but reported no 'failed' state")
        return
    late = [r for r in everything if r.time > first.time + failed_at + 0.5]
    f.check(not late, "ICE-CHK-05", f"checks on the failed pair after ICE failed: {[r.describe() for r in late[:2]]}")
    if len(sends) == 7 and gaps:
        expected = offsets[-1] + 16 * gaps[0]
        f.check(
            0.9 * expected <= failed_at <= expected + 5.0,
            "STUN-RTX-01",
            f"ICE failed {failed_at:.1f} s after the first send; Rm x RTO after the last send is {expected:.1f} s",
            "schedule",
        )


@pytest.mark.requirement("ICE-CHK-06")
@pytest.mark.selftest(fault="answer-first-candidate-only")
async def test_checks_are_answered_on_every_candidate(harness: Harness, expect: Expect) -> None:
    """ICE-CHK-06 (RFC 8445 §7.3): a valid check to any candidate the IUT signalled gets a success from it."""
    ipv6 = "ipv6" in harness.info.capabilities
    components = 2 if "multi_component" in harness.info.capabilities else 1
    s = await harness.session(
        "controlling", components=components, interfaces=["127.0.0.1", "::1"] if ipv6 else ["127.0.0.1"]
    )
    f = harness.findings
    peer = s.peer
    senders = {4: peer.endpoint}
    if ipv6:
        senders[6] = await harness.endpoint("harness IPv6", "::1")
    targets = [c for c in s.candidates if c.kind == "host" and c.protocol == "udp"]
    f.check(len(targets) >= 1, "ICE-CHK-06", f"the IUT signalled no UDP host candidate: {s.local}")
    f.info(f"checking {len(targets)} IUT candidates")
    for c in targets:
        version = ipaddress.ip_address(c.address).version
        ep = senders.get(version)
        if ep is None:
            continue
        data = bytes(peer.check())
        since = ep.now()
        ep.send(data, (c.address, c.port), note=f"check to IUT candidate {c.address}:{c.port}")
        reply = await ep.expect(
            lambda r, t=data[8:20]: r.is_stun and r.transaction_id == t,  # type: ignore[misc]
            3.0,
            since=since,
            what=f"response from the IUT candidate {c.address}:{c.port} (component {c.component})",
            findings=f,
            requirement="ICE-CHK-06",
        )
        expect(reply, what=f"the check to {c.address}:{c.port}").that(
            reply.is_type(BINDING, SUCCESS) and _norm(reply.src) == _norm((c.address, c.port)),
            f"a Binding success response from {c.address}:{c.port}",
        )


@pytest.mark.requirement("ICE-CHK-07")
@pytest.mark.selftest(fault="drop-early-checks")
@pytest.mark.selftest(fault="no-triggered-check")
async def test_check_before_the_answer_is_answered_then_triggers_a_check(harness: Harness, expect: Expect) -> None:
    """ICE-CHK-07 (RFC 8445 §7.3): a check before the answer gets a success; the triggered check follows the answer."""
    peer = await harness.peer()
    early = await harness.endpoint("early checker (not in the answer)")
    s = await harness.session("controlling", peer=peer, signal_remote=False)
    data = bytes(peer.check())
    since = early.now()
    early.send(data, s.iut_address, note="check before the answer")
    reply = await early.expect(
        lambda r: r.is_stun and r.transaction_id == data[8:20],
        2.0,
        since=since,
        what="response to a check sent before the answer",
        findings=harness.findings,
        requirement="ICE-CHK-07",
    )
    expect(reply, what="a check sent before the answer").success(BINDING)

    def answer_early(rec: Received) -> None:
        if peer.is_valid_check(rec):
            early.send(bytes(peer.success(rec)), rec.src)

    unhook = early.on_datagram(answer_early)
    answered = early.now()
    await s.signal_remote()
    await early.expect(
        lambda r: peer.is_valid_check(r),
        3.0,
        since=answered,
        what=f"triggered check to {early.address[0]}:{early.address[1]} (the early checker) after the answer",
        findings=harness.findings,
        requirement="ICE-CHK-07",
    )
    unhook()


@pytest.mark.requirement("ICE-CHK-09")
@pytest.mark.selftest(fault="data-on-highest-pair")
async def test_data_goes_only_on_the_selected_pair(harness: Harness, role: str) -> None:
    """ICE-CHK-09 (RFC 8445 §12.1): once a pair is selected, data uses only that pair; never a non-valid pair."""
    silent = await harness.endpoint("silent remote (higher priority, never answered)")
    peer = await harness.peer()
    lines = [host_line("HI", 2130706431, silent.address), *peer.candidates(priority_offset=1 << 24)]
    x = await run_exchange(harness, role, peer=peer, remote_candidates=lines)
    f = harness.findings
    if x.selected is None:
        f.info("no selected pair was reported; data is judged against the nominated harness candidate")
    local = parse_candidate(str(x.selected.params["local"])) if x.selected is not None else None
    for i in range(5):
        await harness.iut.send(x.session.agent, 1, b"\x80" + bytes([i]) * 40)
    ep = peer.endpoint
    await ep.expect(
        lambda r: not r.is_stun and r.data[:1] == b"\x80",
        3.0,
        what="data from the IUT",
        findings=f,
        requirement="ICE-CHK-09",
        clause="selected_only",
    )
    # Every datagram of the five is in (on the selected pair or elsewhere), or half a second has passed.
    await harness.wait(lambda _: len(harness.received(_sent_data)) >= 5, 0.5, since=0.0)
    stray = silent.find(lambda r: not r.is_stun)
    f.check(
        not stray,
        "ICE-CHK-09",
        f"{len(stray)} data datagrams went to {silent.address[0]}:{silent.address[1]}, a candidate whose checks "
        "were never answered (no valid pair), while another pair was selected",
        "selected_only",
    )
    if local is not None:
        wrong = [r for r in ep.find(lambda r: not r.is_stun) if _norm(r.src) != _norm((local.address, local.port))]
        f.check(
            not wrong,
            "ICE-CHK-09",
            f"data left from {wrong[0].src if wrong else ''}, not from the selected local candidate "
            f"{local.address}:{local.port}",
            "selected_only",
        )
