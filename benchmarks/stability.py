"""Repeat the default tier N times against an IUT and count verdict flips per case.

Run: ``python benchmarks/stability.py [--iut aioice] [--runs 20] [-n auto] [--serial SUMMARY] [--baseline FILE]
[CASES ...]`` (CASES as for ``run``; default: the whole default tier). Prints the number of runs, the cases whose
verdict changed between runs (flips), and exits 1 if any case flipped. ``--serial`` names the ``summary.json`` of a
serial run (``run -n 0``) of the same IUT: every verdict that differs from it is listed. ``--baseline`` names the
IUT's baseline: every run's departures from it (new FAIL or NON-STRICT, ERROR, unexpected PASS) are listed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from conformance.baseline import compare, load_baseline


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("cases", nargs="*", help="case selection, as for `ice-conformance run` (default: every case)")
    parser.add_argument("--iut", default="aioice")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("-n", dest="workers", default="auto", help="workers, as for `run -n` (default auto)")
    parser.add_argument("--json", help="also write every case's verdict counts to this file (to merge several streams)")
    parser.add_argument("--serial", help="summary.json of a serial run of the same IUT, to compare every verdict with")
    parser.add_argument("--baseline", help="the IUT's baseline file, to list every run's departures from it")
    args = parser.parse_args()
    serial: dict[str, str] = {}
    if args.serial:
        serial = {r["case_id"]: r["verdict"] for r in json.loads(Path(args.serial).read_text())["records"]}
    baseline = load_baseline(args.baseline) if args.baseline else None
    seen: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    unlike_serial: dict[str, list[str]] = defaultdict(list)
    departures: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            out = Path(tmp) / f"run{i}"
            argv = [sys.executable, "-m", "conformance.cli", "run", *args.cases, "--iut", args.iut, "--out", str(out)]
            argv += ["-n", str(args.workers)]
            started = time.monotonic()
            proc = subprocess.run(argv, capture_output=True, check=False)
            counts: dict[str, int] = defaultdict(int)
            records = json.loads((out / "summary.json").read_text())["records"]
            for r in records:
                seen[r["case_id"]][r["verdict"]] += 1
                counts[r["verdict"]] += 1
                if serial and serial.get(r["case_id"]) != r["verdict"]:
                    unlike_serial[r["case_id"]].append(
                        f"run {i + 1}: {r['verdict']} (serial {serial.get(r['case_id'])})"
                    )
            if baseline is not None:
                c = compare(records, baseline)
                for kind, rows in (
                    ("new FAIL", c.new_failures),
                    ("ERROR", c.errors),
                    ("new NON-STRICT", c.new_non_strict),
                    ("unexpected PASS", c.unexpected_passes),
                ):
                    departures += [f"run {i + 1}: {kind} {r['case_id']}" for r in rows]
            took = time.monotonic() - started
            tally = dict(sorted(counts.items()))
            load = "{:.1f} {:.1f} {:.1f}".format(*os.getloadavg())
            print(f"run {i + 1}/{args.runs}: exit {proc.returncode}, {took:.0f} s, {tally}, load {load}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": args.runs, "verdicts": {c: dict(v) for c, v in seen.items()}}))
    flips = {case: dict(v) for case, v in seen.items() if len(v) > 1}
    print(f"runs: {args.runs}; cases: {len(seen)}; cases with flips: {len(flips)}")
    for case, verdicts in sorted(flips.items()):
        print(f"  FLIP {case}: {verdicts}")
    if serial:
        unlike = sum(len(v) for v in unlike_serial.values())
        print(f"verdicts unlike the serial run: {unlike} in {len(unlike_serial)} cases")
        for case, lines in sorted(unlike_serial.items()):
            print(f"  SERIAL {case}: {'; '.join(lines)}")
    if baseline is not None:
        print(f"departures from the baseline: {len(departures)}")
        for line in departures:
            print(f"  BASELINE {line}")
    return 1 if flips or unlike_serial or departures else 0


if __name__ == "__main__":
    sys.exit(main())
