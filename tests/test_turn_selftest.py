"""Self-tests of the TURN-server suites: each case PASSes against the fault-free reference TURN server and FAILs
(or NON-STRICT, per level) against the reference server with the matching fault (design.md, "tests").

Speed: one pytest subprocess runs many cases, each against its own fault, through per-case IUT options
(``$ICE_CONFORMANCE_CASE_OPTIONS``, see ``conformance.tester.turn.case_options``); a case that several faults break
runs once per round. The batches are parameters, so ``-n`` spreads them over workers."""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from conformance.tester.turn import CASE_OPTIONS_ENV
from tests.selftest import run_cases

AL = "turn_server/test_allocate.py::"
AU = "turn_server/test_auth.py::"
RL = "turn_server/test_relay.py::"

#: (case ID, reference fault, expected verdict, requirement the message names)
TABLE: list[tuple[str, str, str, str]] = [
    *[
        (f"{AL}test_requested_transport_is_checked[{v}]", "no-requested-transport-check", "FAIL", "TURN-ALLOC-01")
        for v in ("missing-400", "length-3-400", "protocol-254-442")
    ],
    (f"{AL}test_second_allocate_on_a_5_tuple_gets_437", "no-437-on-second-allocate", "FAIL", "TURN-ALLOC-02"),
    (f"{AL}test_allocate_success_carries_relayed_mapped_and_lifetime", "wrong-mapped-address", "FAIL", "TURN-ALLOC-03"),
    (f"{AL}test_relayed_ports_come_from_the_dynamic_range", "low-relay-ports", "NON-STRICT", "TURN-ALLOC-04"),
    *[
        (f"{AL}test_address_family_and_reservation_checks[{v}]", "skip-allocate-family-checks", "FAIL", "TURN-ALLOC-05")
        for v in (
            "additional-family-ipv4",
            "even-port-r-with-additional",
            "family-ipv6-unsupported",
            "requested-and-additional-family",
            "token-with-even-port",
            "token-with-family",
            "unknown-token",
        )
    ],
    (f"{AL}test_default_relay_family_is_ipv4", "ipv6-relay-by-default", "FAIL", "TURN-ALLOC-05"),
    (f"{AL}test_even_port_reserves_the_next_port", "ignore-even-port", "FAIL", "TURN-ALLOC-06"),
    (f"{AL}test_dont_fragment_is_honoured_or_rejected_with_420", "dont-fragment-400", "FAIL", "TURN-ALLOC-07"),
    (f"{AL}test_allocate_and_refresh_responses_carry_software", "no-software", "NON-STRICT", "TURN-ALLOC-08"),
    (f"{AL}test_other_username_on_an_allocation_gets_441", "no-441", "FAIL", "TURN-ALLOC-13"),
    (
        f"{AL}test_without_an_allocation_requests_get_437_and_data_is_ignored",
        "no-437-without-allocation",
        "FAIL",
        "TURN-ALLOC-14",
    ),
    (f"{AL}test_unknown_comprehension_required_attribute_gets_420", "ignore-unknown-attributes", "FAIL", "STUN-MSG-06"),
    (f"{AL}test_retransmitted_allocate_gets_the_same_success", "forget-retransmission", "FAIL", "STUN-RTX-04"),
    (f"{AL}test_long_username_gets_401_and_limits_hold", "crash-on-long-username", "FAIL", "STUN-MSG-10"),
    (
        f"{AL}test_binding_without_credentials_or_fingerprint_succeeds",
        "require-auth-for-binding",
        "FAIL",
        "STUN-MSG-11",
    ),
    (f"{AU}test_unauthenticated_allocate_gets_a_401_challenge", "no-realm-in-401", "FAIL", "STUN-AUTH-11"),
    (f"{AU}test_unauthenticated_allocate_gets_a_401_challenge", "rfc5389-server", "FAIL", "STUN-AUTH-11"),
    (f"{AU}test_nonces_differ_per_source_and_attempt", "shared-nonce", "FAIL", "STUN-AUTH-12"),
    *[
        (f"{AU}test_bad_credentials_get_400_or_401[{v}]", "no-400-on-missing-realm", "FAIL", "STUN-AUTH-13")
        for v in ("no-realm-400", "no-nonce-400", "no-username-400")
    ],
    (f"{AU}test_bad_credentials_get_400_or_401[wrong-password-401]", "accept-wrong-key", "FAIL", "STUN-AUTH-13"),
    (f"{AU}test_bad_credentials_get_400_or_401[unknown-user-401]", "unknown-user-gets-400", "FAIL", "STUN-AUTH-13"),
    (f"{AU}test_stale_nonce_gets_438_scaled", "stale-nonce-not-438", "FAIL", "STUN-AUTH-14"),
    (f"{AU}test_no_algorithm_attributes_means_md5", "md5-answered-with-sha256", "FAIL", "STUN-AUTH-15"),
    (
        f"{AU}test_every_response_to_an_authenticated_request_has_integrity",
        "no-integrity-on-channelbind",
        "FAIL",
        "STUN-AUTH-16",
    ),
    (f"{RL}test_peers_without_a_permission_are_not_relayed", "relay-without-permission", "FAIL", "TURN-PERM-02"),
    (
        f"{RL}test_a_permission_on_one_allocation_does_not_open_another",
        "permissions-shared-across-allocations",
        "FAIL",
        "TURN-PERM-02",
    ),
    (f"{RL}test_one_create_permission_installs_every_peer", "permission-port-sensitive", "FAIL", "TURN-PERM-03"),
    (
        f"{RL}test_create_permission_rejects_bad_peers[no-peer-400]",
        "accept-permission-without-peer",
        "FAIL",
        "TURN-PERM-04",
    ),
    (f"{RL}test_create_permission_rejects_bad_peers[ipv6-peer-443]", "accept-ipv6-peer", "FAIL", "TURN-PERM-04"),
    (f"{RL}test_permission_expires_at_its_lifetime_scaled", "permissions-never-expire", "FAIL", "TURN-PERM-01"),
    (f"{RL}test_permission_lasts_300_seconds", "permissions-never-expire", "FAIL", "TURN-PERM-01"),
    (
        f"{RL}test_channel_data_does_not_refresh_the_permission_scaled",
        "channeldata-refreshes-permission",
        "FAIL",
        "TURN-PERM-06",
    ),
    *[
        (
            f"{RL}test_channel_bind_rejects_bad_numbers_and_conflicts[{v}]",
            "accept-bad-channel-number",
            "FAIL",
            "TURN-CHAN-01",
        )
        for v in ("0x3fff", "0x5000", "0x7fff")
    ],
    *[
        (
            f"{RL}test_channel_bind_rejects_bad_numbers_and_conflicts[{v}]",
            "allow-channel-rebinding",
            "FAIL",
            "TURN-CHAN-01",
        )
        for v in ("rebind-number", "rebind-peer")
    ],
    (
        f"{RL}test_channel_bind_installs_permission_and_uses_channel_data",
        "data-indication-despite-channel",
        "FAIL",
        "TURN-CHAN-03",
    ),
    (f"{RL}test_bad_channel_data_is_dropped[unbound]", "relay-on-unbound-channel", "FAIL", "TURN-CHAN-04"),
    *[
        (f"{RL}test_bad_channel_data_is_dropped[{v}]", "relay-bad-channel-data", "FAIL", "TURN-CHAN-04")
        for v in ("reserved-0x5000", "short")
    ],
    (f"{RL}test_empty_channel_data_becomes_an_empty_datagram", "drop-empty-channeldata", "FAIL", "TURN-CHAN-05"),
    (f"{RL}test_bad_send_indications_are_discarded[no-permission]", "relay-without-permission", "FAIL", "TURN-DATA-01"),
    *[
        (f"{RL}test_bad_send_indications_are_discarded[{v}]", "lenient-send-indications", "FAIL", "TURN-DATA-01")
        for v in ("no-data", "no-peer", "ipv6-peer")
    ],
    (f"{RL}test_send_and_data_indications_relay_both_ways", "drop-send-indications", "FAIL", "TURN-DATA-04"),
    (f"{RL}test_send_and_data_indications_relay_both_ways", "data-indication-wrong-peer", "FAIL", "TURN-DATA-03"),
    (f"{RL}test_default_lifetime_is_600", "default-lifetime-300", "FAIL", "TURN-LIFE-01"),
    (f"{RL}test_lifetime_rule_and_maximum", "short-lifetime-granted", "FAIL", "TURN-LIFE-02"),
    (f"{RL}test_lifetime_rule_and_maximum", "lifetime-missing-in-refresh", "FAIL", "TURN-LIFE-02"),
    (f"{RL}test_refresh_zero_deletes_the_allocation", "ignore-lifetime-zero", "FAIL", "TURN-LIFE-03"),
    (f"{RL}test_refresh_zero_deletes_the_allocation", "relay-after-delete", "FAIL", "TURN-LIFE-03"),
    (f"{RL}test_data_does_not_refresh_the_allocation_scaled", "data-refreshes-allocation", "FAIL", "TURN-LIFE-04"),
    (f"{RL}test_data_does_not_refresh_the_allocation", "data-refreshes-allocation", "FAIL", "TURN-LIFE-04"),
    (f"{RL}test_forged_refresh_cannot_delete_another_allocation", "allocation-by-username", "FAIL", "SEC-04"),
    (
        f"{RL}test_unauthenticated_refresh_on_the_victims_5_tuple_is_refused",
        "unauthenticated-refresh",
        "FAIL",
        "SEC-04",
    ),
    (f"{RL}test_only_authenticated_requests_create_permissions", "unauthenticated-permissions", "FAIL", "SEC-05"),
    (f"{RL}test_allocation_quota_is_per_username", "quota-by-address", "NON-STRICT", "SEC-06"),
    (f"{RL}test_reflection_ratio_of_unauthenticated_requests", "amplify-challenges", "INFO", "SEC-07"),
]

