"""One owner per fact (issue 14 §1): verdict order and symbols, case IDs and slugs, the comparison printer."""

from __future__ import annotations

from conformance.baseline import Baseline, Expected, compare, comparison_lines
from conformance.ids import case_id, slug
from conformance.verdict import LETTERS, SYMBOLS, VERDICT_ORDER, VERDICTS, Verdict, worst


def test_every_verdict_has_a_letter_a_symbol_and_a_rank() -> None:
    assert set(VERDICTS) == set(LETTERS) == set(SYMBOLS) == {v.value for v in VERDICT_ORDER}
    assert VERDICTS == ("PASS", "NON-STRICT", "FAIL", "INFO", "UNSUPPORTED", "ERROR")


def test_worst_ranks_unsupported_above_info() -> None:
    assert worst(["INFO", "UNSUPPORTED"]) == "UNSUPPORTED"
    assert worst(["PASS", "INFO"]) == "INFO"
    assert worst(["NON-STRICT", "UNSUPPORTED", "FAIL"]) == Verdict.FAIL
    assert worst(["ERROR", "FAIL"]) == "ERROR"
    assert worst([]) == "PASS"
    assert worst([], default="") == ""


def test_case_id_and_slug() -> None:
    nodeid = "suites/ice/test_checks.py::test_x[controlling]"
    assert case_id(nodeid) == "ice/test_checks.py::test_x[controlling]"
    assert case_id("ice/test_checks.py::test_x") == "ice/test_checks.py::test_x"
    assert slug(nodeid) == "suites_ice_test_checks.py_test_x_controlling"
    assert len(slug("x" * 400)) == 150


def test_comparison_lines() -> None:
    records = [
        {"iut": "a", "case_id": "c1", "verdict": "FAIL", "message": "broke\nmore"},
        {"iut": "a", "case_id": "c2", "verdict": "PASS", "message": ""},
        {"iut": "a", "case_id": "c3", "verdict": "NON-STRICT", "message": "should"},
    ]
    baseline = Baseline({("a", "c3"): Expected("a", "c3", "NON-STRICT", "known")})
    lines = comparison_lines(records, compare(records, baseline))
    assert lines == [
        "verdicts: PASS 1, NON-STRICT 1, FAIL 1",
        "  expected by the baseline: a NON-STRICT c3",
        "  FAIL not in the baseline: a c1: broke",
    ]
    assert comparison_lines([], compare([], None)) == ["verdicts: none"]
