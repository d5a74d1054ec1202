"""Options delivery (docs/verdict-trust.md, "Options delivery"): a case grades an option only when the adapter
reports that its IUT got it. The legal RFC 5245 variant of the reference peer (option ``rfc5245``: it applies no
set_remote option and nominates aggressively) gets no FAIL from the nomination cases, while the reference that
does receive ``ice2`` still FAILs against the faults that break them."""

from __future__ import annotations

from pathlib import Path

from tests.selftest import row_problems, run_cases, run_fault_batch

NM = "ice/test_nomination.py::"
NMM = "ice/test_nomination_more.py::"
NOM06 = [
    f"{NMM}test_controlled_iut_uses_the_highest_priority_nominated_pair[{o}]"
    for o in ("low-then-high", "high-then-low")
]

#: (case ID, reference fault, expected verdict, requirement the message names)
TABLE: list[tuple[str, str, str, str]] = [
    # The reference got ice2 (it reports ice_options applied) and still nominates aggressively: RFC 8445 §8.1.1, §10.
    (f"{NM}test_controlling_iut_nominates_one_valid_pair", "aggressive-nomination", "FAIL", "ICE-NOM-02"),
]


def test_aggressive_nomination_fails_when_ice2_was_delivered(tmp_path: Path) -> None:
    assert not row_problems(TABLE, run_fault_batch(TABLE, tmp_path))


def test_the_rfc5245_variant_gets_no_fail_from_the_nomination_cases(tmp_path: Path) -> None:
    """ICE-NOM-02 is UNSUPPORTED (ice2 not delivered, aggressive nomination legal); ICE-NOM-06 passes: the variant
    accepts both nominations and uses the higher pair. Every record shows its options delivery."""
    nom02 = f"{NM}test_controlling_iut_nominates_one_valid_pair"
    cases = [nom02, *NOM06]
    records = run_cases(cases, ["--iut", "reference"], tmp_path, case_options={c: {"rfc5245": True} for c in cases})
    verdicts = {c: (records[c]["verdict"], records[c]["message"][:300]) if c in records else "not run" for c in cases}
    assert records[nom02]["verdict"] == "UNSUPPORTED", verdicts
    assert "ice2: not supported by this adapter" in records[nom02]["message"], verdicts
    assert records[nom02]["options"] == ["ice2: not supported by this adapter"]
    for case in NOM06:
        assert records[case]["verdict"] == "PASS", verdicts
        assert records[case]["options"] == ["ice_options: not supported by this adapter"]


def test_the_conforming_reference_reports_ice2_delivered(tmp_path: Path) -> None:
    nom02 = f"{NM}test_controlling_iut_nominates_one_valid_pair"
    records = run_cases([nom02, NOM06[0]], ["--iut", "reference"], tmp_path)
    assert records[nom02]["verdict"] == "PASS", records[nom02]["message"]
    assert records[nom02]["options"] == ["ice2: delivered"]
    assert records[NOM06[0]]["options"] == ["ice_options: delivered"]
