"""The CLI and the CI gate as a new user and a CI job meet them (issue 18): install, output folders, selection,
JUnit, baselines, identity, per-case evidence and the adapter contract's rules enforced by the harness."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conformance import cli, install, netns
from conformance.adapters import node

ROOT = Path(__file__).resolve().parents[1]
SHIMS = ROOT / "tests" / "shims"


# -- item 0: install ------------------------------------------------------------------------------------------------


def _fake_bin(tmp_path: Path, name: str, script: str) -> Path:
    folder = tmp_path / "bin"
    folder.mkdir(exist_ok=True)
    exe = folder / name
    exe.write_text("#!/bin/sh\n" + script)
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    return folder


def test_install_fills_an_empty_node_cache_outside_any_namespace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A fake npm (no registry needed) records its call and lays out node_modules as `npm ci` does.
    log = tmp_path / "npm.log"
    fake = _fake_bin(
        tmp_path,
        "npm",
        f'echo "$@" >> {log}\nmkdir -p node_modules/werift-ice\necho \'{{"version": "0.2.3"}}\' '
        "> node_modules/werift-ice/package.json\n",
    )
    cache = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")
    node.installed_version.cache_clear()
    if not node.node_available():
        pytest.skip("node is not on PATH")
    assert not cache.exists()
    code = cli.main(["install", "werift"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "ci" in log.read_text()
    assert out.strip().splitlines()[-1].startswith("werift: ready")
    assert node.installed_version("werift") == "0.2.3"
    # A second install finds the cache and does not call npm again.
    assert cli.main(["install", "werift"]) == 0
    assert log.read_text().count("ci") == 1


def test_install_names_missing_debian_packages_and_namespace(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(install, "debian_missing", lambda pkgs: [p for p in pkgs if p != "gcc"])
    monkeypatch.setattr(netns, "available", lambda: False)
    monkeypatch.setattr(install, "_installer", lambda name: None)
    code = cli.main(["install", "libnice", "libjuice", "aioice"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert code == 1
    assert "apt-get install -y libjson-glib-dev libnice-dev pkg-config" in "\n".join(lines)
    assert lines[-3].startswith("libnice: NOT READY: Debian packages libnice-dev libjson-glib-dev pkg-config")
    assert lines[-2].startswith("libjuice: NOT READY:") and "unshare -n" in lines[-2]
    assert lines[-1] == "aioice: ready"


def test_install_unknown_iut_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["install", "nosuchstack"]) == 2
    assert "unknown IUT 'nosuchstack'" in capsys.readouterr().err


# -- helpers for real runs ------------------------------------------------------------------------------------------

PROXY = SHIMS / "proxy.py"
FP_CONTROLLED = "stun/test_short_term.py::test_checks_and_responses_carry_a_correct_fingerprint[controlled]"
MI_CONTROLLED = "stun/test_short_term.py::test_message_integrity_is_correct[controlled]"


def run_cli(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "conformance.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        check=False,
    )


def proxy_cmd(mode: str) -> str:
    return f"env PYTHONUNBUFFERED=1 {sys.executable} {PROXY} {mode}"


def records(out: Path) -> dict[str, dict[str, Any]]:
    summary = json.loads((out / "summary.json").read_text())
    return {r["case_id"]: r for r in summary["records"]}


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def old_run(tmp_path: Path) -> Path:
    out = tmp_path / "latest"
    (out / "report").mkdir(parents=True)
    (out / "summary.json").write_text('{"records": [], "counts": {"PASS": 239}}')
    (out / "report" / "index.html").write_text("the previous report")
    return out


# -- items 1, 2, 12: the output folder and the numbers --------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["ice/test_nope.py"],
        ["-n", "abc"],
        ["-n", "-3"],
        ["--case-budget", "-1"],
        ["--case-budget", "0"],
        ["--run-budget", "nan"],
        ["--maxfail", "0"],
        ["NO-SUCH-REQ-*"],
    ],
    ids=lambda a: " ".join(a),
)
def test_usage_errors_touch_nothing_and_exit_2(
    args: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = old_run(tmp_path)
    before = snapshot(out)
    with pytest.raises(SystemExit) as stop:
        sys.exit(cli.main(["run", *args, "--out", str(out)]))
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "error:" in err and err.count("\n") == 1, err  # one line, not a usage screen
    if args[0] in ("-n", "--maxfail"):
        assert "whole number" in err  # one rule: 1 or more (0 or more, or auto, for -n)
    if args[0].endswith("budget"):
        assert "greater than 0" in err  # one rule: seconds > 0, option left out for the default
    assert snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest"]  # no half-written sibling left


def test_a_run_that_selects_nothing_keeps_the_previous_report(tmp_path: Path) -> None:
    out = old_run(tmp_path)
    before = snapshot(out)
    proc = run_cli("run", "stun/test_short_term.py", "-k", "no_such_case_anywhere", "--out", str(out))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "selected no case" in proc.stderr and "left as it was" in proc.stderr
    assert snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest"]


def test_unwritable_out_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("x")
    for out in (a_file / "out", Path("/proc/x"), a_file):
        assert cli.main(["run", FP_CONTROLLED, "--out", str(out)]) == 2, out
        captured = capsys.readouterr()
        assert captured.err.count("\n") == 1, captured.err
        assert captured.err.startswith("error: cannot write the output folder"), captured.err


def test_read_only_out_folder_is_one_line_and_exit_2(tmp_path: Path) -> None:
    out = old_run(tmp_path)
    cmd = [sys.executable, "-m", "conformance.cli", "run", FP_CONTROLLED, "--out", str(out)]
    if os.geteuid() == 0:  # root writes through permission bits: use a read-only bind mount instead
        if subprocess.run(["unshare", "-m", "true"], capture_output=True, check=False).returncode != 0:
            pytest.skip("no mount namespace for a read-only mount")
        script = f'mount --bind "{tmp_path}" "{tmp_path}" && mount -o remount,bind,ro "{tmp_path}" && exec "$@"'
        cmd = ["unshare", "-m", "sh", "-c", script, "sh", *cmd]
    else:
        out.chmod(0o555)
        tmp_path.chmod(0o555)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=ROOT, check=False)
    finally:
        tmp_path.chmod(0o755)
        out.chmod(0o755)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "cannot write the output folder" in proc.stderr, proc.stderr
    assert "INTERNALERROR" not in proc.stdout + proc.stderr


def make_run(folder: Path, rows: list[tuple[str, str, str, str]]) -> Path:
    """A run folder from (iut, case ID, verdict, message) rows."""
    folder.mkdir(parents=True, exist_ok=True)
    recs = [
        {
            "nodeid": f"suites/{case}",
            "case_id": case,
            "requirements": ["STUN-FP-01"],
            "level": "MUST",
            "verdict": verdict,
            "message": message,
            "iut": iut,
            "iut_version": "1",
            "duration": 0.1,
        }
        for iut, case, verdict, message in rows
    ]
    (folder / "summary.json").write_text(json.dumps({"records": recs, "started": 1.0, "finished": 2.0}))
    return folder


# -- items 6, 8, 10, 11, 13, 14 and 5 (run): an ad hoc shim run by node IDs ----------------------------------------


def test_ad_hoc_shim_run_by_pasted_case_ids(tmp_path: Path) -> None:
    """One real run (it is the slow part) shows items 5, 6, 8, 10, 11 and 14."""
    import html

    baseline = tmp_path / "mine.toml"
    baseline.write_text(
        '[[expected]]\niut = "mine"\ncase = "stun/test_gone.py::test_removed_long_ago"\nverdict = "FAIL"\n'
        'reason = "a case that no longer exists"\n'
    )
    out = tmp_path / "out"
    proc = run_cli(
        "run",
        f"suites/{FP_CONTROLLED}",  # as `run` prints it
        MI_CONTROLLED,  # as `list` prints it
        "--iut-cmd",
        proxy_cmd("name=aioice"),  # a home-made shim that reports a registered IUT's name
        "--iut-name",
        "mine",
        "--baseline",
        str(baseline),
        "--out",
        str(out),
        "-n",
        "0",  # one shim for both cases: item 11 below
    )
    # item 6: case IDs paste back, with or without suites/, with their parameters
    assert proc.returncode == 0, proc.stdout + proc.stderr
    recs = records(out)
    assert set(recs) == {FP_CONTROLLED, MI_CONTROLLED}
    # item 10: --iut-name gives the run its own identity; the shim's own name is kept apart
    assert {r["iut"] for r in recs.values()} == {"mine"} and {r["iut_reported"] for r in recs.values()} == {"aioice"}
    # item 14: the run's report under OUT/report/
    assert (out / "report" / "index.html").is_file() and (out / "report" / "cases" / "mine").is_dir()
    # item 11: each case's stderr holds only the lines written during that case
    logs = [(out / r["artifacts"]["stderr"]).read_text() for r in recs.values()]
    requests = [{line for line in log.splitlines() if line.startswith("proxy: request")} for log in logs]
    assert all(requests) and not requests[0] & requests[1]
    assert sum("initialize" in line for lines in requests for line in lines) <= 1
    # item 8: the case page's reproduce command
    page = next((out / "report" / "cases" / "mine").glob("*fingerprint*.html")).read_text()
    line = html.unescape(page.split('class="reproduce">', 1)[1].split("</code>", 1)[0])
    assert line.startswith(f"ice-conformance run 'suites/{FP_CONTROLLED}' --iut-cmd ")
    assert str(PROXY) in line and line.endswith(f"--iut-name mine --baseline {baseline}")
    # item 5: a baseline entry for a case that does not exist is a warning in `run`
    assert "warning:" in proc.stderr and "stun/test_gone.py::test_removed_long_ago" in proc.stderr


def test_shim_is_named_by_its_program_then_by_its_reported_name() -> None:
    import asyncio

    from conformance.adapters.contract import program_name
    from conformance.adapters.registry import make_adapter
    from conformance.adapters.stdio import StdioAdapter

    assert program_name(["env", "A=1", "python3", "-u", "-m", "pkg.shim"]) == "pkg.shim"
    assert program_name(["sh", "-c", "exec node /x/shim.js --flag"]) == "shim.js"
    assert program_name(["timeout", "30", "/opt/stack/shim"]) == "shim"
    assert program_name(["true"]) == "true"

    async def names() -> tuple[str, str]:
        adapter = make_adapter(cmd=f"env X=1 {sys.executable} {SHIMS / 'unsupported.py'}")
        assert isinstance(adapter, StdioAdapter)
        before = adapter.name
        await adapter.initialize()
        after = adapter.name
        await adapter.shutdown()
        return before, after

    assert asyncio.run(names()) == ("unsupported.py", "testshim")


# -- items 7, 9: selection by requirement, pytest's options ----------------------------------------------------------


def test_select_by_requirement_id_and_pass_pytest_options(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = run_cli("run", "STUN-FP-01", "--req", "STUN-MI-*", "--out", str(out), "--", "--durations=1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert {r["requirements"][0] for r in records(out).values()} == {"STUN-FP-01", "STUN-MI-01"}
    assert len(records(out)) == 4
    assert "slowest 1 durations" in proc.stdout  # --durations reached pytest


def test_common_pytest_options_are_run_options(tmp_path: Path) -> None:
    import argparse

    parser = cli.build_parser()
    args = parser.parse_args(["run", "-x", "--lf", "--maxfail", "2", "-v", "ICE-ROLE-06", "--iut-name", "z"])
    args.pytest_args = ["--tb=line"]
    argv = cli._pytest_argv(args, ["--iut", "aioice"], tmp_path)
    assert {"-x", "--lf", "--maxfail=2", "-vv", "--tb=line"} <= set(argv)
    assert argv[argv.index("--req") + 1] == "ICE-ROLE-06" and "no:cacheprovider" not in argv  # --lf needs the cache
    assert isinstance(args, argparse.Namespace)
    with pytest.raises(SystemExit):
        cli.main(["list", "--", "-x"])  # only `run` passes options to pytest


# -- item 3: contract violations are the adapter's ERROR ------------------------------------------------------------


def test_connected_without_selected_pair_is_an_error_naming_the_rule(tmp_path: Path) -> None:
    case = "ice/test_nomination.py::test_controlled_iut_accepts_the_nomination"
    proc = run_cli("run", case, "--iut-cmd", proxy_cmd("no-selected-pair"), "--out", str(tmp_path / "o"))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    record = records(tmp_path / "o")[case]
    assert record["verdict"] == "ERROR"
    assert "aioice: adapter contract violation" in record["message"]
    assert "`selected_pair` for every component is sent before `state: connected`" in record["message"]


def test_candidate_without_prefix_is_an_error_naming_the_rule(tmp_path: Path) -> None:
    proc = run_cli("run", FP_CONTROLLED, "--iut-cmd", proxy_cmd("no-prefix"), "--out", str(tmp_path / "o"))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    record = records(tmp_path / "o")[FP_CONTROLLED]
    assert record["verdict"] == "ERROR" and "with the `candidate:` prefix" in record["message"]
    assert record["message"].startswith("aioice: contract violation")


# -- item 4: JUnit ---------------------------------------------------------------------------------------------------


def test_junit_marks_baseline_expected_verdicts_and_names_the_iut(tmp_path: Path) -> None:
    import xml.etree.ElementTree as ET

    from conformance.baseline import Baseline, Expected
    from conformance.report.junit import rewrite_junit

    path = tmp_path / "junit.xml"
    path.write_text(
        '<testsuites><testsuite name="pytest">'
        '<testcase classname="suites.ice.test_x" name="test_a"><failure message="x">detail</failure></testcase>'
        '<testcase classname="suites.ice.test_x" name="test_b"><failure message="y">detail</failure></testcase>'
        "</testsuite></testsuites>"
    )
    recs = [
        {"nodeid": f"suites/ice/test_x.py::{n}", "case_id": f"ice/test_x.py::{n}", "verdict": "FAIL", "iut": "libnice"}
        for n in ("test_a", "test_b")
    ]
    reason = "libnice answers 400 here (RFC 8489 §6.3.4)"
    baseline = Baseline(
        {("libnice", "ice/test_x.py::test_a"): Expected("libnice", "ice/test_x.py::test_a", "FAIL", reason)}
    )
    rewrite_junit(path, recs, baseline=baseline)
    rewrite_junit(path, recs, baseline=baseline)  # idempotent
    suite = ET.parse(path).getroot().find("testsuite")
    assert suite is not None and suite.get("name") == "ice-conformance libnice"
    assert (suite.get("failures"), suite.get("skipped")) == ("1", "1")
    a, b = suite.findall("testcase")
    assert a.get("classname") == b.get("classname") == "libnice.suites.ice.test_x"
    skipped = a.find("skipped")
    assert skipped is not None and skipped.get("type") == "expected-FAIL"
    assert skipped.get("message") == f"FAIL expected by the baseline: {reason}" and a.find("failure") is None
    assert b.find("failure") is not None


# -- item 5: stale baseline entries ------------------------------------------------------------------------------


def test_baseline_check_flags_unknown_case_ids_as_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = make_run(tmp_path / "run", [("aioice", FP_CONTROLLED, "PASS", "")])
    baseline = tmp_path / "b.toml"
    baseline.write_text(
        f'[[expected]]\niut = "aioice"\ncase = "{MI_CONTROLLED}"\nverdict = "FAIL"\nreason = "not run this time"\n\n'
        '[[expected]]\niut = "aioice"\ncase = "ice/test_gone.py::test_x"\nverdict = "FAIL"\nreason = "stale"\n'
    )
    assert cli.main(["baseline", "check", str(run), "--baseline", str(baseline)]) == 2
    captured = capsys.readouterr()
    assert "error: the baseline names a case that does not exist" in captured.err
    assert "ice/test_gone.py::test_x" in captured.err
    assert f"not run (baseline entry kept): aioice FAIL {MI_CONTROLLED}" in captured.out


# -- items 10, 14, 15: the merged report ----------------------------------------------------------------------------


def test_report_keeps_runs_apart_by_folder_and_lists_failing_cases(tmp_path: Path) -> None:
    builtin = make_run(
        tmp_path / "builtin", [("aioice", FP_CONTROLLED, "PASS", ""), ("aioice", MI_CONTROLLED, "PASS", "")]
    )
    mine = make_run(
        tmp_path / "mine",
        [("aioice", FP_CONTROLLED, "FAIL", "no FINGERPRINT\nsecond line"), ("aioice", MI_CONTROLLED, "ERROR", "crash")],
    )
    out = tmp_path / "merged"
    assert cli.main(["report", str(builtin), str(mine), "--out", str(out)]) == 0
    index = out / "report" / "index.html"  # the same layout as `run --out`
    assert index.is_file() and not (out / "index.html").exists()
    data = json.loads((out / "report" / "matrix.json").read_text())
    assert data["iuts"] == ["aioice (builtin)", "aioice (mine)"]
    text = index.read_text()
    failing = text.split('<section id="failing">', 1)[1].split("</section>", 1)[0]
    assert "no FINGERPRINT" in failing and "second line" not in failing and "crash" in failing
    assert "v-FAIL" in failing and "v-ERROR" in failing and "aioice (mine)" in failing
    assert "aioice (builtin)" not in failing
    assert "@media (max-width:900px)" in text and "td.count a{color:var(--link);text-decoration:underline" in text
    cases = (out / "report" / "cases.html").read_text()
    head = cases.split("<thead>", 1)[1].split("</thead>", 1)[0]
    assert head.index("verdict") < head.index("case")  # the verdict column never scrolls off at 800 px


# -- items 16-22: the contract document says what the harness does ------------------------------------------------

CONTRACT_DOC = (ROOT / "docs" / "adapter-contract.md").read_text()


def test_contract_doc_announces_the_version_the_harness_sends() -> None:
    from conformance.adapters.base import CONTRACT_VERSION

    assert f'`initialize` | `{{contract: "{CONTRACT_VERSION}"}}`' in CONTRACT_DOC
    assert f'"method": "initialize", "params": {{"contract": "{CONTRACT_VERSION}"}}' in CONTRACT_DOC
    assert '"1.0"' not in CONTRACT_DOC.split("## 3. Methods", 1)[1].split("## 4.", 1)[0]


def test_contract_doc_gives_the_create_agent_defaults_the_shim_side_reads() -> None:
    from conformance.adapters.base import AgentConfig

    config = AgentConfig.from_json({"role": "controlled"})
    assert (config.components, config.ufrag, config.pwd, config.relay_only, config.trickle) == (
        1,
        None,
        None,
        False,
        False,
    )
    assert (config.stun_servers, config.turn_servers, config.options) == ([], [], {})
    assert config.interfaces == ["127.0.0.1"]
    assert "Only `role` is required" in CONTRACT_DOC
    for text in ("`components` 1", "`stun_servers` `[]`", '`interfaces` `["127.0.0.1"]`', "`trickle` `false`"):
        assert text in CONTRACT_DOC, text


def test_contract_doc_trickle_rules_match_the_harness() -> None:
    import inspect

    from conformance.tester.ice import IceSession

    timeout = inspect.signature(IceSession._trickled_candidates).parameters["timeout"].default
    assert f"waits up to {timeout:g} s for the null" in CONTRACT_DOC
    assert "may come before or after the `gather` response" in CONTRACT_DOC
    assert "is **not** notified" in CONTRACT_DOC


def test_contract_states_completed_at_once_and_failed_without_closed_are_legal() -> None:
    from conformance.adapters.contract import ContractChecker

    checker = ContractChecker()
    checker.agent_created("a", 1)
    pair = {"agent": "a", "component": 1}
    local = "candidate:9 1 udp 1 127.0.0.1 5000 typ host"
    remote = "candidate:other-foundation 1 udp 99 127.0.0.1 6000 typ prflx"  # item 20: not the signalled string
    for method, params in (
        ("state", {"agent": "a", "state": "checking"}),
        ("selected_pair", {**pair, "local": local, "remote": remote}),
        ("state", {"agent": "a", "state": "connected"}),
        ("state", {"agent": "a", "state": "completed"}),
        ("state", {"agent": "a", "state": "failed"}),
    ):
        assert checker.notification(method, params) is None
    assert not checker.violations
    assert "`completed` may follow it at once" in CONTRACT_DOC and "**not**\nfollowed by `closed`" in CONTRACT_DOC
    assert "need not equal, byte for byte" in CONTRACT_DOC


def test_minimal_shim_methods_answered_minus_32601_become_unsupported() -> None:
    import asyncio

    from conformance.adapters.base import Unsupported
    from conformance.adapters.stdio import StdioAdapter
    from conformance.verdict import Verdict, grade

    async def unsupported() -> list[BaseException]:
        adapter = StdioAdapter([sys.executable, str(SHIMS / "unsupported.py")])
        await adapter.initialize()
        calls = [
            adapter.restart("a"),
            adapter.send("a", 1, b"x"),
            adapter.add_remote_candidate("a", None),
            adapter.start_server("turn", "127.0.0.1:0"),
        ]
        found: list[BaseException] = []
        for call in calls:
            try:
                await call
            except Exception as exc:
                found.append(exc)
        await adapter.shutdown()
        return found

    errors = asyncio.run(unsupported())
    assert len(errors) == 4 and all(isinstance(e, Unsupported) for e in errors)
    assert grade(None, pytest.ExceptionInfo.from_exception(errors[0]))[0] is Verdict.UNSUPPORTED
    assert "## 6. A minimal shim" in CONTRACT_DOC and "| `restart` |" in CONTRACT_DOC


def test_contract_doc_examples_are_the_readme_commands() -> None:
    import re
    import shlex

    block = CONTRACT_DOC.split("```sh", 1)[1].split("```", 1)[0]
    lines = [line.split("#")[0].strip() for line in block.strip().splitlines()]
    assert all(line.startswith("ice-conformance run ") for line in lines)
    for line in lines:
        args = cli.build_parser().parse_args(shlex.split(line)[1:])
        assert args.command == "run" and (args.iut or args.iut_cmd)
    assert re.search(r"ice-conformance run --iut-cmd", (ROOT / "README.md").read_text())
