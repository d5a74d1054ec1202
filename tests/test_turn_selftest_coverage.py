"""Every TURN case has a self-test row: a reference fault that makes it fail (tests/test_turn*_selftest.py)."""

from __future__ import annotations

from conformance.reference.turn import CLIENT_FAULTS, SERVER_FAULTS
from tests import test_turn_client_selftest, test_turn_selftest
from tests.selftest import collect_cases


def test_every_turn_server_case_has_a_failing_self_test() -> None:
    cases = collect_cases("turn_server")
    assert cases, "no case collected"
    covered = {row[0] for row in test_turn_selftest.TABLE}
    assert not [c for c in cases if c not in covered], "cases without a fault that makes them fail"
    assert not covered - set(cases), f"rows naming no case: {sorted(covered - set(cases))}"


def test_every_turn_client_case_has_a_failing_self_test() -> None:
    cases = collect_cases("turn_client")
    assert cases, "no case collected"
    covered = {row[0] for row in test_turn_client_selftest.TABLE}
    assert not [c for c in cases if c not in covered], "cases without a fault that makes them fail"
    assert not covered - set(cases), f"rows naming no case: {sorted(covered - set(cases))}"


def test_every_reference_turn_fault_is_exercised() -> None:
    used = {row[1] for row in test_turn_selftest.TABLE} | {row[1] for row in test_turn_client_selftest.TABLE}
    assert not (SERVER_FAULTS.keys() | CLIENT_FAULTS.keys()) - used, "faults no self-test row uses"
