"""Verdicts and how a case reports a finding (design.md, "Verdicts").

A case names its requirement IDs with ``@pytest.mark.requirement``. When it observes a violation it calls
:meth:`Findings.violation` (or :meth:`Findings.check`); the level of the requirement (or of one of its clauses) comes
from the catalog, never from the case: a MUST violation ends the case at once with FAIL, a SHOULD violation is recorded
as NON-STRICT and the case goes on, a MAY or INFO row records INFO. Anything else that goes wrong is the harness's,
the adapter's or the environment's: ERROR.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import pytest

from conformance.adapters.base import AdapterError, IutCrashed, Unsupported
from conformance.catalog import Catalog, Requirement, load_catalog
from conformance.tester.monitor import SystematicViolation

__all__ = [
    "CRASH_REQUIREMENT",
    "LETTERS",
    "SYMBOLS",
    "VERDICTS",
    "VERDICT_ORDER",
    "CaseEnded",
    "Finding",
    "Findings",
    "HarnessError",
    "UnsupportedFeature",
    "Verdict",
    "Violation",
    "cite",
    "grade",
    "grade_crash",
    "own_findings",
    "verdict_for_level",
    "worst",
]


class Verdict(enum.StrEnum):
    """The six verdicts of a case."""

    PASS = "PASS"
    NON_STRICT = "NON-STRICT"
    FAIL = "FAIL"
    INFO = "INFO"
    UNSUPPORTED = "UNSUPPORTED"
    ERROR = "ERROR"


#: Severity order used to combine findings, best first: the worst wins.
VERDICT_ORDER = [Verdict.PASS, Verdict.INFO, Verdict.UNSUPPORTED, Verdict.NON_STRICT, Verdict.FAIL, Verdict.ERROR]
#: The verdict names in the order reports and baselines list them (good to bad, then the harness's own).
VERDICTS: tuple[str, ...] = tuple(v.value for v in Verdict)
#: One-character progress letters (pytest's terminal line).
LETTERS: dict[str, str] = {
    Verdict.PASS: ".",
    Verdict.FAIL: "F",
    Verdict.ERROR: "E",
    Verdict.NON_STRICT: "N",
    Verdict.INFO: "i",
    Verdict.UNSUPPORTED: "u",
}
#: Symbols of the interop matrix table.
SYMBOLS: dict[str, str] = {
    Verdict.PASS: "✓",
    Verdict.NON_STRICT: "~",
    Verdict.INFO: "i",
    Verdict.FAIL: "✗",
    Verdict.ERROR: "E",
    Verdict.UNSUPPORTED: "U",
}
_SEVERITY = {v.value: i for i, v in enumerate(VERDICT_ORDER)}


def worst(verdicts: Iterable[str], default: str = Verdict.PASS) -> str:
    """The worst of several verdicts by :data:`VERDICT_ORDER`; ``default`` when there are none."""
    return max(verdicts, key=_SEVERITY.__getitem__, default=default)


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
        return Verdict(worst(f.verdict for f in self.items))

    def summary(self) -> str:
        """All findings and notes, one per line."""
        return "\n".join([f.describe() for f in self.items] + self.notes)


# -- grading a case ---------------------------------------------------------------------------------------------


#: The harness's own row for an IUT process killed by a signal (suites/catalog.toml, group "Robustness").
CRASH_REQUIREMENT = "ROB-CRASH-01"


def grade_crash(findings: Findings | None, death: IutCrashed, detail: str = "") -> tuple[Verdict, str]:
    """FAIL under ROB-CRASH-01 for an IUT killed by a fault signal, whatever else the case saw.

    docs/adapter-contract.md, "Crashes", says which deaths count.
    """
    catalog = findings.catalog if findings is not None else load_catalog()
    level = catalog.level_of(CRASH_REQUIREMENT)
    own = [f for f in findings.items if f.requirement == CRASH_REQUIREMENT] if findings is not None else []
    finding = (
        own[0]
        if own  # the case attributed the crash itself (suites/robustness/), naming the input
        else Finding(CRASH_REQUIREMENT, None, level, Verdict.FAIL, f"{death}; an agent must survive any datagram")
    )
    if findings is not None and finding not in findings.items:
        findings.items.append(finding)
    lines = [finding.describe()] + [f.describe() for f in (findings.items if findings else []) if f != finding]
    lines += findings.notes if findings is not None else []
    if detail:
        lines.append(f"the case itself ended with: {detail}")
    return Verdict.FAIL, "\n".join(lines)


def grade(
    findings: Findings | None,
    excinfo: pytest.ExceptionInfo[BaseException] | None,
    death: IutCrashed | None = None,
) -> tuple[Verdict, str]:
    """The verdict and its message from a case's findings, the exception that ended it (if any), and how the IUT
    process died during the case (if it did): a death from a signal is the IUT's FAIL, never ERROR."""
    base = findings.worst() if findings is not None else Verdict.PASS
    message = findings.summary() if findings is not None else ""
    exc = excinfo.value if excinfo is not None else None
    if isinstance(exc, IutCrashed):
        death = exc
    if death is not None and death.is_crash:
        quiet = exc is None or exc is death or isinstance(exc, Violation)  # a Violation is already a finding
        return grade_crash(findings, death, "" if quiet else f"{type(exc).__name__}: {exc}")
    if excinfo is None:
        return base, message
    exc = excinfo.value
    if isinstance(exc, Violation):
        return Verdict.FAIL, findings.summary() if findings is not None else str(exc)
    if isinstance(exc, SystematicViolation):
        return Verdict.FAIL, (message + "\n" if message else "") + f"case ended early by the monitor: {exc}"
    if isinstance(exc, CaseEnded):
        return base, message
    if isinstance(exc, UnsupportedFeature | Unsupported):
        return Verdict.UNSUPPORTED, str(exc)
    if isinstance(exc, pytest.skip.Exception):
        text = str(exc.msg) if hasattr(exc, "msg") else str(exc)
        return Verdict.UNSUPPORTED, text
    kind = type(exc).__name__
    detail = f"{kind}: {exc}" if not isinstance(exc, HarnessError | AdapterError) else str(exc)
    if base is Verdict.FAIL and findings is not None and any(f.source == "monitor" for f in findings.items):
        # The IUT broke a MUST on the way to what the case waited for (a relay, a connection, a check): that is
        # the verdict, the failed precondition its consequence.
        return Verdict.FAIL, f"{message}\n(then: {detail})"
    return Verdict.ERROR, (message + "\n" if message else "") + detail


def own_findings(findings: Findings) -> Findings:
    """The findings of the case's own checks (without the monitor's)."""
    items = [f for f in findings.items if f.source != "monitor"]
    return Findings(requirements=findings.requirements, catalog=findings.catalog, items=items, notes=findings.notes)
