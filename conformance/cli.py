"""The ``ice-conformance`` command: ``run``, ``list``, ``vectors``.

Exit codes of ``run``: 0 when every verdict is PASS, NON-STRICT, INFO or UNSUPPORTED, or matches the baseline;
1 when a FAIL is not in the baseline (also a NON-STRICT with ``--strict``, an unexpected pass with
``--strict-baseline``); 2 for an ERROR, a usage error, or a run that selected no case.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from conformance import __version__
from conformance.install import add_command as add_install_command
from conformance.interop.commands import add_commands as add_interop_commands
from conformance.report.commands import add_commands

__all__ = ["main"]

EXIT_OK, EXIT_FAIL, EXIT_ERROR = 0, 1, 2


def _suites_dir() -> Path:
    return Path(__file__).resolve().parents[1] / "suites"


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")


def _err(text: str) -> None:
    sys.stderr.write(text + "\n")


def _cmd_vectors(args: argparse.Namespace) -> int:
    from conformance.vectors import load_vectors, verify_vector

    results = [verify_vector(v) for v in load_vectors()]
    for r in results:
        _out(f"{'ok  ' if r.ok else 'FAIL'} {r.name:<32} {r.source}: {r.detail}")
    failed = sum(not r.ok for r in results)
    _out(f"{len(results) - failed} passed, {failed} failed")
    if not results:
        _err("error: no vectors found")
        return EXIT_ERROR
    return EXIT_FAIL if failed else EXIT_OK


def _pytest_argv(args: argparse.Namespace, iut_args: list[str], out: Path) -> list[str]:
    targets = [str(_suites_dir() / c) for c in args.cases] if args.cases else [str(_suites_dir())]
    argv = [
        sys.executable,
        "-m",
        "pytest",
        *targets,
        "-v",
        "-p",
        "no:cacheprovider",
        "--conformance-out",
        str(out),
        "--junitxml",
        str(out / "junit.xml"),
        "--alluredir",
        str(out / "allure-results"),
        "--clean-alluredir",
        *iut_args,
    ]
    if args.k:
        argv += ["-k", args.k]
    if args.n:
        argv += ["-n", str(args.n)]
    if args.slow:
        argv.append("--slow")
    for option in ("case_budget", "iut_budget", "run_budget"):
        value = getattr(args, option)
        if value:
            argv += [f"--{option.replace('_', '-')}", str(value)]
    return argv


def _netns(args: argparse.Namespace, argv: list[str]) -> list[str]:
    """Run the whole pytest process in a loopback-only network namespace when asked or when the IUT needs it."""
    from conformance.adapters import node
    from conformance.adapters.registry import get_iut

    wanted = args.netns == "on" or (args.netns == "auto" and bool(args.iut) and get_iut(args.iut).netns)
    if not wanted:
        return argv
    if not node.netns_available():
        _err(
            "note: no loopback-only network namespace here (needs root and unshare -n); the shims restrict "
            "themselves to loopback"
        )
        return argv
    _out("running inside a loopback-only network namespace (unshare -n)")
    return node.netns_wrap(argv)


def _cmd_run(args: argparse.Namespace) -> int:
    from conformance.adapters.registry import UnknownIut, get_iut
    from conformance.baseline import BaselineError, compare, load_baseline
    from conformance.report.baselines import check_reasons
    from conformance.report.gate import gate
    from conformance.report.html import write_report
    from conformance.report.junit import rewrite_junit
    from conformance.report.markdown import write_summary_md

    if args.iut and args.iut_cmd:
        _err("error: --iut and --iut-cmd are exclusive")
        return EXIT_ERROR
    if args.iut:
        try:
            get_iut(args.iut)
        except UnknownIut as exc:
            _err(f"error: {exc}")
            return EXIT_ERROR
    baseline = None
    if args.baseline:
        try:
            baseline = load_baseline(args.baseline)
            check_reasons(baseline, args.baseline)
        except BaselineError as exc:
            _err(f"error: {exc}")
            return EXIT_ERROR
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summary_file = out / "summary.json"
    if summary_file.exists():
        summary_file.unlink()
    iut_args = ["--iut-cmd", args.iut_cmd] if args.iut_cmd else ["--iut", args.iut or "aioice"]
    argv = _netns(args, _pytest_argv(args, iut_args, out))
    env = dict(os.environ)
    proc = subprocess.run(argv, env=env, check=False)
    if not summary_file.exists():
        _err(f"error: pytest exited {proc.returncode} without writing {summary_file}")
        return EXIT_ERROR
    summary = json.loads(summary_file.read_text())
    records: list[dict[str, Any]] = summary["records"]
    for r in records:
        r["case_id"] = r["nodeid"].removeprefix("suites/")
    summary_file.write_text(json.dumps(summary, indent=2))
    if (out / "junit.xml").exists():
        rewrite_junit(out / "junit.xml", records)
    report = write_report([out], out / "report", baseline=baseline)
    comparison = compare(records, baseline)
    counts = summary["counts"]
    _out("verdicts: " + ", ".join(f"{k} {v}" for k, v in counts.items() if v))
    for r in comparison.expected:
        if r["verdict"] != "PASS":
            _out(f"  expected by the baseline: {r['verdict']} {r['case_id']}")
    for label, rows in (
        ("FAIL not in the baseline", comparison.new_failures),
        ("ERROR", comparison.errors),
        ("NON-STRICT", comparison.new_non_strict),
        ("unexpected pass (remove it from the baseline)", comparison.unexpected_passes),
    ):
        for r in rows:
            _out(f"  {label}: {r['case_id']}: {r['message'].splitlines()[0] if r['message'] else ''}")
    _out(f"report: {report}")
    if args.summary_md:
        write_summary_md(
            summary, comparison, Path(args.summary_md), strict=args.strict, strict_baseline=args.strict_baseline
        )
    result = gate(records, comparison, strict=args.strict, strict_baseline=args.strict_baseline)
    if result.code != EXIT_OK:
        _err(f"exit {result.code}: {result.reason}")
    return result.code


def _cmd_list(args: argparse.Namespace) -> int:
    from conformance.adapters.registry import get_iut, known_iuts

    _out("IUTs:")
    for name in known_iuts():
        spec = get_iut(name)
        caps = spec.declared_capabilities()
        _out(f"  {name:<14} {spec.description}")
        _out(f"  {'':<14} capabilities: {', '.join(sorted(caps)) if caps else '(declared at initialize)'}")

    rows = _collect_cases()
    _out("cases:")
    for case, reqs in rows:
        _out(f"  {case}  [{' '.join(reqs)}]")
    return EXIT_OK if rows else EXIT_ERROR


def _collect_cases() -> list[tuple[str, list[str]]]:
    """Every case (slow tier included) with its requirement IDs."""
    import pytest

    class _Lister:
        def __init__(self) -> None:
            self.rows: list[tuple[str, list[str]]] = []

        def pytest_collection_finish(self, session: pytest.Session) -> None:
            for item in session.items:
                marker = item.get_closest_marker("requirement")
                self.rows.append((item.nodeid.removeprefix("suites/"), list(marker.args) if marker else []))

    lister = _Lister()
    with contextlib.redirect_stdout(io.StringIO()):
        pytest.main([str(_suites_dir()), "--collect-only", "-q", "-p", "no:cacheprovider", "--slow"], plugins=[lister])
    return lister.rows


def _cmd_coverage(args: argparse.Namespace) -> int:
    import tomllib

    from conformance.catalog import load_catalog

    catalog = load_catalog()
    reasons_file = _suites_dir() / "not_checkable.toml"
    reasons: dict[str, str] = {}
    if reasons_file.exists():
        reasons = {str(r["id"]): str(r["reason"]) for r in tomllib.loads(reasons_file.read_text()).get("row", [])}
    by_req: dict[str, list[str]] = {}
    for case, reqs in _collect_cases():
        for rid in reqs:
            by_req.setdefault(rid, []).append(case)
    sections = set(args.sections or [])
    uncovered = 0
    rows = 0
    for req in catalog.values():
        if sections and req.group not in sections:
            continue
        rows += 1
        cases = by_req.get(req.id, [])
        if cases:
            _out(f"{req.id:<14} {req.level:<6} {len(cases)} case(s): {', '.join(cases)}")
        elif req.id in reasons:
            _out(f"{req.id:<14} {req.level:<6} not checkable from outside: {reasons[req.id]}")
        else:
            uncovered += 1
            _out(f"{req.id:<14} {req.level:<6} NO CASE")
    covered = (
        rows - uncovered - sum(1 for r in reasons if r in catalog and (not sections or catalog[r].group in sections))
    )
    _out(
        f"{rows} rows: {covered} with cases, {rows - covered - uncovered} not checkable (reason given), "
        f"{uncovered} without"
    )
    return EXIT_FAIL if uncovered else EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="ice-conformance", description="ICE, STUN and TURN conformance harness")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the suites against an IUT and write junit, allure, summary and HTML")
    run.add_argument(
        "cases",
        nargs="*",
        help="suite folders, files or case IDs under suites/ (default: all), e.g. stun ice/test_roles.py",
    )
    run.add_argument("--iut", help="IUT name (default aioice); see `ice-conformance list`")
    run.add_argument("--iut-cmd", help='any program speaking the stdio contract, e.g. "node shim.js"')
    run.add_argument("--out", default="reports/latest", help="output folder (default reports/latest)")
    run.add_argument("-k", help="select cases by keyword expression (as pytest -k)")
    run.add_argument("-n", help="parallel workers (as pytest-xdist -n)")
    run.add_argument("--slow", action="store_true", help="include the slow tier")
    run.add_argument("--case-budget", type=float, help="seconds per case (default 60)")
    run.add_argument("--iut-budget", type=float, help="seconds of case time for the IUT, per worker")
    run.add_argument("--run-budget", type=float, help="seconds for the whole run; later cases get ERROR")
    run.add_argument(
        "--netns",
        choices=["auto", "on", "off"],
        default="auto",
        help="run inside a loopback-only network namespace: auto = for IUTs that need it (WebRTC stacks)",
    )
    run.add_argument("--baseline", help="TOML file of expected verdicts with reasons")
    run.add_argument("--strict", action="store_true", help="a NON-STRICT not in the baseline fails the run")
    run.add_argument("--strict-baseline", action="store_true", help="an unexpected pass fails the run")
    run.add_argument("--summary-md", help="also write a Markdown summary (for a CI job page) to this file")
    run.set_defaults(func=_cmd_run)
    lst = sub.add_parser("list", help="known IUTs with their capabilities; cases with their requirement IDs")
    lst.set_defaults(func=_cmd_list)
    cov = sub.add_parser("coverage", help="catalog rows with the cases that check them, and the rows with none")
    cov.add_argument("sections", nargs="*", help="catalog groups such as 1.1 1.5 (default: all)")
    cov.set_defaults(func=_cmd_coverage)
    vec = sub.add_parser("vectors", help="verify the RFC test vectors with the codec")
    vec.set_defaults(func=_cmd_vectors)
    add_commands(sub)
    add_interop_commands(sub)
    add_install_command(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (argparse usage errors exit 2)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
