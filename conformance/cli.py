"""The ``ice-conformance`` command: ``run``, ``list``, ``vectors``, ``fuzz`` (and the report and interop ones).

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
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, cast

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


#: A requirement ID or a glob over them (``ICE-ROLE-06``, ``STUN-AUTH-*``), as opposed to a case path.
_REQ_ID = re.compile(r"[A-Z][A-Z0-9]*(-[A-Z0-9*?\[\]]+)+")


class UsageError(Exception):
    """A bad command line: one line on stderr, exit 2, and nothing written."""


def _workers(text: str) -> str:
    """``-n``: a whole number of workers (0: serially, in one process), or ``auto``."""
    if text == "auto" or text.isdigit():
        return str(int(text)) if text.isdigit() else text
    raise argparse.ArgumentTypeError(f"must be a whole number of workers (0 for serial) or auto, not {text!r}")


def _count(text: str) -> int:
    """A whole number, at least 1 (``--maxfail``)."""
    if text.isdigit() and int(text) >= 1:
        return int(text)
    raise argparse.ArgumentTypeError(f"must be a whole number (1 or more), not {text!r}")


def _seconds(text: str) -> float:
    """A budget: a number of seconds greater than 0 (leave the option out for its default)."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of seconds greater than 0, not {text!r}")
    return value


def _targets(cases: list[str]) -> tuple[list[str], list[str]]:
    """Pytest targets and requirement patterns from ``run``'s positionals (paths with or without ``suites/``)."""
    suites = _suites_dir()
    targets: list[str] = []
    reqs: list[str] = []
    for case in cases:
        if _REQ_ID.fullmatch(case):
            reqs.append(case)
            continue
        path, sep, rest = case.partition("::")
        p = Path(path)
        if p.is_absolute() or p.exists():
            try:
                rel = p.resolve().relative_to(suites)
            except ValueError:
                raise UsageError(f"{case} is not under {suites}") from None
        else:
            rel = Path(path.removeprefix("./").removeprefix("suites/"))
        if not (suites / rel).exists():
            raise UsageError(f"no such case path: {case} (a path under suites/, e.g. ice/test_roles.py, or a node ID)")
        targets.append(str(suites / rel) + sep + rest)
    return targets or [str(suites)], reqs


def _check_reqs(patterns: list[str]) -> None:
    from fnmatch import fnmatchcase

    from conformance.catalog import load_catalog

    ids = list(load_catalog())
    for pattern in patterns:
        if not any(fnmatchcase(i, pattern) for i in ids):
            raise UsageError(f"no requirement ID matches {pattern} (see `ice-conformance coverage`)")


def _identity(args: argparse.Namespace) -> str:
    """The run's IUT identity: ``--iut-name``, else ``--iut``, else the shim command."""
    from conformance.adapters.registry import DEFAULT_IUT

    return str(args.iut_name or args.iut or args.iut_cmd or DEFAULT_IUT)


def _pytest_argv(args: argparse.Namespace, iut_args: list[str], out: Path) -> list[str]:
    targets, reqs = _targets(args.cases)
    cache = _cache_dir() / "pytest" / re.sub(r"[^A-Za-z0-9_.-]+", "_", _identity(args))[:80]
    argv = [
        sys.executable,
        "-m",
        "pytest",
        *targets,
        "-v" + "v" * args.verbose,
        "-o",
        f"cache_dir={cache}",
        # Hypothesis's plugin (a dev dependency) costs each worker ~0.5 s of start-up and no case uses it.
        "-p",
        "no:hypothesispytest",
        "--conformance-out",
        str(out),
        "--junitxml",
        str(out / "junit.xml"),
        "--alluredir",
        str(out / "allure-results"),
        "--clean-alluredir",
        *iut_args,
    ]
    for pattern in [*reqs, *args.req]:
        argv += ["--req", pattern]
    if args.iut_name:
        argv += ["--iut-name", args.iut_name]
    if args.k:
        argv += ["-k", args.k]
    argv += ["-n", str(args.n)]
    if args.n == "auto" and (args.cases or args.req or args.k):
        argv += ["--workers-cap", str(_selected(targets, [*reqs, *args.req], args.k, args.slow))]
    if args.slow:
        argv.append("--slow")
    if args.x:
        argv.append("-x")
    if args.lf:
        argv.append("--lf")
    if args.maxfail:
        argv.append(f"--maxfail={args.maxfail}")
    for revision in args.require or ():
        argv += ["--require", str(revision)]
    for option in ("case_budget", "iut_budget", "run_budget"):
        value = getattr(args, option)
        if value is not None:
            argv += [f"--{option.replace('_', '-')}", str(value)]
    return [*argv, *getattr(args, "pytest_args", [])]


