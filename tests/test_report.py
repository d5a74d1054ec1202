"""The HTML report, merging of run folders, JUnit rewriting, the Markdown summary and the baseline commands."""

from __future__ import annotations

import argparse
import html
import json
import re
import shutil
import subprocess
import sys
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from scapy.utils import rdpcap

from conformance.baseline import BaselineError, check_reasons, compare, load_baseline, update_baseline
from conformance.ids import slug as case_slug
from conformance.report import add_commands, rewrite_junit, write_report, write_summary_md
from conformance.report.html import CSP
from conformance.report.messages import decode_capture, parse_ladder, sanitize_svg
from conformance.report.model import build_model

ROOT = Path(__file__).resolve().parents[1]
NOMINATION = "ice/test_nomination.py::test_controlling_iut_nominates_one_valid_pair"
# Cases named exactly, so that suites added later do not change what these runs hold.
#: aioice FAILs ICE-NOM-06 in both variants (baselines/aioice.toml); ICE-NOM-02 is UNSUPPORTED (ice2 never reaches it).
NOM06 = "ice/test_selected_pair.py::test_controlled_iut_uses_the_highest_priority_nominated_pair[low-then-high]"
SHARD_NOMINATION = (
    "test_controlling_iut_nominates_one_valid_pair or test_controlled_iut_accepts_the_nomination"
    " or test_controlled_iut_uses_the_highest_priority_nominated_pair"
)
SHARD_PRIORITY = (
    "test_candidate_priorities_are_unique_in_range_and_follow_the_formula or test_local_preference_and_component_ids"
)


def cli_run(out: Path, *args: str) -> Path:
    subprocess.run(
        [sys.executable, "-m", "conformance.cli", "run", "--out", str(out), *args],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=ROOT,
        check=False,
    )
    assert (out / "summary.json").exists(), f"no summary in {out}"
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Real aioice runs: two shards and one run over both shards' cases."""
    base = tmp_path_factory.mktemp("runs")
    return {
        "nomination": cli_run(base / "shard-nomination", "-k", SHARD_NOMINATION),
        "priority": cli_run(base / "shard-priority", "-k", SHARD_PRIORITY),
        "both": cli_run(base / "single", "-k", f"{SHARD_NOMINATION} or {SHARD_PRIORITY}"),
    }


def commands(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="ice-conformance")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    code: int = args.func(args)
    return code


def normalised(report: Path) -> dict[str, str]:
    """Every file of a report, with the run list (folders, start times, durations) taken out of the summary page."""
    files: dict[str, str] = {}
    for path in sorted(report.rglob("*")):
        if path.is_file():
            text = path.read_text(encoding="utf-8", errors="replace")
            if path.name == "index.html":
                text = re.sub(r'<section id="runs">.*?</section>', "", text, flags=re.S)
            files[str(path.relative_to(report))] = text
    return files


def combine(folders: list[Path], out: Path) -> Path:
    """One run folder holding what several hold (the run a single job over all their cases would have written)."""
    records: list[dict[str, Any]] = []
    for folder in folders:
        summary = json.loads((folder / "summary.json").read_text())
        records += summary["records"]
        shutil.copytree(folder / "artifacts", out / "artifacts", dirs_exist_ok=True)
    first = json.loads((folders[0] / "summary.json").read_text())
    first["records"] = sorted(records, key=lambda r: r["nodeid"])
    (out / "summary.json").write_text(json.dumps(first))
    return out


