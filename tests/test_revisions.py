"""Unit tests of revision grading (conformance/revisions.py), the nonce cookie's two bit numberings and the RFC
citation of findings (conformance/verdict.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conformance.baseline import compare
from conformance.catalog import load_catalog
from conformance.packets import STUN, attr
from conformance.protocol.keys import (
    SecurityFeature,
    encode_nonce_cookie,
    features_for_both_readings,
    read_nonce_cookie,
)
from conformance.report.html import write_report
from conformance.report.markdown import render_summary_md
from conformance.report.results import render_results_md
from conformance.revisions import RevisionPolicy, implemented, signs_of
from conformance.tester.capture import Capture
from conformance.verdict import CaseEnded, Findings, Verdict, Violation, cite

IUT = ("127.0.0.1", 4000)
HARNESS = ("127.0.0.1", 5000)


def _stun(msg_type: int, *attrs: object) -> bytes:
    return bytes(STUN(type=msg_type, transaction_id=b"\x01" * 12, attributes=list(attrs)))


def _capture(*messages: tuple[bytes, str]) -> Capture:
    cap = Capture()
    for data, direction in messages:
        src, dst = (IUT, HARNESS) if direction == "in" else (HARNESS, IUT)
        cap.record(src, dst, data, direction)  # type: ignore[arg-type]
    return cap


def test_both_readings_signal_each_feature_at_both_ends() -> None:
    value = features_for_both_readings(SecurityFeature.PASSWORD_ALGORITHMS)
    assert value == 0x800001 and encode_nonce_cookie(value) == "obMatJos2gAAB"
    assert features_for_both_readings(SecurityFeature.USERNAME_ANONYMITY) == 0x400002
    assert features_for_both_readings(SecurityFeature.NONE) == 0


@pytest.mark.parametrize(
    ("nonce", "features", "reading"),
    [
        ("obMatJos2AAACxyz", SecurityFeature.USERNAME_ANONYMITY, "least significant"),
        ("obMatJos2gAAAxyz", SecurityFeature.PASSWORD_ALGORITHMS, "most significant"),
        ("obMatJos2gAAB", SecurityFeature.PASSWORD_ALGORITHMS, "both"),
        ("obMatJos2AAAA", SecurityFeature.NONE, "no feature"),
    ],
)
def test_a_servers_cookie_is_read_either_way(nonce: str, features: SecurityFeature, reading: str) -> None:
    got = read_nonce_cookie(nonce)
    assert got is not None and got.features == features and reading in got.reading


def test_no_cookie_reads_as_none() -> None:
    assert read_nonce_cookie(b"f00dcafe") is None


def test_signs_come_only_from_what_the_iut_sent() -> None:
    request = _stun(0x0003, attr.Nonce(nonce=b"obMatJos2AAABabc"), attr.Username(username=b"alice"))
    # A client copying the harness's cookie NONCE back shows nothing; the harness's own messages show nothing.
    cap = _capture((request, "in"), (_stun(0x0113, attr.Userhash(userhash=b"\x00" * 32)), "out"))
    assert signs_of(8489, cap.datagrams) == []
    cap.record(IUT, HARNESS, _stun(0x0003, attr.Userhash(userhash=b"\x00" * 32)), "in")
    assert any("USERHASH" in s for s in signs_of(8489, cap.datagrams))
    server = _capture((_stun(0x0113, attr.Nonce(nonce=b"obMatJos2AAAAabc")), "in"))
    assert any("cookie" in s for s in signs_of(8489, server.datagrams))
    assert signs_of(8656, server.datagrams) == []


def test_policy_grades_newer_rules_only_when_required_or_shown() -> None:
    cap = Capture()
    policy = RevisionPolicy(frozenset(), lambda: cap.datagrams)
    gap = policy.gap(8489)
    assert gap is not None and gap.startswith("RFC 8489 mechanism not implemented")
    assert policy.gap(5389) is None and policy.gap(8445) is None and policy.gap(None) is None
    assert RevisionPolicy(frozenset({8489}), lambda: cap.datagrams).gap(8489) is None
    assert RevisionPolicy(frozenset({8489}), lambda: cap.datagrams).gap(8656) is not None


def test_a_gated_violation_is_unsupported_and_a_revision_gap() -> None:
    findings = Findings(requirements=("STUN-AUTH-11",), catalog=load_catalog(), gate=lambda r: f"gap {r}")
    with pytest.raises(CaseEnded):
        findings.violation("STUN-AUTH-11", "no cookie", "nonce_cookie")
    assert findings.worst() is Verdict.UNSUPPORTED and findings.revision_gap
    assert "gap 8489" in findings.summary()
    # The RFC 5389 part of the same row is graded as written (the gate sees 5389 and lets it through).
    strict = Findings(
        requirements=("STUN-AUTH-11",), catalog=load_catalog(), gate=RevisionPolicy(frozenset(), list).gap
    )
    with pytest.raises(Violation):
        strict.violation("STUN-AUTH-11", "no REALM", "challenge")
    assert strict.worst() is Verdict.FAIL and not strict.revision_gap


def test_findings_cite_rfc_section_and_keyword() -> None:
    catalog = load_catalog()
    assert cite(catalog["STUN-AUTH-06"]).startswith("RFC 8489 §9.2.5 MUST: ")
    assert "procedure text, graded MUST" in cite(catalog["ICE-TRIG-02"])
    assert "(already in RFC 5389)" in cite(catalog["STUN-MSG-08"], "aligned")
    assert cite(catalog["TURN-ALLOC-12"], "try_alternate").split(": ")[0].endswith("SHOULD")
    findings = Findings(requirements=("STUN-AUTH-06",), catalog=catalog)
    with pytest.raises(Violation) as exc:
        findings.violation("STUN-AUTH-06", "no PASSWORD-ALGORITHM")
    assert "[RFC 8489 §9.2.5 MUST: " in str(exc.value) and "no PASSWORD-ALGORITHM" in str(exc.value)


def test_results_document_keeps_revision_differences_apart() -> None:
    def rec(iut: str, verdict: str, gap: bool = False, rid: str = "STUN-AUTH-11") -> dict[str, object]:
        return {"iut": iut, "case_id": f"c-{rid}", "requirements": [rid], "verdict": verdict, "revision_gap": gap}

    text = render_results_md(
        [
            rec("a", "PASS"),
            rec("b", "UNSUPPORTED", True),
            rec("a", "PASS", rid="STUN-MSG-06"),
            rec("b", "FAIL", rid="STUN-MSG-06"),
        ],
        "Results",
    )
    violations, revisions = text.split("## Revision differences")
    assert "STUN-MSG-06" in violations and "STUN-AUTH-11" not in violations
    assert "STUN-AUTH-11" in revisions and "RFC 8489" in revisions


def test_an_iut_shown_implementing_part_of_8489_elsewhere_is_graded_as_written() -> None:
    assert implemented("libjuice") == {8489}
    assert implemented("libnice") == frozenset() and implemented(None) == frozenset()


def test_reports_count_revision_gaps_apart_and_label_procedure_rows(tmp_path: Path) -> None:
    records = [
        {
            "case_id": "turn_server/test_auth.py::test_a",
            "nodeid": "suites/turn_server/test_auth.py::test_a",
            "requirements": ["STUN-AUTH-11"],
            "level": "MUST",
            "verdict": "UNSUPPORTED",
            "duration": 0.1,
            "message": "STUN-AUTH-11/nonce_cookie (MUST): RFC 8489 mechanism not implemented",
            "iut": "x",
            "iut_version": "1",
            "artifacts": {},
            "revision_gap": True,
            "procedure": [],
        },
        {
            "case_id": "turn_server/test_relay.py::test_b",
            "nodeid": "suites/turn_server/test_relay.py::test_b",
            "requirements": ["TURN-CHAN-01"],
            "level": "MUST",
            "verdict": "FAIL",
            "duration": 0.1,
            "message": "TURN-CHAN-01 (MUST): bad",
            "iut": "x",
            "iut_version": "1",
            "artifacts": {},
            "revision_gap": False,
            "procedure": ["TURN-CHAN-01"],
        },
    ]
    summary = {"records": records, "counts": {}, "iut": "x"}
    text = render_summary_md(summary, compare(records, None))
    assert "revision gaps |" in text and "| 1 |" in text.split("revision gaps |")[1]
    assert "MUST, procedure" in text
    run = tmp_path / "run"
    run.mkdir()
    (run / "summary.json").write_text(json.dumps(summary))
    index = write_report([run], tmp_path / "report")
    html = index.read_text()
    assert "revision gaps" in html
    matrix = (index.parent / "matrix.html").read_text()
    assert "badge procedure" in matrix
