"""Wall time of the default tier against an IUT, serially and at the default worker setting, in one run.

Run: ``python benchmarks/suite.py [--iut aioice] [--sweep 2,4,8,12] [--json FILE] [--keep DIR] [CASES ...]``.
Prints the serial wall (``-n 0``), the default-setting wall (``-n auto``, conformance/schedule.py), their ratio, the
longest single case and the default wall over it, each case's overhead beyond its deliberate waits (its duration
minus ``waited`` in summary.json: the harness's own cost plus the IUT's response time; median and p90), and whether
the verdicts are identical case for case. ``--sweep`` adds one run per worker count (to pick the default from a
measurement). The machine's load average is printed beside the figures: on a shared machine they move with it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def run(iut: str, out: Path, workers: str, cases: list[str]) -> tuple[float, dict[str, Any]]:
    """One ``ice-conformance run``: wall seconds and the summary."""
    argv = [sys.executable, "-m", "conformance.cli", "run", *cases, "--iut", iut, "--out", str(out), "-n", workers]
    start = time.perf_counter()
    subprocess.run(argv, capture_output=True, check=False)
    wall = time.perf_counter() - start
    return wall, json.loads((out / "summary.json").read_text())


def verdicts(summary: dict[str, Any]) -> dict[str, str]:
    return {r["case_id"]: r["verdict"] for r in summary["records"]}


def p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10)[-1] if len(values) > 1 else (values[0] if values else 0.0)


def setting(iut: str) -> str:
    """The IUT's default workers and slots, as its ``iut.toml`` declares them (conformance/schedule.py, slots.py)."""
    from conformance.adapters.registry import get_iut
    from conformance.schedule import default_workers

    return f"{default_workers(iut)} workers x {get_iut(iut).slots or 1} case(s) in flight each"


def load() -> str:
    return "load average {:.1f} {:.1f} {:.1f}".format(*os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("cases", nargs="*", help="case selection, as for `ice-conformance run` (default: all)")
    parser.add_argument("--iut", default="aioice")
    parser.add_argument("--sweep", default="", help="comma-separated worker counts to time besides the default")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--keep", help="keep the runs' folders (summary.json, report) in this folder")
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs; {load()} at the start", flush=True)
    walls: dict[str, float] = {}
    with tempfile.TemporaryDirectory() if args.keep is None else contextlib.nullcontext(args.keep) as tmp:
        serial_wall, serial = run(args.iut, Path(tmp) / "serial", "0", args.cases)
        print(f"serial wall        {serial_wall:7.1f} s  ({load()})", flush=True)
        default_wall, default = run(args.iut, Path(tmp) / "default", "auto", args.cases)
        print(f"default wall       {default_wall:7.1f} s  ({load()})", flush=True)
        for n in [int(x) for x in args.sweep.split(",") if x]:
            walls[str(n)], summary = run(args.iut, Path(tmp) / f"n{n}", str(n), args.cases)
            same_n = verdicts(summary) == verdicts(serial)
            print(f"-n {n:<2} wall  {walls[str(n)]:7.1f} s  verdicts as serial: {same_n}  ({load()})", flush=True)
    records = [r for r in serial["records"] if r["verdict"] != "UNSUPPORTED"]
    overheads = {r["case_id"]: max(0.0, r["duration"] - r.get("waited", 0.0)) for r in records}
    longest = max(serial["records"], key=lambda r: r["duration"])
    median = statistics.median(overheads.values()) if overheads else 0.0
    tail = p90(list(overheads.values()))
    differ = {
        c: (v, verdicts(default).get(c, "missing"))
        for c, v in verdicts(serial).items()
        if verdicts(default).get(c) != v
    }
    print(f"IUT {args.iut}: {len(serial['records'])} cases ({len(records)} run, UNSUPPORTED left out)")
    print(f"default setting        -n auto: {setting(args.iut)}")
    print(f"serial wall            {serial_wall:7.1f} s")
    print(f"default wall           {default_wall:7.1f} s")
    print(f"default / serial       {default_wall / serial_wall:7.2f}  (target <= 0.2)")
    print(f"longest case           {longest['duration']:7.1f} s  {longest['case_id']}")
    print(f"default / longest      {default_wall / longest['duration']:7.2f}  (target <= 1.5)")
    print(f"overhead beyond deliberate waits: median {median * 1000:.0f} ms, p90 {tail * 1000:.0f} ms")
    print(f"sum of case durations  {sum(r['duration'] for r in serial['records']):7.1f} s (serial run)")
    print(f"verdicts identical to serial, case for case: {not differ}")
    for case, (a, b) in sorted(differ.items()):
        print(f"  DIFFERS {case}: serial {a}, default {b}")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "iut": args.iut,
                    "cases": len(serial["records"]),
                    "serial_wall": serial_wall,
                    "default_wall": default_wall,
                    "ratio": default_wall / serial_wall,
                    "longest": {"case_id": longest["case_id"], "duration": longest["duration"]},
                    "median_overhead": median,
                    "p90_overhead": tail,
                    "sweep": walls,
                    "overheads": overheads,
                    "differ": differ,
                    "verdicts_identical": not differ,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