def make_run(folder: Path, records: list[dict[str, Any]], finished: float = 2000.0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    full = [
        {
            "nodeid": f"suites/{r['case_id']}",
            "requirements": ["ICE-NOM-02"],
            "level": "MUST",
            "duration": 0.1,
            "message": "",
            "iut_version": "1.0",
            "artifacts": {},
            **r,
        }
        for r in records
    ]
    summary = {"harness_version": "0.1.0", "started": finished - 10, "finished": finished, "iut": "x", "records": full}
    (folder / "summary.json").write_text(json.dumps(summary))
    return folder


# -- the report of a real run ---------------------------------------------------------------------------------------


def test_report_pages_of_a_real_run(runs: dict[str, Path], tmp_path: Path) -> None:
    index = write_report([runs["both"]], tmp_path / "rep")
    rep = index.parent
    for name in ("index.html", "matrix.html", "cases.html", "matrix.json"):
        assert (rep / name).is_file()
    page = rep / "cases" / "aioice" / f"{case_slug(NOMINATION)}.html"
    html = page.read_text()
    assert "ICE-NOM-02" in html and "https://www.rfc-editor.org/rfc/rfc8445#section-8.1.1" in html
    assert "badge big v-UNSUPPORTED" in html and "USE-CANDIDATE" in html
    assert "options delivery" in html and "ice2: not supported by this adapter" in html
    assert "<svg" in html and "Decoded messages" in html and "Binding request" in html
    assert "→ IUT" in html and "← IUT" in html  # directions read from the pcapng's packet flags
    pcap = page.parent / case_slug(NOMINATION) / "capture.pcapng"
    assert pcap.is_file() and 'href="' + f"{case_slug(NOMINATION)}/capture.pcapng" + '"' in html
    matrix = (rep / "matrix.html").read_text()
    assert f'href="cases/aioice/{case_slug(NOMINATION)}.html"' in matrix


def test_report_is_self_contained(runs: dict[str, Path], tmp_path: Path) -> None:
    rep = write_report([runs["both"]], tmp_path / "rep").parent
    for page in rep.rglob("*.html"):
        text = page.read_text()
        csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]*)"', text)
        assert csp is not None and html.unescape(csp.group(1)) == CSP, page
        assert not re.search(r"<(script|img|link|iframe)[^>]+(src|href)=", text), page
        assert not re.search(r"url\((?!#)", text), page
        # the only absolute URLs are links to RFC sections, which the reader follows on purpose
        assert set(re.findall(r'(?:href|src)="(https?://[^/"]+)', text)) <= {"https://www.rfc-editor.org"}, page


def test_report_merge_of_shards_equals_the_report_of_one_run(runs: dict[str, Path], tmp_path: Path) -> None:
    shards = [runs["nomination"], runs["priority"]]
    single = combine(shards, tmp_path / "combined")
    merged = normalised(write_report(shards, tmp_path / "merged").parent)
    one = normalised(write_report([single], tmp_path / "one").parent)
    assert merged.keys() == one.keys()
    assert merged == one
    assert any(k.endswith("capture.pcapng") for k in merged)


def test_report_merge_of_shards_matches_a_real_single_run(runs: dict[str, Path], tmp_path: Path) -> None:
    merged = write_report([runs["nomination"], runs["priority"]], tmp_path / "merged").parent
    single = write_report([runs["both"]], tmp_path / "single").parent
    a = json.loads((merged / "matrix.json").read_text())
    b = json.loads((single / "matrix.json").read_text())
    assert a == b  # same cells, same verdicts, same pages
    assert a["matrix"]["ICE-NOM-02"]["aioice"][0]["verdict"] == "UNSUPPORTED"
    assert {c["verdict"] for c in a["matrix"]["ICE-NOM-06"]["aioice"]} == {"FAIL"}
    pages = {p.relative_to(merged) for p in merged.rglob("*.html")}
    assert pages == {p.relative_to(single) for p in single.rglob("*.html")}


def test_report_merge_order_does_not_matter(runs: dict[str, Path], tmp_path: Path) -> None:
    a = normalised(write_report([runs["nomination"], runs["priority"]], tmp_path / "a").parent)
    b = normalised(write_report([runs["priority"], runs["nomination"]], tmp_path / "b").parent)
    assert a == b


