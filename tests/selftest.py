"""The one self-test runner: expectations are data on the suite cases, ``@pytest.mark.selftest(...)``.

A case says how the reference IUTs must grade it: ``@pytest.mark.selftest(fault="no-487")`` means "against the
reference with the fault ``no-487``, FAIL, with a message naming the case's requirement". Every case carrying the
marker is also expected to PASS against the fault-free reference. Keywords of the marker:

- ``fault``: a reference fault (``conformance/reference/faults.py``: the ICE peer's for ICE cases, the TURN server's
  or client's for ``turn_server/`` and ``turn_client/`` cases); ``variant``: a legal variant of the reference
  (``VARIANTS`` there). With neither, the mark is about the fault-free reference (e.g. ``verdict="INFO"``).
- ``verdict``: the verdict, or a list of verdicts the case may give (``FAIL`` with a fault, else ``PASS``).
- ``requirement``: the requirement ID the message must name; by default the case's own, when it checks one and the
  expectation is about a fault. ``message``: further text, or a list of texts, the message must contain.
- ``params``: the parameter IDs (``item.callspec.id``) the mark is about; by default every parametrisation.
- ``require``: the revisions the run claims (``--require``); by default RFC 8489 and 8656, which the reference
  IUTs implement, so each fault keeps its detection power (``conformance/revisions.py``).
- ``revision_gap=True``: the fault is a legal older-revision variant; the run claims no revision and the case must
  give UNSUPPORTED, marked as a revision gap ("... mechanism not implemented").
- ``record``: fields of the case's record that must equal the given values (e.g. ``options``).

This module is also a pytest plugin (``-p tests.selftest``): with ``$SELFTEST_DUMP`` set, collecting ``suites/``
writes every case with its marks there, which :func:`collect` reads.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conformance.reference.faults import FAULTS, TURN_CLIENT_FAULTS, TURN_SERVER_FAULTS, VARIANTS, Fault
from conformance.tester.options import CASE_OPTIONS_ENV

ROOT = Path(__file__).resolve().parents[1]

__all__ = [
    "REQUIRE_ALL",
    "ROOT",
    "Case",
    "Expectation",
    "batches",
    "catalogue",
    "collect",
    "expectations",
    "run_batch",
    "run_cases",
]

#: Revisions a self-test run claims by default: the reference IUTs implement RFC 8489 and RFC 8656.
REQUIRE_ALL: tuple[int, ...] = (8489, 8656)
#: The marker and the keywords it takes.
MARKER = "selftest"
KEYWORDS = {"fault", "variant", "verdict", "requirement", "message", "params", "require", "revision_gap", "record"}
VERDICTS = {"PASS", "NON-STRICT", "FAIL", "INFO", "UNSUPPORTED", "ERROR"}
DUMP_ENV = "SELFTEST_DUMP"
POSITIONAL = "(positional)"  # where the dump keeps a mark's positional arguments, which the marker does not take
#: How to run each reference IUT.
IUTS = {
    "ice": ["--iut", "reference"],
    "turn": ["--iut-cmd", f"{sys.executable} -m conformance.reference.turn_main"],
}


@dataclass(frozen=True)
class Case:
    """One collected suite case: its ID (relative to ``suites/``), requirements, slow tier, parameter ID, marks."""

    id: str
    requirements: tuple[str, ...]
    slow: bool
    param: str | None
    marks: tuple[dict[str, Any], ...]

    @property
    def iut(self) -> str:
        """``turn`` for cases run against the reference TURN server or client, else ``ice`` (the reference peer)."""
        return "turn" if self.side in ("server", "client") else "ice"

    @property
    def side(self) -> str:
        """Whose faults apply: ``server`` or ``client`` (reference TURN IUT), or ``ice`` (reference peer)."""
        path = self.id.split("::")[0]
        if path.startswith("turn_server/") or path == "robustness/test_turn_server.py":
            return "server"
        return "client" if path.startswith("turn_client/") else "ice"


def catalogue(side: str) -> dict[str, Fault]:
    """The faults a case of that side may name."""
    return {"ice": FAULTS, "server": TURN_SERVER_FAULTS, "client": TURN_CLIENT_FAULTS}[side]


@dataclass(frozen=True)
class Expectation:
    """How one case must be graded under one condition: a fault, a legal variant, or none (the clean reference)."""

    case: Case
    fault: str | None
    variant: str | None
    verdicts: tuple[str, ...]
    message: tuple[str, ...]
    require: tuple[int, ...]
    record: tuple[tuple[str, str], ...]  # (field, value as JSON)

    @property
    def options(self) -> dict[str, Any] | None:
        """The case's IUT options (``$ICE_CONFORMANCE_CASE_OPTIONS``); None for the fault-free reference."""
        if self.fault is not None:
            return {"faults": [self.fault]}
        if self.variant is not None:
            return dict(VARIANTS[self.variant].options)
        return None

    @property
    def condition(self) -> str:
        """``fault:NAME``, ``variant:NAME`` or ``clean``."""
        if self.fault is not None:
            return f"fault:{self.fault}"
        return f"variant:{self.variant}" if self.variant is not None else "clean"

    @property
    def group(self) -> tuple[str, tuple[int, ...], bool, bool]:
        """Expectations of one group can share a run: same IUT, same claimed revisions, same tier; robustness cases
        apart, since their faults crash or hang the reference process that the run's other cases would share."""
        return (self.case.iut, self.require, self.case.slow, self.case.id.startswith("robustness/"))

    def __str__(self) -> str:
        return f"{self.case.id} with {self.condition}"

    def problems(self, record: dict[str, Any] | None) -> list[str]:
        """What is wrong with the case's record under this expectation (empty when it holds)."""
        if record is None:
            return ["not run"]
        found = []
        text = record.get("message", "")
        if record["verdict"] not in self.verdicts:
            found.append(f"verdict {record['verdict']}, expected {' or '.join(self.verdicts)}: {text[:300]}")
        found += [f"message does not contain {m!r}: {text[:300]}" for m in self.message if m not in text]
        for name, value in self.record:
            if json.dumps(record.get(name)) != value:
                found.append(f"record {name} is {json.dumps(record.get(name))}, expected {value}")
        return found