#: Cases of the slow tier (a 300 s or 600 s protocol timer): their self-tests run only with --slow.
SLOW_CASES = {f"{RL}test_permission_lasts_300_seconds", f"{RL}test_data_does_not_refresh_the_allocation"}
#: Verdicts the fault-free reference may give: the SEC-07 metric is INFO by design.
CLEAN = {f"{RL}test_reflection_ratio_of_unauthenticated_requests": "INFO"}


def reference_iut() -> list[str]:
    """The reference TURN IUT as a stdio shim (faults come per case, through the case options)."""
    return ["--iut-cmd", f"{sys.executable} -m conformance.reference.turn_main"]


def batches(table: list[tuple[str, str, str, str]], slow: set[str], size: int) -> list[list[tuple[str, str, str, str]]]:
    """Rows grouped into runs: a case at most once per run (one fault each), at most ``size`` cases per run."""
    rounds: list[list[tuple[str, str, str, str]]] = []
    for row in table:
        for r in rounds:
            if row[0] not in {x[0] for x in r} and (row[0] in slow) == (r[0][0] in slow) and len(r) < size:
                r.append(row)
                break
        else:
            rounds.append([row])
    return rounds


def run_faulted(
    rows: list[tuple[str, str, str, str]], out: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, list[str]]:
    """Run each row's case against its fault in one subprocess; the problems by case (empty when all hold)."""
    table = {case: {"faults": [fault]} for case, fault, _, _ in rows}
    monkeypatch.setenv(CASE_OPTIONS_ENV, json.dumps(table))
    records = run_cases(sorted(table), reference_iut(), out)
    problems: dict[str, list[str]] = defaultdict(list)
    for case, fault, verdict, requirement in rows:
        record: dict[str, Any] | None = records.get(case)
        if record is None:
            problems[case].append(f"{fault}: not run")
            continue
        if record["verdict"] != verdict or requirement not in record["message"]:
            problems[case].append(
                f"{fault}: expected {verdict} naming {requirement}, got {record['verdict']}: {record['message'][:300]}"
            )
    return dict(problems)