def test_report_several_iuts_share_one_matrix(tmp_path: Path) -> None:
    one = make_run(tmp_path / "a", [{"case_id": NOMINATION, "verdict": "FAIL", "iut": "aioice"}])
    two = make_run(tmp_path / "b", [{"case_id": NOMINATION, "verdict": "PASS", "iut": "libnice"}])
    model = build_model([one, two])
    assert model.iuts == ["aioice", "libnice"]
    row = next(r for g in model.groups for r in g.rows if r.req.id == "ICE-NOM-02")
    assert [c.verdict for c in row.cells["aioice"]] == ["FAIL"]
    assert [c.verdict for c in row.cells["libnice"]] == ["PASS"]
    rep = write_report([one, two], tmp_path / "rep").parent
    page = (rep / "cases" / "aioice" / f"{case_slug(NOMINATION)}.html").read_text()
    assert "libnice PASS" in page  # the same case on the other IUT is one click away


def test_report_two_runs_of_one_iut_stay_apart_labelled_by_folder(tmp_path: Path) -> None:
    old = make_run(tmp_path / "old", [{"case_id": NOMINATION, "verdict": "FAIL", "iut": "aioice"}], finished=1000)
    new = make_run(tmp_path / "new", [{"case_id": NOMINATION, "verdict": "PASS", "iut": "aioice"}], finished=3000)
    for order in ([old, new], [new, old]):
        model = build_model(order)
        assert model.iuts == ["aioice (new)", "aioice (old)"] and model.duplicates
        assert {c.iut: c.verdict for c in model.cases} == {"aioice (new)": "PASS", "aioice (old)": "FAIL"}
        assert {c.baseline_iut for c in model.cases} == {"aioice"}


def test_report_rejects_a_folder_without_summary(tmp_path: Path) -> None:
    assert commands("report", str(tmp_path), "--out", str(tmp_path / "rep")) == 2


def test_report_interop_grid_only_when_interop_records_exist(tmp_path: Path) -> None:
    plain = make_run(tmp_path / "plain", [{"case_id": NOMINATION, "verdict": "PASS", "iut": "aioice"}])
    assert build_model([plain]).interop is None
    assert "Interoperability" not in (write_report([plain], tmp_path / "r1").parent / "matrix.html").read_text()
    interop = make_run(
        tmp_path / "interop",
        [
            {
                "case_id": "interop/test_connect.py::test_connects[host]",
                "verdict": "PASS",
                "iut": "aioice",
                "kind": "interop",
                "pair": ["aioice", "libnice"],
                "topology": "host",
            }
        ],
    )
    model = build_model([interop])
    assert model.interop is not None and model.interop.worst("aioice", "libnice") == "PASS"
    assert "Interoperability" in (write_report([interop], tmp_path / "r2").parent / "matrix.html").read_text()


# -- the exchange on a case page ------------------------------------------------------------------------------------


def test_report_sanitize_svg_keeps_the_drawing_and_drops_active_content() -> None:
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><script>alert(2)</script>'
        '<g class="lane"><title>t</title><line x1="1" marker-end="url(#arrow-h)" style="x"/>'
        '<a href="javascript:alert(3)"><text>x</text></a><rect fill="url(http://evil/)"/></g>'
        '<foreignObject><div xmlns="http://www.w3.org/1999/xhtml">x</div></foreignObject></svg>'
    )
    clean = sanitize_svg(svg)
    assert clean is not None
    assert "script" not in clean and "onload" not in clean and "javascript" not in clean and "evil" not in clean
    assert "foreignObject" not in clean and "style" not in clean
    assert 'marker-end="url(#arrow-h)"' in clean and "<title>t</title>" in clean
    assert sanitize_svg("<svg") is None and sanitize_svg("<html/>") is None


