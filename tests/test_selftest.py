"""The suites' self-tests (design.md, "tests"), from the ``@pytest.mark.selftest`` marks on the cases: every marked
case PASSes against the fault-free reference IUT, FAILs (or is NON-STRICT, by level) against each fault it names
with a message naming the requirement, and gets no FAIL from the legal variants (``tests/selftest.py``).

Speed: one pytest subprocess runs many cases, each against its own fault through the per-case IUT options
(``$ICE_CONFORMANCE_CASE_OPTIONS``); the runs are parameters, so ``-n`` spreads them over workers. Runs of slow
cases (long protocol timers) go only with ``--slow``.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

import pytest

from tests.selftest import REQUIRE_ALL, batches, catalogue, collect, expectations, mark_problems, run_batch, run_cases

CASES = collect()
EXPECTATIONS = expectations(CASES)
BATCHES = batches(EXPECTATIONS)
#: Verdicts that show a fault was caught (INFO: the SEC-07 metric, INFO by design, names the fault's effect).
CAUGHT = {"FAIL", "NON-STRICT", "INFO"}

#: Cases (or whole case functions) that no reference fault makes fail yet, and why.
WITHOUT_FAULT = {
    "robustness/test_ice_agent.py::test_agent_survives_hostile_datagrams[zero-length]": "no reference-peer fault "
    "mishandles zero-length attributes",
    "robustness/test_ice_agent.py::test_agent_survives_hostile_datagrams[address]": "no reference-peer fault "
    "mishandles malformed address attributes",
    "robustness/test_ice_agent.py::test_agent_survives_hostile_datagrams[methods]": "no reference-peer fault "
    "mishandles unknown methods and classes",
    "robustness/test_turn_server.py::test_turn_server_survives_hostile_datagrams": "the reference TURN server has no "
    "fault that crashes, goes deaf or accepts malformed input",
}


def _exempt(case_id: str) -> bool:
    return case_id in WITHOUT_FAULT or case_id.split("[")[0] in WITHOUT_FAULT


def test_marks_name_known_faults_variants_and_parameters() -> None:
    """Every mark is well formed, and each ``params`` ID it names is a parametrisation of its case."""
    problems = [p for c in CASES for m in c.marks for p in mark_problems(c, m)]
    params: dict[str, set[str | None]] = defaultdict(set)
    for c in CASES:
        params[c.id.split("[")[0]].add(c.param)
    for c in CASES:
        for m in c.marks:
            named = m.get("params")
            for p in [named] if isinstance(named, str) else named or []:
                if p not in params[c.id.split("[")[0]]:
                    problems.append(f"{c.id}: params {p!r} is not a parametrisation of the case")
    assert not sorted(set(problems))


def test_every_case_has_a_fault_that_makes_it_fail() -> None:
    """ICE and TURN alike: each case has a fault under which it FAILs (or is NON-STRICT), unless listed above."""
    caught = {
        e.case.id
        for e in EXPECTATIONS
        if e.fault is not None and e.require == REQUIRE_ALL and set(e.verdicts) <= CAUGHT
    }
    missing = [c.id for c in CASES if c.id not in caught and not _exempt(c.id)]
    assert not missing, f"cases without a fault that makes them fail: {missing}"
    stale = [k for k in WITHOUT_FAULT if not any(c.id == k or c.id.split("[")[0] == k for c in CASES)]
    assert not stale, f"WITHOUT_FAULT names no case: {stale}"
    covered = [k for k in WITHOUT_FAULT if any(c == k or c.split("[")[0] == k for c in caught)]
    assert not covered, f"WITHOUT_FAULT lists cases that have a fault now: {covered}"


@pytest.mark.parametrize("side", ["ice", "server", "client"])
def test_every_fault_is_used_by_some_case(side: str) -> None:
    """Each fault of the reference peer, TURN server and TURN client is named by some case of that side."""
    used = {e.fault for e in EXPECTATIONS if e.case.side == side}
    assert not sorted(catalogue(side).keys() - used), "faults no case uses"


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=[pytest.mark.slow] if rows[0].case.slow else []) for n, rows in BATCHES.items()]
)
def test_cases_are_graded_as_their_marks_say(name: str, tmp_path: Path) -> None:
    """One run of several cases, each against its own fault, variant or the fault-free reference."""
    problems = run_batch(BATCHES[name], tmp_path)
    assert not problems, problems


def test_gathering_cases_are_unsupported_without_stun_client(tmp_path: Path) -> None:
    """An adapter that does not declare stun_client (it may never pass the STUN servers on) gets the gathering cases
    UNSUPPORTED, not a verdict on the IUT's gathering: the aioice shim behind a proxy that drops the capability."""
    proxy = Path(__file__).resolve().parent / "shims" / "proxy.py"
    case = "ice/test_gathering.py::test_one_request_per_pairing_from_the_host_candidate"
    records = run_cases(
        [case], ["--iut-cmd", f"env PYTHONUNBUFFERED=1 {sys.executable} {proxy} drop=stun_client"], tmp_path
    )
    assert records[case]["verdict"] == "UNSUPPORTED", records[case]
    assert "stun_client" in records[case]["message"]
