"""Crash attribution (docs/adapter-contract.md, "Crashes"): a fault signal is the IUT's FAIL, the rest ERROR."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conformance.adapters.base import AdapterError, IutCrashed, iut_death
from conformance.adapters.stdio import StdioAdapter
from conformance.verdict import Findings, Verdict, grade

ROOT = Path(__file__).resolve().parents[1]


class _Raised:
    def __init__(self, exc: BaseException) -> None:
        self.value = exc


def test_fault_signal_is_fail_under_rob_crash_01() -> None:
    f = Findings(requirements=("STUN-MSG-04",))
    verdict, message = grade(f, None, IutCrashed("iut", -int(signal.SIGSEGV)))
    assert verdict is Verdict.FAIL
    assert message.startswith("ROB-CRASH-01 (MUST): iut: the IUT process killed by SIGSEGV (signal 11)")
    assert [x.requirement for x in f.items] == ["ROB-CRASH-01"]


@pytest.mark.parametrize("returncode", [3, -int(signal.SIGKILL), -int(signal.SIGTERM)])
def test_exit_or_outside_kill_stays_error(returncode: int) -> None:
    exc = IutCrashed("iut", returncode)
    assert not exc.is_crash
    verdict, _ = grade(Findings(), _Raised(exc), None)  # type: ignore[arg-type]
    assert verdict is Verdict.ERROR


def test_plain_adapter_failure_is_error_even_when_a_crash_is_absent() -> None:
    verdict, _ = grade(Findings(), _Raised(AdapterError("broken line")), None)  # type: ignore[arg-type]
    assert verdict is Verdict.ERROR


def test_stdio_adapter_reports_a_death_by_signal_but_not_its_own_kill() -> None:
    async def main() -> tuple[IutCrashed | None, IutCrashed | None]:
        code = "import os, signal, sys; sys.stdin.readline(); os.kill(os.getpid(), signal.SIGABRT)"
        crashing = StdioAdapter([sys.executable, "-c", code], request_timeout=5)
        with pytest.raises(IutCrashed) as raised:
            await crashing.initialize()
        assert raised.value.signal_name == "SIGABRT" and "while 'initialize' was pending" in str(raised.value)
        first = iut_death(crashing)
        await crashing.shutdown()
        silent = StdioAdapter([sys.executable, "-c", "import time; time.sleep(30)"], start_timeout=0.5)
        with pytest.raises(AdapterError):
            await silent.initialize()  # no answer: the harness kills it, which is not the IUT's death
        await silent.shutdown()
        return first, iut_death(silent)

    crashed, killed = asyncio.run(main())
    assert crashed is not None and crashed.is_crash
    assert killed is None


def test_libnice_asan_mode_changes_flags_and_build_key(monkeypatch: pytest.MonkeyPatch) -> None:
    from conformance.adapters import libnice

    monkeypatch.delenv(libnice.ASAN_ENV, raising=False)
    plain = libnice.build_key("0.1.21")
    monkeypatch.setenv(libnice.ASAN_ENV, "1")
    assert "-fsanitize=address" in libnice._cflags()
    assert libnice.build_key("0.1.21") != plain  # an ASan build never reuses the plain binary


@pytest.mark.slow
def test_libnice_asan_names_the_faulting_function_and_stays_a_fail(tmp_path: Path) -> None:
    """The authenticated 403 crash under ASan: SIGABRT (a fault signal, FAIL) and a report naming the function."""
    case = "suites/robustness/test_ice_agent.py::test_agent_survives_hostile_answers_to_its_checks"
    env = {**os.environ, "ICE_CONFORMANCE_LIBNICE_ASAN": "1"}
    argv = [sys.executable, "-m", "pytest", case, "--iut", "libnice", "-p", "no:cacheprovider", "-q"]
    subprocess.run([*argv, "--conformance-out", str(tmp_path)], env=env, cwd=ROOT, timeout=300, check=False)
    record = json.loads((tmp_path / "summary.json").read_text())["records"][0]
    assert record["verdict"] == "FAIL", record["message"][:500]
    assert "SIGABRT" in record["message"] and "AddressSanitizer" in record["message"], record["message"][-800:]
