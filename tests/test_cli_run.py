"""The ``ice-conformance run`` command end to end against aioice and misbehaving shims (exit codes, verdicts)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHIMS = ROOT / "tests" / "shims"
BASELINE = ROOT / "baselines" / "aioice.toml"
FAST = "short_term and controlling and (header or keyed or fingerprint)"
#: The first suites (the adapter issue's cases): fast, and stable as the suites grow.
FIRST = ["stun/test_short_term.py", "ice/test_priority.py", "ice/test_nomination.py"]


def run(
    tmp_path: Path, *args: str, timeout: float = 240, cases: list[str] | None = None
) -> tuple[int, dict[str, Any], str]:
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "conformance.cli", "run", *(cases or FIRST), "--out", str(out), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        check=False,
    )
    summary_file = out / "summary.json"
    summary = json.loads(summary_file.read_text()) if summary_file.exists() else {}
    return proc.returncode, summary, proc.stdout + proc.stderr


def verdicts(summary: dict[str, Any]) -> dict[str, str]:
    return {r["case_id"]: r["verdict"] for r in summary.get("records", [])}


def test_run_default_iut_writes_every_output_and_exits_0_with_baseline(tmp_path: Path) -> None:
    code, summary, output = run(tmp_path, "--baseline", str(BASELINE))
    assert code == 0, output
    out = tmp_path / "out"
    assert (out / "junit.xml").exists() and (out / "report" / "index.html").exists()
    assert any((out / "allure-results").glob("*-result.json"))
    v = verdicts(summary)
    assert len(v) >= 20
    assert v["ice/test_nomination.py::test_controlling_iut_nominates_one_valid_pair"] == "UNSUPPORTED"  # no ice2
    assert all(x in ("PASS", "FAIL", "NON-STRICT", "INFO", "UNSUPPORTED") for x in v.values())
    record = summary["records"][0]
    assert {"case_id", "requirements", "level", "verdict", "duration", "message", "iut"} <= set(record)
    assert record["iut"] == "aioice" and record["iut_version"]


def test_run_without_baseline_exits_1_on_fail(tmp_path: Path) -> None:
    # aioice's FAIL in a fast case (no 420 for an unknown comprehension-required attribute, RFC 5389 §7.3.1).
    code, summary, output = run(
        tmp_path, "-k", "test_unknown_comprehension_required_attribute", cases=["stun/test_stun_agent.py"]
    )
    assert code == 1, output
    assert list(verdicts(summary).values()) == ["FAIL"]


def test_run_in_process_and_stdio_give_identical_verdicts(tmp_path: Path) -> None:
    _, a, _ = run(tmp_path / "a", "--iut", "aioice")
    _, b, _ = run(tmp_path / "b", "--iut", "aioice-stdio")
    _, c, _ = run(tmp_path / "c", "--iut-cmd", f"{sys.executable} -m conformance.adapters.aioice")
    assert verdicts(a) == verdicts(b) == verdicts(c)
    assert len(verdicts(a)) >= 20


def test_run_parallel_and_serial_give_identical_verdicts(tmp_path: Path) -> None:
    _, serial, _ = run(tmp_path / "s", "-n", "0")
    _, parallel, _ = run(tmp_path / "p", "-n", "2")
    assert verdicts(serial) == verdicts(parallel)


def test_run_selecting_no_case_exits_2(tmp_path: Path) -> None:
    code, _, output = run(tmp_path, "-k", "no_such_case_anywhere")
    assert code == 2, output
    assert "selected no case" in output


def test_run_unknown_iut_is_a_usage_error(tmp_path: Path) -> None:
    code, _, output = run(tmp_path, "--iut", "nonesuch")
    assert code == 2 and "unknown IUT 'nonesuch'" in output and "aioice" in output


@pytest.mark.parametrize(
    ("shim", "cause"),
    [
        ("crash.py", "exited with code 3"),
        ("garbage.py notjson", "Segmentation fault? no, just garbage"),
        ("garbage.py later", "{oops"),
        ("hang.py", "initialize"),
    ],
)
def test_run_broken_shim_gives_error_for_each_case_and_exits_2(tmp_path: Path, shim: str, cause: str) -> None:
    code, summary, output = run(tmp_path, "--iut-cmd", f"{sys.executable} {SHIMS / shim}", "-k", FAST)
    assert code == 2, output
    v = verdicts(summary)
    assert len(v) >= 3, output
    assert set(v.values()) == {"ERROR"}, v
    messages = " ".join(r["message"] for r in summary["records"])
    assert cause in messages, messages


def test_run_shim_crashing_mid_case_errors_that_case_and_the_run_goes_on(tmp_path: Path) -> None:
    code, summary, output = run(tmp_path, "--iut-cmd", f"{sys.executable} {SHIMS / 'crash.py'} after-init", "-k", FAST)
    assert code == 2, output
    records = summary["records"]
    assert len(records) >= 3 and {r["verdict"] for r in records} == {"ERROR"}
    assert all("exploded" in r["message"] or "exit" in r["message"] for r in records), records
