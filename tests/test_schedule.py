"""The default worker count of a run against an IUT and the longest-first order (conformance/schedule.py)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from conformance import cli, schedule


class _Config:
    def __init__(self, ini: str = "", workerinput: dict[str, Any] | None = None, **options: Any) -> None:
        self.options = {"iut": "aioice", "iut_cmd": None, "conformance_out": None, "workers_cap": None, **options}
        self.ini = ini
        if workerinput is not None:
            self.workerinput = workerinput
        self.pluginmanager = SimpleNamespace(get_plugin=lambda name: None)
        self.option = SimpleNamespace(maxschedchunk=None)

    def getoption(self, name: str) -> Any:
        return self.options.get(name)

    def getini(self, name: str) -> str | None:
        return self.ini if name == "ice_workers" else None


def auto(config: _Config) -> int | None:
    return schedule.pytest_xdist_auto_num_workers(config)  # type: ignore[arg-type]


def test_auto_gives_the_measured_default_per_iut(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYTEST_XDIST_AUTO_NUM_WORKERS", raising=False)
    assert auto(_Config(iut="werift")) == schedule.FALLBACK_WORKERS > 2
    assert auto(_Config(iut="chromium")) == 2  # its iut.toml sets workers = 2
    assert auto(_Config()) == 2  # aioice: 2 workers of 20 slots each (conformance/slots.py)
    assert auto(_Config(iut=None, iut_cmd="node shim.js")) == schedule.FALLBACK_WORKERS


def test_the_ini_setting_and_xdist_variable_override_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYTEST_XDIST_AUTO_NUM_WORKERS", raising=False)
    assert auto(_Config(ini="3")) == 3
    with pytest.raises(pytest.UsageError, match="whole number"):
        auto(_Config(ini="many"))
    monkeypatch.setenv("PYTEST_XDIST_AUTO_NUM_WORKERS", "5")
    assert auto(_Config()) is None  # xdist's own hook reads its variable


def test_no_more_workers_than_selected_cases_and_one_case_runs_serially(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYTEST_XDIST_AUTO_NUM_WORKERS", raising=False)
    assert auto(_Config(iut="werift", workers_cap=3)) == 3
    assert auto(_Config(workers_cap=1)) == 0
    assert auto(_Config(iut="werift", workers_cap=100)) == schedule.FALLBACK_WORKERS


def test_a_run_not_against_an_iut_keeps_xdists_auto() -> None:
    assert auto(_Config(iut=None)) is None  # e.g. `pytest -n auto` over tests/


def test_workers_hand_out_the_longest_cases_first_and_unknown_ones_before_them() -> None:
    figures = {"a": 1.0, "b": 9.0, "c": 1.0, "d": 4.0}
    config = _Config(iut="werift", workerinput={"conformance_durations": figures})
    schedule.pytest_configure(config)  # type: ignore[arg-type]
    items = [SimpleNamespace(nodeid=n) for n in ["a", "b", "c", "new", "d"]]
    schedule.pytest_collection_modifyitems(config, items)  # type: ignore[arg-type]
    assert [i.nodeid for i in items] == ["new", "b", "d", "a", "c"]  # equal figures keep the files' order
    config.workerinput["workercount"] = 2  # each worker starts on two consecutive cases: one long, one shorter
    schedule.pytest_collection_modifyitems(config, items)  # type: ignore[arg-type]
    assert [i.nodeid for i in items] == ["new", "a", "b", "d", "c"]
    config.options["iut"] = "aioice"  # with slots a worker starts each case as it comes: plain longest first
    schedule.pytest_collection_modifyitems(config, items)  # type: ignore[arg-type]
    assert [i.nodeid for i in items] == ["new", "b", "d", "a", "c"]


def test_serial_runs_keep_the_files_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    config = _Config()
    schedule.pytest_configure(config)  # type: ignore[arg-type]
    assert config.option.maxschedchunk == 1  # the controller hands out one case at a time after the first two
    items = [SimpleNamespace(nodeid=n) for n in ["z", "y"]]
    schedule.pytest_collection_modifyitems(config, items)  # type: ignore[arg-type]
    assert [i.nodeid for i in items] == ["z", "y"]


def test_the_controller_keeps_the_runs_durations_for_the_next_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    collector = SimpleNamespace(
        records=[
            {"nodeid": "suites/x.py::t", "duration": 2.5, "verdict": "PASS"},
            {"nodeid": "suites/x.py::lost", "duration": 0.0, "verdict": "ERROR"},  # did not run its course
        ]
    )
    config = _Config()
    config.pluginmanager = SimpleNamespace(get_plugin=lambda name: collector)
    schedule.pytest_sessionfinish(SimpleNamespace(config=config))  # type: ignore[arg-type]
    assert json.loads(schedule.durations_file("aioice").read_text()) == {"suites/x.py::t": 2.5}
    schedule.pytest_configure(config)  # type: ignore[arg-type]
    assert config._conformance_durations["suites/x.py::t"] == 2.5  # type: ignore[attr-defined]
    node = SimpleNamespace(config=config, workerinput={})
    schedule.pytest_configure_node(node)
    assert node.workerinput["conformance_durations"]["suites/x.py::t"] == 2.5


def test_run_defaults_to_auto_and_caps_it_at_the_selected_cases(tmp_path: Path) -> None:
    args = cli.build_parser().parse_args(["run", "stun/test_short_term.py", "-k", "fingerprint"])
    argv = cli._pytest_argv(args, ["--iut", "aioice"], tmp_path)
    assert argv[argv.index("-n") + 1] == "auto"
    assert argv[argv.index("--workers-cap") + 1] == "2"
    whole = cli._pytest_argv(cli.build_parser().parse_args(["run"]), ["--iut", "aioice"], tmp_path)
    assert "--workers-cap" not in whole  # the default tier: no collection beforehand
    serial = cli._pytest_argv(cli.build_parser().parse_args(["run", "-n", "0"]), ["--iut", "aioice"], tmp_path)
    assert serial[serial.index("-n") + 1] == "0"