def run_clean(cases: list[str], out: Path, monkeypatch: pytest.MonkeyPatch, clean: dict[str, str]) -> dict[str, str]:
    """Run the cases against the fault-free reference; the cases whose verdict is not the expected one."""
    monkeypatch.delenv(CASE_OPTIONS_ENV, raising=False)
    records = run_cases(cases, reference_iut(), out)
    bad = {}
    for case in cases:
        record = records.get(case)
        verdict = record["verdict"] if record else "not run"
        if verdict != clean.get(case, "PASS"):
            bad[case] = f"{verdict}: {record['message'][:300] if record else ''}"
    return bad


def _params(table: list[tuple[str, str, str, str]], slow: set[str], size: int) -> list[Any]:
    out = []
    for i, rows in enumerate(batches(table, slow, size)):
        marks = [pytest.mark.slow] if rows[0][0] in slow else []
        out.append(pytest.param(rows, id=f"batch{i + 1}", marks=marks))
    return out


def _clean_params(table: list[tuple[str, str, str, str]], slow: set[str]) -> list[Any]:
    cases = sorted({r[0] for r in table})
    modules = sorted({c.split("::")[0] for c in cases})
    out = [pytest.param([c for c in cases if c.startswith(m + "::") and c not in slow], id=m) for m in modules]
    out.append(pytest.param(sorted(slow), id="slow", marks=pytest.mark.slow))
    return out


@pytest.mark.parametrize("rows", _params(TABLE, SLOW_CASES, 12))
def test_turn_server_cases_fail_against_their_faults(
    rows: list[tuple[str, str, str, str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each fault of the reference TURN server makes its case FAIL (or NON-STRICT) naming the requirement."""
    problems = run_faulted(rows, tmp_path, monkeypatch)
    assert not problems, problems


@pytest.mark.parametrize("cases", _clean_params(TABLE, SLOW_CASES))
def test_turn_server_cases_pass_against_the_fault_free_reference(
    cases: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every TURN-server case passes (INFO for the SEC-07 metric) against the fault-free reference server."""
    bad = run_clean(cases, tmp_path, monkeypatch, CLEAN)
    assert not bad, bad
