"""Every case of area A (STUN as an ICE agent uses it, checks, triggered checks, peer-reflexive, security) can fail:
it FAILs (or is NON-STRICT, by level) against the reference peer's matching fault with a message naming the
requirement, and PASSes against the fault-free reference peer."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.selftest import batches, row_problems, run_cases, run_fault_batch

SA = "ice/test_stun_agent.py::"
CK = "ice/test_checks.py::"
TR = "ice/test_triggered.py::"
PF = "ice/test_prflx.py::"
SE = "ice/test_security.py::"
BOTH = ("controlling", "controlled")

#: (case ID, reference fault, expected verdict, requirement the message names)
TABLE: list[tuple[str, str, str, str]] = [
    *[
        (
            f"{SA}test_transaction_ids_are_fresh_random_and_kept_on_retransmission[{r}]",
            "constant-txid",
            "FAIL",
            "STUN-MSG-02",
        )
        for r in BOTH
    ],
    (f"{SA}test_response_leaves_from_the_request_destination", "asymmetric-response", "FAIL", "STUN-MSG-03"),
    *[
        (f"{SA}test_malformed_messages_and_indications_get_no_response[{v}]", "lenient-header", "FAIL", "STUN-MSG-04")
        for v in ("top-bits", "bad-cookie", "length-plus-4")
    ],
    (
        f"{SA}test_malformed_messages_and_indications_get_no_response[indication]",
        "answer-indication",
        "FAIL",
        "STUN-MSG-04",
    ),
    (
        f"{SA}test_unknown_optional_and_unexpected_attributes_are_ignored[unknown-optional-unknown_optional]",
        "strict-attributes",
        "FAIL",
        "STUN-MSG-05",
    ),
    (
        f"{SA}test_unknown_optional_and_unexpected_attributes_are_ignored[known-unexpected-unexpected_known]",
        "strict-attributes",
        "NON-STRICT",
        "STUN-MSG-05",
    ),
    (f"{SA}test_unknown_comprehension_required_attribute_gets_420", "ignore-unknown-required", "FAIL", "STUN-MSG-06"),
    (f"{SA}test_attributes_after_message_integrity_are_ignored", "check-after-integrity", "FAIL", "STUN-MSG-07"),
    *[
        (f"{SA}test_attribute_padding_sent_by_the_iut_is_zero[{r}]", "nonzero-padding", "FAIL", "STUN-MSG-08")
        for r in BOTH
    ],
    *[
        (
            f"{SA}test_success_carries_the_source_as_xor_mapped_address[{v}]",
            "plain-mapped-address",
            "FAIL",
            "STUN-MSG-09",
        )
        for v in ("ipv4", "ipv6")
    ],
    (f"{SA}test_success_carries_the_source_as_xor_mapped_address[ipv4]", "no-software", "NON-STRICT", "STUN-MSG-09"),
    *[
        (f"{SA}test_fields_sent_by_the_iut_respect_the_size_limits[{r}]", "long-software", "FAIL", "STUN-MSG-10")
        for r in BOTH
    ],
    *[
        (
            f"{SA}test_check_with_missing_or_wrong_fingerprint_is_discarded[{v}]",
            "accept-bad-fingerprint",
            "FAIL",
            "STUN-FP-02",
        )
        for v in ("missing", "wrong")
    ],
    *[
        (
            f"{SA}test_response_with_bad_integrity_is_discarded[{r}]",
            "accept-unauthenticated-response",
            "FAIL",
            "STUN-AUTH-04",
        )
        for r in BOTH
    ],
    *[
        (f"{SA}test_first_retransmission_waits_at_least_500_ms[{r}]", fault, "FAIL", "STUN-RTX-06")
        for r in BOTH
        for fault in ("fast-retransmit",)
    ],
    (f"{SA}test_error_and_malformed_responses_end_the_transaction[500]", "retry-errors", "FAIL", "STUN-RTX-05"),
    # Checking the pair again after a 403 breaks RFC 8445 §7.2.5.2.4's SHOULD (the pair should fail).
    (f"{SA}test_error_and_malformed_responses_end_the_transaction[403]", "retry-errors", "NON-STRICT", "STUN-RTX-05"),
    (
        f"{SA}test_error_and_malformed_responses_end_the_transaction[unknown-required-in-success]",
        "accept-unknown-required-response",
        "NON-STRICT",  # clause fail_4xx: indicative text, graded SHOULD (suites/catalog.toml)
        "STUN-RTX-05",
    ),
    *[
        (f"{SA}test_indications_are_never_retransmitted[{r}]", "retransmit-indication", "FAIL", "STUN-RTX-02")
        for r in BOTH
    ],
    *[(f"{CK}test_first_checks_follow_pair_priority[{r}]", "unordered-checks", "FAIL", "ICE-PAIR-01") for r in BOTH],
    (f"{CK}test_pairs_stay_within_component_and_family", "cross-component-pairs", "FAIL", "ICE-PAIR-02"),
    (f"{CK}test_pairs_stay_within_component_and_family", "unpruned-redundant-pair", "FAIL", "ICE-PAIR-02"),
    *[(f"{CK}test_new_checks_are_paced[{r}]", "no-pacing", "FAIL", "ICE-CHK-01") for r in BOTH],
    *[
        (
            f"{CK}test_checks_carry_one_role_attribute_and_a_constant_tiebreaker[{r}]",
            "tiebreaker-per-check",
            "FAIL",
            "ICE-CHK-02",
        )
        for r in BOTH
    ],
    (f"{CK}test_no_rfc3489_compatibility_and_no_alternate_server", "rfc3489-compat", "FAIL", "ICE-CHK-03"),
    *[
        (f"{CK}test_response_from_a_wrong_address_fails_the_pair[{v}]", "accept-asymmetric", "FAIL", "ICE-CHK-04")
        for v in ("other-port", "other-ip")
    ],
    (
        f"{CK}test_unanswered_check_retransmits_on_schedule_then_fails_the_pair",
        "never-fail-pair",
        "FAIL",
        "ICE-CHK-05",
    ),
    (
        f"{CK}test_unanswered_check_retransmits_on_schedule_then_fails_the_pair",
        "fast-retransmit",
        "NON-STRICT",
        "STUN-RTX-01",
    ),
    (f"{CK}test_checks_are_answered_on_every_candidate", "answer-first-candidate-only", "FAIL", "ICE-CHK-06"),
    (f"{CK}test_check_before_the_answer_is_answered_then_triggers_a_check", "drop-early-checks", "FAIL", "ICE-CHK-07"),
    (f"{CK}test_check_before_the_answer_is_answered_then_triggers_a_check", "no-triggered-check", "FAIL", "ICE-CHK-07"),
    *[
        (f"{CK}test_data_goes_only_on_the_selected_pair[{r}]", "data-on-highest-pair", "FAIL", "ICE-CHK-09")
        for r in BOTH
    ],
    *[
        (
            f"{TR}test_check_on_a_waiting_or_failed_pair_triggers_a_check[{s}-{r}]",
            "no-triggered-check",
            "FAIL",
            "ICE-TRIG-01",
        )
        for s in ("waiting", "failed")
        for r in BOTH
    ],
    *[
        (f"{TR}test_check_on_a_succeeded_pair_triggers_nothing[{r}]", "recheck-succeeded", "FAIL", "ICE-TRIG-02")
        for r in BOTH
    ],
    *[
        (
            f"{TR}test_check_on_an_in_progress_pair_replaces_its_transaction[{r}]",
            "no-cancel-in-progress",
            "FAIL",
            "ICE-TRIG-03",
        )
        for r in BOTH
    ],
    *[
        (
            f"{PF}test_check_from_an_unknown_source_makes_a_remote_prflx[{r}]",
            "no-triggered-check",
            "FAIL",
            "ICE-PRFLX-01",
        )
        for r in BOTH
    ],
    *[
        (
            f"{PF}test_unknown_mapped_address_still_validates_the_pair[{r}]",
            "reject-unknown-mapped",
            "FAIL",
            "ICE-PRFLX-02",
        )
        for r in BOTH
    ],
    (f"{PF}test_trickled_duplicate_of_a_prflx_adds_no_pair", "duplicate-prflx-pair", "NON-STRICT", "ICE-PRFLX-03"),
    (f"{SE}test_candidate_pairs_are_limited", "no-pair-limit", "NON-STRICT", "SEC-01"),
    *[
        (f"{SE}test_check_with_bad_integrity_creates_no_prflx[{r}]", "accept-bad-integrity", "FAIL", "SEC-02")
        for r in BOTH
    ],
    (f"{SE}test_alternate_server_is_ignored_while_gathering", "follow-alternate-server", "FAIL", "SEC-03"),
]

#: Cases of the slow tier (a 30-60 s protocol timer each): their self-tests run only with --slow.
SLOW_CASES = {
    f"{SA}test_indications_are_never_retransmitted[controlling]",
    f"{SA}test_indications_are_never_retransmitted[controlled]",
    f"{CK}test_unanswered_check_retransmits_on_schedule_then_fails_the_pair",
}
MODULES = sorted({row[0].split("::")[0] for row in TABLE})
FAST_BATCHES = batches([row for row in TABLE if row[0] not in SLOW_CASES])
SLOW_BATCHES = batches([row for row in TABLE if row[0] in SLOW_CASES], size=3)


@pytest.mark.parametrize(
    "module", [pytest.param(m, id=m.split("/")[-1]) for m in MODULES] + [pytest.param("slow", marks=pytest.mark.slow)]
)
def test_every_case_passes_against_the_conforming_reference(module: str, tmp_path: Path) -> None:
    if module == "slow":
        cases = sorted(SLOW_CASES)
    else:
        cases = sorted({row[0] for row in TABLE if row[0].startswith(f"{module}::") and row[0] not in SLOW_CASES})
    records = run_cases(cases, ["--iut", "reference"], tmp_path)
    verdicts = {c: records[c]["verdict"] if c in records else "not run" for c in cases}
    assert set(verdicts.values()) == {"PASS"}, {
        c: (v, records.get(c, {}).get("message", "")) for c, v in verdicts.items() if v != "PASS"
    }


@pytest.mark.parametrize("batch", range(len(FAST_BATCHES)))
def test_cases_fail_against_their_faults(batch: int, tmp_path: Path) -> None:
    rows = FAST_BATCHES[batch]
    assert not row_problems(rows, run_fault_batch(rows, tmp_path))


@pytest.mark.slow
@pytest.mark.parametrize("batch", range(len(SLOW_BATCHES)))
def test_slow_cases_fail_against_their_faults(batch: int, tmp_path: Path) -> None:
    rows = SLOW_BATCHES[batch]
    assert not row_problems(rows, run_fault_batch(rows, tmp_path))
