"""Gathering server-reflexive candidates through the harness's STUN servers (RFC 8445 §5.1.1.2-§5.1.1.3, RFC 8839
§5.1, RFC 5389 §12.1).

The IUT gets one or more STUN servers (``create_agent`` ``stun_servers``, docs/adapter-contract.md) that report a
scripted mapped address on another loopback address, as a NAT in front of the IUT would, and the cases judge the
requests at the servers and the candidate lines the IUT then offers. Gathering does not depend on the ICE role,
except that an answering (controlled) IUT gathers after it has the offer: the candidate cases run in both roles, the
transaction-level ones as the offerer. The relayed side (Allocate) is in suites/turn_client/test_gathering_relay.py.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pytest

from conformance.packets import attribute_code
from conformance.protocol.candidate import Candidate, format_candidate
from conformance.tester.endpoint import Address
from conformance.tester.harness import Harness
from conformance.tester.ice import IceSession
from conformance.tester.stun_server import StunServer, nat_mapping
from conformance.verdict import UnsupportedFeature

#: The loopback addresses of the harness's STUN servers (distinct IPs, so foundations must differ, §5.1.1.3).
SERVER_HOSTS = ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
#: §14.2: no agent may start transactions more often than every 5 ms; Ta defaults to 50 ms.
TA_FLOOR, TA_DEFAULT = 0.005, 0.050
PRIVACY = {("0.0.0.0", 9), ("::", 9)}
#: Every case hands the IUT STUN servers: an adapter that does not deliver them gives these cases nothing to grade.
pytestmark = pytest.mark.needs("stun_client")


@dataclass
class Gathered:
    """One gathering run: the IUT's session and the servers it was given."""

    session: IceSession
    servers: list[StunServer]

    @property
    def hosts(self) -> set[Address]:
        """The IUT's host candidates (component 1, UDP)."""
        return set(self.session.iut_addresses())

    def srflx(self) -> list[Candidate]:
        """The server-reflexive candidate lines the IUT offered."""
        return [c for c in self.session.candidates if c.kind == "srflx"]

    def sources(self, server: StunServer) -> dict[Address, set[bytes]]:
        """Per IUT source address, the transactions of the Binding requests this server received (RFC 3489 ones
        included)."""
        out: dict[Address, set[bytes]] = {}
        for rec in server.records:
            out.setdefault(rec.request.src, set()).add(rec.transaction)
        return out

    def mapped_by(self, address: Address) -> StunServer | None:
        """The server that reported ``address`` as a mapped address, if any."""
        return next((s for s in self.servers for rec in s.records if rec.mapped == address), None)

    def describe(self) -> str:
        return "; ".join(f"{s.address[0]}:{s.address[1]}: {len(s.requests)} requests" for s in self.servers)


async def gather(
    h: Harness, role: str = "controlling", count: int = 1, *, rfc3489: bool = False, nat: bool = True
) -> Gathered:
    """An IUT agent given ``count`` STUN servers on distinct loopback IPs, each mapping it behind its own NAT address
    (``nat=False``: no NAT, the mapped address is the source); returns after gathering (no checks started)."""
    servers = []
    for i in range(count):
        mapping = nat_mapping(f"127.0.0.{99 - i}", 1111 + i) if nat else None
        server = await StunServer.open(
            h.capture, SERVER_HOSTS[i], f"STUN server {i + 1}", mapping=mapping, rfc3489=rfc3489
        )
        servers.append(server)

        async def close(server: StunServer = server) -> None:
            server.close()

        h.defer(close)
    session = await h.session(role, stun_servers=[s.spec for s in servers], connect=False)
    for s in servers:
        for rec in s.records:
            if rec.mapped is not None and rec.mapped != rec.request.src:
                h.capture.label(rec.mapped, f"NAT mapping of {rec.request.src[0]}:{rec.request.src[1]}")
    g = Gathered(session, servers)
    offered = session.local.candidates if session.local is not None else []
    h.findings.info(f"gathering: {g.describe()}; candidates offered: {' | '.join(offered) or 'none'}")
    return g


def _line(c: Candidate) -> str:
    """The candidate as its attribute value, for messages."""
    return format_candidate(c)


def _queried(g: Gathered) -> None:
    """UNSUPPORTED unless some server got a request: an IUT that does not query its STUN server gives these cases
    nothing to judge (ICE-GATH-05 grades the missing srflx candidate)."""
    if not any(s.requests for s in g.servers):
        raise UnsupportedFeature("no Binding request reached the harness's STUN servers (see ICE-GATH-05)")


