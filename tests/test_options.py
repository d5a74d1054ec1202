"""The plugin's options (conformance/options.py): one ``--ice-`` prefix, the old names as aliases, an ini twin each."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

_CASE = "def test_nothing():\n    pass\n"


@pytest.mark.parametrize("flag", ["--ice-case-budget", "--case-budget"])
def test_option_and_its_alias_are_checked_alike(pytester: pytest.Pytester, flag: str) -> None:
    pytester.makepyfile(_CASE)
    result = pytester.runpytest_subprocess(flag, "0")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--case-budget must be positive, got 0.0*"])


def test_ini_twin_is_read_when_the_option_is_not_given(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nice_run_budget = -1\n")
    pytester.makepyfile(_CASE)
    result = pytester.runpytest_subprocess()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--run-budget must be positive, got -1.0*"])


def test_command_line_wins_over_the_ini_twin(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nice_iut = no-such-iut\n")
    pytester.makepyfile(_CASE)
    assert pytester.runpytest_subprocess().ret == pytest.ExitCode.USAGE_ERROR
    assert pytester.runpytest_subprocess("--ice-iut", "aioice").ret == pytest.ExitCode.OK
