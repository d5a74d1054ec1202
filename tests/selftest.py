"""Running suite cases against the reference peer in a subprocess, for the self-tests of the suites."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from conformance.tester.options import CASE_OPTIONS_ENV

ROOT = Path(__file__).resolve().parents[1]

__all__ = ["REQUIRE_ALL", "ROOT", "Row", "batches", "collect_cases", "row_problems", "run_cases", "run_fault_batch"]

#: Revisions a self-test run claims by default: the reference peer implements RFC 8489 and RFC 8656, so their rules
#: are graded as written and each fault keeps its detection power (conformance/revisions.py).
REQUIRE_ALL: tuple[int, ...] = (8489, 8656)

#: A self-test row: (case ID, reference fault, expected verdict, requirement the message names).
Row = tuple[str, str, str, str]


def batches(rows: list[Row], size: int = 10) -> list[list[Row]]:
    """Rows grouped so that no case appears twice in a batch (each case gets one fault per run), ``size`` at most."""
    rounds: list[list[Row]] = []
    for row in sorted(rows):
        for r in rounds:
            if all(other[0] != row[0] for other in r):
                r.append(row)
                break
        else:
            rounds.append([row])
    return [r[i : i + size] for r in rounds for i in range(0, len(r), size)]


def run_fault_batch(
    rows: list[Row], out: Path, iut: str = "reference", require: tuple[int, ...] = REQUIRE_ALL
) -> dict[str, dict[str, Any]]:
    """Run each row's case against the reference IUT with the row's fault given to that case only."""
    options = {case: {"faults": [fault]} for case, fault, _, _ in rows}
    return run_cases(sorted(options), ["--iut", iut], out, case_options=options, require=require)


def row_problems(rows: list[Row], records: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    """What is wrong with each row's record: missing, other verdict, or a message not naming the requirement."""
    problems: dict[str, list[str]] = {}
    for case, fault, verdict, requirement in rows:
        record = records.get(case)
        key = f"{case} with {fault}"
        if record is None:
            problems[key] = ["not run"]
            continue
        found = []
        if record["verdict"] != verdict:
            found.append(f"verdict {record['verdict']}, expected {verdict}: {record['message'][:300]}")
        if requirement not in record["message"]:
            found.append(f"message does not name {requirement}: {record['message'][:300]}")
        if found:
            problems[key] = found
    return problems


def run_cases(
    case_ids: list[str],
    iut_args: list[str],
    out: Path,
    timeout: float = 600,
    case_options: dict[str, dict[str, Any]] | None = None,
    require: tuple[int, ...] = REQUIRE_ALL,
) -> dict[str, dict[str, Any]]:
    """Run the given cases (IDs relative to ``suites/``) and return their records by case ID.

    ``case_options`` maps case IDs to extra IUT options (``$ICE_CONFORMANCE_CASE_OPTIONS``), e.g. a fault each;
    ``require`` the revisions the run claims (``--require``; empty grades newer-revision rules on evidence).
    """
    nodeids = [f"suites/{c}" for c in case_ids]
    env = dict(os.environ)
    env.pop("PYTEST_XDIST_WORKER", None)
    if case_options:
        env[CASE_OPTIONS_ENV] = json.dumps(case_options)
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
            *[arg for revision in require for arg in ("--require", str(revision))],
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
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
