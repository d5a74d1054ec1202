"""A Markdown summary of a run for CI job pages (GitHub's ``$GITHUB_STEP_SUMMARY``, GitLab notes, PR comments)."""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

from conformance.baseline import Comparison
from conformance.catalog import load_catalog
from conformance.report.gate import gate
from conformance.verdict import VERDICTS

__all__ = ["render_summary_md", "write_summary_md"]

_MD_SPECIAL = re.compile(r"([\\`*_\[\]|#<>])")
_ICON = {0: "✅", 1: "❌", 2: "⛔"}
_MAX_ROWS = 50


def _md(text: str, limit: int = 300) -> str:
    """Escape text for a Markdown table cell or list item (one line, bounded)."""
    line = text.splitlines()[0] if text else ""
    if len(line) > limit:
        line = line[: limit - 1] + "…"
    return _MD_SPECIAL.sub(r"\\\1", html.unescape(line))


def _req_label(record: dict[str, Any]) -> str:
    catalog = load_catalog()
    parts = []
    for rid in record.get("requirements") or []:
        req = catalog.get(rid)
        if req is None:
            parts.append(f"{rid}")
        elif req.url:
            procedure = ", procedure" if req.basis == "procedure" else ""
            parts.append(f"[{rid}]({req.url}) ({req.level}{procedure}, {req.rfc_name} §{req.section})")
        else:
            parts.append(f"{rid} ({req.level})")
    return "; ".join(parts) or "no requirement"


def _section(title: str, rows: list[dict[str, Any]], note: str = "") -> list[str]:
    if not rows:
        return []
    out = [f"### {title} ({len(rows)})", ""]
    if note:
        out += [note, ""]
    for r in rows[:_MAX_ROWS]:
        out.append(f"- **{r['iut']}** `{r['case_id']}` — {_req_label(r)}")
        if r.get("message"):
            out.append(f"  - {_md(str(r['message']))}")
    if len(rows) > _MAX_ROWS:
        out.append(f"- … and {len(rows) - _MAX_ROWS} more (see the HTML report)")
    out.append("")
    return out


def render_summary_md(
    summary: dict[str, Any],
    comparison: Comparison,
    *,
    strict: bool = False,
    strict_baseline: bool = False,
    report_hint: str = "",
) -> str:
    """The Markdown text: gate, counts per IUT and verdict, what needs attention, where the report is."""
    records: list[dict[str, Any]] = summary.get("records", [])
    result = gate(records, comparison, strict=strict, strict_baseline=strict_baseline)
    iuts = sorted({str(r["iut"]) for r in records}) or [str(summary.get("iut") or "?")]
    versions = {i: sorted({str(r.get("iut_version") or "") for r in records if r["iut"] == i} - {""}) for i in iuts}
    out = [
        f"## ICE conformance: {', '.join(iuts)}",
        "",
        f"{_ICON.get(result.code, '')} **exit {result.code}**: {result.reason}",
        "",
        "| IUT | version | " + " | ".join(VERDICTS) + " | revision gaps |",
        "|---|---|" + "---:|" * (len(VERDICTS) + 1),
    ]
    for iut in iuts:
        counts = [sum(1 for r in records if r["iut"] == iut and r["verdict"] == v) for v in VERDICTS]
        gaps = sum(1 for r in records if r["iut"] == iut and r.get("revision_gap"))
        cells = " | ".join(str(c) for c in counts)
        out.append(f"| {_md(iut)} | {_md(', '.join(versions[iut]))} | {cells} | {gaps} |")
    out += [
        "",
        "Revision gaps are UNSUPPORTED verdicts on rules only RFC 8489/8656 impose, for an IUT that does not implement "
        "them: not violations (`--require 8489` grades them as written).",
    ]
    out.append("")
    out += _section("New failures (not in the baseline)", comparison.new_failures)
    out += _section("Errors (harness, adapter or environment)", comparison.errors)
    out += _section(
        "NON-STRICT not in the baseline",
        comparison.new_non_strict,
        "SHOULD-level deviations; they fail the gate only with `--strict`.",
    )
    out += _section(
        "Unexpected passes (remove them from the baseline)",
        comparison.unexpected_passes,
        "The baseline expects these to fail; they passed. Fatal with `--strict-baseline`.",
    )
    expected = [r for r in comparison.expected if r["verdict"] != "PASS"]
    if expected:
        out += ["<details><summary>Expected by the baseline (" + str(len(expected)) + ")</summary>", ""]
        out += [f"- **{r['iut']}** `{r['case_id']}`: {r['verdict']}" for r in expected[:_MAX_ROWS]]
        out += ["", "</details>", ""]
    hint = report_hint or (
        "The HTML report (summary, requirement matrix, a page per case with its ladder diagram and pcap) is "
        "`report/index.html` in the run folder; JUnit is `junit.xml`; Allure results are in `allure-results/`."
    )
    out += [hint, ""]
    return "\n".join(out)


def write_summary_md(
    summary: dict[str, Any],
    comparison: Comparison,
    path: Path,
    *,
    strict: bool = False,
    strict_baseline: bool = False,
    report_hint: str = "",
) -> None:
    """Write the Markdown summary to ``path`` (overwrites; append it to ``$GITHUB_STEP_SUMMARY`` yourself)."""
    text = render_summary_md(
        summary, comparison, strict=strict, strict_baseline=strict_baseline, report_hint=report_hint
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
