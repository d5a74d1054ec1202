"""Per-case IUT options: extra ``AgentConfig``/``start_server`` options for named cases (PIXIT, in test terms).

``$ICE_CONFORMANCE_CASE_OPTIONS`` holds a JSON object mapping a case ID (relative to ``suites/``, as in
``summary.json``) or ``"*"`` to options merged into every agent and server the case creates; lists are appended.
Vendors use it to pass implementation parameters; the self-tests use it to give each case its reference-peer fault.
"""

from __future__ import annotations

import json
import os
from typing import Any

from conformance.ids import case_id
from conformance.verdict import HarnessError

__all__ = ["CASE_OPTIONS_ENV", "case_options"]

CASE_OPTIONS_ENV = "ICE_CONFORMANCE_CASE_OPTIONS"


def case_options(options: dict[str, Any] | None = None) -> dict[str, Any]:
    """``options`` plus the running case's entry of ``$ICE_CONFORMANCE_CASE_OPTIONS`` (lists appended)."""
    out = dict(options or {})
    raw = os.environ.get(CASE_OPTIONS_ENV)
    if not raw:
        return out
    try:
        table = json.loads(raw)
    except ValueError as exc:
        raise HarnessError(f"${CASE_OPTIONS_ENV} is not JSON: {exc}") from None
    current = case_id(os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" (", 1)[0])
    for key in ("*", current):
        for name, value in dict(table.get(key) or {}).items():
            before = out.get(name)
            out[name] = [*before, *value] if isinstance(before, list) and isinstance(value, list) else value
    return out
