"""The reference peer's checklist on its own, without sockets: order, limit, triggered checks and selection."""

from __future__ import annotations

from typing import Any

from conformance.protocol import pair_priority
from conformance.protocol.roles import Role
from conformance.reference.checklist import CandidatePair, CheckList, LocalCandidate, PairState, RemoteCandidate

HIGH, LOW = 2130706431, 2130706175


def local(component: int = 1, port: int = 1000, priority: int = HIGH) -> LocalCandidate:
    return LocalCandidate(component, "127.0.0.1", port, "1", 65535, priority)


def remote(component: int = 1, port: int = 2000, priority: int = HIGH, host: str = "127.0.0.1") -> RemoteCandidate:
    return RemoteCandidate(component, host, port, priority, "host", "1")


def checklist(components: int = 1, role: Role = Role.CONTROLLING, **flags: Any) -> CheckList:
    return CheckList(components, role, flags.pop("max_pairs", 100), **flags)


def test_checklist_priority_takes_g_from_the_controlling_side() -> None:
    cl = checklist()
    pair = cl.add_pair(local(priority=HIGH), remote(priority=LOW))
    assert cl.priority(pair) == pair_priority(HIGH, LOW)
    cl.role = Role.CONTROLLED
    assert cl.priority(pair) == pair_priority(LOW, HIGH)


def test_checklist_pairs_same_component_and_family_only() -> None:
    cl = checklist(components=2)
    locals_ = [local(1, 1000), local(2, 1001)]
    cl.add_remote(remote(1, 2000), locals_)
    cl.add_remote(remote(1, 2001, host="::1"), locals_)
    assert [(p.local.component, p.remote.port) for p in cl.pairs] == [(1, 2000)]
    crossed = checklist(components=2, cross_component=True)
    crossed.add_remote(remote(1, 2000), locals_)
    assert len(crossed.pairs) == 2


def test_checklist_pairs_remotes_signalled_before_gathering_once() -> None:
    cl = checklist()
    cl.add_remote(remote(port=2000), [])
    cl.add_remote(remote(port=2001), [])
    only = [local()]
    cl.pair_remotes(only)
    cl.pair_remotes(only)
    assert [p.remote.port for p in cl.pairs] == [2000, 2001]


def test_checklist_limit_discards_the_lowest_priority_waiting_pair() -> None:
    cl = checklist(max_pairs=2)
    base = local()
    cl.add_pair(base, remote(port=2000, priority=HIGH))
    low = cl.add_pair(base, remote(port=2001, priority=LOW))
    cl.add_pair(base, remote(port=2002, priority=HIGH - 1))
    assert low not in cl.pairs and len(cl.pairs) == 2
    kept = cl.add_pair(base, remote(port=2003, priority=1), protect=True)
    assert kept in cl.pairs and len(cl.pairs) == 2
    unlimited = checklist(max_pairs=1, pair_limit=False)
    for port in (2000, 2001, 2002):
        unlimited.add_pair(base, remote(port=port))
    assert len(unlimited.pairs) == 3


def test_checklist_next_check_takes_triggered_then_the_best_waiting() -> None:
    cl = checklist()
    base = local()
    low = cl.add_pair(base, remote(port=2000, priority=LOW))
    high = cl.add_pair(base, remote(port=2001, priority=HIGH))
    cl.trigger(low)
    assert cl.next_check() == (low, False)
    assert cl.next_check() == (high, False)
    unordered = checklist(ordered=False)
    low2 = unordered.add_pair(base, remote(port=2000, priority=LOW))
    unordered.add_pair(base, remote(port=2001, priority=HIGH))
    assert unordered.next_check() == (low2, False)


def test_checklist_trigger_keeps_a_succeeded_pair_succeeded() -> None:
    cl = checklist()
    pair = cl.add_pair(local(), remote())
    assert cl.succeeded(pair) and not cl.succeeded(pair)
    cl.trigger(pair)
    assert pair.state is PairState.SUCCEEDED
    assert cl.next_check() is None  # a queued non-nominating check on a succeeded pair is dropped
    cl.enqueue(pair, nominate=True)
    assert cl.next_check() == (pair, True)


def test_checklist_restart_drops_pairs_and_stale_triggered_checks() -> None:
    cl = checklist()
    pair = cl.add_pair(local(), remote())
    cl.enqueue(pair, nominate=True)
    cl.restart()
    assert cl.generation == 1 and not cl.pairs and not cl.remote_candidates
    cl.triggered.append((pair, True))
    assert cl.next_check() is None


def test_checklist_selects_the_best_nominated_pair() -> None:
    cl = checklist()
    base = local()
    low = cl.add_pair(base, remote(port=2000, priority=LOW))
    high = cl.add_pair(base, remote(port=2001, priority=HIGH))
    assert cl.nominated(low) is low
    assert cl.nominated(high) is high
    assert cl.nominated(low) is None and cl.selected[1] is high
    assert cl.component_done(1) and cl.all_selected()


def test_checklist_selection_flags() -> None:
    base = local()
    for flag, expected in [("keep_first", "high"), ("select_latest", "low")]:
        cl = checklist(**{flag: True})
        low = cl.add_pair(base, remote(port=2000, priority=LOW))
        high = cl.add_pair(base, remote(port=2001, priority=HIGH))
        cl.nominated(high)
        cl.nominated(low)
        assert cl.selected[1] is {"low": low, "high": high}[expected], flag
    best_valid = checklist(role=Role.CONTROLLED, select_best_valid=True)
    low = best_valid.add_pair(base, remote(port=2000, priority=LOW))
    high = best_valid.add_pair(base, remote(port=2001, priority=HIGH))
    best_valid.succeeded(low)
    best_valid.succeeded(high)
    assert best_valid.nominated(low) is high


def test_checklist_component_needs_its_nominations() -> None:
    cl = checklist(nominations=2)
    pair = cl.add_pair(local(), remote())
    cl.nominating[1] = [pair]
    cl.nominated(pair)
    assert not cl.component_done(1)
    cl.nominating[1].append(pair)
    assert cl.component_done(1)


def test_checklist_fails_a_component_only_after_end_of_candidates() -> None:
    cl = checklist(components=2)
    pairs: list[CandidatePair] = [cl.add_pair(local(1), remote(1)), cl.add_pair(local(2, 1001), remote(2, 2001))]
    cl.failed(pairs[1])
    assert cl.failed_component() is None
    cl.end_of_candidates = True
    assert cl.failed_component() == 2
    assert cl.valid(1) == [] and not cl.all_selected()
