"""Running suite cases against the reference peer in a subprocess, for the self-tests of the suites."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

__all__ = ["ROOT", "collect_cases", "run_cases"]


def run_cases(case_ids: list[str], iut_args: list[str], out: Path, timeout: float = 600) -> dict[str, dict[str, Any]]:
    """Run the given cases (IDs relative to ``suites/``) and return their records by case ID."""
    nodeids = [f"suites/{c}" for c in case_ids]
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            *nodeids,
            "-p",
            "no:cacheprovider",
            "-q",
            "--slow",
            "--conformance-out",
            str(out),
            *iut_args,
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=timeout,
        check=False,
    )
    summary_file = out / "summary.json"
    assert summary_file.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    records = json.loads(summary_file.read_text())["records"]
    return {r["nodeid"].removeprefix("suites/"): r for r in records}


def collect_cases(*folders: str) -> list[str]:
    """Every case ID under the given ``suites/`` sub-folders (slow tier included)."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            *[f"suites/{f}" for f in folders],
            "--collect-only",
            "-q",
            "-p",
            "no:cacheprovider",
            "--slow",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    return [line.removeprefix("suites/") for line in proc.stdout.splitlines() if line.startswith("suites/")]
