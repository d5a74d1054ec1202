"""Baselines: the verdicts a run expects per IUT and case, each with a written reason (design.md, "Reports")."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "VERDICT_NAMES",
    "Baseline",
    "BaselineError",
    "Comparison",
    "Expected",
    "compare",
    "load_baseline",
    "parse_verdicts",
    "unknown_entries",
]

GATING = {"FAIL", "ERROR"}


class BaselineError(ValueError):
    """A baseline file that cannot be used; the message names the file and the entry."""


VERDICT_NAMES = ("PASS", "NON-STRICT", "FAIL", "INFO", "UNSUPPORTED", "ERROR")


@dataclass(frozen=True)
class Expected:
    """One expected verdict, or (``verdict = [...]`` in TOML) the verdicts of an IUT that varies from run to run."""

    iut: str
    case: str
    verdict: str
    reason: str
    also: tuple[str, ...] = ()

    @property
    def verdicts(self) -> tuple[str, ...]:
        """Every verdict this entry accepts: the first, then the alternatives."""
        return (self.verdict, *self.also)

    def accepts(self, verdict: str) -> bool:
        """Whether a run's verdict matches this entry."""
        return verdict in self.verdicts


def parse_verdicts(value: Any, where: str) -> tuple[str, tuple[str, ...]]:
    """A baseline's ``verdict``: one name, or a non-empty list of names (the first is the usual one)."""
    names = [str(v) for v in value] if isinstance(value, list) else [str(value)]
    bad = [n for n in names if n not in VERDICT_NAMES]
    if not names or bad:
        raise BaselineError(f"{where}: verdict must be one of {', '.join(VERDICT_NAMES)} or a list of them: {value!r}")
    return names[0], tuple(dict.fromkeys(names[1:]))


@dataclass
class Baseline:
    """Expected verdicts keyed by (IUT, case ID); accepted passive-monitor findings keyed by (IUT, requirement)."""

    entries: dict[tuple[str, str], Expected]
    #: The file it was read from ("" when built in memory).
    path: str = ""
    #: ``[[monitor]]`` tables: a monitor finding the IUT shows in every case it occurs in, accepted once with its
    #: reason, so the case is compared by the verdict of its own checks (``case_verdict`` in summary.json).
    monitor: dict[tuple[str, str], str] = field(default_factory=dict)

    def get(self, iut: str, case: str) -> Expected | None:
        """The expectation for this IUT and case, if any."""
        return self.entries.get((iut, case))

    def verdict_of(self, record: dict[str, Any]) -> str:
        """The record's verdict, or its case's own verdict when every monitor finding that graded it is accepted."""
        graded = [m for m in record.get("monitor") or [] if not m.get("info")]
        own = record.get("case_verdict")
        if not graded or own is None:
            return str(record["verdict"])
        iut = record.get("baseline_iut") or record["iut"]  # as compare() keys the record
        if all((iut, m["requirement"]) in self.monitor for m in graded):
            return str(own)
        return str(record["verdict"])


def load_baseline(path: str | Path) -> Baseline:
    """Read a TOML baseline: ``[[expected]]`` tables with iut, case, verdict and a non-empty reason."""
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text())
    except FileNotFoundError as exc:
        raise BaselineError(f"baseline {p} does not exist") from exc
    except tomllib.TOMLDecodeError as exc:
        raise BaselineError(f"baseline {p} is not valid TOML: {exc}") from exc
    entries: dict[tuple[str, str], Expected] = {}
    for i, row in enumerate(data.get("expected", []), start=1):
        missing = [k for k in ("iut", "case", "verdict", "reason") if not str(row.get(k, "")).strip()]
        if missing:
            raise BaselineError(f"baseline {p}, entry {i}: missing {', '.join(missing)}")
        verdict, also = parse_verdicts(row["verdict"], f"baseline {p}, entry {i}")
        e = Expected(str(row["iut"]), str(row["case"]), verdict, str(row["reason"]).strip(), also)
        entries[(e.iut, e.case)] = e
    monitor: dict[tuple[str, str], str] = {}
    for i, row in enumerate(data.get("monitor", []), start=1):
        missing = [k for k in ("iut", "requirement", "reason") if not str(row.get(k, "")).strip()]
        if missing:
            raise BaselineError(f"baseline {p}, monitor entry {i}: missing {', '.join(missing)}")
        monitor[(str(row["iut"]), str(row["requirement"]))] = str(row["reason"]).strip()
    return Baseline(entries, str(path), monitor)


@dataclass
class Comparison:
    """A run's records against a baseline."""

    new_failures: list[dict[str, Any]]
    errors: list[dict[str, Any]]
    new_non_strict: list[dict[str, Any]]
    unexpected_passes: list[dict[str, Any]]
    expected: list[dict[str, Any]]


def compare(records: list[dict[str, Any]], baseline: Baseline | None) -> Comparison:
    """Sort each record: matches its expectation, a new FAIL, an ERROR, a new NON-STRICT, or an unexpected pass."""
    out = Comparison([], [], [], [], [])
    for r in records:
        key = r.get("baseline_iut") or r["iut"]  # a run the report labelled by its folder keeps its baseline
        exp = baseline.get(key, r["case_id"]) if baseline is not None else None
        verdict = baseline.verdict_of(r) if baseline is not None else r["verdict"]
        if exp is not None and exp.accepts(verdict):
            out.expected.append(r)
        elif exp is not None and verdict == "PASS":
            out.unexpected_passes.append(r)
        elif verdict == "ERROR":
            out.errors.append(r)
        elif verdict == "FAIL":
            out.new_failures.append(r)
        elif verdict == "NON-STRICT":
            out.new_non_strict.append(r)
    return out


def unknown_entries(baseline: Baseline, case_ids: set[str]) -> list[Expected]:
    """Entries naming a case ID that no longer exists (``case_ids``: those known to exist)."""
    return [e for (_, case), e in sorted(baseline.entries.items()) if case not in case_ids]
