"""Gathering self-tests (issue 19): every case of suites/ice/test_gathering.py PASSes against the fault-free
reference peer (which paces its gathering by Ta, reads MAPPED-ADDRESS and gives each STUN server its own foundation)
and FAILs or is NON-STRICT, by level, against its seeded fault, naming the requirement."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.selftest import batches, row_problems, run_cases, run_fault_batch

GA = "ice/test_gathering.py::"
BOTH = ("controlling", "controlled")

#: (case ID, reference fault, expected verdict, requirement the message names)
TABLE: list[tuple[str, str, str, str]] = [
    (f"{GA}test_one_request_per_pairing_from_the_host_candidate", "stun-from-side-socket", "NON-STRICT", "ICE-GATH-01"),
    (
        f"{GA}test_binding_requests_to_the_stun_server_are_not_authenticated",
        "authenticated-stun-binding",
        "NON-STRICT",
        "ICE-GATH-02",
    ),
    (
        f"{GA}test_an_rfc3489_answer_still_yields_a_server_reflexive_candidate",
        "no-mapped-address-fallback",
        "FAIL",
        "ICE-GATH-03",
    ),
    (f"{GA}test_gathering_transactions_are_paced_by_ta", "gathering-burst", "NON-STRICT", "ICE-GATH-04"),
    *[
        (
            f"{GA}test_srflx_carries_the_mapped_address_and_its_base[{r}]",
            "srflx-raddr-mapped",
            "NON-STRICT",
            "ICE-GATH-06",
        )
        for r in BOTH
    ],
    *[
        (
            f"{GA}test_srflx_type_preference_sits_between_host_and_relayed[{r}]",
            "srflx-host-priority",
            "FAIL",
            "ICE-GATH-07",
        )
        for r in BOTH
    ],
    *[
        (
            f"{GA}test_srflx_equal_to_the_host_candidate_is_eliminated[{r}]",
            "redundant-candidates",
            "NON-STRICT",
            "ICE-CAND-02",
        )
        for r in BOTH
    ],
    (f"{GA}test_foundations_follow_type_base_and_server", "shared-srflx-foundation", "NON-STRICT", "ICE-GATH-11"),
]
BATCHES = batches(TABLE)


def test_every_gathering_case_passes_against_the_conforming_reference(tmp_path: Path) -> None:
    cases = sorted({row[0] for row in TABLE})
    records = run_cases(cases, ["--iut", "reference"], tmp_path)
    verdicts = {c: records[c]["verdict"] if c in records else "not run" for c in cases}
    assert set(verdicts.values()) == {"PASS"}, {
        c: (v, records.get(c, {}).get("message", "")) for c, v in verdicts.items() if v != "PASS"
    }


@pytest.mark.parametrize("batch", range(len(BATCHES)))
def test_gathering_cases_fail_against_their_faults(batch: int, tmp_path: Path) -> None:
    rows = BATCHES[batch]
    assert not row_problems(rows, run_fault_batch(rows, tmp_path))


def test_gathering_cases_are_unsupported_without_stun_client(tmp_path: Path) -> None:
    """An adapter that does not declare stun_client (it may never pass the STUN servers on) gets the gathering cases
    UNSUPPORTED, not a verdict on the IUT's gathering: the aioice shim behind a proxy that drops the capability."""
    proxy = Path(__file__).resolve().parent / "shims" / "proxy.py"
    case = f"{GA}test_one_request_per_pairing_from_the_host_candidate"
    records = run_cases(
        [case], ["--iut-cmd", f"env PYTHONUNBUFFERED=1 {sys.executable} {proxy} drop=stun_client"], tmp_path
    )
    assert records[case]["verdict"] == "UNSUPPORTED", records[case]
    assert "stun_client" in records[case]["message"]