def test_report_decoded_messages_have_directions_and_names(runs: dict[str, Path]) -> None:
    folder = runs["nomination"] / "artifacts" / case_slug(f"suites/{NOMINATION}")
    ladder = (folder / "ladder.svg").read_text()
    info = parse_ladder(ladder)
    assert set(info.sides.values()) == {"harness", "iut"}
    rows, hidden = decode_capture(folder / "capture.pcapng", ladder)
    assert hidden == 0 and rows
    flags = [p.direction for p in sorted(rdpcap(str(folder / "capture.pcapng")), key=lambda p: float(p.time))]
    assert [r["direction"] for r in rows] == ["in" if f == 1 else "out" for f in flags]
    assert rows[0]["label"].startswith("Binding request") and "USE-CANDIDATE" in rows[0]["label"]
    assert any(r["src_label"] == "harness peer" for r in rows)
    # The rows the case decoded while it had the capture (what the page shows) match the pcap's.
    written = json.loads((folder / "messages.json").read_text())
    assert written["hidden"] == hidden
    keys = ("index", "direction", "endpoint", "src", "dst", "src_label", "dst_label", "kind", "length", "note", "label")
    keys += ("summary", "show", "hex")
    assert [{k: r[k] for k in keys} for r in written["rows"]] == [{k: r[k] for k in keys} for r in rows]


# -- JUnit ------------------------------------------------------------------------------------------------------------


def _junit(tmp_path: Path, cases: list[tuple[str, str]]) -> Path:
    body = "".join(
        f'<testcase classname="suites.ice.test_x" name="{name}" time="0.1">{child}</testcase>' for name, child in cases
    )
    path = tmp_path / "junit.xml"
    path.write_text(f'<?xml version="1.0"?><testsuites><testsuite tests="9">{body}</testsuite></testsuites>')
    return path


def test_report_junit_rewrite_follows_the_verdict_table(tmp_path: Path) -> None:
    path = _junit(
        tmp_path,
        [
            ("test_pass", ""),
            ("test_fail", '<failure message="FAIL: bad">FAIL: bad</failure>'),
            ("test_error[a]", '<failure message="ERROR: shim died">ERROR: shim died</failure>'),
            ("test_ns", '<skipped type="pytest.skip" message="NON-STRICT: meh">x</skipped>'),
            ("test_info", '<skipped type="pytest.skip" message="INFO: fyi">x</skipped>'),
            ("test_unsup", '<skipped type="pytest.skip" message="UNSUPPORTED: no turn">x</skipped>'),
        ],
    )
    verdicts = {
        "test_pass": "PASS",
        "test_fail": "FAIL",
        "test_error[a]": "ERROR",
        "test_ns": "NON-STRICT",
        "test_info": "INFO",
        "test_unsup": "UNSUPPORTED",
    }
    records = [
        {
            "nodeid": f"suites/ice/test_x.py::{name}",
            "case_id": f"ice/test_x.py::{name}",
            "verdict": v,
            "requirements": ["ICE-NOM-02", "ICE-NOM-05"],
            "level": "MUST",
            "message": "m",
            "iut": "aioice",
            "iut_version": "0.13.0",
        }
        for name, v in verdicts.items()
    ]
    rewrite_junit(path, records)
    rewrite_junit(path, records)  # idempotent
    suite = ET.parse(path).getroot().find("testsuite")
    assert suite is not None
    counts = [suite.get(k) for k in ("tests", "failures", "errors", "skipped")]
    assert counts == ["6", "1", "1", "3"]
    by_name = {c.get("name"): c for c in suite.findall("testcase")}
    expected = {"PASS": None, "FAIL": "failure", "ERROR": "error", "NON-STRICT": "skipped", "INFO": "skipped"}
    expected["UNSUPPORTED"] = "skipped"
    for name, verdict in verdicts.items():
        case = by_name[name]
        children = [c.tag for c in case if c.tag != "properties"]
        assert children == ([expected[verdict]] if expected[verdict] else []), name
        if expected[verdict]:
            outcome = case.find(str(expected[verdict]))
            assert outcome is not None and outcome.get("type") == verdict
            assert str(outcome.get("message")).startswith(f"{verdict}: ")
        props = [(p.get("name"), p.get("value")) for p in case.iter("property")]
        assert ("verdict", verdict) in props and ("level", "MUST") in props and ("iut", "aioice") in props
        assert ("requirement", "ICE-NOM-02") in props and ("requirement", "ICE-NOM-05") in props
        assert len(props) == len(set(props))