def _type_pref(c: Candidate) -> int:
    return c.priority >> 24


@pytest.mark.requirement("ICE-GATH-01")
@pytest.mark.selftest(fault="stun-from-side-socket", verdict="NON-STRICT")
async def test_one_request_per_pairing_from_the_host_candidate(harness: Harness) -> None:
    """ICE-GATH-01 (RFC 8445 §5.1.1.2): each (host candidate, server) pairing gets a Binding request from that host
    candidate; two servers on distinct IPs. An unqueried second server is INFO (8445 lets an agent use one)."""
    g = await gather(harness, count=2)
    f = harness.findings
    f.check(
        any(s.requests for s in g.servers),
        "ICE-GATH-01",
        f"the IUT was given 2 STUN servers and sent a Binding request to neither ({g.describe()})",
    )
    for s in g.servers:
        by_source = g.sources(s)
        if not by_source:
            f.info(f"STUN server {s.spec} was not queried (RFC 8445 §5.1.1.2: MAY gather from every server)")
        for src, txids in by_source.items():
            f.check(
                src in g.hosts,
                "ICE-GATH-01",
                f"a Binding request reached STUN server {s.spec} from {src[0]}:{src[1]}, which is none of the IUT's "
                f"host candidates {sorted(g.hosts)}: the request is to leave from the host candidate it pairs",
            )
            if len(txids) > 1:
                f.info(f"{len(txids)} transactions from {src[0]}:{src[1]} to {s.spec} (one per pairing expected)")
    missing = [(s.spec, host) for s in g.servers if s.requests for host in g.hosts if host not in g.sources(s)]
    for spec, host in missing:
        f.info(f"host candidate {host[0]}:{host[1]} was not paired with STUN server {spec}")


@pytest.mark.requirement("ICE-GATH-02")
@pytest.mark.selftest(fault="authenticated-stun-binding", verdict="NON-STRICT")
async def test_binding_requests_to_the_stun_server_are_not_authenticated(harness: Harness) -> None:
    """ICE-GATH-02 (RFC 8445 §5.1.1.2): no USERNAME, no MESSAGE-INTEGRITY(-SHA256) towards a STUN server.
    SEC-03 (test_security.py) covers ALTERNATE-SERVER in the same sentence."""
    g = await gather(harness)
    _queried(g)
    for rec in g.servers[0].records:
        types = rec.attribute_types
        found = [n for n in ("USERNAME", "MESSAGE-INTEGRITY", "MESSAGE-INTEGRITY-SHA256") if attribute_code(n) in types]
        harness.findings.check(
            not found,
            "ICE-GATH-02",
            f"the Binding request to the STUN server carries {', '.join(found)}: {rec.request.describe()}",
        )


@pytest.mark.requirement("ICE-GATH-03")
@pytest.mark.selftest(fault="no-mapped-address-fallback")
async def test_an_rfc3489_answer_still_yields_a_server_reflexive_candidate(harness: Harness) -> None:
    """ICE-GATH-03 (RFC 8445 §5.1.1.2, RFC 5389 §12.1): MAPPED-ADDRESS without XOR-MAPPED-ADDRESS is read.

    Cause and effect: a first agent is given an RFC 5389 server with the same scripted NAT; only an IUT that offers
    a srflx candidate from that answer is judged on the RFC 3489 one."""
    control = await gather(harness)
    _queried(control)
    if not any(c.kind == "srflx" for c in control.session.candidates):
        raise UnsupportedFeature("with an XOR-MAPPED-ADDRESS answer the IUT offered no srflx candidate (ICE-GATH-05)")
    g = await gather(harness, rfc3489=True)
    _queried(g)
    answered = {rec.mapped for rec in g.servers[0].records if rec.mapped is not None}
    offered = {(c.address, c.port) for c in g.srflx()}
    harness.findings.check(
        bool(answered & offered),
        "ICE-GATH-03",
        f"the STUN server answered in the RFC 3489 style (MAPPED-ADDRESS {sorted(answered)}, SOURCE-ADDRESS, "
        f"CHANGED-ADDRESS, no XOR-MAPPED-ADDRESS) and the IUT offered no srflx candidate there "
        f"(srflx offered: {sorted(offered) or 'none'}); with XOR-MAPPED-ADDRESS it did",
    )


