"""Wall time of the default tier against an IUT, serially and with -n 2, and each case's overhead.

Run: ``python benchmarks/suite.py [--iut aioice] [--json FILE]``. A case's overhead is its duration minus its
deliberate waits (silence windows and protocol timers it must sit out, ``waited`` in summary.json): the harness's
own cost plus the IUT's response time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def run(iut: str, out: Path, workers: int | None) -> tuple[float, dict[str, Any]]:
    """One ``ice-conformance run``: wall seconds and the summary."""
    argv = [sys.executable, "-m", "conformance.cli", "run", "--iut", iut, "--out", str(out)]
    if workers:
        argv += ["-n", str(workers)]
    start = time.perf_counter()
    subprocess.run(argv, capture_output=True, check=False)
    wall = time.perf_counter() - start
    return wall, json.loads((out / "summary.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iut", default="aioice")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        serial_wall, serial = run(args.iut, Path(tmp) / "serial", None)
        parallel_wall, parallel = run(args.iut, Path(tmp) / "parallel", 2)
    records = [r for r in serial["records"] if r["verdict"] != "UNSUPPORTED"]
    overheads = {r["case_id"]: max(0.0, r["duration"] - r.get("waited", 0.0)) for r in records}
    print(f"IUT {args.iut}: {len(serial['records'])} cases ({len(records)} run, UNSUPPORTED left out)")
    print(f"serial wall   {serial_wall:7.1f} s")
    print(f"-n 2 wall     {parallel_wall:7.1f} s")
    print(f"speed-up      {serial_wall / parallel_wall:7.2f}x")
    print(f"{'case':<100} {'duration':>9} {'waited':>8} {'overhead':>9}")
    for r in sorted(records, key=lambda r: -overheads[r["case_id"]]):
        waited = r.get("waited", 0.0)
        print(f"{r['case_id'][:100]:<100} {r['duration']:9.3f} {waited:8.3f} {overheads[r['case_id']]:9.3f}")
    median = statistics.median(overheads.values()) if overheads else 0.0
    print(f"median overhead beyond deliberate waits: {median * 1000:.0f} ms")
    same = {r["case_id"]: r["verdict"] for r in serial["records"]} == {
        r["case_id"]: r["verdict"] for r in parallel["records"]
    }
    print(f"serial and -n 2 verdicts identical: {same}")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "iut": args.iut,
                    "cases": len(records),
                    "serial_wall": serial_wall,
                    "parallel_wall": parallel_wall,
                    "speedup": serial_wall / parallel_wall,
                    "median_overhead": median,
                    "overheads": overheads,
                    "verdicts_identical": same,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
