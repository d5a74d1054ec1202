"""Area B self-tests: every case of candidates/SDP, roles, nomination, keepalives and consent, restart and trickle
FAILs (or is NON-STRICT, by level) against its reference-peer fault, naming the requirement, and PASSes against
the fault-free reference peer. Rows of slow cases (long protocol timers) run only with ``--slow``."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.selftest import batches, row_problems, run_cases, run_fault_batch

RO = "ice/test_roles.py::"
NM = "ice/test_nomination_more.py::"
CA = "ice/test_candidates.py::"
TR = "ice/test_trickle.py::"
RS = "ice/test_restart.py::"
CO = "consent/test_consent.py::"
KA = "consent/test_keepalive.py::"
BOTH = ("controlling", "controlled")

#: (case ID, reference fault, expected verdict, requirement the message names)
TABLE: list[tuple[str, str, str, str]] = [
    *[
        (f"{RO}test_checks_carry_the_role_the_iut_was_given[{r}]", "swapped-initial-role", "FAIL", "ICE-ROLE-01")
        for r in BOTH
    ],
    (f"{RO}test_full_agent_facing_a_lite_peer_is_controlling", "ignore-lite-peer", "FAIL", "ICE-ROLE-01"),
    *[
        (f"{RO}test_controlling_iut_with_the_larger_tiebreaker_answers_487[{v}]", "no-487", "FAIL", "ICE-ROLE-02")
        for v in ("zero", "equal")
    ],
    *[
        (f"{RO}test_controlling_iut_with_the_smaller_tiebreaker_switches[{v}]", "no-role-switch", "FAIL", "ICE-ROLE-03")
        for v in ("plus-one", "max")
    ],
    *[
        (f"{RO}test_controlled_iut_with_the_larger_tiebreaker_switches[{v}]", "no-role-switch", "FAIL", "ICE-ROLE-04")
        for v in ("zero", "equal")
    ],
    *[
        (
            f"{RO}test_controlled_iut_with_the_smaller_tiebreaker_answers_487[{v}]",
            "controlled-no-487",
            "FAIL",
            "ICE-ROLE-05",
        )
        for v in ("plus-one", "max")
    ],
    *[
        (f"{RO}test_a_487_flips_the_role_and_changes_the_tiebreaker[{r}]", f, "FAIL", "ICE-ROLE-06")
        for r in BOTH
        for f in ("ignore-487", "keep-tiebreaker")
    ],
    (f"{NM}test_controlling_iut_never_nominates_a_second_pair[8s]", "nominate-twice", "FAIL", "ICE-NOM-03"),
    (f"{NM}test_controlling_iut_never_nominates_a_second_pair[60s]", "nominate-twice", "FAIL", "ICE-NOM-03"),
    (f"{NM}test_a_failed_nomination_fails_the_pair", "keep-failed-nomination", "FAIL", "ICE-NOM-04"),
    (
        f"{NM}test_controlled_iut_uses_the_pair_the_harness_nominates[succeeded]",
        "select-best-valid-pair",
        "FAIL",
        "ICE-NOM-05",
    ),
    (
        f"{NM}test_controlled_iut_uses_the_pair_the_harness_nominates[not-yet-checked]",
        "ignore-early-use-candidate",
        "FAIL",
        "ICE-NOM-05",
    ),
    (
        f"{NM}test_controlled_iut_uses_the_highest_priority_nominated_pair[low-then-high]",
        "keep-first-nomination",
        "FAIL",
        "ICE-NOM-06",
    ),
    (
        f"{NM}test_controlled_iut_uses_the_highest_priority_nominated_pair[high-then-low]",
        "select-latest-nomination",
        "FAIL",
        "ICE-NOM-06",
    ),
    (
        f"{NM}test_after_nomination_other_pairs_stop_and_checks_are_answered",
        "check-after-nomination",
        "FAIL",
        "ICE-NOM-07",
    ),
    (
        f"{NM}test_after_nomination_other_pairs_stop_and_checks_are_answered",
        "ignore-checks-after-selection",
        "NON-STRICT",
        "ICE-NOM-07",
    ),
    (f"{CA}test_no_forbidden_candidate_addresses", "site-local-candidate", "FAIL", "ICE-CAND-01"),
    (f"{CA}test_no_redundant_candidates", "redundant-candidates", "NON-STRICT", "ICE-CAND-02"),
    (f"{CA}test_local_credentials_have_enough_entropy", "short-credentials", "FAIL", "ICE-CAND-03"),
    *[
        (
            f"{CA}test_256_character_remote_credentials_are_accepted[{r}]",
            "truncate-remote-credentials",
            "FAIL",
            "ICE-CAND-03",
        )
        for r in BOTH
    ],
    (f"{CA}test_candidates_follow_the_grammar", "bad-foundation", "FAIL", "ICE-CAND-04"),
    (f"{CA}test_fqdn_and_unknown_extensions_are_ignored", "reject-unknown-extensions", "FAIL", "ICE-CAND-05"),
    (f"{CA}test_ice2_option_is_advertised", "no-ice2", "FAIL", "ICE-CAND-06"),
    (f"{CA}test_null_default_destination_is_not_a_failure", "null-default-destination-fails", "FAIL", "ICE-CAND-07"),
    (
        f"{CA}test_remote_candidates_only_in_a_controlling_re_offer[controlling]",
        "no-remote-candidates",
        "FAIL",
        "SDP-01",
    ),
    (
        f"{CA}test_remote_candidates_only_in_a_controlling_re_offer[controlled]",
        "remote-candidates-in-answer",
        "FAIL",
        "SDP-01",
    ),
    (f"{CA}test_ice_mismatch_answer_ends_ice", "ignore-ice-mismatch", "FAIL", "SDP-02"),
    (f"{TR}test_without_trickle_the_full_candidate_set_comes_at_once", "trickle-always", "FAIL", "TRK-01"),
    (f"{TR}test_checks_wait_for_trickled_candidates", "fail-without-candidates", "FAIL", "TRK-02"),
    (f"{TR}test_no_check_from_a_candidate_not_yet_trickled", "check-before-trickle", "FAIL", "TRK-03"),
    (f"{TR}test_nothing_trickles_after_end_of_candidates", "candidates-after-eoc", "FAIL", "TRK-04"),
    (f"{TR}test_candidates_after_end_of_candidates_are_ignored", "accept-after-eoc", "FAIL", "TRK-05"),
    (f"{TR}test_pair_limit_keeps_the_highest_priority_pairs", "no-pair-limit", "NON-STRICT", "TRK-06"),
    *[(f"{RS}test_restart_changes_both_credentials[{r}]", "restart-keeps-pwd", "FAIL", "ICE-RST-01") for r in BOTH],
    *[(f"{RS}test_restart_keeps_the_role[{r}]", "restart-flips-role", "FAIL", "ICE-RST-02") for r in BOTH],
    *[
        (f"{RS}test_restart_accepts_a_role_redetermined_by_the_peer[{r}]", "no-role-switch", "FAIL", "ICE-RST-03")
        for r in BOTH
    ],
    (f"{RS}test_data_stays_on_the_old_pair_until_a_new_one_is_selected", "drop-pair-on-restart", "FAIL", "ICE-RST-04"),
    (f"{CO}test_no_data_before_consent", "data-before-consent", "FAIL", "CONS-01"),
    (f"{CO}test_consent_checks_are_randomized_and_never_retransmitted", "no-consent", "FAIL", "CONS-02"),
    (
        f"{CO}test_consent_expires_after_30_s_and_late_responses_do_not_restore_it",
        "consent-no-expiry",
        "FAIL",
        "CONS-03",
    ),
    (
        f"{CO}test_consent_expires_after_30_s_and_late_responses_do_not_restore_it",
        "late-response-restores-consent",
        "FAIL",
        "CONS-04",
    ),
    (f"{CO}test_only_authenticated_responses_refresh_consent", "accept-unauthenticated-response", "FAIL", "CONS-05"),
    (f"{CO}test_an_authenticated_403_revokes_consent", "ignore-403", "FAIL", "CONS-06"),
    (f"{CO}test_consent_continues_on_the_old_pair_during_a_restart", "no-consent-during-restart", "FAIL", "CONS-07"),
    (f"{KA}test_keepalives_on_the_selected_pair", "fast-keepalive", "FAIL", "ICE-KA-01"),
    (f"{KA}test_keepalives_on_the_selected_pair", "keepalive-with-integrity", "FAIL", "ICE-KA-02"),
    (
        f"{KA}test_checks_in_place_of_keepalives_are_answered_without_state_change",
        "answer-indication",
        "FAIL",
        "ICE-KA-03",
    ),
]

#: Cases that sit out long protocol timers (marked slow in the suites): their rows run only with --slow.
SLOW = {
    f"{NM}test_controlling_iut_never_nominates_a_second_pair[60s]",
    f"{CO}test_consent_checks_are_randomized_and_never_retransmitted",
    f"{CO}test_consent_expires_after_30_s_and_late_responses_do_not_restore_it",
    f"{CO}test_only_authenticated_responses_refresh_consent",
    f"{CO}test_consent_continues_on_the_old_pair_during_a_restart",
    f"{KA}test_keepalives_on_the_selected_pair",
}
FAST_BATCHES = batches([row for row in TABLE if row[0] not in SLOW])
SLOW_BATCHES = batches([row for row in TABLE if row[0] in SLOW], size=3)


def _all_pass(cases: list[str], tmp_path: Path) -> None:
    records = run_cases(cases, ["--iut", "reference"], tmp_path)
    verdicts = {c: records[c]["verdict"] if c in records else "not run" for c in cases}
    assert set(verdicts.values()) == {"PASS"}, {
        c: (v, records.get(c, {}).get("message", "")) for c, v in verdicts.items() if v != "PASS"
    }


def test_every_case_passes_against_the_conforming_reference(tmp_path: Path) -> None:
    _all_pass(sorted({row[0] for row in TABLE if row[0] not in SLOW}), tmp_path)


@pytest.mark.slow
def test_every_slow_case_passes_against_the_conforming_reference(tmp_path: Path) -> None:
    _all_pass(sorted(SLOW), tmp_path)


@pytest.mark.parametrize("batch", range(len(FAST_BATCHES)))
def test_cases_fail_against_their_faults(batch: int, tmp_path: Path) -> None:
    rows = FAST_BATCHES[batch]
    assert not row_problems(rows, run_fault_batch(rows, tmp_path))


@pytest.mark.slow
@pytest.mark.parametrize("batch", range(len(SLOW_BATCHES)))
def test_slow_cases_fail_against_their_faults(batch: int, tmp_path: Path) -> None:
    rows = SLOW_BATCHES[batch]
    assert not row_problems(rows, run_fault_batch(rows, tmp_path))
