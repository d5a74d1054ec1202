"""The pytest plugin of ice-conformance (registered through the ``pytest11`` entry point)."""

from __future__ import annotations

import pytest

__all__: list[str] = []


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "requirement(*ids, clause=None): catalog requirement IDs a case checks")
    config.addinivalue_line("markers", "slow: needs a long protocol timer; run with --slow")
