"""Self-tests of the TURN-server suites: each case PASSes against the fault-free reference TURN server and FAILs
(or NON-STRICT, per level) against the reference server with the matching fault (design.md, "tests")."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]

#: fault -> (-k expression selecting the cases it must break, the verdict expected, requirement named in the message)
FAULT_CASES: dict[str, tuple[str, str, str]] = {
    "relay-without-permission": ("test_peers_without_a_permission_are_not_relayed", "FAIL", "TURN-PERM-02"),
    "accept-wrong-key": ("test_bad_credentials_get_400_or_401 and wrong-password", "FAIL", "STUN-AUTH-13"),
    "ignore-lifetime-zero": ("test_refresh_zero_deletes_the_allocation", "FAIL", "TURN-LIFE-03"),
    "no-437-on-second-allocate": ("test_second_allocate_on_a_5_tuple_gets_437", "FAIL", "TURN-ALLOC-02"),
    "accept-bad-channel-number": (
        "test_channel_bind_rejects_bad_numbers_and_conflicts and 0x5000",
        "FAIL",
        "TURN-CHAN-01",
    ),
    "no-integrity-on-channelbind": (
        "test_every_response_to_an_authenticated_request_has_integrity",
        "FAIL",
        "STUN-AUTH-16",
    ),
    "shared-nonce": ("test_nonces_differ_per_source_and_attempt", "FAIL", "STUN-AUTH-12"),
    "no-441": ("test_other_username_on_an_allocation_gets_441", "FAIL", "TURN-ALLOC-13"),
    "permissions-shared-across-allocations": (
        "test_a_permission_on_one_allocation_does_not_open_another",
        "FAIL",
        "TURN-PERM-02",
    ),
    "ignore-even-port": ("test_even_port_reserves_the_next_port", "FAIL", "TURN-ALLOC-06"),
    "data-indication-despite-channel": (
        "test_channel_bind_installs_permission_and_uses_channel_data",
        "FAIL",
        "TURN-CHAN-03",
    ),
    "ignore-unknown-attributes": ("test_unknown_comprehension_required_attribute_gets_420", "FAIL", "STUN-MSG-06"),
    "short-lifetime-granted": ("test_lifetime_rule_and_maximum", "FAIL", "TURN-LIFE-02"),
    "unauthenticated-permissions": ("test_only_authenticated_requests_create_permissions", "FAIL", "SEC-05"),
    "relay-on-unbound-channel": ("test_bad_channel_data_is_dropped and unbound", "FAIL", "TURN-CHAN-04"),
    "no-requested-transport-check": ("test_requested_transport_is_checked and missing", "FAIL", "TURN-ALLOC-01"),
    "forget-retransmission": ("test_retransmitted_allocate_gets_the_same_success", "FAIL", "STUN-RTX-04"),
    "wrong-mapped-address": ("test_allocate_success_carries_relayed_mapped_and_lifetime", "FAIL", "TURN-ALLOC-03"),
    "low-relay-ports": ("test_relayed_ports_come_from_the_dynamic_range", "NON-STRICT", "TURN-ALLOC-04"),
    "no-software": ("test_allocate_and_refresh_responses_carry_software", "NON-STRICT", "TURN-ALLOC-08"),
    "lifetime-missing-in-refresh": ("test_lifetime_rule_and_maximum", "FAIL", "TURN-LIFE-02"),
    "no-400-on-missing-realm": ("test_bad_credentials_get_400_or_401 and no-realm", "FAIL", "STUN-AUTH-13"),
    "no-realm-in-401": ("test_unauthenticated_allocate_gets_a_401_challenge", "FAIL", "STUN-AUTH-11"),
    "permission-port-sensitive": ("test_one_create_permission_installs_every_peer", "FAIL", "TURN-PERM-03"),
    "accept-ipv6-peer": ("test_create_permission_rejects_bad_peers and ipv6", "FAIL", "TURN-PERM-04"),
    "drop-empty-channeldata": ("test_empty_channel_data_becomes_an_empty_datagram", "FAIL", "TURN-CHAN-05"),
    "crash-on-long-username": ("test_long_username_gets_401_and_limits_hold", "FAIL", "STUN-MSG-10"),
    "drop-send-indications": ("test_send_and_data_indications_relay_both_ways", "FAIL", "TURN-DATA-04"),
    "quota-by-address": ("test_allocation_quota_is_per_username", "NON-STRICT", "SEC-06"),
    "allocation-by-username": ("test_forged_refresh_cannot_delete_another_allocation", "FAIL", "SEC-04"),
    "channeldata-refreshes-permission": (
        "test_channel_data_does_not_refresh_the_permission_scaled",
        "FAIL",
        "TURN-PERM-06",
    ),
    "data-refreshes-allocation": ("test_data_does_not_refresh_the_allocation_scaled", "FAIL", "TURN-LIFE-04"),
    "stale-nonce-not-438": ("test_stale_nonce_gets_438_scaled", "FAIL", "STUN-AUTH-14"),
    "require-auth-for-binding": ("test_binding_without_credentials_or_fingerprint_succeeds", "FAIL", "STUN-MSG-11"),
}


def _run(out: Path, k: str, faults: list[str]) -> list[dict[str, Any]]:
    cmd = " ".join([sys.executable, "-m", "conformance.reference.turn_main", *(f"--fault {f}" for f in faults)])
    argv = [sys.executable, "-m", "pytest", str(REPO / "suites" / "turn_server"), "-p", "no:cacheprovider", "-q"]
    argv += ["--iut-cmd", cmd, "--conformance-out", str(out), "-k", k]
    subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    summary = json.loads((out / "summary.json").read_text())
    records: list[dict[str, Any]] = summary["records"]
    return records


@pytest.mark.parametrize("fault", sorted(FAULT_CASES))
def test_turn_server_case_fails_against_its_fault(tmp_path: Path, fault: str) -> None:
    """Each fault of the reference TURN server makes its case FAIL (or NON-STRICT) naming the requirement."""
    k, verdict, requirement = FAULT_CASES[fault]
    records = _run(tmp_path, k, [fault])
    assert records, f"-k {k!r} selected no case"
    hit = [r for r in records if r["verdict"] == verdict and requirement in r["message"]]
    seen = [(r["case_id"], r["verdict"], r["message"]) for r in records]
    assert hit, f"{fault}: expected {verdict} naming {requirement}, got {seen}"


def test_turn_server_suite_passes_against_the_fault_free_reference(tmp_path: Path) -> None:
    """Every TURN-server case passes (or is INFO, the SEC-07 metric) against the fault-free reference server."""
    records = _run(tmp_path, "turn_server", [])
    bad = [(r["case_id"], r["verdict"], r["message"]) for r in records if r["verdict"] not in ("PASS", "INFO")]
    assert len(records) >= 60 and not bad, bad