@pytest.mark.requirement("ICE-GATH-04")
@pytest.mark.selftest(fault="gathering-burst", verdict="NON-STRICT")
async def test_gathering_transactions_are_paced_by_ta(harness: Harness) -> None:
    """ICE-GATH-04 (RFC 8445 §5.1.1.2, §14.2): new gathering transactions start at most once per Ta. Three servers;
    retransmissions (same transaction ID) are left out. Below 5 ms is NON-STRICT; below 50 ms, INFO."""
    g = await gather(harness, count=3)
    firsts: dict[bytes, float] = {}
    for s in g.servers:
        for rec in s.records:
            t = rec.request.arrived  # kernel arrival: a loaded harness reads queued requests back to back
            firsts[rec.transaction] = min(firsts.get(rec.transaction, t), t)
    starts = sorted(firsts.values())
    f = harness.findings
    if len(starts) < 2:
        raise UnsupportedFeature(
            f"{len(starts)} gathering transaction(s) for 3 STUN servers (the IUT takes one server): no pacing to judge "
            f"({g.describe()})"
        )
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    f.info("gaps between new gathering transactions (ms): " + ", ".join(f"{x * 1000:.1f}" for x in gaps))
    short = [x for x in gaps if x < TA_DEFAULT]
    if short:
        f.info(f"{len(short)} gap(s) under the default Ta of 50 ms (a shorter Ta is allowed, §14.2)")
    f.check(
        min(gaps) >= TA_FLOOR,
        "ICE-GATH-04",
        f"{len(starts)} gathering transactions started with a gap of {min(gaps) * 1000:.2f} ms, under the 5 ms that "
        f"no Ta may go below (RFC 8445 §14.2): more than one new transaction per Ta",
    )


@pytest.mark.requirement("ICE-GATH-05", "ICE-GATH-06")
@pytest.mark.selftest(fault="srflx-raddr-mapped", verdict="NON-STRICT", requirement="ICE-GATH-06")
async def test_srflx_carries_the_mapped_address_and_its_base(harness: Harness, role: str) -> None:
    """ICE-GATH-05 (RFC 8445 §5.1.1.2): a srflx candidate at the mapped address the server reported (behind a
    scripted NAT on 127.0.0.99). ICE-GATH-06 (RFC 8839 §5.1): its raddr/rport are present and are its base, the
    host candidate the Binding request left from."""
    g = await gather(harness, role)
    f = harness.findings
    answered = {rec.mapped: rec.request.src for rec in g.servers[0].records if rec.mapped is not None}
    mine = [c for c in g.srflx() if (c.address, c.port) in answered]
    f.check(
        bool(mine),
        "ICE-GATH-05",
        f"the STUN server reported mapped address(es) {sorted(answered) or '(no request reached it)'} and the IUT "
        f"offered no srflx candidate there (srflx offered: {[_line(c) for c in g.srflx()] or 'none'})",
    )
    for c in mine:
        base = answered[(c.address, c.port)]
        related = (c.related_address, c.related_port)
        f.check(
            c.related_address is not None and c.related_port is not None,
            "ICE-GATH-06",
            f"srflx candidate {_line(c)} has no raddr/rport",
            "present",
        )
        f.check(
            related == base or related in PRIVACY,
            "ICE-GATH-06",
            f"srflx candidate {_line(c)} gives raddr {related[0]} rport {related[1]}; its base, the host "
            f"candidate whose Binding request got this mapping, is {base[0]}:{base[1]} (a hidden one is 0.0.0.0 or :: "
            "with port 9)",
            "base",
        )
    stray = [c for c in g.srflx() if (c.address, c.port) not in answered]
    if stray:
        f.info(f"srflx candidates at addresses no harness server reported: {[_line(c) for c in stray]}")


