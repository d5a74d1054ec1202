"""The ``report`` and ``baseline`` subcommands of ``ice-conformance`` (registered by :func:`add_commands`).

``report DIR [DIR ...] --out OUT`` merges run folders (CI shards, one job per IUT) into one HTML report and one
matrix; with ``--check`` its exit code is the gate over all of them. ``baseline write RUN_DIR ... --out FILE``
writes (or updates) a TOML baseline from the runs' FAIL and NON-STRICT records; ``baseline check RUN_DIR ...
--baseline FILE`` prints the comparison and exits with the gate's code (docs/reports.md).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from conformance.baseline import (
    Baseline,
    BaselineError,
    Comparison,
    check_reasons,
    compare,
    comparison_lines,
    load_baseline,
    update_baseline,
)
from conformance.report.gate import EXIT_ERROR, EXIT_OK, gate
from conformance.report.model import ReportError, merged_summary

__all__ = ["add_commands", "cmd_baseline_check", "cmd_baseline_write", "cmd_report", "print_comparison"]


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")


def _err(text: str) -> None:
    sys.stderr.write(text + "\n")


def _load_checked(path: str) -> Baseline:
    baseline = load_baseline(path)
    check_reasons(baseline, path)
    return baseline


def print_comparison(records: list[dict[str, Any]], comparison: Comparison) -> None:
    """The comparison as ``run`` prints it (:func:`conformance.baseline.comparison_lines`)."""
    for line in comparison_lines(records, comparison):
        _out(line)


def _gate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--strict", action="store_true", help="a NON-STRICT not in the baseline fails (exit 1)")
    p.add_argument("--strict-baseline", action="store_true", help="an unexpected pass fails (exit 1)")
    p.add_argument("--summary-md", help="also write a Markdown summary (for $GITHUB_STEP_SUMMARY)")


def _finish(args: argparse.Namespace, summary: dict[str, Any], comparison: Comparison) -> int:
    result = gate(summary["records"], comparison, strict=args.strict, strict_baseline=args.strict_baseline)
    if args.summary_md:
        from conformance.report.markdown import write_summary_md

        write_summary_md(
            summary, comparison, Path(args.summary_md), strict=args.strict, strict_baseline=args.strict_baseline
        )
    (_err if result.code else _out)(f"exit {result.code}: {result.reason}")
    return result.code


def cmd_report(args: argparse.Namespace) -> int:
    """``report DIR [DIR ...] --out OUT``: one report over several run folders."""
    from conformance.report.html import write_report

    folders = [Path(d) for d in args.dirs]
    try:
        baseline = _load_checked(args.baseline) if args.baseline else None
        summary = merged_summary(folders)
        # The same layout as a run folder: the HTML report under OUT/report/ (docs/reports.md).
        index = write_report(folders, Path(args.out) / "report", baseline=baseline)
    except (ReportError, BaselineError) as exc:
        _err(f"error: {exc}")
        return EXIT_ERROR
    records = summary["records"]
    iuts = sorted({r["iut"] for r in records})
    if args.results_md:
        from conformance.report.results import render_results_md

        Path(args.results_md).write_text(render_results_md(records, args.results_title), encoding="utf-8")
        _out(f"results document: {args.results_md}")
    _out(f"report of {len(records)} cases from {len(folders)} run folder(s), IUTs {', '.join(iuts) or 'none'}: {index}")
    if not args.check:
        if not records:
            _err("error: the run folders hold no case")
            return EXIT_ERROR
        return EXIT_OK
    comparison = compare(records, baseline)
    print_comparison(records, comparison)
    return _finish(args, summary, comparison)


def cmd_baseline_write(args: argparse.Namespace) -> int:
    """``baseline write RUN_DIR ... --out FILE``: expected verdicts from the runs' FAIL and NON-STRICT records."""
    out = Path(args.out)
    try:
        summary = merged_summary([Path(d) for d in args.dirs])
        update = update_baseline(
            summary["records"],
            out if out.exists() else None,
            reason_from_message=args.reason_from_message,
            include_errors=args.include_errors,
        )
    except (ReportError, BaselineError) as exc:
        _err(f"error: {exc}")
        return EXIT_ERROR
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(update.text, encoding="utf-8")
    for label, rows in (
        ("added", update.added),
        ("verdict changed", update.changed),
        ("kept", update.kept),
        ("removed (now passes)", update.removed),
    ):
        for e in rows:
            _out(f"  {label}: {e.iut} {e.verdict} {e.case}")
    for r in update.errors_left_out:
        _out(f"  not written (an ERROR is the harness's: fix it, or --include-errors): {r['iut']} {r['case_id']}")
    todo = sum(1 for e in update.added + update.changed if e.reason.startswith("TODO"))
    _out(f"wrote {out}: {len(update.added) + len(update.changed) + len(update.kept)} entries")
    if todo:
        _out(f"edit the {todo} TODO reason(s) in {out}: a baseline with a TODO reason is refused")
    return EXIT_OK


