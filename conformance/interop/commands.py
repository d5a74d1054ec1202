"""The ``ice-conformance interop`` subcommand: the IUT-by-IUT matrix over emulated networks (RFC 8445 §2).

Exit codes: 0 when every cell met its expectation (connected as its topology says, no violation graded FAIL);
1 when a cell did not; 2 for an ERROR cell, a usage error, or a run that selected no cell.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
from pathlib import Path

from conformance import netns
from conformance.adapters.registry import UnknownIut, get_iut
from conformance.interop.artifacts import write_summary
from conformance.interop.model import CellResult, RunOptions, cells_for, known_topologies
from conformance.interop.runner import iut_needs_netns, run_matrix
from conformance.netem import TOPOLOGIES
from conformance.verdict import SYMBOLS

__all__ = ["EXIT_ERROR", "EXIT_FAIL", "EXIT_OK", "add_commands", "build_parser", "main", "matrix_table", "run"]

logger = logging.getLogger(__name__)

EXIT_OK, EXIT_FAIL, EXIT_ERROR = 0, 1, 2


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _err(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``interop`` on the ``ice-conformance`` parser."""
    p = subparsers.add_parser(
        "interop",
        help="run every ordered pair of IUTs over emulated networks (NATs, loss, relay) and write a matrix",
        description=(
            "Every ordered pair of the given IUTs (A controlling, B controlled, then swapped; each IUT also meets "
            "itself) on every topology, with the harness as signalling channel and network. Writes summary.json, "
            "a pcap, a ladder and the IUTs' stderr per cell, and the HTML report with the IUT-by-IUT grid."
        ),
    )
    p.add_argument("--iut", action="append", required=True, help="an IUT name (repeat: --iut aioice --iut libnice)")
    p.add_argument(
        "--topology",
        action="append",
        help=f"a netem topology (repeat; default all): {', '.join(known_topologies())}",
    )
    p.add_argument("--must-include", action="append", default=[], help="run only the pairs that involve this IUT")
    p.add_argument("--out", default="reports/interop", help="output folder (default reports/interop)")
    p.add_argument("-n", type=int, default=1, help="cells run concurrently (default 1)")
    p.add_argument(
        "--turn",
        choices=["relay", "always", "never"],
        default="relay",
        help="TURN server (coturn): only on relay topologies (default), on every topology, or never",
    )
    p.add_argument("--deadline", type=float, default=20.0, help="seconds from connect to a selected pair (20)")
    p.add_argument("--loss-deadline", type=float, default=40.0, help="the same on lossy topologies (40)")
    p.add_argument(
        "--netns",
        choices=["auto", "on", "off"],
        default="auto",
        help="run inside a loopback-only network namespace: auto = when a selected IUT or the TURN routing needs one",
    )
    p.add_argument("--no-report", action="store_true", help="write summary.json and artifacts, not the HTML report")
    p.set_defaults(func=run)


def build_parser() -> argparse.ArgumentParser:
    """A parser with only the ``interop`` command (for ``python -m conformance.interop``)."""
    parser = argparse.ArgumentParser(prog="ice-conformance")
    sub = parser.add_subparsers(dest="command", required=True)
    add_commands(sub)
    return parser


def _reexec_in_netns(args: argparse.Namespace) -> int | None:
    """Re-run this command inside ``unshare -n`` (``lo`` up) when wanted; None to run here."""
    from conformance.adapters import node

    if netns.inside() or args.netns == "off":
        return None
    topologies = args.topology or known_topologies()
    turn = args.turn == "always" or (args.turn == "relay" and any(TOPOLOGIES[t].expect == "relay" for t in topologies))
    # The TURN routes (cell.Cell._route_turn) need the run's own namespace too.
    wanted = args.netns == "on" or turn or any(iut_needs_netns(i) for i in args.iut)
    if not wanted:
        return None
    if not netns.available():
        _err(
            "note: no loopback-only network namespace here (needs root and unshare -n); running on the host's "
            "loopback: the shims restrict themselves to loopback, and libwebrtc cannot bind the emulator's addresses"
        )
        return None
    for name in args.iut:  # npm installs need the network: do them before leaving it
        if name in node.node_shims():
            try:
                node.ensure_installed(name)
            except Exception as exc:
                _err(f"error: {name}: {exc}")
                return EXIT_ERROR
    argv = [sys.executable, "-m", "conformance.interop", *_argv_of(args)]
    _out("running the interop matrix inside a loopback-only network namespace (unshare -n)")
    import subprocess

    env = {**os.environ, netns.ENV: "1"}
    proc = subprocess.run(netns.wrap(argv), env=env, check=False)
    return proc.returncode


