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