def test_report_junit_rewrite_of_a_real_run(runs: dict[str, Path], tmp_path: Path) -> None:
    path = tmp_path / "junit.xml"
    shutil.copyfile(runs["both"] / "junit.xml", path)
    records = json.loads((runs["both"] / "summary.json").read_text())["records"]
    rewrite_junit(path, records)
    cases = ET.parse(path).getroot().iter("testcase")
    verdicts = {c.get("name"): {p.get("name"): p.get("value") for p in c.iter("property")} for c in cases}
    assert len(verdicts) == len(records)
    assert verdicts["test_controlling_iut_nominates_one_valid_pair"]["verdict"] == "UNSUPPORTED"
    assert verdicts["test_controlled_iut_uses_the_highest_priority_nominated_pair[low-then-high]"]["verdict"] == "FAIL"
    assert all(v.get("requirements") for v in verdicts.values())


# -- Markdown ---------------------------------------------------------------------------------------------------------


def test_report_summary_md_lists_what_needs_attention(tmp_path: Path) -> None:
    records = [
        {"case_id": NOMINATION, "verdict": "FAIL", "iut": "aioice", "requirements": ["ICE-NOM-02"], "message": "x|y"},
        {"case_id": "stun/a.py::t", "verdict": "ERROR", "iut": "aioice", "requirements": [], "message": "shim died"},
        {"case_id": "stun/b.py::t", "verdict": "PASS", "iut": "aioice", "requirements": [], "message": ""},
    ]
    summary = {"records": records}
    path = tmp_path / "summary.md"
    write_summary_md(summary, compare(records, None), path)
    text = path.read_text()
    assert "exit 2" in text and "| aioice |" in text
    assert "New failures" in text and f"`{NOMINATION}`" in text and "x\\|y" in text
    assert "[ICE-NOM-02](https://www.rfc-editor.org/rfc/rfc8445#section-8.1.1)" in text
    assert "Errors" in text and "shim died" in text and "report/index.html" in text


# -- baselines ------------------------------------------------------------------------------------------------------


def test_report_baseline_write_marks_todo_and_check_refuses_it(tmp_path: Path) -> None:
    run = make_run(
        tmp_path / "run",
        [
            {"case_id": NOMINATION, "verdict": "FAIL", "iut": "aioice", "message": 'first "line"\nsecond'},
            {"case_id": "ice/a.py::t", "verdict": "NON-STRICT", "iut": "aioice", "message": "should"},
            {"case_id": "ice/b.py::t", "verdict": "PASS", "iut": "aioice"},
            {"case_id": "ice/c.py::t", "verdict": "ERROR", "iut": "aioice", "message": "harness"},
        ],
    )
    out = tmp_path / "baseline.toml"
    assert commands("baseline", "write", str(run), "--out", str(out)) == 0
    rows = tomllib.loads(out.read_text())["expected"]
    assert {(r["case"], r["verdict"]) for r in rows} == {(NOMINATION, "FAIL"), ("ice/a.py::t", "NON-STRICT")}
    assert all(r["reason"].startswith("TODO") for r in rows)
    with pytest.raises(ValueError, match="TODO reason"):
        check_reasons(load_baseline(out), out)
    assert commands("baseline", "check", str(run), "--baseline", str(out)) == 2

    out2 = tmp_path / "observed.toml"
    assert commands("baseline", "write", str(run), "--out", str(out2), "--reason-from-message") == 0
    reasons = {r["case"]: r["reason"] for r in tomllib.loads(out2.read_text())["expected"]}
    assert reasons[NOMINATION] == 'observed: first "line" (RFC 8445 §8.1.1)'
    # the ERROR is not baselined, so the gate still says 2
    assert commands("baseline", "check", str(run), "--baseline", str(out2)) == 2


