"""Every ICE-agent case can fail: it FAILs (or is NON-STRICT, by level) against the reference peer's matching
fault with a message naming the requirement, and PASSes against the fault-free reference peer."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.selftest import batches, row_problems, run_cases, run_fault_batch

ST = "stun/test_short_term.py::"
PR = "ice/test_priority.py::"
NM = "ice/test_nomination.py::"
BOTH = ("controlling", "controlled")

#: (case ID, reference fault, expected verdict, requirement the message names)
TABLE: list[tuple[str, str, str, str]] = [
    *[(f"{ST}test_every_message_has_a_sound_header[{r}]", "bad-header-length", "FAIL", "STUN-MSG-01") for r in BOTH],
    *[
        (f"{ST}test_checks_and_responses_carry_a_correct_fingerprint[{r}]", "no-fingerprint", "FAIL", "STUN-FP-01")
        for r in BOTH
    ],
    *[
        (f"{ST}test_checks_and_responses_carry_a_correct_fingerprint[{r}]", "bad-fingerprint", "FAIL", "STUN-FP-01")
        for r in BOTH
    ],
    *[(f"{ST}test_message_integrity_is_correct[{r}]", "wrong-integrity-key", "FAIL", "STUN-MI-01") for r in BOTH],
    *[
        (f"{ST}test_checks_use_the_peers_short_term_credentials[{r}]", "swapped-username", "FAIL", "STUN-AUTH-01")
        for r in BOTH
    ],
    (
        f"{ST}test_failed_short_term_authentication_gets_the_right_error[no-integrity-400]",
        "no-400-missing-mi",
        "FAIL",
        "STUN-AUTH-02",
    ),
    (
        f"{ST}test_failed_short_term_authentication_gets_the_right_error[unknown-ufrag-401]",
        "error-with-integrity",
        "FAIL",
        "STUN-AUTH-02",
    ),
    (
        f"{ST}test_failed_short_term_authentication_gets_the_right_error[bad-integrity-401]",
        "accept-bad-integrity",
        "FAIL",
        "STUN-AUTH-02",
    ),
    *[
        (f"{ST}test_response_is_keyed_with_the_iuts_password[{r}]", "response-wrong-key", "FAIL", "STUN-AUTH-03")
        for r in BOTH
    ],
    *[
        (f"{ST}test_response_is_keyed_with_the_iuts_password[{r}]", "response-with-username", "FAIL", "STUN-AUTH-03")
        for r in BOTH
    ],
    (f"{ST}test_rfc5769_sample_request_is_answered", "reject-space-padding", "FAIL", "STUN-MSG-08"),
    (
        f"{PR}test_candidate_priorities_are_unique_in_range_and_follow_the_formula",
        "wrong-priority-formula",
        "NON-STRICT",
        "ICE-PRIO-01",
    ),
    (f"{PR}test_type_preference_is_consistent_per_type", "type-pref-mismatch", "FAIL", "ICE-PRIO-02"),
    (f"{PR}test_local_preference_and_component_ids", "wrong-priority-formula", "NON-STRICT", "ICE-PRIO-03"),
    *[
        (
            f"{PR}test_priority_attribute_uses_the_prflx_type_preference[{r}]",
            "priority-attr-host-pref",
            "FAIL",
            "ICE-PRIO-04",
        )
        for r in BOTH
    ],
    (f"{NM}test_controlling_iut_nominates_one_valid_pair", "no-nomination", "FAIL", "ICE-NOM-02"),
    (f"{NM}test_controlled_iut_accepts_the_nomination", "controlled-nominates", "FAIL", "ICE-NOM-01"),
]

#: Faults that show only with options the case sets itself (components, interfaces): the reference peer reads
#: per-agent faults from AgentConfig.options, so a whole-process --fault is enough here.
BATCHES = batches(TABLE)


def _reference(*faults: str) -> list[str]:
    cmd = [sys.executable, "-m", "conformance.reference", *[a for f in faults for a in ("--fault", f)]]
    return ["--iut-cmd", " ".join(cmd)]


def test_every_case_passes_against_the_conforming_reference(tmp_path: Path) -> None:
    cases = sorted({row[0] for row in TABLE})
    records = run_cases(cases, ["--iut", "reference"], tmp_path)
    verdicts = {c: records[c]["verdict"] for c in cases}
    assert set(verdicts.values()) == {"PASS"}, {
        c: (v, records[c]["message"]) for c, v in verdicts.items() if v != "PASS"
    }


@pytest.mark.parametrize("batch", range(len(BATCHES)))
def test_cases_fail_against_their_faults(batch: int, tmp_path: Path) -> None:
    rows = BATCHES[batch]
    assert not row_problems(rows, run_fault_batch(rows, tmp_path))
