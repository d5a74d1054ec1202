"""STUN transactions: IDs, retransmissions, ICE RTO, ID randomness checks (RFC 8489 §5, §6; RFC 8445 §14.3).

Theory of operation for :func:`txid_randomness_problems` (STUN-MSG-02): the 96-bit transaction ID is
uniformly random and SHOULD be cryptographically random (RFC 8489 §5). A black-box harness cannot prove
randomness; it can only flag patterns that random IDs produce with negligible probability:

* the same ID on two different transactions (probability about n²/2^97 for random IDs);
* a byte position with one constant value across at least 16 IDs (probability 256^-15 per position);
* consecutive IDs that differ by less than 2^40 when read as integers in either byte order, for at least half
  of at least 4 consecutive pairs (a counter; probability about 2^-55 per pair for random IDs);
* a byte position with far fewer distinct values than random bytes give (at least 32 IDs; more than 8 standard
  deviations below the expectation);
* the pooled byte histogram failing a chi-square test against the uniform distribution (only with at least
  107 IDs, i.e. at least 5 expected observations per byte value; threshold mean + 8 standard deviations).

The thresholds aim at zero false alarms on a conformant IUT; a low-entropy generator can still pass.
"""

from __future__ import annotations

import itertools
import math
import secrets
from collections import Counter
from collections.abc import Sequence
from typing import Final

__all__ = [
    "RC_DEFAULT",
    "RM_DEFAULT",
    "RTO_DEFAULT",
    "RTO_FLOOR",
    "TA_DEFAULT",
    "TRANSACTION_ID_LENGTH",
    "ice_check_rto",
    "ice_gathering_rto",
    "new_transaction_id",
    "retransmission_schedule",
    "txid_randomness_problems",
]

TRANSACTION_ID_LENGTH: Final = 12
"""Transaction ID length in bytes: 96 bits (RFC 8489 §5)."""

RTO_DEFAULT: Final = 0.5
"""RECOMMENDED initial RTO in seconds (RFC 8489 §6.2.1)."""

RC_DEFAULT: Final = 7
"""Default number of requests sent per transaction, Rc (RFC 8489 §6.2.1)."""

RM_DEFAULT: Final = 16
"""Default multiplier of RTO for the wait after the last request, Rm (RFC 8489 §6.2.1)."""

RTO_FLOOR: Final = 0.5
"""ICE agents MUST NOT use an RTO below 500 ms (RFC 8445 §14.3)."""

TA_DEFAULT: Final = 0.05
"""Default pacing interval Ta in seconds (RFC 8445 §14.2)."""

_MIN_IDS_CONSTANT_BYTE: Final = 16
_MIN_PAIRS_COUNTER: Final = 4
_COUNTER_GAP: Final = 2**40
_MIN_IDS_DISTINCT: Final = 32
_MIN_IDS_CHI_SQUARE: Final = 107
_SIGMAS: Final = 8.0


def new_transaction_id() -> bytes:
    """Return 12 cryptographically random bytes for a new transaction (RFC 8489 §5)."""
    return secrets.token_bytes(TRANSACTION_ID_LENGTH)


def retransmission_schedule(
    rto: float = RTO_DEFAULT, rc: int = RC_DEFAULT, rm: int = RM_DEFAULT
) -> tuple[list[float], float]:
    """Return (send offsets, failure time): RTO doubling, Rc sends, then Rm·RTO wait (RFC 8489 §6.2.1).

    With the defaults: sends at 0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s and failure at 39.5 s.
    """
    if not rto > 0:
        raise ValueError(f"RTO {rto} must be positive (RFC 8489 §6.2.1)")
    if rc < 1:
        raise ValueError(f"Rc {rc} must be at least 1 (RFC 8489 §6.2.1)")
    if rm < 1:
        raise ValueError(f"Rm {rm} must be at least 1 (RFC 8489 §6.2.1)")
    offsets = [rto * (2**i - 1) for i in range(rc)]
    return offsets, offsets[-1] + rm * rto