def _selected(targets: list[str], reqs: list[str], keyword: str | None, slow: bool) -> int:
    """How many cases a narrowed run selects (collected in this process), so ``-n auto`` starts no idle worker."""
    import pytest

    class _Counter:
        count = 0

        def pytest_collection_finish(self, session: pytest.Session) -> None:
            self.count = len(session.items)

    counter = _Counter()
    options = [x for pattern in reqs for x in ("--req", pattern)] + (["-k", keyword] if keyword else [])
    if slow:
        options.append("--slow")
    with contextlib.redirect_stdout(io.StringIO()):
        pytest.main([*targets, "--collect-only", "-q", "-p", "no:cacheprovider", *options], plugins=[counter])
    return counter.count


def _cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ice-conformance"


def _netns(args: argparse.Namespace, argv: list[str]) -> list[str]:
    """Run the whole pytest process in a loopback-only network namespace when asked or when the IUT needs it.

    The IUT's shim is installed first, outside the namespace, where the package registry is reachable.
    """
    from conformance import netns
    from conformance.adapters.registry import get_iut
    from conformance.install import check_iut

    wanted = args.netns == "on" or (args.netns == "auto" and bool(args.iut) and get_iut(args.iut).netns)
    if not wanted:
        return argv
    if not netns.available():
        _err(
            "note: no loopback-only network namespace here (needs root and unshare -n); the shims restrict "
            "themselves to loopback"
        )
        return argv
    if args.iut:
        status = check_iut(args.iut, netns_ok=True)
        if not status.ready:
            raise UsageError(f"{status.line()} (see `ice-conformance install {args.iut}`)")
    _out("running inside a loopback-only network namespace (unshare -n)")
    return netns.wrap(argv)


def _fresh_out(out: Path) -> Path:
    """A new empty folder next to ``out`` for the run; UsageError when ``out`` cannot be written."""
    try:
        if out.exists() and not out.is_dir():
            raise UsageError(f"cannot write the output folder {out}: it exists and is not a folder")
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.exists():
            with tempfile.TemporaryFile(dir=out):  # the old run must be removable
                pass
        return Path(tempfile.mkdtemp(prefix=f".{out.name}.new-", dir=out.parent))
    except OSError as exc:
        raise UsageError(f"cannot write the output folder {out}: {exc.strerror or exc}") from None


def _swap_in(new: Path, out: Path) -> None:
    """Replace ``out`` by the finished run folder ``new`` (the old run is removed only after the swap)."""
    old: Path | None = None
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        out.rename(old / "run")
    new.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _cmd_run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except UsageError as exc:
        _err(f"error: {exc}")
        return EXIT_ERROR


def _run(args: argparse.Namespace) -> int:
    from conformance.adapters.registry import DEFAULT_IUT, UnknownIut, get_iut
    from conformance.baseline import BaselineError, check_reasons, compare, comparison_lines, load_baseline
    from conformance.report.gate import gate
    from conformance.report.html import write_report
    from conformance.report.junit import rewrite_junit
    from conformance.report.markdown import write_summary_md

    if args.iut and args.iut_cmd:
        raise UsageError("--iut and --iut-cmd are exclusive")
    if args.iut:
        try:
            get_iut(args.iut)
        except UnknownIut as exc:
            raise UsageError(str(exc)) from None
    baseline = None
    if args.baseline:
        try:
            baseline = load_baseline(args.baseline)
            check_reasons(baseline, args.baseline)
        except BaselineError as exc:
            raise UsageError(str(exc)) from None
    _check_reqs([*_targets(args.cases)[1], *args.req])
    out = Path(args.out)
    iut_args = ["--iut-cmd", args.iut_cmd] if args.iut_cmd else ["--iut", args.iut or DEFAULT_IUT]
    new = _fresh_out(out)
    # Which baseline entries name existing cases: a collection, done meanwhile at low priority (the run mostly waits).
    known = _in_background(known_case_ids, {c for _, c in baseline.entries}) if baseline is not None else None
    try:
        argv = _netns(args, _pytest_argv(args, iut_args, new))
        proc = subprocess.run(argv, env=dict(os.environ), check=False)
        summary_file = new / "summary.json"
        if not summary_file.exists():
            raise UsageError(f"pytest exited {proc.returncode} without writing a summary; {out} left as it was")
        summary = json.loads(summary_file.read_text())
        records: list[dict[str, Any]] = summary["records"]
        if not records:
            raise UsageError(f"the run selected no case; {out} left as it was")
        # How to start this run again (the report's reproduce lines).
        summary["invocation"] = {
            "iut": "" if args.iut_cmd else args.iut or DEFAULT_IUT,
            "iut_cmd": args.iut_cmd or "",
            "iut_name": args.iut_name or "",
            "baseline": args.baseline or "",
        }
        summary_file.write_text(json.dumps(summary, indent=2))
        if (new / "junit.xml").exists():
            rewrite_junit(new / "junit.xml", records, baseline=baseline)
        write_report([new], new / "report", baseline=baseline)
        _swap_in(new, out)
    finally:
        if new.exists():
            shutil.rmtree(new, ignore_errors=True)
    report = out / "report" / "index.html"
    comparison = compare(records, baseline)
    for line in comparison_lines(records, comparison):
        _out(line)
    if baseline is not None:
        from conformance.baseline import unknown_entries

        iut = records[0]["iut"]
        assert known is not None
        for e in unknown_entries(baseline, known()):
            if e.iut == iut:
                _err(f"warning: baseline {args.baseline} names a case that does not exist: {e.iut} {e.case}")
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
        version = spec.installed_version()
        if version:
            _out(f"  {'':<14} version: {version}")
        _out(f"  {'':<14} capabilities: {', '.join(sorted(caps)) if caps else '(declared at initialize)'}")

    rows = _collect_cases()
    _out("cases:")
    for case, reqs in rows:
        _out(f"  {case}  [{' '.join(reqs)}]")
    return EXIT_OK if rows else EXIT_ERROR


