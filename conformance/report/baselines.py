"""Writing baselines from runs, and refusing placeholder reasons (design.md: every entry has a written reason).

``baseline write`` turns a run's FAIL and NON-STRICT records (and ERROR with ``--include-errors``) into
``[[expected]]`` entries in the format of ``baselines/aioice.toml``. The reason of a new entry is a placeholder,
``"TODO: ..."``, which :func:`placeholder_entries` finds and ``baseline check`` (and ``run --baseline``, once
wired) refuses: a generated reason would turn the baseline into a rubber stamp. ``--reason-from-message`` writes the
observed failure instead, marked ``observed:`` — a statement of *what* happened, to be completed with *why*.
Updating an existing file keeps the reasons already written for entries whose verdict did not change.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conformance.baseline import Baseline, BaselineError, Expected, load_baseline, parse_verdicts

__all__ = [
    "PLACEHOLDER_PREFIX",
    "BaselineUpdate",
    "check_reasons",
    "placeholder_entries",
    "render_baseline",
    "update_baseline",
]

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


def _read_existing(path: Path) -> list[Expected]:
    """Entries of an existing file, TODO reasons included (this reads for updating, not for gating)."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise BaselineError(f"baseline {path} is not valid TOML: {exc}") from exc
    out = []
    for i, row in enumerate(data.get("expected", []), start=1):
        verdict, also = parse_verdicts(row.get("verdict", ""), f"baseline {path}, entry {i}")
        out.append(
            Expected(str(row.get("iut", "")), str(row.get("case", "")), verdict, str(row.get("reason", "")), also)
        )
    return out


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
    present = existing is not None and existing.exists()
    old = {(e.iut, e.case): e for e in (_read_existing(existing) if existing is not None and present else [])}
    monitor = load_baseline(existing).monitor if existing is not None and present else {}
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