def ice_check_rto(ta: float, n: int, num_waiting: int, num_in_progress: int) -> float:
    """RTO for connectivity checks: MAX(500 ms, Ta·N·(Num-Waiting + Num-In-Progress)) (RFC 8445 §14.3)."""
    if ta < 0 or n < 0 or num_waiting < 0 or num_in_progress < 0:
        raise ValueError(
            f"Ta={ta}, N={n}, Num-Waiting={num_waiting}, Num-In-Progress={num_in_progress} "
            "must not be negative (RFC 8445 §14.3)"
        )
    return max(RTO_FLOOR, ta * n * (num_waiting + num_in_progress))


def ice_gathering_rto(ta: float, num_cands: int) -> float:
    """RTO for gathering: MAX(500 ms, Ta·Num-Of-Cands), counting srflx and relay (RFC 8445 §14.3)."""
    if ta < 0 or num_cands < 0:
        raise ValueError(f"Ta={ta}, Num-Of-Cands={num_cands} must not be negative (RFC 8445 §14.3)")
    return max(RTO_FLOOR, ta * num_cands)


def _distinct_count_stats(n: int) -> tuple[float, float]:
    """Mean and standard deviation of the number of distinct values in n uniform draws from 256."""
    q1 = (255 / 256) ** n
    q2 = (254 / 256) ** n
    mean = 256 * (1 - q1)
    variance = 256 * q1 + 256 * 255 * q2 - 256 * 256 * q1 * q1
    return mean, math.sqrt(max(variance, 0.0))


def txid_randomness_problems(txids: Sequence[bytes]) -> list[str]:
    """List signs that transaction IDs (one per transaction, in send order) are not random (RFC 8489 §5)."""
    problems: list[str] = []
    for index, txid in enumerate(txids):
        if len(txid) != TRANSACTION_ID_LENGTH:
            problems.append(f"transaction ID #{index} ({txid.hex()}) is {len(txid)} bytes, not 12 (RFC 8489 §5)")
    ids = [bytes(t) for t in txids if len(t) == TRANSACTION_ID_LENGTH]
    n = len(ids)

    for txid, count in Counter(ids).items():
        if count > 1:
            problems.append(
                f"transaction ID {txid.hex()} is used by {count} different transactions; "
                "each new transaction needs a new ID (RFC 8489 §5)"
            )

    if n >= _MIN_IDS_CONSTANT_BYTE:
        for position in range(TRANSACTION_ID_LENGTH):
            values = {t[position] for t in ids}
            if len(values) == 1:
                problems.append(
                    f"byte {position} of the transaction ID is 0x{next(iter(values)):02x} in all {n} IDs; "
                    "random IDs would vary (RFC 8489 §5)"
                )

    if n - 1 >= _MIN_PAIRS_COUNTER:
        for order in ("big", "little"):
            numbers = [int.from_bytes(t, order) for t in ids]
            close = sum(1 for a, b in itertools.pairwise(numbers) if abs(b - a) < _COUNTER_GAP)
            if 2 * close >= n - 1:
                problems.append(
                    f"{close} of {n - 1} consecutive transaction IDs differ by less than 2^40 when read as "
                    f"{order}-endian integers: the IDs look like a counter or timestamp (RFC 8489 §5)"
                )

    if n >= _MIN_IDS_DISTINCT:
        mean, sd = _distinct_count_stats(n)
        for position in range(TRANSACTION_ID_LENGTH):
            distinct = len({t[position] for t in ids})
            if 1 < distinct < mean - _SIGMAS * sd:
                problems.append(
                    f"byte {position} of the transaction ID takes only {distinct} distinct values in {n} "
                    f"IDs; random bytes give about {mean:.0f} (RFC 8489 §5)"
                )

    if n >= _MIN_IDS_CHI_SQUARE:
        histogram = Counter(b for t in ids for b in t)
        total = n * TRANSACTION_ID_LENGTH
        expected = total / 256
        chi_square = sum((histogram.get(v, 0) - expected) ** 2 / expected for v in range(256))
        threshold = 255 + _SIGMAS * math.sqrt(2 * 255)
        if chi_square > threshold:
            problems.append(
                f"byte values of {n} transaction IDs fail a uniformity test: chi-square {chi_square:.0f} "
                f"with 255 degrees of freedom exceeds {threshold:.0f} (RFC 8489 §5)"
            )
    return problems
