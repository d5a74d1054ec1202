"""The robustness suite can fail on each verdict path: a crash (ROB-CRASH-01), deafness and a hung event loop
(ROB-LIVE-01), a truncated check answered as valid (ROB-DISC-01), each against a reference fault with the culprit
input as hex in the message; and every family PASSes against the fault-free reference peer."""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.robustness.inputs import ICE_FAMILIES
from tests.selftest import batches, row_problems, run_cases, run_fault_batch

CASE = "robustness/test_ice_agent.py::test_agent_survives_hostile_datagrams"
ANSWERS = "robustness/test_ice_agent.py::test_agent_survives_hostile_answers_to_its_checks"

#: (case ID, reference fault, expected verdict, requirement the message names)
TABLE: list[tuple[str, str, str, str]] = [
    (f"{CASE}[oversized]", "crash-on-long-attribute", "FAIL", "ROB-CRASH-01"),
    (f"{CASE}[attribute-length]", "crash-on-long-attribute", "FAIL", "ROB-CRASH-01"),
    (f"{CASE}[non-stun]", "deaf-after-non-stun", "FAIL", "ROB-LIVE-01"),
    (f"{CASE}[truncation]", "accept-truncated", "FAIL", "ROB-DISC-01"),
    (f"{CASE}[header-length]", "accept-truncated", "FAIL", "ROB-DISC-01"),
    (f"{CASE}[oversized]", "hang-on-many-attributes", "FAIL", "ROB-LIVE-01"),
    (ANSWERS, "crash-on-403", "FAIL", "ROB-CRASH-01"),
]
#: The input each row must be blamed on, as the FAIL message quotes it (the first that triggers the fault).
CULPRITS = {
    (f"{CASE}[oversized]", "crash-on-long-attribute"): "after the input oversized/USERNAME of 513 bytes: 0001",
    (f"{CASE}[attribute-length]", "crash-on-long-attribute"): "attribute 0 (0x0006) length 0xffff: 0001",
    (f"{CASE}[non-stun]", "deaf-after-non-stun"): "after the input non-stun/DTLS-looking record: 16fefd",
    (f"{CASE}[truncation]", "accept-truncated"): "the malformed input truncation/at ",
    (f"{CASE}[header-length]", "accept-truncated"): "the malformed input header-length/length ",
    (f"{CASE}[oversized]", "hang-on-many-attributes"): "after the input oversized/1,000 attributes: 0001",
    (ANSWERS, "crash-on-403"): "after its check was answered with: authenticated 403 error",
}


def test_every_family_passes_against_the_conforming_reference(tmp_path: Path) -> None:
    cases = [f"{CASE}[{f}]" for f in ICE_FAMILIES] + [ANSWERS]
    records = run_cases(cases, ["--iut", "reference"], tmp_path)
    verdicts = {c: records[c]["verdict"] if c in records else "not run" for c in cases}
    assert set(verdicts.values()) == {"PASS"}, verdicts


@pytest.mark.parametrize("batch", range(len(batches(TABLE))))
def test_each_verdict_path_fails_against_its_fault(batch: int, tmp_path: Path) -> None:
    rows = batches(TABLE)[batch]
    records = run_fault_batch(rows, tmp_path)
    assert not row_problems(rows, records)
    for case, fault, _, _ in rows:
        message = records[case]["message"]
        assert CULPRITS[case, fault] in message, message[:500]  # the input as hex, with its size
