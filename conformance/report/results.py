"""The results document (``docs/results-*.md``) from the run folders of several IUTs.

Its disagreement tables keep two things apart that a reader must never confuse (docs/verdict-trust.md,
"Revisions"): *violations* (a stack FAILs or misses a SHOULD that another stack meets, in the revision it
implements) and *revision differences* (a rule only RFC 8489 or RFC 8656 imposes, which one stack implements and
another, an RFC 5389/5766 implementation, does not: UNSUPPORTED with ``revision_gap``).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from conformance.catalog import Catalog, load_catalog
from conformance.report.markdown import _md
from conformance.verdict import VERDICTS

__all__ = ["render_results_md"]

_SHORT = {"NON-STRICT": "NS"}


def _by_requirement(records: list[dict[str, Any]]) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """requirement -> IUT -> its records naming that requirement."""
    table: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        for rid in r.get("requirements") or []:
            table[rid][str(r["iut"])].append(r)
    return table


def _label(catalog: Catalog, rid: str) -> tuple[str, str, str]:
    req = catalog.get(rid)
    if req is None:
        return rid, "", ""
    where = f"{req.rfc_name} §{req.section}" if req.section else req.rfc_name
    proc = " (procedure)" if req.basis == "procedure" else ""
    return f"{rid} ({req.level}){proc}", where, _md(req.summary)


def render_results_md(records: list[dict[str, Any]], title: str, intro: str = "") -> str:
    """The document: counts per IUT, violations where stacks disagree, revision differences, and per-IUT lists."""
    catalog = load_catalog()
    iuts = sorted({str(r["iut"]) for r in records})
    out = [f"# {title}", ""]
    if intro:
        out += [intro, ""]
    out += [
        "| IUT | " + " | ".join(VERDICTS) + " | of which revision gaps |",
        "|---|" + "---:|" * (len(VERDICTS) + 1),
    ]
    for iut in iuts:
        mine = [r for r in records if r["iut"] == iut]
        counts = [sum(1 for r in mine if r["verdict"] == v) for v in VERDICTS]
        n_gaps = sum(1 for r in mine if r.get("revision_gap"))
        out.append(f"| {_md(iut)} | " + " | ".join(map(str, counts)) + f" | {n_gaps} |")
    out.append("")

    violations, revisions = [], []
    for rid, per_iut in sorted(_by_requirement(records).items()):
        ok = sorted(i for i, rs in per_iut.items() if all(r["verdict"] == "PASS" for r in rs))
        bad = {
            i: sorted(
                {r["verdict"] for r in rs if r["verdict"] in ("FAIL", "NON-STRICT") and not r.get("revision_gap")}
            )
            for i, rs in per_iut.items()
        }
        bad = {i: v for i, v in bad.items() if v}
        gaps = sorted(i for i, rs in per_iut.items() if any(r.get("revision_gap") for r in rs))
        name, where, summary = _label(catalog, rid)
        if ok and bad:
            deviating = ", ".join(f"{i} ({'/'.join(_SHORT.get(v, v) for v in vs)})" for i, vs in sorted(bad.items()))
            violations.append(f"| {name} | {where} | {summary} | {', '.join(ok)} | {deviating} |")
        if gaps:
            req = catalog.get(rid)
            newer = sorted(
                {n for n in [req.revision, *(c.revision for c in req.clauses)] if n in (8489, 8656)} if req else set()
            )
            since = ", ".join(f"RFC {n}" for n in newer) or "a newer revision"
            graded = ok + [f"{i} ({'/'.join(_SHORT.get(v, v) for v in vs)})" for i, vs in sorted(bad.items())]
            revisions.append(f"| {name} | {where} | {since} | {', '.join(graded) or '—'} | {', '.join(gaps)} |")
    out += [
        "## Where the implementations disagree: violations",
        "",
        "Requirements on which one stack passes every case and another FAILs or misses a SHOULD (NS) of the revision "
        "it implements. Rules an IUT does not implement because they are new in RFC 8489/8656 are not here but in "
        "the next table.",
        "",
        "| requirement | RFC | what the RFC requires | conforming | deviating |",
        "|---|---|---|---|---|",
        *(violations or ["| — | | | | |"]),
        "",
        "## Revision differences (not violations)",
        "",
        "Rules only RFC 8489 or RFC 8656 imposes. The stacks in the last column showed no sign of implementing the "
        "mechanism (RFC 5389 / RFC 5766 implementations) and get UNSUPPORTED, 'RFC 8489 mechanism not implemented'; "
        "a run with `--require 8489` (or 8656) grades them as written.",
        "",
        "| requirement | RFC | new in | graded as written (PASS, or the violation) | older revision only |",
        "|---|---|---|---|---|",
        *(revisions or ["| — | | | | |"]),
        "",
        "## Per implementation",
        "",
    ]
    for iut in iuts:
        mine = sorted((r for r in records if r["iut"] == iut), key=lambda r: str(r["case_id"]))
        versions = sorted({str(r.get("iut_version") or "") for r in mine} - {""})
        out += [f"### {iut}" + (f" ({', '.join(versions)})" if versions else ""), ""]
        for label, keep in (
            ("FAIL", lambda r: r["verdict"] == "FAIL"),
            ("NON-STRICT", lambda r: r["verdict"] == "NON-STRICT"),
            ("revision gaps (UNSUPPORTED)", lambda r: bool(r.get("revision_gap"))),
            ("ERROR", lambda r: r["verdict"] == "ERROR"),
        ):
            rows = [r for r in mine if keep(r)]
            if rows:
                out += [f"{label}:", ""]
                out += [f"- `{r['case_id']}`: {_md(str(r.get('message') or ''), 400)}" for r in rows]
                out.append("")
    return "\n".join(out)
