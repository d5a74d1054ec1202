"""Transaction IDs, retransmission schedule, ICE RTO, ID randomness (RFC 8489 §5, §6.2.1; RFC 8445 §14.3)."""

from __future__ import annotations

import itertools
import random
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conformance.protocol.transactions import (
    RTO_FLOOR,
    TRANSACTION_ID_LENGTH,
    Kind,
    Request,
    TransactionModel,
    ice_check_rto,
    ice_gathering_rto,
    new_transaction_id,
    retransmission_schedule,
    txid_randomness_problems,
)


def _random_ids(count: int, seed: int = 8489) -> list[bytes]:
    rng = random.Random(seed)
    return [rng.randbytes(TRANSACTION_ID_LENGTH) for _ in range(count)]


def test_new_transaction_id_is_12_fresh_bytes() -> None:
    ids = [new_transaction_id() for _ in range(256)]
    assert all(len(txid) == 12 for txid in ids)
    assert len(set(ids)) == len(ids)
    assert txid_randomness_problems(ids) == []


def test_retransmission_schedule_default_matches_rfc() -> None:
    offsets, timeout = retransmission_schedule()
    assert offsets == [0.0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert timeout == 39.5


def test_retransmission_schedule_scales_with_rto() -> None:
    offsets, timeout = retransmission_schedule(rto=1.0, rc=3, rm=4)
    assert offsets == [0.0, 1.0, 3.0]
    assert timeout == 7.0


def test_retransmission_schedule_single_request_waits_rm_rto() -> None:
    assert retransmission_schedule(rto=0.5, rc=1, rm=16) == ([0.0], 8.0)


@given(
    rto=st.floats(min_value=0.001, max_value=10, allow_nan=False),
    rc=st.integers(min_value=1, max_value=12),
    rm=st.integers(min_value=1, max_value=32),
)
def test_retransmission_schedule_gaps_double(rto: float, rc: int, rm: int) -> None:
    offsets, timeout = retransmission_schedule(rto, rc, rm)
    assert len(offsets) == rc
    assert offsets[0] == 0
    gaps = [b - a for a, b in itertools.pairwise(offsets)]
    for i, gap in enumerate(gaps):
        assert gap == pytest.approx(rto * 2**i)
    assert timeout == pytest.approx(offsets[-1] + rm * rto)


@pytest.mark.parametrize(("rto", "rc", "rm"), [(0, 7, 16), (-0.5, 7, 16), (0.5, 0, 16), (0.5, 7, 0)])
def test_retransmission_schedule_rejects_bad_parameters(rto: float, rc: int, rm: int) -> None:
    with pytest.raises(ValueError, match=r"RFC 8489 §6\.2\.1"):
        retransmission_schedule(rto, rc, rm)


def test_ice_check_rto_floor_is_500_ms() -> None:
    assert RTO_FLOOR == 0.5
    assert ice_check_rto(0.05, 1, 1, 0) == 0.5
    assert ice_check_rto(0.05, 0, 0, 0) == 0.5


def test_ice_check_rto_grows_with_checks() -> None:
    assert ice_check_rto(0.05, 10, 3, 2) == pytest.approx(2.5)
    assert ice_check_rto(0.05, 20, 3, 2) > ice_check_rto(0.05, 10, 3, 2)


def test_ice_gathering_rto_follows_formula() -> None:
    assert ice_gathering_rto(0.05, 2) == 0.5
    assert ice_gathering_rto(0.05, 20) == pytest.approx(1.0)


@pytest.mark.parametrize("args", [(-0.05, 1, 1, 1), (0.05, -1, 1, 1), (0.05, 1, -1, 1), (0.05, 1, 1, -1)])
def test_ice_check_rto_rejects_negative(args: tuple[float, int, int, int]) -> None:
    with pytest.raises(ValueError, match=r"RFC 8445 §14\.3"):
        ice_check_rto(*args)


def test_ice_gathering_rto_rejects_negative() -> None:
    with pytest.raises(ValueError, match=r"RFC 8445 §14\.3"):
        ice_gathering_rto(0.05, -1)


@pytest.mark.parametrize("count", [1, 5, 20, 40, 200, 1000])
def test_txid_randomness_problems_accepts_random_ids(count: int) -> None:
    assert txid_randomness_problems(_random_ids(count)) == []


def test_txid_randomness_problems_flags_reuse_across_transactions() -> None:
    ids = _random_ids(10)
    ids.append(ids[3])
    problems = txid_randomness_problems(ids)
    assert problems == [
        f"transaction ID {ids[3].hex()} is used by 2 different transactions; "
        "each new transaction needs a new ID (RFC 8489 §5)"
    ]


def test_txid_randomness_problems_flags_wrong_length() -> None:
    problems = txid_randomness_problems([b"\x01" * 16, *_random_ids(3)])
    assert problems == [f"transaction ID #0 ({'01' * 16}) is 16 bytes, not 12 (RFC 8489 §5)"]


@pytest.mark.parametrize("order", ["big", "little"])
def test_txid_randomness_problems_flags_counter(order: str) -> None:
    start = random.Random(1).getrandbits(90)
    ids = [(start + 3 * i).to_bytes(12, order) for i in range(50)]  # type: ignore[arg-type]
    problems = txid_randomness_problems(ids)
    assert any(f"{order}-endian integers" in p and "counter" in p for p in problems), problems


def test_txid_randomness_problems_flags_constant_byte() -> None:
    ids = [b"\x00" + txid[1:] for txid in _random_ids(16)]
    problems = txid_randomness_problems(ids)
    assert problems == ["byte 0 of the transaction ID is 0x00 in all 16 IDs; random IDs would vary (RFC 8489 §5)"]


def test_txid_randomness_problems_flags_timestamp_prefix() -> None:
    rng = random.Random(5)
    ids = [(1_700_000_000 + i).to_bytes(4, "big") + rng.randbytes(8) for i in range(64)]
    problems = txid_randomness_problems(ids)
    assert any("byte 0" in p and "in all 64 IDs" in p for p in problems), problems


def test_txid_randomness_problems_flags_low_entropy_positions() -> None:
    rng = random.Random(7)
    ids = [bytes([rng.choice(b"0123456789abcdef") for _ in range(12)]) for _ in range(64)]
    problems = txid_randomness_problems(ids)
    assert sum("distinct values" in p for p in problems) == 12, problems


def test_txid_randomness_problems_flags_alphanumeric_ids_by_chi_square() -> None:
    rng = random.Random(11)
    alphabet = (string.ascii_letters + string.digits).encode()
    ids = [bytes(rng.choice(alphabet) for _ in range(12)) for _ in range(200)]
    problems = txid_randomness_problems(ids)
    assert any("chi-square" in p for p in problems), problems


def test_txid_randomness_problems_skips_statistics_below_sample_minimum() -> None:
    rng = random.Random(11)
    alphabet = (string.ascii_letters + string.digits).encode()
    ids = [bytes(rng.choice(alphabet) for _ in range(12)) for _ in range(10)]
    assert txid_randomness_problems(ids) == []


# -- the transaction model (RFC 8489 §5, §6.2.1) ---------------------------------------------------------------

A = ("127.0.0.1", 1000)
B = ("127.0.0.1", 2000)
C = ("127.0.0.1", 3000)


def _req(txid: int, time: float, src: tuple[str, int] = A, dst: tuple[str, int] = B) -> Request:
    return Request(txid.to_bytes(12, "big"), src, dst, time)


def test_model_tells_retransmissions_from_new_transactions() -> None:
    model = TransactionModel.of([_req(1, 0.0), _req(1, 0.5), _req(2, 0.0, dst=C), _req(1, 1.5)])
    kinds = [c.kind for c in model.classified]
    assert kinds == [Kind.NEW, Kind.NEW, Kind.RETRANSMISSION, Kind.RETRANSMISSION]
    assert model.retransmits is True
    assert [r.time for r in model.sends((1).to_bytes(12, "big"))] == [0.0, 0.5, 1.5]
    assert model.pairs() == [(A, B), (A, C)]


def test_model_sees_an_agent_that_repeats_checks_instead_of_retransmitting() -> None:
    """libwebrtc's pattern: a new ID every 150 ms to the same unanswered destination, never a resend."""
    model = TransactionModel.of([_req(i, i * 0.15) for i in range(1, 8)])
    assert [c.kind for c in model.classified] == [Kind.NEW] + [Kind.REPEAT] * 6
    assert model.retransmits is False
    assert len(model.repeats_while_unanswered()) == 6
    assert model.pairs() == [(A, B)]
    assert len(model.transactions((A, B))) == 7
    assert "never retransmits" in model.summary()


def test_model_does_not_call_a_check_after_an_answer_a_missing_retransmission() -> None:
    model = TransactionModel.of([_req(1, 0.0), _req(2, 1.0)], answers=[((1).to_bytes(12, "big"), 0.01)])
    repeat = model.classified[1]
    assert repeat.kind is Kind.REPEAT and repeat.previous_answered
    assert model.retransmits is None
    assert model.repeats_while_unanswered() == []


def test_model_without_evidence_does_not_know_whether_the_iut_retransmits() -> None:
    assert TransactionModel.of([_req(1, 0.0), _req(2, 0.0, dst=C)]).retransmits is None
    assert TransactionModel().retransmits is None


def test_model_rate_counts_new_transactions_in_a_window() -> None:
    model = TransactionModel.of([_req(i, i * 0.25) for i in range(8)] + [_req(0, 0.6)])
    assert model.rate((A, B), 0.0, 1.0) == 4.0
    assert model.rate((A, C), 0.0, 1.0) == 0.0
    with pytest.raises(ValueError):
        model.rate((A, B), 1.0, 1.0)


@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 2)), max_size=40))
def test_model_kinds_are_consistent(events: list[tuple[int, int]]) -> None:
    dsts = [B, C, ("::1", 9)]
    model = TransactionModel.of([_req(txid, i * 0.1, dst=dsts[d]) for i, (txid, d) in enumerate(events)])
    counts = {k: len(model.of_kind(k)) for k in Kind}
    assert sum(counts.values()) == len(events)
    assert counts[Kind.NEW] == len(model.pairs())
    assert counts[Kind.NEW] + counts[Kind.REPEAT] == len(model.transactions())
    assert (model.retransmits is True) == (counts[Kind.RETRANSMISSION] > 0)


def test_an_inconclusive_finding_is_info_not_a_failure() -> None:
    """A case that cannot tell cause from coincidence records INFO with its evidence (issue 12)."""
    from conformance.verdict import Findings, Verdict

    findings = Findings(("ICE-TRIG-02",))
    findings.inconclusive("ICE-TRIG-02", "7 checks before, 8 after")
    assert findings.worst() is Verdict.INFO
    assert "inconclusive: 7 checks before" in findings.summary()
    with pytest.raises(KeyError):
        findings.inconclusive("NO-SUCH-01", "x")
