"""Self-tests of the pure netem logic: NAT table, filtering, timers, loss and delay schedules, routing (RFC 4787)."""

from __future__ import annotations

import math

import pytest

from conformance.netem import (
    BEHAVIOURS,
    TOPOLOGIES,
    AddressPlan,
    DelayLine,
    Deliver,
    Drop,
    Fabric,
    Filtering,
    LossSchedule,
    MappingBehavior,
    Nat,
    NatBehavior,
    SideSpec,
    StunRequest,
    Topology,
    topology,
)

EIM, ADM, APDM = (
    MappingBehavior.ENDPOINT_INDEPENDENT,
    MappingBehavior.ADDRESS_DEPENDENT,
    MappingBehavior.ADDRESS_AND_PORT_DEPENDENT,
)
EIF, ADF, APDF = Filtering.ENDPOINT_INDEPENDENT, Filtering.ADDRESS_DEPENDENT, Filtering.ADDRESS_AND_PORT_DEPENDENT
X = ("10.0.0.1", 5000)
Y1, Y1b, Y2 = ("198.51.100.1", 3478), ("198.51.100.1", 3479), ("198.51.100.2", 3478)


def nat(mapping: MappingBehavior = EIM, filtering: Filtering = EIF, **kw: object) -> Nat:
    return Nat(NatBehavior(mapping=mapping, filtering=filtering, **kw), "203.0.113.1")  # type: ignore[arg-type]


def test_nat_eim_reuses_the_external_address_for_every_destination() -> None:
    n = nat(EIM)
    externals = {n.outbound(X, y, 0.0).external for y in (Y1, Y1b, Y2)}
    assert len(externals) == 1  # RFC 4787 §4.1: X1':x1' == X2':x2' for all Y2:y2


def test_nat_adm_changes_the_external_address_per_destination_ip() -> None:
    n = nat(ADM)
    a, b, c = (n.outbound(X, y, 0.0).external for y in (Y1, Y1b, Y2))
    assert a == b and a != c


def test_nat_apdm_changes_the_external_address_per_destination_ip_and_port() -> None:
    n = nat(APDM)
    assert len({n.outbound(X, y, 0.0).external for y in (Y1, Y1b, Y2)}) == 3


@pytest.mark.parametrize(
    ("filtering", "admitted"),
    [(EIF, {Y1, Y1b, Y2}), (ADF, {Y1, Y1b}), (APDF, {Y1})],
    ids=["eif", "adf", "apdf"],
)
def test_nat_filtering_admits_by_rfc4787_section5(filtering: Filtering, admitted: set[tuple[str, int]]) -> None:
    n = nat(EIM, filtering)
    external = n.outbound(X, Y1, 0.0).external
    for source in (Y1, Y1b, Y2):
        verdict = n.inbound(external, source, 1.0)
        assert (verdict.internal == X) == (source in admitted), (filtering, source, verdict)
        assert verdict.reason in (None, "filtered")


def test_nat_inbound_without_a_mapping_is_dropped() -> None:
    n = nat()
    assert n.inbound(("203.0.113.1", 40000), Y1, 0.0).reason == "no-mapping"


def test_nat_mapping_expires_after_timeout_and_outbound_refreshes() -> None:
    n = nat(timeout=120.0)
    external = n.outbound(X, Y1, 0.0).external
    assert n.next_deadline() == 120.0
    assert n.inbound(external, Y1, 119.0).internal == X
    n.outbound(X, Y1, 100.0)  # RFC 4787 §4.3 REQ-6: outbound refresh
    assert n.inbound(external, Y1, 219.0).internal == X
    assert n.inbound(external, Y1, 220.0).reason == "no-mapping"
    assert [m.external for m in n.expire(220.0)] == [external]
    assert n.outbound(X, Y1, 221.0).external != external  # a new mapping, a new port


def test_nat_inbound_refresh_is_optional() -> None:
    off, on = nat(timeout=120.0), nat(timeout=120.0, inbound_refresh=True)
    for n in (off, on):
        e = n.outbound(X, Y1, 0.0).external
        assert n.inbound(e, Y1, 100.0).internal == X
    assert off.inbound(off.mappings[0].external, Y1, 150.0).internal is None
    assert on.inbound(on.mappings[0].external, Y1, 150.0).internal == X


def test_nat_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError, match="RFC 4787"):
        NatBehavior(timeout=0)


def test_nat_rebind_gives_new_ports_and_kills_old_mappings() -> None:
    n = nat(port_preserving=True)
    old = n.outbound(X, Y1, 0.0).external
    assert old[1] == X[1]  # RFC 4787 §4.2.1 port preservation
    dropped = n.rebind()
    assert [m.external for m in dropped] == [old]
    assert n.inbound(old, Y1, 1.0).reason == "no-mapping"
    new = n.outbound(X, Y1, 1.0).external
    assert new != old and n.inbound(new, Y1, 1.0).internal == X


