"""Legal-but-unusual reference IUTs get no FAIL (issue 12, causes 1 and 4), while the faults still fail.

Two legal designs, as reference-peer options: ``ping_interval`` (libwebrtc's: never retransmit, check every pair
again as a new transaction every 150 ms, USE-CANDIDATE on every check while controlling; RFC 8489 §6.2.1 makes
retransmission a SHOULD, RFC 8489 §5 wants the fresh IDs) and ``max_pairs`` 20 (RFC 8445 §6.1.2.5 lets an agent
limit its pairs, discarding the lowest-priority ones; with ``strict_pair_limit`` a check on a discarded pair
triggers nothing, as libjuice's fixed table does). The fault ``recheck-not-retransmit`` is the same design
without continuous pinging. Each row names the verdict the case must give: never FAIL, and UNSUPPORTED where the
case needs a retransmission to observe anything.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.selftest import run_cases

SA = "ice/test_stun_agent.py::"
CK = "ice/test_checks.py::"
TR = "ice/test_triggered.py::"
BOTH = ("controlling", "controlled")
PINGING: dict[str, Any] = {"ping_interval": 0.15}
LIMITING: dict[str, Any] = {"max_pairs": 20, "strict_pair_limit": True}
RECHECKING: dict[str, Any] = {"faults": ["recheck-not-retransmit"]}

#: (variant name, options, case ID, verdicts the case may give)
ROWS: list[tuple[str, dict[str, Any], str, set[str]]] = [
    *[
        ("pinging", PINGING, f"{SA}test_transaction_ids_are_fresh_random_and_kept_on_retransmission[{r}]", {"PASS"})
        for r in BOTH
    ],
    *[("pinging", PINGING, f"{SA}test_first_retransmission_waits_at_least_500_ms[{r}]", {"UNSUPPORTED"}) for r in BOTH],
    *[
        ("pinging", PINGING, f"{SA}test_response_with_bad_integrity_is_discarded[{r}]", {"PASS", "UNSUPPORTED"})
        for r in BOTH
    ],
    ("pinging", PINGING, f"{CK}test_pairs_stay_within_component_and_family", {"PASS"}),
    *[
        ("pinging", PINGING, f"{CK}test_response_from_a_wrong_address_fails_the_pair[{v}]", {"INFO"})
        for v in ("other-port", "other-ip")
    ],
    *[("pinging", PINGING, f"{TR}test_check_on_a_succeeded_pair_triggers_nothing[{r}]", {"INFO"}) for r in BOTH],
    *[
        ("pinging", PINGING, f"{SA}test_error_and_malformed_responses_end_the_transaction[{v}]", {"PASS"})
        for v in ("500", "403", "unknown-required-in-success")
    ],
    *[
        ("limiting", LIMITING, f"{TR}test_check_on_a_waiting_or_failed_pair_triggers_a_check[{s}-{r}]", {"PASS"})
        for s in ("waiting", "failed")
        for r in BOTH
    ],
    *[
        ("rechecking", RECHECKING, f"{SA}test_first_retransmission_waits_at_least_500_ms[{r}]", {"UNSUPPORTED"})
        for r in BOTH
    ],
    *[
        (
            "rechecking",
            RECHECKING,
            f"{SA}test_transaction_ids_are_fresh_random_and_kept_on_retransmission[{r}]",
            {"PASS"},
        )
        for r in BOTH
    ],
]

VARIANTS = sorted({row[0] for row in ROWS})


@pytest.mark.parametrize("variant", VARIANTS)
def test_legal_variants_get_no_fail(variant: str, tmp_path: Path) -> None:
    rows = [row for row in ROWS if row[0] == variant]
    options = {case: opts for _, opts, case, _ in rows}
    records = run_cases(sorted(options), ["--iut", "reference"], tmp_path, case_options=options)
    problems = {
        case: (records[case]["verdict"], records[case]["message"][:400]) if case in records else "not run"
        for _, _, case, allowed in rows
        if case not in records or records[case]["verdict"] not in allowed
    }
    assert not problems, problems
