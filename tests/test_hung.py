"""A hung or dying IUT is recognised after three consecutive cases stall in one method (conformance/hung.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conformance.hung import LIMIT, HungLog

ROOT = Path(__file__).resolve().parents[1]


def test_three_consecutive_stalls_in_one_method_declare_the_iut_hung(tmp_path: Path) -> None:
    log = HungLog(tmp_path / "hung.log")
    assert log.record("a", "gather") is None
    assert log.record("b", "gather") is None
    message = log.record("c", "gather")
    assert message is not None and "'gather'" in message and "a, b, c" in message
    assert log.verdict() == message
    assert log.record("d", None) == message  # once hung, it stays hung


def test_a_case_that_ends_normally_breaks_the_chain(tmp_path: Path) -> None:
    log = HungLog(tmp_path / "hung.log")
    for nodeid, method in [("a", "gather"), ("b", "gather"), ("c", None), ("d", "gather"), ("e", "gather")]:
        assert log.record(nodeid, method) is None
    assert log.verdict() is None


def test_stalls_in_different_methods_are_not_a_hang(tmp_path: Path) -> None:
    log = HungLog(tmp_path / "hung.log")
    for nodeid, method in [("a", "gather"), ("b", "set_remote"), ("c", "gather")]:
        assert log.record(nodeid, method) is None
    assert log.verdict() is None


def test_a_single_slow_case_is_not_a_hang(tmp_path: Path) -> None:
    log = HungLog(tmp_path / "hung.log")
    assert LIMIT == 3
    assert [log.record(n, m) for n, m in [("a", None), ("b", "gather"), ("c", None)]] == [None, None, None]
    assert HungLog(tmp_path / "missing.log").verdict() is None


def test_a_run_against_a_shim_hung_in_gather_ends_with_error_and_exit_2(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "conformance.cli",
            "run",
            "--iut-cmd",
            f"{sys.executable} -m conformance.reference --hang gather",
            "-n",
            "3",
            "--out",
            str(out),
            "ice/test_roles.py",
        ],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=ROOT,
        check=False,
    )
    output = proc.stdout + proc.stderr
    records = json.loads((out / "summary.json").read_text())["records"]
    assert proc.returncode == 2, output
    assert len(records) > LIMIT and {r["verdict"] for r in records} == {"ERROR"}, output
    hung = [r for r in records if "the IUT is hung" in r["message"]]
    # Three cases stall (30 s each, in parallel on three workers); every later case is ERROR at once.
    assert len(hung) >= len(records) - LIMIT - 2, output
    assert all("'gather'" in r["message"] for r in hung)
    assert all(r["duration"] < 5 for r in hung), [r["duration"] for r in hung]
