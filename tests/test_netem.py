"""Self-tests of the userspace network emulator on plain loopback sockets, no IUT (RFC 4787 §4.1, §4.3, §5, §6).

Every wait is a future with a deadline: deliveries are awaited on the receiving socket, drops on the emulator's
counters (:meth:`Network.until`), so a negative check passes the moment the emulator has counted the drop.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from conformance.netem import (
    TOPOLOGIES,
    AddressPlan,
    Filtering,
    MappingBehavior,
    NatBehavior,
    Network,
    SideSpec,
    Topology,
)
from conformance.packets import STUN, attr, parse
from conformance.tester.capture import Capture, write_pcap
from conformance.tester.endpoint import Endpoint
from conformance.tester.turn_client import TurnClient
from conformance.tester.turn_server import TurnServer

T = TypeVar("T")
Address = tuple[str, int]

EIM, ADM, APDM = (
    MappingBehavior.ENDPOINT_INDEPENDENT,
    MappingBehavior.ADDRESS_DEPENDENT,
    MappingBehavior.ADDRESS_AND_PORT_DEPENDENT,
)
EIF, ADF, APDF = Filtering.ENDPOINT_INDEPENDENT, Filtering.ADDRESS_DEPENDENT, Filtering.ADDRESS_AND_PORT_DEPENDENT
WAIT = 3.0  # generous deadline for a delivery on a loaded CI machine; passing cases return at once

PLAN = AddressPlan.for_worker(os.environ.get("PYTEST_XDIST_WORKER", "master"), offset=100)
#: Real "public servers" outside the emulated network (registered as upstreams, reached through proxies).
H1, H2 = f"127.55.{PLAN.slot}.1", f"127.55.{PLAN.slot}.2"


def run(coro_fn: Callable[[], Awaitable[T]], deadline: float = 20.0) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(coro_fn(), deadline)

    return asyncio.run(bounded())


class Peer(asyncio.DatagramProtocol):
    """A plain UDP socket with a bounded inbox: stands for an IUT or a public host."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[tuple[bytes, Address, float]] = asyncio.Queue(maxsize=4096)
        self.transport: asyncio.DatagramTransport | None = None
        self.address: Address = ("", 0)

    @classmethod
    async def open(cls, host: str, port: int = 0) -> Peer:
        loop = asyncio.get_running_loop()
        transport, peer = await loop.create_datagram_endpoint(cls, local_addr=(host, port))
        peer.transport = transport
        sock = transport.get_extra_info("sockname")
        peer.address = (sock[0], sock[1])
        return peer

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if not self.inbox.full():
            self.inbox.put_nowait((data, (addr[0], addr[1]), asyncio.get_running_loop().time()))

    def send(self, data: bytes, to: Address) -> None:
        assert self.transport is not None
        self.transport.sendto(data, to)

    async def recv(self, timeout: float = WAIT) -> tuple[bytes, Address, float]:
        return await asyncio.wait_for(self.inbox.get(), timeout)

    def received(self) -> list[tuple[bytes, Address]]:
        out = []
        while not self.inbox.empty():
            data, src, _ = self.inbox.get_nowait()
            out.append((data, src))
        return out

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def stun_mapping(peer: Peer, net: Network, side: str = "a") -> Address:
    """The XOR-MAPPED-ADDRESS the emulator's STUN server returns to ``peer`` (RFC 8489 §14.2)."""
    request = STUN(type=0x0001, attributes=[attr.Fingerprint()])
    peer.send(bytes(request), net.stun_server(side))  # type: ignore[arg-type]
    data, src, _ = await peer.recv()
    assert src == net.stun_server(side)  # type: ignore[arg-type]
    msg = parse(data)
    assert msg.type == 0x0101 and msg.transaction_id == request.transaction_id
    xma = next(a for a in msg.attributes if a.attribute_name == "XOR-MAPPED-ADDRESS")
    return (xma.address, xma.port)


def one_nat(mapping: MappingBehavior = EIM, filtering: Filtering = EIF, **kw: Any) -> Topology:
    return Topology("test", a=SideSpec(nat=NatBehavior(mapping=mapping, filtering=filtering, **kw)))