def _strings(value: Any) -> tuple[str, ...]:
    """A string or a list of strings, as a tuple."""
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


def _names_requirement(mark: dict[str, Any], verdicts: tuple[str, ...]) -> bool:
    """Whether the message must name a requirement by default: a fault that makes the case fail (or give INFO)."""
    failing = {"FAIL", "NON-STRICT", "INFO"}
    return mark.get("fault") is not None and not mark.get("revision_gap") and set(verdicts) <= failing


def _expectation(case: Case, mark: dict[str, Any]) -> Expectation:
    """The expectation one mark gives for one case (the mark applies to it)."""
    fault, variant = mark.get("fault"), mark.get("variant")
    gap = bool(mark.get("revision_gap"))
    verdicts = _strings(mark.get("verdict")) or (("UNSUPPORTED",) if gap else ("FAIL",) if fault else ("PASS",))
    requirement = mark.get("requirement")
    if requirement is None and _names_requirement(mark, verdicts) and len(case.requirements) == 1:
        requirement = case.requirements[0]
    message = (*_strings(requirement), *_strings(mark.get("message")))
    record = dict(mark.get("record") or {})
    if gap:
        message += ("mechanism not implemented",)
        record["revision_gap"] = True
    require = () if gap else tuple(mark.get("require", REQUIRE_ALL))
    return Expectation(
        case,
        fault,
        variant,
        tuple(sorted(verdicts)),
        tuple(sorted(set(message))),
        require,
        tuple(sorted((k, json.dumps(v)) for k, v in record.items())),
    )


def mark_problems(case: Case, mark: dict[str, Any]) -> list[str]:
    """What is wrong with one mark of a case: unknown keywords, fault, variant or verdict."""
    found = [f"unknown keyword {k!r}" for k in sorted(mark.keys() - KEYWORDS - {POSITIONAL})]
    if POSITIONAL in mark:
        found.append(f"positional arguments {mark[POSITIONAL]}: the marker takes keywords only")
    if mark.get("fault") is not None and mark["fault"] not in catalogue(case.side):
        found.append(f"fault {mark['fault']!r} is not in the reference's {case.side} faults")
    if mark.get("variant") is not None and mark["variant"] not in VARIANTS:
        found.append(f"variant {mark['variant']!r} is not a legal variant of the reference")
    if mark.get("fault") is not None and mark.get("variant") is not None:
        found.append("a mark names a fault or a variant, not both")
    found += [f"unknown verdict {v!r}" for v in _strings(mark.get("verdict")) if v not in VERDICTS]
    verdicts = _strings(mark.get("verdict")) or ("FAIL",)
    if _names_requirement(mark, verdicts) and "requirement" not in mark and len(case.requirements) != 1:
        found.append(f"the case checks {list(case.requirements)}: say which one the message names (requirement=)")
    return [f"{case.id}: {p}" for p in found]


def applies(case: Case, mark: dict[str, Any]) -> bool:
    """Whether a mark is about this parametrisation of its case."""
    params = _strings(mark.get("params"))
    return not params or case.param in params


def expectations(cases: Iterable[Case]) -> list[Expectation]:
    """Every expectation the marks give, plus, for each marked case, a clean-reference PASS unless a mark without a
    fault or variant says otherwise (those marks of one case merge into one expectation)."""
    out: list[Expectation] = []
    for case in cases:
        if not case.marks:
            continue
        clean: dict[str, Any] = {"verdict": [], "message": [], "record": {}}
        for mark in case.marks:
            if not applies(case, mark):
                continue
            if mark.get("fault") is None and mark.get("variant") is None:
                clean["verdict"] += _strings(mark.get("verdict"))
                clean["message"] += _strings(mark.get("message"))
                clean["record"].update(mark.get("record") or {})
            else:
                out.append(_expectation(case, mark))
        out.append(_expectation(case, {k: v for k, v in clean.items() if v}))
    return sorted(out, key=lambda e: (e.case.id, e.condition, e.require))


