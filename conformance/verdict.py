"""Verdicts and how a case reports a finding (design.md, "Verdicts").

A case names its requirement IDs with ``@pytest.mark.requirement``. When it observes a violation it calls
:meth:`Findings.violation` (or :meth:`Findings.check`); the level of the requirement (or of one of its clauses) comes
from the catalog, never from the case: a MUST violation ends the case at once with FAIL, a SHOULD violation is recorded
as NON-STRICT and the case goes on, a MAY or INFO row records INFO. Anything else that goes wrong is the harness's,
the adapter's or the environment's: ERROR.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from conformance.catalog import Catalog, load_catalog

__all__ = [
    "VERDICT_ORDER",
    "CaseEnded",
    "Finding",
    "Findings",
    "HarnessError",
    "UnsupportedFeature",
    "Verdict",
    "Violation",
    "verdict_for_level",
]


class Verdict(enum.StrEnum):
    """The six verdicts of a case."""

    PASS = "PASS"
    NON_STRICT = "NON-STRICT"
    FAIL = "FAIL"
    INFO = "INFO"
    UNSUPPORTED = "UNSUPPORTED"
    ERROR = "ERROR"


#: Severity order used to combine findings: the worst wins.
VERDICT_ORDER = [Verdict.PASS, Verdict.INFO, Verdict.UNSUPPORTED, Verdict.NON_STRICT, Verdict.FAIL, Verdict.ERROR]


def verdict_for_level(level: str) -> Verdict:
    """What a violation of a requirement at this level is graded: MUST → FAIL, SHOULD → NON-STRICT, else INFO."""
    return {"MUST": Verdict.FAIL, "SHOULD": Verdict.NON_STRICT}.get(level, Verdict.INFO)


@dataclass(frozen=True)
class Finding:
    """One observed deviation from a requirement (or clause), with the evidence as text."""

    requirement: str
    clause: str | None
    level: str
    verdict: Verdict
    message: str

    def describe(self) -> str:
        """``ICE-PRIO-01/formula (SHOULD): message``."""
        ref = self.requirement + (f"/{self.clause}" if self.clause else "")
        return f"{ref} ({self.level}): {self.message}"


class Violation(Exception):
    """A MUST-level finding: ends the case with FAIL."""

    def __init__(self, finding: Finding) -> None:
        super().__init__(finding.describe())
        self.finding = finding


class CaseEnded(Exception):
    """The case cannot go on after a non-MUST finding (its verdict is the findings')."""


class HarnessError(Exception):
    """The harness or the environment failed (ERROR), e.g. an expectation with no requirement timed out."""


class UnsupportedFeature(Exception):
    """The IUT lacks a capability the case needs (UNSUPPORTED)."""


@dataclass
class Findings:
    """The findings of one case; graded against the catalog."""

    requirements: tuple[str, ...] = ()
    catalog: Catalog = field(default_factory=load_catalog)
    items: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def violation(self, requirement: str, message: str, clause: str | None = None) -> None:
        """Record a violation; raises :class:`Violation` when its level is MUST."""
        level = self.catalog.level_of(requirement, clause)
        finding = Finding(requirement, clause, level, verdict_for_level(level), message)
        self.items.append(finding)
        if finding.verdict is Verdict.FAIL:
            raise Violation(finding)

    def check(self, ok: bool, requirement: str, message: str, clause: str | None = None) -> bool:
        """Record a violation unless ``ok``; returns ``ok``."""
        if not ok:
            self.violation(requirement, message, clause)
        return ok

    def inconclusive(self, requirement: str, message: str, clause: str | None = None) -> None:
        """Record that the case could not tell conformance from violation: INFO, with the evidence as text."""
        self.catalog.level_of(requirement, clause)  # the ID (and clause) must exist
        self.items.append(Finding(requirement, clause, "INFO", Verdict.INFO, f"inconclusive: {message}"))

    def info(self, message: str) -> None:
        """A note for the reader (shown with the verdict, changes nothing)."""
        self.notes.append(message)

    def worst(self) -> Verdict:
        """The verdict of the recorded findings alone (PASS when there are none)."""
        verdicts = [f.verdict for f in self.items] or [Verdict.PASS]
        return max(verdicts, key=VERDICT_ORDER.index)

    def summary(self) -> str:
        """All findings and notes, one per line."""
        return "\n".join([f.describe() for f in self.items] + self.notes)