def cmd_baseline_check(args: argparse.Namespace) -> int:
    """``baseline check RUN_DIR ... --baseline FILE``: the comparison and the gate's exit code."""
    try:
        baseline = _load_checked(args.baseline)
        summary = merged_summary([Path(d) for d in args.dirs])
    except (ReportError, BaselineError) as exc:
        _err(f"error: {exc}")
        return EXIT_ERROR
    records = summary["records"]
    comparison = compare(records, baseline)
    print_comparison(records, comparison)
    from conformance.baseline import unknown_entries
    from conformance.cli import known_case_ids

    covered = {(r["iut"], r["case_id"]) for r in records}
    iuts = {r["iut"] for r in records}
    stale = unknown_entries(baseline, known_case_ids({c for _, c in baseline.entries}))
    for e in stale:
        _err(f"  error: the baseline names a case that does not exist (remove the entry): {e.iut} {e.verdict} {e.case}")
    for (iut, case), e in sorted(baseline.entries.items()):
        if iut in iuts and (iut, case) not in covered and e not in stale:
            _out(f"  not run (baseline entry kept): {iut} {e.verdict} {case}")
    code = _finish(args, summary, comparison)
    if stale:
        _err(f"exit {EXIT_ERROR}: {len(stale)} baseline entr{'y names' if len(stale) == 1 else 'ies name'} no case")
        return EXIT_ERROR
    return code


def add_commands(subparsers: Any) -> None:
    """Register ``report`` and ``baseline`` on the ``ice-conformance`` subparsers (each sets ``func``)."""
    rep = subparsers.add_parser(
        "report", help="merge run folders (CI shards, one per IUT) into one HTML report and matrix"
    )
    rep.add_argument("dirs", nargs="+", metavar="DIR", help="run folders (each with summary.json)")
    rep.add_argument("--out", required=True, help="output folder of the report")
    rep.add_argument("--baseline", help="TOML baseline: mark expected verdicts (and gate with --check)")
    rep.add_argument("--check", action="store_true", help="exit with the gate's code over all the runs (0, 1, 2)")
    rep.add_argument(
        "--results-md", help="also write the results document (docs/results-*.md): violations apart from revisions"
    )
    rep.add_argument("--results-title", default="Results of the full default tier", help="its title")
    _gate_args(rep)
    rep.set_defaults(func=cmd_report)

    base = subparsers.add_parser("baseline", help="write a baseline from a run, or check a run against one")
    sub = base.add_subparsers(dest="baseline_command", required=True)
    wr = sub.add_parser("write", help="write or update a TOML baseline from runs' FAIL and NON-STRICT records")
    wr.add_argument("dirs", nargs="+", metavar="RUN_DIR")
    wr.add_argument("--out", required=True, help="baseline file (updated in place when it exists)")
    wr.add_argument(
        "--reason-from-message", action="store_true", help='reason = "observed: <failure message>" instead of TODO'
    )
    wr.add_argument("--include-errors", action="store_true", help="also baseline ERROR verdicts (not advised)")
    wr.set_defaults(func=cmd_baseline_write)
    ck = sub.add_parser("check", help="compare runs with a baseline; exit 0, 1 or 2 as `run` does")
    ck.add_argument("dirs", nargs="+", metavar="RUN_DIR")
    ck.add_argument("--baseline", required=True, help="TOML baseline file")
    _gate_args(ck)
    ck.set_defaults(func=cmd_baseline_check)