async def drops(net: Network, reason: str, count: int) -> None:
    await net.until(lambda: net.stats.drops(reason) >= count, WAIT)


# ---------------------------------------------------------------------------------------------------------------
# Mapping (RFC 4787 §4.1) and the STUN server
# ---------------------------------------------------------------------------------------------------------------


def test_netem_stun_binding_returns_the_external_mapping() -> None:
    async def main() -> None:
        async with Network(one_nat(), plan=PLAN) as net:
            a = await Peer.open(net.interface("a"))
            mapped = await stun_mapping(a, net)
            assert mapped[0] == PLAN.external_ip("a") and mapped != a.address
            assert net.mappings("a") == [(a.address, mapped)]
            assert net.stats.stun_answered == 1
            a.close()

    run(main)


def test_netem_stun_answers_an_rfc3489_request_with_mapped_address() -> None:
    """A cookie-less RFC 3489 Binding request (as libnice sends for discovery) gets MAPPED-ADDRESS (RFC 5389 §12.2)."""

    async def main() -> None:
        async with Network(one_nat(), plan=PLAN) as net:
            a = await Peer.open(net.interface("a"))
            txid = bytes(range(16))
            a.send(b"\x00\x01\x00\x00" + txid, net.stun_server("a"))  # type: ignore[arg-type]
            data, _, _ = await a.recv()
            assert data[:2] == b"\x01\x01" and data[4:20] == txid
            msg = STUN(data)
            mapped = next(x for x in msg.attributes if x.attribute_name == "MAPPED-ADDRESS")
            assert (mapped.address, mapped.port) == net.mappings("a")[0][1]
            a.close()

    run(main)


@pytest.mark.parametrize(
    ("mapping", "distinct"),
    [(EIM, 1), (ADM, 2), (APDM, 3)],
    ids=["eim", "adm", "apdm"],
)
def test_netem_mapping_behaviour_seen_by_public_hosts(mapping: MappingBehavior, distinct: int) -> None:
    """EIM: one external for all; ADM: one per destination IP; APDM: one per destination (IP, port)."""

    async def main() -> None:
        async with Network(one_nat(mapping), plan=PLAN, upstreams=[H1, H2]) as net:
            a = await Peer.open(net.interface("a"))
            hosts = [await Peer.open(H1), await Peer.open(H1), await Peer.open(H2)]
            seen = []
            for h in hosts:
                a.send(b"probe", net.public_address(h.address))
                data, src, _ = await h.recv()
                assert data == b"probe" and src[0] == PLAN.external_ip("a")
                seen.append(src)
            assert len(set(seen)) == distinct
            if mapping is ADM:
                assert seen[0] == seen[1] != seen[2]
            for p in [a, *hosts]:
                p.close()

    run(main)


# ---------------------------------------------------------------------------------------------------------------
# Filtering (RFC 4787 §5)
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filtering", "admitted"),
    [(EIF, [True, True, True]), (ADF, [True, True, False]), (APDF, [True, False, False])],
    ids=["eif", "adf", "apdf"],
)
def test_netem_filtering_behaviour(filtering: Filtering, admitted: list[bool]) -> None:
    """After the inside sent to H1:p1 only: EIF admits anyone; ADF any port of H1; APDF only H1:p1."""

    async def main() -> None:
        async with Network(one_nat(EIM, filtering), plan=PLAN, upstreams=[H1, H2]) as net:
            a = await Peer.open(net.interface("a"))
            h1, h1b, h2 = await Peer.open(H1), await Peer.open(H1), await Peer.open(H2)
            a.send(b"open", net.public_address(h1.address))
            _, external, _ = await h1.recv()
            for n, (host, ok) in enumerate(zip((h1, h1b, h2), admitted, strict=True)):
                host.send(f"in {n}".encode(), external)
                if ok:
                    data, src, _ = await a.recv()
                    assert data == f"in {n}".encode() and src == net.public_address(host.address)
                else:
                    await drops(net, "filtered", admitted[:n].count(False) + 1)
            assert a.received() == [] and net.stats.drops("filtered") == admitted.count(False)
            for p in (a, h1, h1b, h2):
                p.close()

    run(main)