def test_report_baseline_update_keeps_reasons_and_drops_fixed_cases(tmp_path: Path) -> None:
    existing = tmp_path / "b.toml"
    existing.write_text(
        '[[expected]]\niut = "aioice"\ncase = "ice/a.py::t"\nverdict = "FAIL"\nreason = "known, see issue 4"\n'
        '[[expected]]\niut = "aioice"\ncase = "ice/b.py::t"\nverdict = "FAIL"\nreason = "fixed upstream"\n'
        '[[expected]]\niut = "libnice"\ncase = "ice/a.py::t"\nverdict = "FAIL"\nreason = "other IUT"\n'
    )
    records = [
        {"iut": "aioice", "case_id": "ice/a.py::t", "verdict": "FAIL", "message": "again"},
        {"iut": "aioice", "case_id": "ice/b.py::t", "verdict": "PASS", "message": ""},
    ]
    update = update_baseline(records, existing)
    rows = {(r["iut"], r["case"]): r for r in tomllib.loads(update.text)["expected"]}
    assert rows[("aioice", "ice/a.py::t")]["reason"] == "known, see issue 4"
    assert ("aioice", "ice/b.py::t") not in rows and [e.case for e in update.removed] == ["ice/b.py::t"]
    assert rows[("libnice", "ice/a.py::t")]["reason"] == "other IUT"


def test_baseline_entry_with_several_verdicts_accepts_each(tmp_path: Path) -> None:
    """``verdict = [...]``: an IUT whose verdict varies from run to run (the reason says why) matches any of them."""
    base = tmp_path / "b.toml"
    base.write_text(
        '[[expected]]\niut = "libjuice"\ncase = "ice/a.py::t"\nverdict = ["FAIL", "NON-STRICT", "PASS"]\n'
        'reason = "bursts its checks in some runs"\n'
    )
    baseline = load_baseline(base)
    for verdict in ("FAIL", "NON-STRICT", "PASS"):
        c = compare([{"iut": "libjuice", "case_id": "ice/a.py::t", "verdict": verdict}], baseline)
        assert len(c.expected) == 1 and not c.unexpected_passes, verdict
    c = compare([{"iut": "libjuice", "case_id": "ice/a.py::t", "verdict": "ERROR"}], baseline)
    assert c.errors and not c.expected
    update = update_baseline([{"iut": "libjuice", "case_id": "ice/a.py::t", "verdict": "PASS"}], base)
    (row,) = tomllib.loads(update.text)["expected"]
    assert row["verdict"] == ["FAIL", "NON-STRICT", "PASS"] and row["reason"] == "bursts its checks in some runs"
    base.write_text('[[expected]]\niut = "x"\ncase = "c"\nverdict = ["FAIL", "MAYBE"]\nreason = "r"\n')
    with pytest.raises(BaselineError, match="MAYBE"):
        load_baseline(base)


def test_report_baseline_check_gates_like_run(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", [{"case_id": NOMINATION, "verdict": "PASS", "iut": "aioice"}])
    base = tmp_path / "b.toml"
    base.write_text(f'[[expected]]\niut = "aioice"\ncase = "{NOMINATION}"\nverdict = "FAIL"\nreason = "r"\n')
    assert commands("baseline", "check", str(run), "--baseline", str(base)) == 0
    assert commands("baseline", "check", str(run), "--baseline", str(base), "--strict-baseline") == 1
    md = tmp_path / "s.md"
    assert commands("report", str(run), "--out", str(tmp_path / "r"), "--baseline", str(base), "--check") == 0
    assert commands("report", str(run), "--out", str(tmp_path / "r"), "--check", "--summary-md", str(md)) == 0
    assert md.read_text().startswith("## ICE conformance: aioice")


def test_report_command_merges_and_gates_shards(runs: dict[str, Path], tmp_path: Path) -> None:
    shards = [str(runs["nomination"]), str(runs["priority"])]
    assert commands("report", *shards, "--out", str(tmp_path / "a")) == 0
    assert commands("report", *shards, "--out", str(tmp_path / "b"), "--check") == 1  # aioice's FAIL, no baseline
    baseline = str(ROOT / "baselines" / "aioice.toml")
    assert commands("report", *shards, "--out", str(tmp_path / "c"), "--check", "--baseline", baseline) == 0
    page = (tmp_path / "c" / "report" / "cases" / "aioice" / f"{case_slug(NOM06)}.html").read_text()
    assert "Expected by the baseline" in page and "RFC 5245 controlling agent" in page