def test_nat_ports_are_unique_and_bounded() -> None:
    n = Nat(NatBehavior(mapping=APDM), "203.0.113.1", port_range=(40000, 40003))
    ports = {n.outbound(X, ("198.51.100.9", p), 0.0).external[1] for p in range(4)}
    assert ports == {40000, 40001, 40002, 40003}
    with pytest.raises(RuntimeError, match="no free port"):
        n.outbound(X, ("198.51.100.9", 99), 0.0)


def test_behaviours_table_covers_every_mapping_and_filtering() -> None:
    names = {b for b, _, _ in BEHAVIOURS}
    assert names == set(MappingBehavior) | set(Filtering)
    assert all(section in ("4.1", "5") for _, section, _ in BEHAVIOURS)


def test_loss_schedule_is_reproducible_and_near_its_rate() -> None:
    def lost(seed: int) -> list[int]:
        s = LossSchedule(0.10, seed=seed)
        return [i for i in range(1000) if s.drop()]

    first, again, other = lost(7), lost(7), lost(8)
    assert first == again and first != other
    assert 70 <= len(first) <= 130


def test_delay_line_releases_in_deadline_order_and_is_bounded() -> None:
    line: DelayLine[str] = DelayLine(capacity=3)
    assert line.push(0.0, 0.05, "a") == 0.05
    line.push(0.01, 0.01, "b")
    line.push(0.02, 0.05, "c")
    assert line.push(0.03, 0.0, "d") is None  # full: a drop, not a block
    assert line.next_deadline() == pytest.approx(0.02)
    assert line.due(0.049) == ["b"]
    assert line.due(1.0) == ["a", "c"] and line.next_deadline() is None


def test_topology_presets_cover_the_issue() -> None:
    required = {
        "direct",
        "nat-eim-eif-one",
        "nat-eim-adf-one",
        "nat-eim-apdf-one",
        "nat-eim-eif-both",
        "nat-eim-adf-both",
        "nat-eim-apdf-both",
        "symmetric-both",
        "relay-only",
        "loss-delay",
        "rebinding",
    }
    assert required <= set(TOPOLOGIES)
    sym = topology("symmetric-both")
    assert sym.expect == "relay" and sym.a.nat is not None and sym.a.nat.mapping is APDM
    assert topology("loss-delay").a == SideSpec(loss=0.10, delay=0.050)
    assert topology("rebinding").a.rebind_at is not None
    with pytest.raises(ValueError, match="known"):
        topology("nope")


def test_address_plan_per_worker() -> None:
    assert AddressPlan.for_worker("master").slot == 0
    assert AddressPlan.for_worker("gw3").slot == 4
    plan = AddressPlan(slot=4)
    assert plan.interface("a") == "127.10.4.1" and plan.side_of("127.20.4.9") == "b"
    assert plan.side_of(plan.external_ip("a")) is None


def test_fabric_exposes_host_candidates_by_side_kind() -> None:
    fabric = Fabric(topology("nat-eim-eif-one"), AddressPlan(slot=9))
    plan = fabric.plan
    hidden = fabric.expose("a", (plan.interface("a"), 5000))
    assert hidden.kind == "blackhole" and hidden.address == (plan.blackhole("a"), 5000)
    static = fabric.expose("b", (plan.interface("b"), 6000))
    assert static.kind == "static" and static.address == (plan.external_ip("b"), 6000)
    proxy_ip = fabric.add_upstream("127.55.9.1")
    assert fabric.expose("a", ("127.55.9.1", 50000)) == ((proxy_ip, 50000), "proxy", None)
    srflx = fabric.expose("a", (plan.external_ip("a"), 20001))
    assert srflx.kind == "public"


def test_fabric_routes_by_nat_and_link() -> None:
    topo = Topology("t", a=SideSpec(nat=NatBehavior(filtering=APDF), delay=0.05), b=SideSpec(delay=0.01))
    fabric = Fabric(topo, AddressPlan(slot=9))
    plan = fabric.plan
    a, b = (plan.interface("a"), 5000), (plan.interface("b"), 6000)
    b_public = fabric.expose("b", b).address
    stun = fabric.route(plan.stun_server, a, 0.0)
    assert isinstance(stun, StunRequest) and stun.seen[0] == plan.external_ip("a") and stun.delay == 0.05
    to_b = fabric.route(b_public, a, 0.0)
    assert isinstance(to_b, Deliver) and to_b.dst == b and to_b.src == stun.seen
    assert to_b.delay == pytest.approx(0.06) and to_b.links == (("a", "up"), ("b", "down"))
    back = fabric.route(stun.seen, b, 0.0)
    assert isinstance(back, Deliver) and back.dst == a and back.src == b_public
    stranger = fabric.route(stun.seen, (plan.interface("b"), 6001), 0.0)
    assert stranger == Drop("filtered", "a")
    assert fabric.route(plan.stun_server, ("192.0.2.1", 1), 0.0) == Drop("unknown-source")
    assert isinstance(fabric.route((plan.blackhole("a"), 5000), b, 0.0), Drop)
    assert math.isinf(fabric.nats["b"].mappings[0].expires(1.0))
