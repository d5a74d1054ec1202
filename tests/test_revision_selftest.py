"""RFC 5389/5766 peers are not failed on RFC 8489/8656 rules (issue 12, cause 3; conformance/revisions.py).

Legal variants of the reference IUTs: an RFC 5389 TURN client that never reads the nonce cookie and follows a 300
without integrity (RFC 5389 §11), an RFC 5389 TURN server whose NONCE has no cookie, an RFC 5766 server that binds
channels 0x5000-0x7FFF (RFC 5766 §11) or ignores ADDITIONAL-ADDRESS-FAMILY, and an RFC 5389 ICE agent padding
with non-zero bytes (RFC 5389 §15). By default none of the named cases FAILs against them: each newer-revision
finding is UNSUPPORTED with the reason "RFC 8489 mechanism not implemented" (or 8656) and marked as a revision gap.
With ``--require`` the same variants FAIL (the fault self-tests run that way: tests/selftest.py ``REQUIRE_ALL``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.selftest import Row, run_cases, run_fault_batch
from tests.test_turn_selftest import reference_iut

CA = "turn_client/test_auth.py::"
CL = "turn_client/test_allocate.py::"
SA = "turn_server/test_auth.py::"
SR = "turn_server/test_relay.py::"
SL = "turn_server/test_allocate.py::"
ICE = "ice/test_stun_agent.py::"

#: An RFC 5766 server binding 0x5000-0x7FFF: legal before RFC 8656 §12 narrowed the range.
BAD_CHANNEL = "accept-bad-channel-number"

#: An RFC 5766 server that ignores ADDITIONAL-ADDRESS-FAMILY (and, as a fault, the older family checks too).
NO_FAMILY = "skip-allocate-family-checks"

#: (case, legal variant, verdict by default, verdict with --require) against the reference TURN IUT.
TURN_ROWS: list[tuple[str, str, str, str]] = [
    (f"{CA}test_password_algorithms_are_echoed_and_sha256_is_used", "rfc5389-client", "UNSUPPORTED", "FAIL"),
    *[
        (f"{CA}test_no_authenticated_retry_when_forbidden[{v}]", "rfc5389-client", "UNSUPPORTED", "FAIL")
        for v in ("bit-without-list", "no-supported-algorithm")
    ],
    (f"{CA}test_username_anonymity_bit_gets_userhash", "rfc5389-client", "UNSUPPORTED", "FAIL"),
    (f"{CL}test_try_alternate_needs_integrity[without-integrity]", "rfc5389-client", "UNSUPPORTED", "FAIL"),
    (f"{SA}test_unauthenticated_allocate_gets_a_401_challenge", "rfc5389-server", "UNSUPPORTED", "FAIL"),
    *[
        (f"{SR}test_channel_bind_rejects_bad_numbers_and_conflicts[{n}]", BAD_CHANNEL, "UNSUPPORTED", "FAIL")
        for n in ("0x5000", "0x7fff")
    ],
    # An RFC 5766 server that does not know ADDITIONAL-ADDRESS-FAMILY (new in RFC 8656 §7.2).
    (f"{SL}test_address_family_and_reservation_checks[additional-family-ipv4]", NO_FAMILY, "UNSUPPORTED", "FAIL"),
]


def _run(rows: list[tuple[str, str, str, str]], out: Path, require: tuple[int, ...]) -> dict[str, dict[str, Any]]:
    options = {case: {"faults": [variant]} for case, variant, _, _ in rows}
    return run_cases(sorted(options), reference_iut(), out, case_options=options, require=require)


def _problems(rows: list[tuple[str, str, str, str]], records: dict[str, dict[str, Any]], strict: bool) -> list[str]:
    out = []
    for case, variant, default, required in rows:
        want = required if strict else default
        r = records.get(case)
        if r is None:
            out.append(f"{case}: not run")
            continue
        if r["verdict"] != want:
            out.append(f"{case} with {variant}: {r['verdict']}, expected {want}: {r['message'][:300]}")
        elif want == "UNSUPPORTED" and (not r["revision_gap"] or "mechanism not implemented" not in r["message"]):
            out.append(f"{case}: UNSUPPORTED but not marked as a revision gap: {r['message'][:300]}")
    return out


@pytest.mark.parametrize("strict", [False, True], ids=["default", "require"])
def test_rfc5389_turn_peers_are_graded_by_their_revision(tmp_path: Path, strict: bool) -> None:
    """By default no FAIL and each finding is a revision gap; with --require 8489 --require 8656 they FAIL."""
    records = _run(TURN_ROWS, tmp_path, (8489, 8656) if strict else ())
    assert not _problems(TURN_ROWS, records, strict)


def test_rfc5389_ice_agent_padding_is_a_revision_gap(tmp_path: Path) -> None:
    """Non-zero padding (legal in RFC 5389 §15) is UNSUPPORTED by default against an agent showing no RFC 8489."""
    rows: list[Row] = [
        (f"{ICE}test_attribute_padding_sent_by_the_iut_is_zero[{r}]", "nonzero-padding", "UNSUPPORTED", "STUN-MSG-08")
        for r in ("controlling", "controlled")
    ]
    records = run_fault_batch(rows, tmp_path, require=())
    for case, _, verdict, requirement in rows:
        r = records[case]
        assert r["verdict"] == verdict and r["revision_gap"], r
        assert requirement in r["message"] and "RFC 8489 mechanism not implemented" in r["message"], r
