"""The CI gate: one exit code from a run's records and their comparison with the baseline (docs/reports.md).

====  ==================================================================================================
code  when
====  ==================================================================================================
0     every verdict is PASS, INFO, UNSUPPORTED or NON-STRICT, or matches the baseline
1     a FAIL not in the baseline; a NON-STRICT not in the baseline with ``--strict``; an unexpected pass
      (the baseline expects a failure, the case passed) with ``--strict-baseline``
2     an ERROR (harness, adapter or environment); a usage error; a run that selected no case
====  ==================================================================================================

ERROR wins over FAIL: a broken harness cannot vouch for the failures it reports.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from conformance.baseline import Comparison

__all__ = ["EXIT_ERROR", "EXIT_FAIL", "EXIT_OK", "GateResult", "gate"]

EXIT_OK, EXIT_FAIL, EXIT_ERROR = 0, 1, 2


@dataclass(frozen=True)
class GateResult:
    """The exit code and the one-line reason for it."""

    code: int
    reason: str


def gate(
    records: list[dict[str, Any]],
    comparison: Comparison,
    *,
    strict: bool = False,
    strict_baseline: bool = False,
) -> GateResult:
    """The exit code of a run (or of merged runs) as ``ice-conformance run`` computes it."""
    if not records:
        return GateResult(EXIT_ERROR, "the run selected no case")
    if comparison.errors:
        return GateResult(
            EXIT_ERROR, f"{len(comparison.errors)} ERROR verdict(s): the harness or the IUT's adapter failed"
        )
    if comparison.new_failures:
        return GateResult(EXIT_FAIL, f"{len(comparison.new_failures)} FAIL verdict(s) not in the baseline")
    if strict and comparison.new_non_strict:
        return GateResult(
            EXIT_FAIL, f"{len(comparison.new_non_strict)} NON-STRICT verdict(s) not in the baseline (--strict)"
        )
    if strict_baseline and comparison.unexpected_passes:
        return GateResult(
            EXIT_FAIL, f"{len(comparison.unexpected_passes)} unexpected pass(es): remove them from the baseline"
        )
    return GateResult(EXIT_OK, "every verdict matches the baseline or is not gating")