def test_netem_unsolicited_traffic_to_an_unused_port_has_no_mapping() -> None:
    async def main() -> None:
        async with Network(one_nat(), plan=PLAN, upstreams=[H1]) as net:
            a = await Peer.open(net.interface("a"))
            h = await Peer.open(H1)
            external = await stun_mapping(a, net)
            net.rebind("a")  # the socket stays as a counting sink
            h.send(b"x", external)
            await drops(net, "no-mapping", 1)
            assert a.received() == []
            a.close()
            h.close()

    run(main)


# ---------------------------------------------------------------------------------------------------------------
# Loss, delay, rebinding, hairpinning, black holes
# ---------------------------------------------------------------------------------------------------------------


async def _lossy_run(seed: int) -> tuple[set[int], int]:
    topo = Topology("lossy", a=SideSpec(loss=0.10))
    async with Network(topo, plan=PLAN, seed=seed) as net:
        a, b = await Peer.open(net.interface("a")), await Peer.open(net.interface("b"))
        to_b = net.reachable_address("b", b.address)
        got: set[int] = set()
        for chunk in range(10):  # 1000 datagrams, 100 at a time so no socket buffer overflows
            for i in range(chunk * 100, chunk * 100 + 100):
                a.send(i.to_bytes(2, "big"), to_b)
            done = (chunk + 1) * 100
            await net.until(lambda: net.stats.forwarded + net.stats.drops("lost") >= done, WAIT)  # noqa: B023
            while len(got) < net.stats.forwarded:
                data, _, _ = await b.recv()
                got.add(int.from_bytes(data, "big"))
        assert net.stats.drops() == net.stats.drops("lost", side="a")
        a.close()
        b.close()
    return set(range(1000)) - got, net.stats.drops("lost")


def test_netem_loss_is_reproducible_under_a_seed() -> None:
    async def main() -> None:
        lost, counted = await _lossy_run(seed=1)
        again, _ = await _lossy_run(seed=1)
        other, _ = await _lossy_run(seed=2)
        assert lost == again, "the same seed must lose the same datagrams"
        assert lost != other
        assert len(lost) == counted and 70 <= counted <= 130, counted

    run(main, deadline=30.0)


def test_netem_delay_adds_at_least_50_ms() -> None:
    async def main() -> None:
        async with Network(Topology("slow", a=SideSpec(delay=0.050)), plan=PLAN) as net:
            a, b = await Peer.open(net.interface("a")), await Peer.open(net.interface("b"))
            to_b = net.reachable_address("b", b.address)
            loop = asyncio.get_running_loop()
            for _ in range(5):
                sent = loop.time()
                a.send(b"tick", to_b)
                _, src, arrived = await b.recv()
                assert 0.050 <= arrived - sent < 0.5, arrived - sent
            # the way back crosses side a's link too (RFC-free: the access link delays both ways)
            sent = loop.time()
            b.send(b"tock", src)
            _, _, arrived = await a.recv()
            assert 0.050 <= arrived - sent < 0.5
            a.close()
            b.close()

    run(main)


def test_netem_rebinding_changes_the_external_port_and_kills_old_mappings() -> None:
    async def main() -> None:
        topo = Topology("rebind", a=SideSpec(nat=NatBehavior(filtering=EIF), rebind_at=0.3))
        async with Network(topo, plan=PLAN, upstreams=[H1]) as net:
            a, h = await Peer.open(net.interface("a")), await Peer.open(H1)
            before = await stun_mapping(a, net)
            h.send(b"before", before)
            assert (await a.recv())[0] == b"before"
            await net.until(lambda: net.fabric.nats["a"].rebinds == 1, WAIT)  # the scheduled rebinding
            assert net.elapsed() >= 0.3
            h.send(b"stale", before)
            await drops(net, "no-mapping", 1)
            after = await stun_mapping(a, net)
            assert after[0] == before[0] and after[1] != before[1]
            h.send(b"after", after)
            assert (await a.recv())[0] == b"after"
            assert a.received() == []
            a.close()
            h.close()

    run(main)


