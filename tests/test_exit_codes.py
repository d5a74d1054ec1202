"""Each line of the exit-code table in docs/reports.md, shown with a real ``python -m conformance.cli run``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
CRASH = ROOT / "tests" / "shims" / "crash.py"
# aioice FAILs this (no 420 for an unknown comprehension-required attribute); baselines/aioice.toml expects it.
BASELINED_FAIL = "test_stun_agent and test_unknown_comprehension_required_attribute_gets_420"
PASSING = "test_rfc5769_sample_request_is_answered"  # aioice PASSes it
NOMINATION_CASE = "ice/test_nomination.py::test_controlling_iut_nominates_one_valid_pair"
PASSING_CASE = "stun/test_short_term.py::test_rfc5769_sample_request_is_answered"


def run(tmp_path: Path, *args: str) -> tuple[int, list[dict[str, Any]], str]:
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "conformance.cli", "run", "--out", str(out), *args],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=ROOT,
        check=False,
    )
    summary = out / "summary.json"
    records = json.loads(summary.read_text())["records"] if summary.exists() else []
    return proc.returncode, records, proc.stdout + proc.stderr


def baseline(tmp_path: Path, case: str, verdict: str, reason: str = "written for the exit-code test") -> Path:
    path = tmp_path / "baseline.toml"
    path.write_text(f'[[expected]]\niut = "aioice"\ncase = "{case}"\nverdict = "{verdict}"\nreason = "{reason}"\n')
    return path


# -- 0: every verdict matches the baseline -----------------------------------------------------------------------


def test_exit_0_when_the_only_fail_is_in_the_baseline(tmp_path: Path) -> None:
    code, records, output = run(tmp_path, "-k", BASELINED_FAIL, "--baseline", str(ROOT / "baselines" / "aioice.toml"))
    assert [r["verdict"] for r in records] == ["FAIL"], output
    assert code == 0, output


def test_exit_0_when_every_case_passes(tmp_path: Path) -> None:
    code, records, output = run(tmp_path, "-k", PASSING)
    assert [r["verdict"] for r in records] == ["PASS"] and code == 0, output


# -- 1: a FAIL not in the baseline; NON-STRICT with --strict; unexpected pass with --strict-baseline -------------


def test_exit_1_for_a_fail_outside_the_baseline(tmp_path: Path) -> None:
    code, records, output = run(tmp_path, "-k", BASELINED_FAIL)
    assert [r["verdict"] for r in records] == ["FAIL"], output
    assert code == 1, output
    assert "FAIL not in the baseline" in output


def test_exit_1_for_an_unexpected_pass_only_with_strict_baseline(tmp_path: Path) -> None:
    expects_fail = baseline(tmp_path, PASSING_CASE, "FAIL")
    code, records, output = run(tmp_path / "lenient", "-k", PASSING, "--baseline", str(expects_fail))
    assert [r["verdict"] for r in records] == ["PASS"], output
    assert code == 0 and "unexpected pass" in output, output
    code, _, output = run(tmp_path / "strict", "-k", PASSING, "--baseline", str(expects_fail), "--strict-baseline")
    assert code == 1, output


def test_exit_1_for_non_strict_only_with_strict(tmp_path: Path) -> None:
    from conformance.adapters import libnice

    try:
        libnice.argv()
    except libnice.LibniceMissing as exc:
        pytest.skip(f"libnice shim unavailable (it is the IUT with a NON-STRICT verdict): {exc}")
    case = "test_type_preference_is_consistent_per_type"
    code, records, output = run(tmp_path / "lenient", "--iut", "libnice", "-k", case)
    assert [r["verdict"] for r in records] == ["NON-STRICT"], output
    assert code == 0, output
    code, _, output = run(tmp_path / "strict", "--iut", "libnice", "-k", case, "--strict")
    assert code == 1, output


# -- 2: ERROR, usage error, no case selected ----------------------------------------------------------------------


def test_exit_2_for_a_crashed_shim(tmp_path: Path) -> None:
    code, records, output = run(tmp_path, "--iut-cmd", f"{sys.executable} {CRASH}", "-k", PASSING)
    assert [r["verdict"] for r in records] == ["ERROR"], output
    assert code == 2, output


def test_exit_2_for_an_error_even_beside_a_baselined_fail(tmp_path: Path) -> None:
    code, records, output = run(
        tmp_path,
        "--iut-cmd",
        f"{sys.executable} {CRASH}",
        "-k",
        f"{PASSING} or {BASELINED_FAIL}",
        "--baseline",
        str(ROOT / "baselines" / "aioice.toml"),
    )
    assert {r["verdict"] for r in records} == {"ERROR"} and code == 2, output


def test_exit_2_when_no_case_is_selected(tmp_path: Path) -> None:
    code, records, output = run(tmp_path, "-k", "no_case_has_this_name")
    assert records == [] and code == 2, output
    assert "selected no case" in output


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["--iut", "no-such-iut"], id="unknown-iut"),
        pytest.param(["--iut", "aioice", "--iut-cmd", "true"], id="exclusive-options"),
        pytest.param(["--no-such-option"], id="argparse"),
    ],
)
def test_exit_2_for_a_usage_error(tmp_path: Path, args: list[str]) -> None:
    code, _, output = run(tmp_path, *args)
    assert code == 2, output


def test_exit_2_for_a_baseline_that_does_not_load(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text('[[expected]]\niut = "aioice"\ncase = "x"\nverdict = "FAIL"\n')  # no reason
    code, _, output = run(tmp_path, "-k", PASSING, "--baseline", str(broken))
    assert code == 2 and "reason" in output, output
