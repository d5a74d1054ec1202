"""The adapter issue's cases against each real implementation through its shim, gated by its baseline.

Each IUT installs on first use (libnice: a C shim compiled against libnice-dev; the others: npm ci into a cache).
The gate must be green: every verdict PASS or expected by ``baselines/<iut>.toml`` (exit 0).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conformance.adapters.registry import get_iut, known_iuts

ROOT = Path(__file__).resolve().parents[1]
CASES = ["stun/test_short_term.py", "ice/test_priority.py", "ice/test_nomination.py"]


def _with_baseline(kind: str) -> list[str]:
    """The registered IUTs of that kind that have a baseline, but aioice (in process, its own tests) and the browsers
    (tests/test_browser_shims.py): adding an IUT's folder and baseline adds it here."""
    out = []
    for name in known_iuts():
        spec = get_iut(name)
        browser = spec.node is not None and spec.node.binary is not None
        in_process_agent = kind == "ice-agent" and spec.launcher == "inprocess"
        if (
            spec.kind == kind
            and (ROOT / "baselines" / f"{name}.toml").is_file()
            and not browser
            and not in_process_agent
        ):
            out.append(name)
    return out


ICE_AGENTS = _with_baseline("ice-agent")
TURN_SERVERS = _with_baseline("turn-server")


def test_the_registry_gives_the_expected_iuts() -> None:
    assert {"libnice", "libre", "werift", "libjuice", "libwebrtc"} <= set(ICE_AGENTS)
    assert {"coturn", "node-turn"} <= set(TURN_SERVERS)


@pytest.mark.parametrize("iut", ICE_AGENTS)
def test_real_iut_runs_the_first_suites_green_against_its_baseline(iut: str, tmp_path: Path) -> None:
    if get_iut(iut).node is not None and shutil.which("node") is None:
        pytest.skip("node is not installed")
    out = tmp_path / "out"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "conformance.cli",
            "run",
            *CASES,
            "--iut",
            iut,
            "--out",
            str(out),
            "--baseline",
            str(ROOT / "baselines" / f"{iut}.toml"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        check=False,
    )
    summary = json.loads((out / "summary.json").read_text())
    verdicts = {r["case_id"]: r["verdict"] for r in summary["records"]}
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert len(verdicts) >= 20 and "ERROR" not in verdicts.values()
    assert summary["records"][0]["iut"] == iut and summary["records"][0]["iut_version"]


@pytest.mark.parametrize("iut", TURN_SERVERS)
def test_turn_server_runs_the_default_turn_tier_green_against_its_baseline(iut: str, tmp_path: Path) -> None:
    if iut == "coturn" and shutil.which("turnserver") is None:
        pytest.fail("turnserver is missing: apt-get install -y coturn (CI installs it)")
    if iut == "node-turn" and shutil.which("node") is None:
        pytest.skip("node is not installed")
    out = tmp_path / "out"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "conformance.cli",
            "run",
            "turn_server",
            "--iut",
            iut,
            "--out",
            str(out),
            "--baseline",
            str(ROOT / "baselines" / f"{iut}.toml"),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=ROOT,
        check=False,
    )
    summary = json.loads((out / "summary.json").read_text())
    verdicts = [r["verdict"] for r in summary["records"]]
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert len(verdicts) >= 60 and "ERROR" not in verdicts
