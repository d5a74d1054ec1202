"""Role-conflict decision table against vectors/role_conflict.json (RFC 8445 §7.3.1.1)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conformance.protocol.roles import (
    ICE_CONTROLLED,
    ICE_CONTROLLING,
    ROLE_CONFLICT_TABLE,
    TIEBREAKER_MAX,
    Role,
    RoleAction,
    decide_role_conflict,
    role_after,
)

VECTORS = Path(__file__).resolve().parent.parent / "vectors"
CASES: list[dict[str, Any]] = json.loads((VECTORS / "role_conflict.json").read_text(encoding="utf-8"))["cases"]
tiebreakers = st.integers(min_value=0, max_value=TIEBREAKER_MAX)


def _attribute_of(role: Role) -> str:
    return ICE_CONTROLLING if role is Role.CONTROLLING else ICE_CONTROLLED


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c['own_role']}-{c['attribute']}-{c['note'][:24]}")
def test_decide_role_conflict_matches_vector(case: dict[str, Any]) -> None:
    action = decide_role_conflict(
        Role(case["own_role"]), case["own_tiebreaker"], case["attribute"], case["peer_tiebreaker"]
    )
    assert action is RoleAction(case["action"])
    assert case["source"] == "RFC 8445 §7.3.1.1"


def test_role_conflict_vectors_cover_every_table_row() -> None:
    covered = {
        (
            Role(c["own_role"]),
            c["attribute"],
            c["attribute"] is None or c["own_tiebreaker"] >= c["peer_tiebreaker"],
        )
        for c in CASES
    }
    rows_with_attribute = {key for key in ROLE_CONFLICT_TABLE if key[1] is not None}
    assert rows_with_attribute <= covered


def test_role_conflict_vectors_include_equal_tiebreakers_for_both_roles() -> None:
    equal = {(c["own_role"], c["action"]) for c in CASES if c["own_tiebreaker"] == c["peer_tiebreaker"]}
    assert ("controlling", "send_487") in equal
    assert ("controlled", "switch_role") in equal


def test_role_conflict_table_is_complete() -> None:
    expected = set(itertools.product(Role, (ICE_CONTROLLING, ICE_CONTROLLED, None), (True, False)))
    assert set(ROLE_CONFLICT_TABLE) == expected


def test_role_conflict_table_has_no_conflict_when_roles_differ() -> None:
    for (role, attribute, _), action in ROLE_CONFLICT_TABLE.items():
        if attribute != _attribute_of(role):
            assert action is RoleAction.NO_CONFLICT


@given(own=tiebreakers, peer=tiebreakers, role=st.sampled_from(Role))
def test_decide_role_conflict_same_role_never_reports_no_conflict(own: int, peer: int, role: Role) -> None:
    assert decide_role_conflict(role, own, _attribute_of(role), peer) is not RoleAction.NO_CONFLICT  # type: ignore[arg-type]


@given(a=tiebreakers, b=tiebreakers, role=st.sampled_from(Role))
def test_decide_role_conflict_resolves_distinct_tiebreakers_to_opposite_roles(a: int, b: int, role: Role) -> None:
    if a == b:
        return
    attribute = _attribute_of(role)
    action_a = decide_role_conflict(role, a, attribute, b)  # type: ignore[arg-type]
    action_b = decide_role_conflict(role, b, attribute, a)  # type: ignore[arg-type]
    assert {action_a, action_b} == {RoleAction.SEND_487, RoleAction.SWITCH_ROLE}
    # The agent that answers 487 keeps its role; the other switches, so the roles end up different.
    assert role_after(role, action_a) is not role_after(role, action_b)
    # The higher tiebreaker ends up controlling.
    winner_role = role_after(role, action_a) if a > b else role_after(role, action_b)
    assert winner_role is Role.CONTROLLING


def test_decide_role_conflict_without_attribute_ignores_peer_tiebreaker() -> None:
    assert decide_role_conflict(Role.CONTROLLING, 5, None, None) is RoleAction.NO_CONFLICT
    assert decide_role_conflict(Role.CONTROLLED, 5, None, 2**70) is RoleAction.NO_CONFLICT


@pytest.mark.parametrize(
    ("own", "attribute", "peer", "message"),
    [
        (-1, ICE_CONTROLLING, 0, "own tiebreaker"),
        (2**64, ICE_CONTROLLING, 0, "own tiebreaker"),
        (0, ICE_CONTROLLING, 2**64, "ICE-CONTROLLING tiebreaker"),
        (0, ICE_CONTROLLED, None, "ICE-CONTROLLED tiebreaker"),
        (0, "USE-CANDIDATE", 0, "neither ICE-CONTROLLING nor ICE-CONTROLLED"),
    ],
)
def test_decide_role_conflict_rejects_bad_input(own: int, attribute: str, peer: int | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        decide_role_conflict(Role.CONTROLLING, own, attribute, peer)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("role", "action", "after"),
    [
        (Role.CONTROLLING, RoleAction.SWITCH_ROLE, Role.CONTROLLED),
        (Role.CONTROLLED, RoleAction.SWITCH_ROLE, Role.CONTROLLING),
        (Role.CONTROLLING, RoleAction.SEND_487, Role.CONTROLLING),
        (Role.CONTROLLED, RoleAction.NO_CONFLICT, Role.CONTROLLED),
    ],
)
def test_role_after_switches_only_on_switch_role(role: Role, action: RoleAction, after: Role) -> None:
    assert role_after(role, action) is after
