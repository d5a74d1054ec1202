"""Candidate priorities and the PRIORITY attribute (RFC 8445 §5.1.2, §7.1.1)."""

from __future__ import annotations

from collections import defaultdict

import pytest

from conformance.protocol.candidate import Candidate
from conformance.protocol.priority import TYPE_PREFERENCE, decompose_priority
from conformance.tester.expect import Expect
from conformance.tester.harness import Harness
from conformance.tester.ice_steps import run_exchange

MAX_PRIORITY = 2**31 - 1


def _components(h: Harness) -> int:
    """Two components when the IUT has them (per-component rules show only then), else one."""
    return 2 if "multi_component" in h.info.capabilities else 1


def _udp(h: Harness, candidates: list[Candidate]) -> list[Candidate]:
    """UDP candidates; TCP ones follow RFC 6544 §4.2's own formula and are left out (noted)."""
    tcp = [c for c in candidates if c.protocol.lower() != "udp"]
    if tcp:
        h.findings.info(f"{len(tcp)} TCP candidates left out (RFC 6544 §4.2 priorities)")
    return [c for c in candidates if c.protocol.lower() == "udp"]


@pytest.mark.requirement("ICE-PRIO-01")
@pytest.mark.selftest(fault="duplicate-priorities")
@pytest.mark.selftest(fault="wrong-priority-formula", verdict="NON-STRICT")
async def test_candidate_priorities_are_unique_in_range_and_follow_the_formula(harness: Harness) -> None:
    """ICE-PRIO-01 (RFC 8445 §5.1.2): unique, in [1, 2^31-1] (MUST); the formula (SHOULD)."""
    s = await harness.session("controlling", connect=False, components=_components(harness))
    f = harness.findings
    f.check(bool(s.candidates), "ICE-PRIO-01", "the IUT gathered no candidate", "range")
    seen: dict[int, str] = {}
    for c in s.candidates:
        line = f"candidate:{c.foundation} {c.component} {c.transport} {c.priority} {c.address} {c.port} typ {c.kind}"
        f.check(1 <= c.priority <= MAX_PRIORITY, "ICE-PRIO-01", f"priority {c.priority} out of range: {line}", "range")
        f.check(
            c.priority not in seen,
            "ICE-PRIO-01",
            f"priority {c.priority} repeats: {seen.get(c.priority)} and {line}",
            "range",
        )
        seen[c.priority] = line
        if c.protocol.lower() != "udp":
            continue
        low = c.priority & 0xFF
        f.check(
            low == 256 - c.component,
            "ICE-PRIO-01",
            f"low byte {low} of {c.priority}, the formula gives 256 - {c.component} = {256 - c.component}: {line}",
            "formula",
        )


@pytest.mark.requirement("ICE-PRIO-02")
@pytest.mark.selftest(fault="type-pref-mismatch")
async def test_type_preference_is_consistent_per_type(harness: Harness) -> None:
    """ICE-PRIO-02 (RFC 8445 §5.1.2.1-2): one type preference per type, distinct across types."""
    s = await harness.session("controlling", connect=False, components=_components(harness))
    by_type: dict[str, set[int]] = defaultdict(set)
    for c in _udp(harness, s.candidates):
        by_type[c.kind].add(decompose_priority(c.priority)[0])
    for kind, prefs in by_type.items():
        harness.findings.check(
            len(prefs) == 1, "ICE-PRIO-02", f"{kind} candidates use type preferences {sorted(prefs)}", "type_pref"
        )
        pref = next(iter(prefs))
        harness.findings.check(pref <= 126, "ICE-PRIO-02", f"{kind} type preference {pref} above 126", "type_pref")
        if kind in TYPE_PREFERENCE:
            harness.findings.check(
                pref == TYPE_PREFERENCE[kind],
                "ICE-PRIO-02",
                f"{kind} type preference {pref}, recommended {TYPE_PREFERENCE[kind]}",
                "recommended_values",
            )
    firsts = {kind: next(iter(p)) for kind, p in by_type.items() if len(p) == 1}
    values = list(firsts.values())
    harness.findings.check(
        len(values) == len(set(values)),
        "ICE-PRIO-02",
        f"two candidate types share a type preference: {firsts}",
        "type_pref",
    )


@pytest.mark.requirement("ICE-PRIO-03")
@pytest.mark.selftest(fault="wrong-priority-formula", verdict="NON-STRICT")
async def test_local_preference_and_component_ids(harness: Harness) -> None:
    """ICE-PRIO-03 (RFC 8445 §5.1.2.1): local preference unique per type and component, 65535 with one IP (SHOULD)."""
    s = await harness.session("controlling", connect=False, components=_components(harness))
    f = harness.findings
    seen: dict[tuple[str, int, int], str] = {}
    udp = _udp(harness, s.candidates)
    addresses = {c.address for c in udp if c.kind == "host"}
    components = sorted({c.component for c in udp})
    f.check(
        components == list(range(1, len(components) + 1)),
        "ICE-PRIO-03",
        f"component IDs {components} do not start at 1 and increase by 1",
        "component_id",
    )
    for c in udp:
        _, local, _ = decompose_priority(c.priority)
        key = (c.kind, c.component, local)
        f.check(
            key not in seen,
            "ICE-PRIO-03",
            f"local preference {local} repeats among {c.kind} candidates of component {c.component}",
            "local_pref",
        )
        seen[key] = c.address
        if len(addresses) == 1 and c.kind == "host":
            f.check(
                local == 65535,
                "ICE-PRIO-03",
                f"one host address, but local preference {local} (65535 expected)",
                "single_ip",
            )


@pytest.mark.requirement("ICE-PRIO-04")
@pytest.mark.parametrize("role", ["controlling", "controlled"])
@pytest.mark.selftest(fault="priority-attr-host-pref")
async def test_priority_attribute_uses_the_prflx_type_preference(harness: Harness, expect: Expect, role: str) -> None:
    """ICE-PRIO-04 (RFC 8445 §7.1.1): PRIORITY = the base's priority with the prflx preference."""
    x = await run_exchange(harness, role)
    host = {(c.address, c.port): c for c in x.session.candidates if c.kind == "host"}
    prflx_prefs = set()
    harness.findings.check(bool(x.iut_checks), "ICE-PRIO-04", "the IUT sent no connectivity check")
    for rec in x.iut_checks:
        raw = rec.value("PRIORITY") if rec.index else None
        if not expect(rec).that(raw is not None and len(raw) == 4, "a 4-byte PRIORITY").ok or raw is None:
            continue

        prio = int.from_bytes(raw, "big")
        base = host.get(rec.src)
        if base is None:
            harness.findings.info(f"check from {rec.src}, which is not a signalled host candidate")
            continue
        type_pref = prio >> 24
        prflx_prefs.add(type_pref)
        host_pref = base.priority >> 24
        harness.findings.check(
            type_pref != host_pref or host_pref == TYPE_PREFERENCE["prflx"],
            "ICE-PRIO-04",
            f"PRIORITY {prio} uses the host type preference {host_pref} of {base.address}:{base.port}, not prflx",
        )
        harness.findings.check(
            prio & 0xFFFFFF == base.priority & 0xFFFFFF,
            "ICE-PRIO-04",
            f"PRIORITY {prio} (0x{prio:08x}) differs from the base's priority {base.priority} (0x{base.priority:08x}) "
            "below the type preference",
        )
    harness.findings.check(
        len(prflx_prefs) <= 1, "ICE-PRIO-04", f"PRIORITY type preferences vary: {sorted(prflx_prefs)}"
    )
