"""Several cases at once in one xdist worker, each in a forked child (conformance/slots.py)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from conformance import schedule

# Each case announces itself, then waits (bounded) until all four are in flight: it passes only side by side.
_CASES = textwrap.dedent(
    """
    import os, signal, time
    from pathlib import Path

    import pytest

    ROOM = Path(os.environ["SLOTS_ROOM"])

    @pytest.mark.parametrize("n", range(4))
    def test_together(n):
        print(f"OUT-{n}")
        (ROOM / f"in-{n}").touch()
        deadline = time.monotonic() + float(os.environ["SLOTS_WAIT"])
        while len(list(ROOM.glob("in-*"))) < 4:
            assert time.monotonic() < deadline, "the other cases never started"
            time.sleep(0.01)

    def test_lost():
        if os.environ.get("SLOTS_KILL"):
            os.kill(os.getpid(), signal.SIGKILL)
    """
)


def _run(
    tmp_path: Path, *options: str, kill: bool = False, wait: float = 20
) -> tuple[subprocess.CompletedProcess[str], ET.Element]:
    (tmp_path / "test_cases.py").write_text(_CASES)
    room = tmp_path / "room"
    room.mkdir()
    env = {**_env(), "SLOTS_ROOM": str(room), "SLOTS_WAIT": str(wait), **({"SLOTS_KILL": "1"} if kill else {})}
    junit = tmp_path / "junit.xml"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", str(tmp_path / "test_cases.py"), "-p", "no:cacheprovider", "-q",
         "--junitxml", str(junit), "-o", "junit_logging=system-out", *options],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120, check=False,
    )  # fmt: skip
    return proc, ET.parse(junit).getroot()


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}


def _cases(root: ET.Element) -> dict[str, ET.Element]:
    return {case.attrib["name"]: case for case in root.iter("testcase")}


def test_a_worker_with_slots_runs_its_cases_side_by_side_and_reports_each(tmp_path: Path) -> None:
    proc, root = _run(tmp_path, "-n", "1", "--ice-slots", "5")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    cases = _cases(root)
    assert len(cases) == 5
    for n in range(4):  # each case's captured output is its own, not a sibling's
        out = cases[f"test_together[{n}]"].findtext("system-out") or ""
        assert f"OUT-{n}" in out and all(f"OUT-{m}" not in out for m in range(4) if m != n), out


def test_without_slots_the_same_cases_cannot_meet(tmp_path: Path) -> None:
    """The control: one case at a time, the first case waits for the others in vain (so the test above can fail)."""
    proc, _ = _run(tmp_path, "-n", "1", "--ice-slots", "1", "-k", "together and 0", wait=1)
    assert proc.returncode == 1
    assert "the other cases never started" in proc.stdout


def test_a_case_whose_process_dies_is_an_error_naming_the_signal_and_the_others_go_on(tmp_path: Path) -> None:
    proc, root = _run(tmp_path, "-n", "1", "--ice-slots", "5", kill=True)
    assert proc.returncode == 1
    cases = _cases(root)
    failure = cases["test_lost"].find("failure")
    assert failure is not None
    assert "killed by signal SIGKILL" in failure.attrib.get("message", "") + (failure.text or "")
    assert all(cases[f"test_together[{n}]"].find("failure") is None for n in range(4))


class _Config:
    def __init__(self, ini: str = "", **options: Any) -> None:
        self.options = {"ice_slots": None, "iut": "aioice", "iut_cmd": None, "conformance_out": None, **options}
        self.ini = ini

    def getoption(self, name: str) -> Any:
        return self.options.get(name)

    def getini(self, name: str) -> str:
        return self.ini if name == "ice_slots" else ""


def test_slots_come_from_the_option_the_ini_setting_or_the_iut(monkeypatch: pytest.MonkeyPatch) -> None:
    from conformance.adapters import registry

    assert schedule.slots_for(_Config(ice_slots=3)) == 3  # type: ignore[arg-type]
    assert schedule.slots_for(_Config(ini="2")) == 2  # type: ignore[arg-type]
    assert schedule.slots_for(_Config(iut="chromium")) == 1  # type: ignore[arg-type]
    assert schedule.slots_for(_Config(iut=None, iut_cmd="node shim.js")) == 1  # type: ignore[arg-type]
    assert schedule.slots_for(_Config(iut=None)) == 1  # type: ignore[arg-type]  # not a run against an IUT
    monkeypatch.setattr(registry, "get_iut", lambda name: SimpleNamespace(slots=7))
    assert schedule.slots_for(_Config()) == 7  # type: ignore[arg-type]
    for bad in (_Config(ice_slots=0), _Config(ini="many")):
        with pytest.raises(pytest.UsageError, match="whole number"):
            schedule.slots_for(bad)  # type: ignore[arg-type]


def test_the_iut_budget_counts_the_cases_of_every_child(tmp_path: Path) -> None:
    """--ice-iut-budget is per worker: each child starts from what the worker's earlier children spent."""
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "conformance.cli", "run", "ice/test_roles.py", "-n", "1", "--out", str(out),
         "--", "--ice-slots", "2", "--ice-iut-budget", "0.5"],
        capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1], timeout=300, check=False,
        env={**_env(), "XDG_CACHE_HOME": str(tmp_path / "cache")},  # its ERROR durations stay out of the user's cache
    )  # fmt: skip
    records = json.loads((out / "summary.json").read_text())["records"]
    spent = [r for r in records if "IUT budget" in r["message"]]
    assert proc.returncode == 2, proc.stdout[-2000:]
    assert 0 < len(spent) <= len(records) - 2, [r["message"] for r in records]  # the first two ran side by side