@pytest.mark.requirement("ICE-GATH-07")
@pytest.mark.selftest(fault="srflx-host-priority")
async def test_srflx_type_preference_sits_between_host_and_relayed(harness: Harness, role: str) -> None:
    """ICE-GATH-07 (RFC 8445 §5.1.2.1, §5.1.2.2): srflx type preference differs from host (MUST) and is below it
    (SHOULD); relayed, if offered, is below srflx. UDP candidates only (TCP ones follow RFC 6544)."""
    g = await gather(harness, role)
    srflx = g.srflx()
    f = harness.findings
    if not srflx:
        raise UnsupportedFeature("the IUT offered no srflx candidate: no type preference to judge (see ICE-GATH-05)")
    # UDP candidates only: TCP candidates follow the type preferences of RFC 6544 §4.2, outside these rows.
    udp = [c for c in g.session.candidates if c.protocol == "udp"]
    host = [c for c in udp if c.kind == "host"]
    relay = [c for c in udp if c.kind == "relay"]
    for s in srflx:
        for c in host + relay:
            f.check(
                _type_pref(s) != _type_pref(c),
                "ICE-GATH-07",
                f"srflx {_line(s)} and {c.kind} {_line(c)} have the same type preference {_type_pref(s)} "
                "(priority >> 24)",
                "distinct",
            )
        for c in host:
            f.check(
                _type_pref(c) > _type_pref(s),
                "ICE-GATH-07",
                f"srflx type preference {_type_pref(s)} is not below host {_type_pref(c)}: {_line(s)} / {_line(c)}",
                "order",
            )
        for c in relay:
            f.check(
                _type_pref(s) > _type_pref(c),
                "ICE-GATH-07",
                f"srflx type preference {_type_pref(s)} is not above relayed {_type_pref(c)}: {_line(s)} / {_line(c)}",
                "order",
            )


@pytest.mark.requirement("ICE-CAND-02")
@pytest.mark.selftest(fault="redundant-candidates", verdict="NON-STRICT")
async def test_srflx_equal_to_the_host_candidate_is_eliminated(harness: Harness, role: str) -> None:
    """ICE-CAND-02 (RFC 8445 §5.1.3) while gathering: with no NAT the mapped address is the host candidate itself;
    a srflx candidate with that transport address and base is redundant and should be dropped."""
    g = await gather(harness, role, nat=False)
    # The base of a srflx is the host candidate whose request got its mapping (raddr may hide it, RFC 8839 §5.1).
    bases = {rec.mapped: rec.request.src for s in g.servers for rec in s.records if rec.mapped is not None}
    seen: dict[tuple[str, int, str | None, int | None], Candidate] = {}
    for c in g.session.candidates:
        if c.component != 1 or c.protocol != "udp":
            continue
        base = (
            (c.address, c.port)
            if c.kind == "host"
            else bases.get((c.address, c.port), (c.related_address, c.related_port))
        )
        if c.kind not in ("host", "srflx"):
            continue
        key = (c.address, c.port, base[0], base[1])
        harness.findings.check(
            key not in seen,
            "ICE-CAND-02",
            f"redundant candidates with the same transport address and base: "
            f"{_line(seen[key]) if key in seen else ''} / {_line(c)} (the STUN server reported the host address "
            "itself, as with no NAT)",
        )
        seen[key] = c


@pytest.mark.requirement("ICE-GATH-11")
@pytest.mark.selftest(fault="shared-srflx-foundation", verdict="NON-STRICT")
async def test_foundations_follow_type_base_and_server(harness: Harness) -> None:
    """ICE-GATH-11 (RFC 8445 §5.1.1.3): srflx candidates from two STUN servers on different IPs have different
    foundations, and a host and a srflx candidate never share one (one interface: the same-foundation side of the
    rule needs two candidates of one type, base IP and server, which one host candidate cannot give)."""
    g = await gather(harness, count=2)
    f = harness.findings
    srflx = g.srflx()
    host = [c for c in g.session.candidates if c.kind == "host"]
    for s in srflx:
        for c in host:
            f.check(
                s.foundation != c.foundation,
                "ICE-GATH-11",
                f"host {_line(c)} and srflx {_line(s)} share foundation {s.foundation!r}: their types differ",
            )
    by_server: dict[Address, list[Candidate]] = {}
    for s in srflx:
        server = g.mapped_by((s.address, s.port))
        if server is not None:
            by_server.setdefault(server.address, []).append(s)
    if len(by_server) < 2:
        f.info(f"srflx candidates from {len(by_server)} of the 2 servers: the per-server rule is not exercised")
    servers = sorted(by_server)
    for i, a in enumerate(servers):
        for b in servers[i + 1 :]:
            for x in by_server[a]:
                for y in by_server[b]:
                    same_base = (x.related_address == y.related_address) and x.component == y.component
                    if not same_base:
                        continue
                    f.check(
                        x.foundation != y.foundation,
                        "ICE-GATH-11",
                        f"srflx {_line(x)} (STUN server {a[0]}) and srflx {_line(y)} (STUN server {b[0]}) share "
                        f"foundation {x.foundation!r}: the servers have different IP addresses",
                    )