def _collect_cases(files: list[str] | None = None) -> list[tuple[str, list[str]]]:
    """Every case (slow tier included) with its requirement IDs; only those of ``files`` (under suites/) if given."""
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
        targets = [str(_suites_dir() / f) for f in files] if files is not None else [str(_suites_dir())]
        if targets:
            pytest.main([*targets, "--collect-only", "-q", "-p", "no:cacheprovider", "--slow"], plugins=[lister])
    return lister.rows


def _in_background(work: Callable[[set[str]], set[str]], arg: set[str]) -> Callable[[], set[str]]:
    """Start ``work(arg)`` in a forked process at the lowest priority; the returned call waits for its result (or
    does the work here if the process could not do it)."""
    import concurrent.futures
    import multiprocessing

    try:
        pool = concurrent.futures.ProcessPoolExecutor(1, multiprocessing.get_context("fork"), os.nice, (19,))
        future = pool.submit(work, arg)
    except OSError:
        return lambda: work(arg)

    def result() -> set[str]:
        try:
            return future.result()
        except Exception:
            return work(arg)
        finally:
            pool.shutdown(cancel_futures=True)

    return result


def known_case_ids(case_ids: set[str]) -> set[str]:
    """Those of ``case_ids`` that name an existing case (slow tier included); only their files are collected."""
    files = sorted({c.split("::", 1)[0] for c in case_ids if (_suites_dir() / c.split("::", 1)[0]).is_file()})
    return {case for case, _ in _collect_cases(files)} & case_ids


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


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors (``PROG: error: ...``, exit 2); ``--help`` shows the full usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_ERROR, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _cmd_fuzz(args: argparse.Namespace) -> int:
    """``fuzz``: a seeded campaign of mutated valid messages (conformance/robustness/fuzz.py); exit 1 on a finding."""
    import asyncio
    import logging

    from conformance.adapters.base import AdapterError
    from conformance.adapters.registry import UnknownIut, get_iut
    from conformance.robustness.fuzz import Campaign, exit_code, run_campaign
    from conformance.verdict import HarnessError, UnsupportedFeature

    if args.budget <= 0 or args.probe_every < 1:
        _err("fuzz: --budget must be positive and --probe-every at least 1")
        return EXIT_ERROR
    try:
        get_iut(args.iut)
        options = {k: json.loads(v) for k, _, v in (o.partition("=") for o in args.iut_option)}
    except UnknownIut as exc:
        _err(f"fuzz: {exc}")
        return EXIT_ERROR
    except ValueError as exc:
        _err(f"fuzz: --iut-option takes KEY=JSON: {exc}")
        return EXIT_ERROR
    out = Path(args.out or f"reports/fuzz/{args.iut}-{args.target}-seed{args.seed}")
    logging.getLogger("conformance.adapters").setLevel(logging.ERROR)  # a dying IUT is the finding, not noise
    campaign = Campaign(
        iut=args.iut,
        seed=args.seed,
        budget=args.budget,
        target=args.target,
        probe_every=args.probe_every,
        out=out,
        options=options,
        progress=not args.quiet,
    )
    try:
        result = asyncio.run(run_campaign(campaign))
    except (AdapterError, HarnessError, UnsupportedFeature, OSError) as exc:
        _err(f"fuzz: cannot run the campaign against {args.iut}: {exc}")
        return EXIT_ERROR
    verdict = f"FOUND: {result.found}" if result.found else "clean"
    _out(
        f"fuzz {args.iut} ({args.target}, seed {args.seed}): {result.inputs} inputs in {result.seconds:.1f} s "
        f"({result.rate:.1f} inputs/s), {result.probes} probes; {verdict}; report {out / 'report.html'}"
    )
    return exit_code(result)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = _Parser(prog="ice-conformance", description="ICE, STUN and TURN conformance harness")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the suites against an IUT and write junit, allure, summary and HTML")
    run.add_argument(
        "cases",
        nargs="*",
        help=(
            "suite folders, files or node IDs, with or without suites/ (default: all), e.g. stun "
            "ice/test_roles.py::test_x[controlling]; or requirement IDs or globs, e.g. ICE-ROLE-06 'STUN-AUTH-*'"
        ),
    )
    run.add_argument(
        "--req", action="append", default=[], metavar="ID", help="select the cases checking this requirement (globs)"
    )
    run.add_argument("--iut", help="IUT name (default aioice); see `ice-conformance list`")
    run.add_argument("--iut-cmd", help='any program speaking the stdio contract, e.g. "node shim.js"')
    run.add_argument(
        "--iut-name", help="the run's IUT name in records, reports and baselines (default: --iut, or the shim's name)"
    )
    run.add_argument("--out", default="reports/latest", help="output folder (default reports/latest)")
    run.add_argument("-k", help="select cases by keyword expression (as pytest -k)")
    run.add_argument(
        "-n",
        type=_workers,
        default="auto",
        help="parallel workers (pytest-xdist -n): a whole number, 0 = serial in one process; default auto = the "
        "ice_workers ini setting, else the IUT's measured default (8; 2 for browsers)",
    )
    run.add_argument("--slow", action="store_true", help="include the slow tier")
    run.add_argument(
        "--require",
        type=int,
        action="append",
        choices=(8489, 8656),
        help="the IUT claims RFC 8489 / 8656: grade rules new in it as written, not UNSUPPORTED (repeatable)",
    )
    run.add_argument("-x", "--exitfirst", dest="x", action="store_true", help="stop after the first FAIL or ERROR")
    run.add_argument("--maxfail", type=_count, help="stop after this many FAILs and ERRORs")
    run.add_argument("--lf", "--last-failed", dest="lf", action="store_true", help="rerun the last run's failures")
    run.add_argument("-v", "--verbose", action="count", default=0, help="more pytest output (repeatable)")
    run.add_argument("--case-budget", type=_seconds, help="seconds per case, > 0 (default 60)")
    run.add_argument("--iut-budget", type=_seconds, help="seconds of case time for the IUT per worker, > 0")
    run.add_argument("--run-budget", type=_seconds, help="seconds for the whole run, > 0; later cases get ERROR")
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
    fz = sub.add_parser("fuzz", help="a seeded fuzzing campaign against one IUT; exit 1 when it finds something")
    fz.add_argument("--iut", required=True, help="IUT name; see `ice-conformance list`")
    fz.add_argument("--seed", type=int, default=0, help="seed of the mutations (default 0)")
    fz.add_argument("--budget", type=float, default=60.0, help="seconds of fuzzing (default 60)")
    fz.add_argument("--target", choices=["ice", "turn-server"], default="ice", help="the IUT's role (default ice)")
    fz.add_argument("--probe-every", type=int, default=50, help="inputs between two sanity probes (default 50)")
    fz.add_argument("--out", help="output folder (default reports/fuzz/IUT-TARGET-seedN)")
    fz.add_argument(
        "--iut-option", action="append", default=[], help="KEY=JSON merged into the agent or server options"
    )
    fz.add_argument("--quiet", action="store_true", help="no progress line on stderr")
    fz.set_defaults(func=_cmd_fuzz)
    vec = sub.add_parser("vectors", help="verify the RFC test vectors with the codec")
    vec.set_defaults(func=_cmd_vectors)
    add_commands(sub)
    add_interop_commands(cast("argparse._SubParsersAction[argparse.ArgumentParser]", sub))
    add_install_command(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (argparse usage errors exit 2)."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    passthrough: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, passthrough = argv[:cut], argv[cut + 1 :]
    args = parser.parse_args(argv)
    if passthrough and args.command != "run":
        parser.error(f"options after -- are passed to pytest by `run` only: {' '.join(passthrough)}")
    args.pytest_args = passthrough
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
