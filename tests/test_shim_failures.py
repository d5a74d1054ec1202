"""A real shim killed in the middle of a case: SIGKILL from outside gives ERROR, a fault signal (SIGSEGV) gives the
IUT's FAIL under ROB-CRASH-01 (docs/adapter-contract.md, "Crashes"); either way the next case gets a fresh shim."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

CASES = textwrap.dedent(
    """
    import os
    import signal

    import pytest

    from conformance.tester.harness import Harness


    @pytest.mark.requirement("STUN-AUTH-03")
    async def test_a_shim_killed_mid_case(harness: Harness) -> None:
        s = await harness.session("controlling")
        os.kill(harness.iut.pid, getattr(signal, os.environ["KILL_WITH"]))
        await harness.iut.connect(s.agent)


    @pytest.mark.requirement("STUN-AUTH-03")
    async def test_b_next_case_runs_on_a_fresh_shim(harness: Harness) -> None:
        s = await harness.session("controlling")
        reply = await s.peer.transact(s.peer.check(), s.iut_address, timeout=5)
        harness.findings.check(reply is not None, "STUN-AUTH-03", "no response from the restarted shim")
    """
)


@pytest.mark.parametrize(
    ("iut", "kill_with", "verdict"),
    [("libnice", "SIGKILL", "ERROR"), ("werift", "SIGKILL", "ERROR"), ("libnice", "SIGSEGV", "FAIL")],
)
def test_shim_killed_mid_case_is_graded_by_signal_and_the_run_goes_on(
    iut: str, kill_with: str, verdict: str, tmp_path: Path
) -> None:
    if iut == "werift" and shutil.which("node") is None:
        pytest.skip("node is not installed")
    (tmp_path / "test_kill.py").write_text(CASES)
    out = tmp_path / "out"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(tmp_path / "test_kill.py"),
            "--iut",
            iut,
            "--conformance-out",
            str(out),
            "-p",
            "no:cacheprovider",
            "-q",
            "--rootdir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "KILL_WITH": kill_with},
        timeout=180,
        check=False,
    )
    records = {r["case_id"]: r for r in json.loads((out / "summary.json").read_text())["records"]}
    killed = records["test_kill.py::test_a_shim_killed_mid_case"]
    assert killed["verdict"] == verdict, proc.stdout[-2000:]
    assert f"killed by {kill_with}" in killed["message"], killed["message"]
    if verdict == "FAIL":
        assert killed["message"].startswith("ROB-CRASH-01 (MUST)"), killed["message"]
    # The case's own verdict: the passive monitor also grades what the IUT sends (libnice's habits, baselined).
    assert records["test_kill.py::test_b_next_case_runs_on_a_fresh_shim"]["case_verdict"] == "PASS", proc.stdout[-2000:]
