"""Baselines: the verdicts a run expects per IUT and case, each with a written reason (design.md, "Reports").

One module reads, compares and writes them. :func:`load_baseline` reads the TOML; :func:`compare` sorts a run's
records against it and :func:`comparison_lines` says the result the one way ``run`` and ``report`` print it.
``baseline write`` (:func:`update_baseline`) turns a run's FAIL and NON-STRICT records (and ERROR with
``--include-errors``) into ``[[expected]]`` entries in the format of ``baselines/aioice.toml``. The reason of a new
entry is a placeholder, ``"TODO: ..."``, which :func:`placeholder_entries` finds and ``baseline check`` and
``run --baseline`` refuse: a generated reason would turn the baseline into a rubber stamp. ``--reason-from-message``
writes the observed failure instead, marked ``observed:`` — a statement of *what* happened, to be completed with
*why*. Updating an existing file keeps the reasons already written for entries whose verdict did not change.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conformance.verdict import VERDICTS

__all__ = [
    "PLACEHOLDER_PREFIX",
    "Baseline",
    "BaselineError",
    "BaselineUpdate",
    "Comparison",
    "Expected",
    "check_reasons",
    "compare",
    "comparison_lines",
    "load_baseline",
    "parse_verdicts",
    "placeholder_entries",
    "render_baseline",
    "unknown_entries",
    "update_baseline",
]


class BaselineError(ValueError):
    """A baseline file that cannot be used; the message names the file and the entry."""


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
    bad = [n for n in names if n not in VERDICTS]
    if not names or bad:
        raise BaselineError(f"{where}: verdict must be one of {', '.join(VERDICTS)} or a list of them: {value!r}")
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


def load_baseline(path: str | Path, *, lenient: bool = False) -> Baseline:
    """Read a TOML baseline: ``[[expected]]`` tables with iut, case, verdict and a non-empty reason.

    ``lenient`` (reading a file to update it, not to gate a run): ``[[expected]]`` fields may be missing.
    """
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise BaselineError(f"baseline {p} does not exist") from exc
    except tomllib.TOMLDecodeError as exc:
        raise BaselineError(f"baseline {p} is not valid TOML: {exc}") from exc
    entries: dict[tuple[str, str], Expected] = {}
    for i, row in enumerate(data.get("expected", []), start=1):
        missing = [k for k in ("iut", "case", "verdict", "reason") if not str(row.get(k, "")).strip()]
        if missing and not lenient:
            raise BaselineError(f"baseline {p}, entry {i}: missing {', '.join(missing)}")
        verdict, also = parse_verdicts(row.get("verdict", ""), f"baseline {p}, entry {i}")
        reason = str(row.get("reason", ""))
        e = Expected(
            str(row.get("iut", "")), str(row.get("case", "")), verdict, reason if lenient else reason.strip(), also
        )
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


def comparison_lines(records: list[dict[str, Any]], comparison: Comparison) -> list[str]:
    """The comparison as ``run`` and ``report`` print it: the counts, then one line per record that needs attention."""
    counts = {v: sum(1 for r in records if r["verdict"] == v) for v in VERDICTS}
    lines = ["verdicts: " + (", ".join(f"{k} {v}" for k, v in counts.items() if v) or "none")]
    lines += [
        f"  expected by the baseline: {r['iut']} {r['verdict']} {r['case_id']}"
        for r in comparison.expected
        if r["verdict"] != "PASS"
    ]
    for label, rows in (
        ("FAIL not in the baseline", comparison.new_failures),
        ("ERROR", comparison.errors),
        ("NON-STRICT not in the baseline", comparison.new_non_strict),
        ("unexpected pass (remove it from the baseline)", comparison.unexpected_passes),
    ):
        for r in rows:
            first = r["message"].splitlines()[0] if r.get("message") else ""
            lines.append(f"  {label}: {r['iut']} {r['case_id']}: {first}")
    return lines


def unknown_entries(baseline: Baseline, case_ids: set[str]) -> list[Expected]:
    """Entries naming a case ID that no longer exists (``case_ids``: those known to exist)."""
    return [e for (_, case), e in sorted(baseline.entries.items()) if case not in case_ids]


# -- writing baselines from runs --------------------------------------------------------------------------------

PLACEHOLDER_PREFIX = "TODO"
BASELINED = ("FAIL", "NON-STRICT")
_HEADER = """\
# Expected verdicts per IUT and case, each with the reason it is accepted (ice-conformance baseline).
# A case listed here does not fail the CI gate while its verdict stays the same; when it passes, the run reports
# an "unexpected pass" (fatal with --strict-baseline) and the entry should be removed.
# Replace every "TODO" reason with the real one: a baseline with a TODO reason is refused.
"""


def placeholder_entries(baseline: Baseline) -> list[Expected]:
    """Entries whose reason is still the generated placeholder."""
    return [e for e in baseline.entries.values() if e.reason.strip().upper().startswith(PLACEHOLDER_PREFIX)]


def check_reasons(baseline: Baseline, path: str | Path = "baseline") -> None:
    """BaselineError naming every entry whose reason is a TODO placeholder."""
    todo = placeholder_entries(baseline)
    if todo:
        names = "; ".join(f"{e.iut} {e.case}" for e in todo[:10]) + (" ..." if len(todo) > 10 else "")
        raise BaselineError(
            f"baseline {path}: {len(todo)} entr{'y has' if len(todo) == 1 else 'ies have'} a TODO reason: {names}"
        )


def _toml_string(text: str) -> str:
    """A TOML basic string (JSON escaping is valid TOML, except DEL, which TOML wants escaped)."""
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _toml_reason(text: str) -> str:
    if "\n" not in text and len(text) < 100:
        return _toml_string(text)
    # multi-line basic string: escape backslashes and quotes runs; keep newlines
    body = text.replace("\\", "\\\\").replace('"""', '""\\"')
    body = "".join(ch if ch in "\n\t" or (ord(ch) >= 0x20 and ord(ch) != 0x7F) else f"\\u{ord(ch):04x}" for ch in body)
    if body.endswith('"'):
        body = body[:-1] + '\\"'
    return f'"""\n{body}"""'


