"""Verdicts and how a case reports a finding (design.md, "Verdicts").

A case names its requirement IDs with ``@pytest.mark.requirement``. When it observes a violation it calls
:meth:`Findings.violation` (or :meth:`Findings.check`); the level of the requirement (or of one of its clauses) comes
from the catalog, never from the case: a MUST violation ends the case at once with FAIL, a SHOULD violation is recorded
as NON-STRICT and the case goes on, a MAY or INFO row records INFO. Anything else that goes wrong is the harness's,
the adapter's or the environment's: ERROR.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field

from conformance.catalog import Catalog, Requirement, load_catalog

__all__ = [
    "VERDICT_ORDER",
    "CaseEnded",
    "Finding",
    "Findings",
    "HarnessError",
    "UnsupportedFeature",
    "Verdict",
    "Violation",
    "cite",
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


_OLDER_REVISIONS = (5389, 5766, 5245)
_KEYWORDS = ("MUST NOT", "MUST", "SHALL NOT", "SHALL", "REQUIRED", "SHOULD NOT", "SHOULD", "RECOMMENDED", "MAY")


def cite(req: Requirement, clause: str | None = None) -> str:
    """The RFC sentence a finding rests on, paraphrased: ``RFC 8489 §9.2.5 MUST: <clause text or row summary>``.

    The keyword is the clause's level, else the row's Level cell when it is a normative keyword; a row resting on
    indicative procedure text (``basis = "procedure"``) says so.
    """
    where = f"{req.rfc_name} §{req.section}" if req.section else req.rfc_name
    part = req.clause(clause) if clause is not None else None
    if part is not None:
        keyword, text = part.level, part.text
    else:
        cell = req.level_text.split(" (")[0].strip()
        keyword = cell if cell in _KEYWORDS else req.level
        text = req.summary
    if req.basis == "procedure":
        keyword = f"procedure text, graded {req.level_of(clause)}"
    revision = req.revision_of(clause)
    also = f" (already in RFC {revision})" if revision in _OLDER_REVISIONS and revision != req.rfc else ""
    return f"{where}{also} {keyword}: {text}"


@dataclass(frozen=True)
class Finding:
    """One observed deviation from a requirement (or clause), with the evidence as text.

    ``rule`` is the RFC sentence it rests on (:func:`cite`); ``revision_gap`` marks a rule only a newer revision
    imposes that this IUT does not implement (graded UNSUPPORTED, see ``conformance/revisions.py``).
    """

    requirement: str
    clause: str | None
    level: str
    verdict: Verdict
    message: str
    rule: str = ""
    revision_gap: bool = False
    #: "case" (the case's own check) or "monitor" (the passive monitor, conformance/tester/monitor.py).
    source: str = "case"

    def describe(self) -> str:
        """``ICE-PRIO-01/formula (SHOULD) [RFC 8445 §5.1.2 SHOULD: ...]: message``; ``(MUST, monitor)`` for the
        passive monitor's."""
        ref = self.requirement + (f"/{self.clause}" if self.clause else "")
        rule = f" [{self.rule}]" if self.rule else ""
        level = self.level if self.verdict is not Verdict.INFO or self.level == "INFO" else f"{self.level} as INFO"
        return f"{ref} ({level}{', monitor' if self.source == 'monitor' else ''}){rule}: {self.message}"


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
    #: Given the revision of the violated row or clause, the UNSUPPORTED reason when this IUT is not held to it
    #: (``conformance.revisions.RevisionPolicy.gap``); None grades every row as written.
    gate: Callable[[int | None], str | None] | None = None

    def violation(self, requirement: str, message: str, clause: str | None = None) -> None:
        """Record a violation; raises :class:`Violation` when its level is MUST.

        A violated rule that only a newer revision imposes, on an IUT that does not implement it, is recorded as
        UNSUPPORTED with the reason instead (a revision gap); at MUST level the case then ends (:class:`CaseEnded`).
        """
        req = self.catalog[requirement]
        level = req.level_of(clause)
        verdict = verdict_for_level(level)
        rule = cite(req, clause)
        gap = self.gate(req.revision_of(clause)) if self.gate is not None and verdict is not Verdict.INFO else None
        if gap is not None:
            self.items.append(Finding(requirement, clause, level, Verdict.UNSUPPORTED, f"{gap}: {message}", rule, True))
            if level == "MUST":
                raise CaseEnded(gap)
            return
        finding = Finding(requirement, clause, level, verdict, message, rule)
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

    def add(self, finding: Finding) -> None:
        """Record a finding graded elsewhere (the passive monitor's), without ending the case."""
        self.items.append(finding)

    def info(self, message: str) -> None:
        """A note for the reader (shown with the verdict, changes nothing)."""
        self.notes.append(message)

    @property
    def revision_gap(self) -> bool:
        """Whether a finding was graded UNSUPPORTED because the IUT does not implement the newer revision."""
        return any(f.revision_gap for f in self.items)

    def worst(self) -> Verdict:
        """The verdict of the recorded findings alone (PASS when there are none)."""
        verdicts = [f.verdict for f in self.items] or [Verdict.PASS]
        return max(verdicts, key=VERDICT_ORDER.index)

    def summary(self) -> str:
        """All findings and notes, one per line."""
        return "\n".join([f.describe() for f in self.items] + self.notes)