def batches(rows: list[Expectation], size: int = 10, slow_size: int = 3) -> dict[str, list[Expectation]]:
    """Expectations grouped into runs, by name: one IUT, revision claim and tier per run, a case at most once per
    run (one fault each), at most ``size`` cases per run (``slow_size`` in the slow tier)."""
    runs: dict[tuple[str, tuple[int, ...], bool, bool], list[list[Expectation]]] = {}
    for row in rows:
        limit = slow_size if row.case.slow else size
        rounds = runs.setdefault(row.group, [])
        for r in rounds:
            if len(r) < limit and all(other.case.id != row.case.id for other in r):
                r.append(row)
                break
        else:
            rounds.append([row])
    named = {}
    for (iut, require, slow, robustness), rounds in sorted(runs.items()):
        prefix = iut + ("-robustness" if robustness else "") + ("" if require == REQUIRE_ALL else "-no-require")
        prefix += "-slow" if slow else ""
        for i, r in enumerate(rounds, 1):
            named[f"{prefix}-{i}"] = r
    return named


def run_batch(rows: list[Expectation], out: Path) -> dict[str, list[str]]:
    """Run one batch (each case with its own fault or variant) and return the problems by expectation."""
    first = rows[0]
    assert all(r.group == first.group for r in rows), "a batch mixes IUTs, revision claims or tiers"
    options = {r.case.id: r.options for r in rows if r.options is not None}
    timeout = 3600 if first.case.slow else 900  # the slow tier waits out 30-600 s protocol timers, in series
    cases = sorted(r.case.id for r in rows)
    records = run_cases(cases, IUTS[first.case.iut], out, timeout, case_options=options, require=first.require)
    problems = {str(r): r.problems(records.get(r.case.id)) for r in rows}
    return {k: v for k, v in problems.items() if v}


def run_cases(
    case_ids: list[str],
    iut_args: list[str],
    out: Path,
    timeout: float = 900,
    case_options: dict[str, dict[str, Any]] | None = None,
    require: tuple[int, ...] = REQUIRE_ALL,
) -> dict[str, dict[str, Any]]:
    """Run the given cases (IDs relative to ``suites/``) and return their records by case ID.

    ``case_options`` maps case IDs to extra IUT options (``$ICE_CONFORMANCE_CASE_OPTIONS``), e.g. a fault each;
    ``require`` the revisions the run claims (``--require``; empty grades newer-revision rules on evidence).
    """
    nodeids = [f"suites/{c}" for c in case_ids]
    env = dict(os.environ)
    env.pop("PYTEST_XDIST_WORKER", None)
    env.pop(CASE_OPTIONS_ENV, None)
    if case_options:
        env[CASE_OPTIONS_ENV] = json.dumps(case_options)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            *nodeids,
            "-p",
            "no:cacheprovider",
            "-q",
            "--slow",
            "--conformance-out",
            str(out),
            *iut_args,
            *[arg for revision in require for arg in ("--require", str(revision))],
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=timeout,
        check=False,
    )
    summary_file = out / "summary.json"
    assert summary_file.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    records = json.loads(summary_file.read_text())["records"]
    return {r["nodeid"].removeprefix("suites/"): r for r in records}


def collect(*folders: str) -> list[Case]:
    """Every case under the given ``suites/`` sub-folders (all of them by default; slow tier included) with its
    ``selftest`` marks, from a ``--collect-only`` run with this module as a plugin."""
    with tempfile.TemporaryDirectory() as tmp:
        dump = Path(tmp) / "cases.json"
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                *([f"suites/{f}" for f in folders] or ["suites"]),
                "--collect-only",
                "-q",
                "-p",
                "no:cacheprovider",
                "-p",
                "tests.selftest",
                "--slow",
            ],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env={**os.environ, DUMP_ENV: str(dump)},
            timeout=300,
            check=False,
        )
        assert dump.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
        rows = json.loads(dump.read_text())
    return [Case(r["id"], tuple(r["requirements"]), r["slow"], r["param"], tuple(r["marks"])) for r in rows]


def pytest_collection_finish(session: pytest.Session) -> None:
    """Plugin hook: write every collected case with its ``selftest`` marks to ``$SELFTEST_DUMP``."""
    dump = os.environ.get(DUMP_ENV)
    if not dump:
        return
    rows = []
    for item in session.items:
        callspec = getattr(item, "callspec", None)
        rows.append(
            {
                "id": item.nodeid.removeprefix("suites/"),
                "requirements": [r for m in item.iter_markers("requirement") for r in m.args],
                "slow": item.get_closest_marker("slow") is not None,
                "param": callspec.id if callspec is not None else None,
                "marks": [
                    {**m.kwargs, **({POSITIONAL: list(m.args)} if m.args else {})}
                    for m in reversed(list(item.iter_markers(MARKER)))
                ],
            }
        )
    Path(dump).write_text(json.dumps(rows))