def render_baseline(
    entries: list[Expected],
    comments: dict[tuple[str, str], str] | None = None,
    monitor: dict[tuple[str, str], str] | None = None,
) -> str:
    """The TOML text of a baseline (entries sorted by IUT and case, then the accepted monitor findings)."""
    out = [_HEADER]
    for (iut, requirement), reason in sorted((monitor or {}).items()):
        out.append("[[monitor]]")
        out.append(f"iut = {_toml_string(iut)}")
        out.append(f"requirement = {_toml_string(requirement)}")
        out.append(f"reason = {_toml_reason(reason)}")
        out.append("")
    for e in sorted(entries, key=lambda x: (x.iut, x.case)):
        comment = (comments or {}).get((e.iut, e.case))
        out.append("[[expected]]")
        if comment:
            out.extend(f"# {line}" for line in comment.splitlines())
        out.append(f"iut = {_toml_string(e.iut)}")
        out.append(f"case = {_toml_string(e.case)}")
        if e.also:
            out.append(f"verdict = [{', '.join(_toml_string(v) for v in e.verdicts)}]")
        else:
            out.append(f"verdict = {_toml_string(e.verdict)}")
        out.append(f"reason = {_toml_reason(e.reason)}")
        out.append("")
    return "\n".join(out)


@dataclass
class BaselineUpdate:
    """What ``baseline write`` did."""

    text: str
    added: list[Expected]
    kept: list[Expected]
    changed: list[Expected]
    removed: list[Expected]
    errors_left_out: list[dict[str, Any]]


def update_baseline(
    records: list[dict[str, Any]],
    existing: Path | None = None,
    *,
    reason_from_message: bool = False,
    include_errors: bool = False,
) -> BaselineUpdate:
    """The baseline for these records, merged into an existing file's entries.

    For every (IUT, case) the records cover: a FAIL or NON-STRICT (ERROR with ``include_errors``) gets an entry,
    keeping the existing reason when the verdict is unchanged; any other verdict drops the entry. Entries for cases
    or IUTs the records do not cover are kept as they are.
    """
    current = load_baseline(existing, lenient=True) if existing is not None and existing.exists() else None
    old = dict(current.entries) if current is not None else {}
    monitor = current.monitor if current is not None else {}
    accepted = Baseline({}, monitor=monitor)
    wanted = BASELINED + (("ERROR",) if include_errors else ())
    covered: set[tuple[str, str]] = set()
    entries: dict[tuple[str, str], Expected] = {}
    comments: dict[tuple[str, str], str] = {}
    added: list[Expected] = []
    kept: list[Expected] = []
    changed: list[Expected] = []
    removed: list[Expected] = []
    errors_left_out: list[dict[str, Any]] = []
    for r in sorted(records, key=lambda x: (str(x["iut"]), str(x["case_id"]))):
        key = (str(r["iut"]), str(r["case_id"]))
        covered.add(key)
        verdict = accepted.verdict_of(r)
        prev = old.get(key)
        if prev is not None and prev.also and prev.accepts(verdict):  # an IUT that varies: the entry stands
            entries[key] = prev
            kept.append(prev)
            continue
        if verdict not in wanted:
            if verdict == "ERROR":
                errors_left_out.append(r)
                if prev is not None:  # an ERROR says nothing about the IUT: keep what was expected
                    entries[key] = prev
                    kept.append(prev)
            elif prev is not None:
                removed.append(prev)
            continue
        message = str(r.get("message") or "").strip()
        first = message.splitlines()[0] if message else ""
        if prev is not None and prev.accepts(verdict):
            entry = prev
            kept.append(entry)
        else:
            if reason_from_message and first:
                reason = f"observed: {first}{_sections(r)}"
            else:
                reason = f"{PLACEHOLDER_PREFIX}: why is this {verdict} accepted? Write the reason here."
            entry = Expected(key[0], key[1], verdict, reason)
            (changed if prev is not None else added).append(entry)
        entries[key] = entry
        reqs = " ".join(str(x) for x in r.get("requirements") or [])
        note = [f"requirements: {reqs}"] if reqs else []
        if first and not entry.reason.startswith("observed:"):
            note.append(f"observed: {first[:300]}")
        comments[key] = "\n".join(note)
    for key, e in old.items():
        if key not in covered:
            entries[key] = e
    return BaselineUpdate(
        render_baseline(list(entries.values()), comments, monitor), added, kept, changed, removed, errors_left_out
    )


def _sections(record: dict[str, Any]) -> str:
    """`` (RFC 8489 §9.1.3; ...)``: the catalog sections of a record's requirements, for a generated reason."""
    from conformance.catalog import load_catalog

    catalog = load_catalog()
    refs = [
        f"{catalog[r].rfc_name} §{catalog[r].section}"
        for r in record.get("requirements") or []
        if r in catalog and catalog[r].section
    ]
    return f" ({'; '.join(dict.fromkeys(refs))})" if refs else ""