def _argv_of(args: argparse.Namespace) -> list[str]:
    """The ``interop`` command line that reproduces ``args`` (for the re-run inside the namespace)."""
    argv = ["interop"]
    for name in args.iut:
        argv += ["--iut", name]
    for topo in args.topology or []:
        argv += ["--topology", topo]
    for name in args.must_include:
        argv += ["--must-include", name]
    argv += ["--out", str(Path(args.out).resolve()), "-n", str(args.n), "--turn", args.turn]
    argv += ["--deadline", str(args.deadline), "--loss-deadline", str(args.loss_deadline), "--netns", args.netns]
    if args.no_report:
        argv.append("--no-report")
    return argv


def matrix_table(results: list[CellResult], topology: str) -> list[str]:
    """A text grid (rows controlling, columns controlled) of one topology: verdict symbol, path and time."""
    cells = {(r.spec.controlling, r.spec.controlled): r for r in results if r.spec.topology == topology}
    if not cells:
        return []
    rows = sorted({a for a, _ in cells})
    cols = sorted({b for _, b in cells})

    def cell(r: CellResult | None) -> str:
        if r is None:
            return "—"
        if not r.connected:
            return f"{SYMBOLS.get(r.verdict, '?')} no"
        t = max((v for v in r.times.values() if v is not None), default=0.0)
        return f"{SYMBOLS.get(r.verdict, '?')} {r.path} {t:.2f}s"

    width = max(12, *(len(c) for c in cols))
    lines = [f"{topology} (rows: controlling, columns: controlled)"]
    lines.append(" " * 12 + "".join(f"{c:<{width + 2}}" for c in cols))
    for a in rows:
        lines.append(f"{a:<12}" + "".join(f"{cell(cells.get((a, b))):<{width + 2}}" for b in cols))
    return lines


def run(args: argparse.Namespace) -> int:
    """The ``interop`` command."""
    try:
        for name in [*args.iut, *args.must_include]:
            get_iut(name)
    except UnknownIut as exc:
        _err(f"error: {exc}")
        return EXIT_ERROR
    topologies = args.topology or known_topologies()
    unknown = [t for t in topologies if t not in known_topologies()]
    if unknown:
        _err(f"error: unknown topology {', '.join(unknown)}; known: {', '.join(known_topologies())}")
        return EXIT_ERROR
    if args.n < 1:
        _err("error: -n must be at least 1")
        return EXIT_ERROR
    missing = [m for m in args.must_include if m not in args.iut]
    if missing:
        _err(f"error: --must-include {', '.join(missing)} is not among the --iut names")
        return EXIT_ERROR
    cells = cells_for(args.iut, topologies, args.must_include)
    if not cells:
        _err("error: no cell selected")
        return EXIT_ERROR
    code = _reexec_in_netns(args)
    if code is not None:
        return code
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").unlink(missing_ok=True)
    done = [0]

    def progress(r: CellResult) -> None:
        done[0] += 1
        first = r.message().splitlines()[0]
        _out(f"[{done[0]}/{len(cells)}] {r.verdict:<10} {r.spec.cell_id} ({r.duration:.1f} s): {first}")

    options = RunOptions(
        out=out,
        parallel=args.n,
        connect_deadline=args.deadline,
        loss_connect_deadline=args.loss_deadline,
        turn=args.turn,
        netns=netns.inside(),
        progress=progress,
    )
    if not options.netns and any(iut_needs_netns(i) for i in args.iut):
        _err("note: not inside a loopback-only network namespace; results of WebRTC stacks may differ")
    started = time.time()
    results = asyncio.run(run_matrix(cells, options))
    finished = time.time()
    write_summary(results, out, started, finished)
    for topo in topologies:
        for line in matrix_table(results, topo):
            _out(line)
        _out("")
    if not args.no_report:
        from conformance.report.html import write_report

        index = write_report([out], out / "report")
        _out(f"report: {index}")
    counts: dict[str, int] = {}
    for r in results:
        counts[r.verdict] = counts.get(r.verdict, 0) + 1
    _out(
        f"{len(results)} cells in {finished - started:.1f} s: "
        + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    )
    for r in results:
        if r.verdict in ("FAIL", "ERROR"):
            _out(f"  {r.verdict} {r.spec.cell_id}: {r.message().splitlines()[0]}")
            if r.cause:
                _out(f"      cause: {r.cause}")
    if any(r.verdict == "ERROR" for r in results):
        return EXIT_ERROR
    return EXIT_OK if all(r.met_expectation for r in results) else EXIT_FAIL


def main(argv: list[str] | None = None) -> int:
    """``python -m conformance.interop interop ...``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code