@pytest.mark.parametrize("hairpinning", [True, False], ids=["on", "off"])
def test_netem_hairpinning(hairpinning: bool) -> None:
    """RFC 4787 §6 REQ-9a: a hairpinned datagram arrives from the sender's external address, not its private one."""

    async def main() -> None:
        async with Network(one_nat(hairpinning=hairpinning), plan=PLAN) as net:
            a1 = await Peer.open(net.interface("a", 1))
            a2 = await Peer.open(net.interface("a", 2))
            e1, e2 = await stun_mapping(a1, net), await stun_mapping(a2, net)
            a1.send(b"hairpin", e2)
            if hairpinning:
                data, src, _ = await a2.recv()
                assert data == b"hairpin" and src == e1
            else:
                await drops(net, "hairpin", 1)
                assert a2.received() == []
            a1.close()
            a2.close()

    run(main)


def test_netem_blackholed_private_addresses_never_deliver() -> None:
    async def main() -> None:
        async with Network("nat-eim-eif-one", plan=PLAN) as net:
            a, b = await Peer.open(net.interface("a")), await Peer.open(net.interface("b"))
            told = net.reachable_address("a", a.address)  # side a's host candidate, as side b is told it
            assert told[0] == PLAN.blackhole("a") and told[0] != a.address[0]
            for _ in range(3):
                b.send(b"hello host", told)
            await drops(net, "blackholed", 3)
            assert a.received() == [] and net.mappings("b") == []
            a.close()
            b.close()

    run(main)


def test_netem_rewrites_candidates_for_the_other_side() -> None:
    async def main() -> None:
        async with Network("nat-eim-eif-one", plan=PLAN) as net:
            host_a = f"candidate:1 1 udp 2130706431 {net.interface('a')} 5000 typ host"
            host_b = f"candidate:1 1 UDP 2130706431 {net.interface('b')} 6000 typ host"
            srflx = f"candidate:2 1 udp 1694498815 {PLAN.external_ip('a')} 21000 typ srflx raddr 0.0.0.0 rport 0"
            assert net.rewrite_candidate("a", host_a) == host_a.replace(
                f"{net.interface('a')} 5000", f"{PLAN.blackhole('a')} 5000"
            )
            assert net.rewrite_candidate("b", host_b) == host_b.replace(net.interface("b"), PLAN.external_ip("b"))
            assert net.rewrite_candidate("a", srflx) == srflx
            assert net.rewrite_candidate("a", "candidate:3 1 tcp 1 127.10.0.1 9 typ host tcptype active") is None
            assert net.rewrite_candidate("a", "candidate:4 1 udp 1 abc.local 9 typ host") is None

    run(main)


# ---------------------------------------------------------------------------------------------------------------
# Hole punching versus symmetric NATs, and the relay
# ---------------------------------------------------------------------------------------------------------------


async def _punch(net: Network, rounds: int) -> tuple[bool, bool]:
    """Two agents learn their external addresses, swap them, and send to each other; who heard the other?"""
    a, b = await Peer.open(net.interface("a")), await Peer.open(net.interface("b"))
    ea, eb = await stun_mapping(a, net, "a"), await stun_mapping(b, net, "b")
    heard = {"a": False, "b": False}
    for _ in range(rounds):
        target = net.stats.forwarded + net.stats.drops() + 2
        a.send(b"from a", eb)
        b.send(b"from b", ea)
        await net.until(lambda: net.stats.forwarded + net.stats.drops() >= target, WAIT)  # noqa: B023
        for side, peer in (("a", a), ("b", b)):
            if peer.received():
                heard[side] = True
        if all(heard.values()):
            break
    a.close()
    b.close()
    return heard["a"], heard["b"]


@pytest.mark.parametrize("name", ["nat-eim-eif-both", "nat-eim-adf-both", "nat-eim-apdf-both"])
def test_netem_hole_punching_works_behind_eim_nats(name: str) -> None:
    async def main() -> None:
        async with Network(name, plan=PLAN) as net:
            assert await _punch(net, rounds=4) == (True, True)

    run(main)


def test_netem_hole_punching_fails_behind_symmetric_nats() -> None:
    async def main() -> None:
        async with Network("symmetric-both", plan=PLAN) as net:
            assert TOPOLOGIES["symmetric-both"].expect == "relay"
            assert await _punch(net, rounds=4) == (False, False)
            assert net.stats.drops("filtered") == 8  # every punch hit a mapping that never sent to it

    run(main)


