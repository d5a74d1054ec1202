"""Every ICE-agent case has a self-test row: a reference-peer fault that makes it fail (tests/test_selftest_ice*.py)."""

from __future__ import annotations

import importlib
from pathlib import Path

from tests.selftest import collect_cases

SUITE_FOLDERS = ("stun", "ice", "consent")


def _tables() -> set[str]:
    covered: set[str] = set()
    for path in sorted(Path(__file__).parent.glob("test_selftest_ice*.py")):
        module = importlib.import_module(f"tests.{path.stem}")
        covered |= {row[0] for row in module.TABLE}
    return covered


def test_every_ice_case_has_a_failing_self_test() -> None:
    cases = collect_cases(*SUITE_FOLDERS)
    assert cases, "no case collected"
    missing = [c for c in cases if c not in _tables()]
    assert not missing, f"cases without a fault that makes them fail: {missing}"
