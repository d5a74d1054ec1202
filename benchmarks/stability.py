"""Repeat the default tier N times against an IUT and count verdict flips per case.

Run: ``python benchmarks/stability.py [--iut aioice] [--runs 20] [-n auto] [CASES ...]`` (CASES as for ``run``; default:
the whole default tier). Prints the number of runs, the cases whose verdict changed between runs (flips), and exits
1 if any case flipped.
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("cases", nargs="*", help="case selection, as for `ice-conformance run` (default: every case)")
    parser.add_argument("--iut", default="aioice")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("-n", dest="workers", default="auto", help="workers, as for `run -n` (default auto)")
    parser.add_argument("--json", help="also write every case's verdict counts to this file (to merge several streams)")
    args = parser.parse_args()
    seen: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            out = Path(tmp) / f"run{i}"
            argv = [sys.executable, "-m", "conformance.cli", "run", *args.cases, "--iut", args.iut, "--out", str(out)]
            argv += ["-n", str(args.workers)]
            started = time.monotonic()
            proc = subprocess.run(argv, capture_output=True, check=False)
            counts: dict[str, int] = defaultdict(int)
            for r in json.loads((out / "summary.json").read_text())["records"]:
                seen[r["case_id"]][r["verdict"]] += 1
                counts[r["verdict"]] += 1
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
    return 1 if flips else 0


if __name__ == "__main__":
    sys.exit(main())
