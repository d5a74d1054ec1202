"""Shared helpers for the harness's self-tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

# Property tests check correctness, not speed: on a loaded 2-core CI machine hypothesis's 200 ms per-example
# deadline fails examples that are merely slow, so it is off for every property test.
settings.register_profile("ice-conformance", deadline=None)
settings.load_profile("ice-conformance")

VECTORS = Path(__file__).resolve().parents[1] / "vectors"


def load_vector(name: str) -> tuple[bytes, dict[str, Any]]:
    """The bytes and the sidecar of one vector in ``vectors/``."""
    data = bytes.fromhex((VECTORS / f"{name}.hex").read_text().strip())
    meta = json.loads((VECTORS / f"{name}.json").read_text())
    return data, meta


@pytest.fixture
def vector() -> Any:
    return load_vector


@pytest.fixture(autouse=True, scope="session")
def _two_workers_for_runs_the_tests_start() -> None:
    """``ice-conformance run`` started by a test gets 2 workers by default (xdist's variable), not the IUT's default.

    These tests check behaviour, not speed; on a 2-core machine that runs them two at a time, a run of a few cases
    on 8 workers each would only add processes. Tests that need the default remove the variable.
    """
    import os

    os.environ.setdefault("PYTEST_XDIST_AUTO_NUM_WORKERS", "2")
