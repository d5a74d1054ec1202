"""Candidate and pair priority formulas against vectors/priority.json and vectors/pair_priority.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conformance.protocol.priority import (
    PRIORITY_MAX,
    TYPE_PREFERENCE,
    candidate_priority,
    decompose_priority,
    order_pairs,
    pair_priority,
)

VECTORS = Path(__file__).resolve().parent.parent / "vectors"


def _cases(name: str) -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = json.loads((VECTORS / name).read_text(encoding="utf-8"))["cases"]
    return cases


PRIORITY_CASES = _cases("priority.json")
PAIR_CASES = _cases("pair_priority.json")
priorities = st.integers(min_value=1, max_value=PRIORITY_MAX)


def test_priority_vectors_cover_catalog_table() -> None:
    got = {(c["type"], c["component"], c["local_preference"]): c["priority"] for c in PRIORITY_CASES}
    assert got[("host", 1, 65535)] == 2130706431
    assert got[("host", 2, 65535)] == 2130706430
    assert got[("prflx", 1, 65535)] == 1862270975
    assert got[("srflx", 1, 65535)] == 1694498815
    assert got[("relay", 1, 65535)] == 16777215
    assert all(c["source"] for c in PRIORITY_CASES)


@pytest.mark.parametrize(
    "case", PRIORITY_CASES, ids=lambda c: f"{c['type']}-c{c['component']}-lp{c['local_preference']}"
)
def test_candidate_priority_matches_vector(case: dict[str, Any]) -> None:
    priority = candidate_priority(case["type_preference"], case["local_preference"], case["component"])
    assert priority == case["priority"]
    assert priority == int(case["hex"], 16)


@pytest.mark.parametrize(
    "case", PRIORITY_CASES, ids=lambda c: f"{c['type']}-c{c['component']}-lp{c['local_preference']}"
)
def test_decompose_priority_matches_vector(case: dict[str, Any]) -> None:
    assert decompose_priority(case["priority"]) == (
        case["type_preference"],
        case["local_preference"],
        case["component"],
    )


@pytest.mark.parametrize(
    "case", PRIORITY_CASES, ids=lambda c: f"{c['type']}-c{c['component']}-lp{c['local_preference']}"
)
def test_priority_vector_type_preference_is_recommended_value(case: dict[str, Any]) -> None:
    assert TYPE_PREFERENCE[case["type"]] == case["type_preference"]


def test_type_preference_orders_prflx_above_srflx() -> None:
    assert TYPE_PREFERENCE["host"] > TYPE_PREFERENCE["prflx"] > TYPE_PREFERENCE["srflx"] > TYPE_PREFERENCE["relay"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((127, 65535, 1), "type preference"),
        ((-1, 65535, 1), "type preference"),
        ((126, 65536, 1), "local preference"),
        ((126, -1, 1), "local preference"),
        ((126, 65535, 0), "component"),
        ((126, 65535, 257), "component"),
        ((0, 0, 256), "priority 0"),
    ],
)
def test_candidate_priority_rejects_out_of_range(args: tuple[int, int, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        candidate_priority(*args)


def test_decompose_priority_reads_low_byte_zero_as_component_256() -> None:
    assert decompose_priority(0x7EFFFF00) == (126, 65535, 256)


def test_decompose_priority_accepts_out_of_range_top_byte() -> None:
    assert decompose_priority(0xFFFFFFFF) == (255, 65535, 1)


@pytest.mark.parametrize("value", [-1, 2**32])
def test_decompose_priority_rejects_non_u32(value: int) -> None:
    with pytest.raises(ValueError, match="32-bit"):
        decompose_priority(value)


@given(
    type_pref=st.integers(min_value=0, max_value=126),
    local_pref=st.integers(min_value=0, max_value=65535),
    component=st.integers(min_value=1, max_value=256),
)
def test_decompose_priority_inverts_candidate_priority(type_pref: int, local_pref: int, component: int) -> None:
    if (type_pref, local_pref, component) == (0, 0, 256):
        return
    priority = candidate_priority(type_pref, local_pref, component)
    assert 1 <= priority <= PRIORITY_MAX
    assert decompose_priority(priority) == (type_pref, local_pref, component)


@pytest.mark.parametrize("case", PAIR_CASES, ids=lambda c: f"G{c['g_controlling']}-D{c['d_controlled']}")
def test_pair_priority_matches_vector(case: dict[str, Any]) -> None:
    priority = pair_priority(case["g_controlling"], case["d_controlled"])
    assert priority == case["pair_priority"]
    assert priority == int(case["hex"], 16)
    assert case["source"].startswith("RFC 8445 §6.1.2.3")


@given(g=priorities, d=priorities)
def test_pair_priority_depends_on_role_by_one(g: int, d: int) -> None:
    difference = pair_priority(g, d) - pair_priority(d, g)
    assert difference == (0 if g == d else (1 if g > d else -1))
    assert pair_priority(g, d) < 2**63


@given(g1=priorities, d1=priorities, g2=priorities, d2=priorities)
def test_pair_priority_orders_by_min_then_max(g1: int, d1: int, g2: int, d2: int) -> None:
    key1 = (min(g1, d1), max(g1, d1), g1 > d1)
    key2 = (min(g2, d2), max(g2, d2), g2 > d2)
    assert (pair_priority(g1, d1) > pair_priority(g2, d2)) == (key1 > key2)


@pytest.mark.parametrize(("g", "d"), [(0, 1), (1, 0), (2**31, 1), (1, 2**31)])
def test_pair_priority_rejects_out_of_range(g: int, d: int) -> None:
    with pytest.raises(ValueError, match=r"outside 1\.\.2"):
        pair_priority(g, d)


def test_order_pairs_sorts_by_decreasing_pair_priority() -> None:
    host, srflx, relay = 2130706431, 1694498815, 16777215
    pairs = [
        (relay, host, "relay-host"),
        (host, srflx, "host-srflx"),
        (srflx, host, "srflx-host"),
        (host, host, "host-host"),
    ]
    assert [key for _, _, key in order_pairs(pairs)] == [
        "host-host",
        "host-srflx",
        "srflx-host",
        "relay-host",
    ]


def test_order_pairs_keeps_input_order_for_ties() -> None:
    pairs = [(100, 200, "a"), (100, 200, "b"), (100, 200, "c")]
    assert [key for _, _, key in order_pairs(pairs)] == ["a", "b", "c"]