@pytest.mark.parametrize("name", ["symmetric-both", "relay-only"])
def test_netem_symmetric_nats_connect_through_the_relay(name: str) -> None:
    """Both sides reach a real TURN server through their NATs; relayed addresses are told as their proxies."""

    async def main() -> None:
        capture = Capture()
        server = await TurnServer.open(capture, host=H1, relay_host=H1)
        try:
            async with Network(name, plan=PLAN, capture=capture, turn=server.address) as net:
                ea = await Endpoint.open(capture, net.interface("a"), 0, "agent a")
                eb = await Endpoint.open(capture, net.interface("b"), 0, "agent b")
                ca = TurnClient(ea, net.relay_address("a"), "alice", "secret")
                cb = TurnClient(eb, net.relay_address("b"), "bob", "hunter2")
                assert (await ca.allocate()) is not None and ca.relayed is not None
                assert (await cb.allocate()) is not None and cb.relayed is not None
                assert ca.mapped is not None and ca.mapped[0] == PLAN.external_ip("a")  # the server saw the NAT
                relay_a = net.reachable_address("a", ca.relayed)
                relay_b = net.reachable_address("b", cb.relayed)
                assert relay_a[0] != H1 and relay_a[1] == ca.relayed[1]
                assert await ca.create_permission(relay_b) is not None
                assert await cb.create_permission(relay_a) is not None
                ca.send_indication(relay_b, b"a to b via relays")
                await cb.expect_relayed(b"a to b via relays", WAIT)
                cb.send_indication(relay_a, b"b to a via relays")
                await ca.expect_relayed(b"b to a via relays", WAIT)
                ea.close()
                eb.close()
        finally:
            server.close()

    run(main)


def test_netem_relay_only_firewalls_side_to_side_traffic() -> None:
    async def main() -> None:
        async with Network("relay-only", plan=PLAN) as net:
            assert await _punch(net, rounds=2) == (False, False)
            assert net.stats.drops("firewalled") == 4

    run(main)


def test_netem_records_both_legs_in_the_capture(tmp_path: Path) -> None:
    async def main() -> None:
        capture = Capture()
        async with Network("nat-eim-apdf-one", plan=PLAN, capture=capture) as net:
            a = await Peer.open(net.interface("a"))
            external = await stun_mapping(a, net)
            a.send(b"into the void", net.reachable_address("a", (net.interface("a"), 9)))
            await drops(net, "blackholed", 1)
            a.close()
            assert net.describe()["stats"]["dropped"] == {"blackholed": 1}
        legs = [(d.direction, d.endpoint, d.src, d.dst, d.note) for d in capture.datagrams]
        assert legs[0][:2] == ("in", "netem:a") and legs[0][3] == PLAN.stun_server
        assert legs[1][:4] == ("out", "netem:a", PLAN.stun_server, a.address)
        assert legs[2][4] == "netem dropped: blackholed"
        assert external in capture.labels
        path = write_pcap(capture, tmp_path / "netem.pcapng")
        assert path.stat().st_size > 0

    run(main)


def test_netem_runs_all_presets_and_closes_cleanly() -> None:
    async def main() -> None:
        started = time.monotonic()
        for name in TOPOLOGIES:
            async with Network(name, plan=PLAN) as net:
                a = await Peer.open(net.interface("a"))
                if TOPOLOGIES[name].a.loss == 0:
                    await stun_mapping(a, net)
                a.close()
        assert time.monotonic() - started < 10

    run(main)


def test_netem_routable_side_has_a_private_network_outside_loopback() -> None:
    plan = AddressPlan(slot=7, routable=frozenset({"b"}))
    assert str(plan.private_network("a")) == "127.10.7.0/24" and str(plan.private_network("b")) == "10.20.7.0/24"
    assert plan.interface("b") == "10.20.7.1" and plan.blackhole("b") == "10.20.7.254"
    assert plan.side_of("10.20.7.1") == "b" and plan.side_of("127.20.7.1") is None
    assert plan.side_of("127.10.7.1") == "a" and str(plan.public_network) == "127.100.7.0/24"
    assert AddressPlan(slot=7) == AddressPlan(slot=7, routable=frozenset())
