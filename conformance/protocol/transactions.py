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

Theory of operation for :class:`TransactionModel`: every request the IUT sends is one of three things. A request
whose transaction ID was seen before is a retransmission (RFC 8489 §6.2.1: a retransmission reuses the ID). A
request with a new ID is a new transaction (RFC 8489 §5), and when an earlier transaction already went from the same
source to the same destination it is a repeat: the same check made again as a new transaction (what an agent that
pings instead of retransmitting does, or a triggered or consent check). Whether the IUT retransmits at all is an
observation: True once a retransmission is seen, False once an unanswered transaction was repeated as a new one
with no retransmission anywhere, None while neither has been seen.
"""

from __future__ import annotations

import enum
import itertools
import math
import secrets
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final

__all__ = [
    "RC_DEFAULT",
    "RM_DEFAULT",
    "RTO_DEFAULT",
    "RTO_FLOOR",
    "TA_DEFAULT",
    "TRANSACTION_ID_LENGTH",
    "Classified",
    "Kind",
    "Request",
    "TransactionModel",
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


# -- the transaction model ---------------------------------------------------------------------------------------

Address = tuple[str, int]


class Kind(enum.Enum):
    """What one request of the IUT is (RFC 8489 §5, §6.2.1)."""

    NEW = "new transaction"
    RETRANSMISSION = "retransmission"
    REPEAT = "repeat of an earlier check as a new transaction"


@dataclass(frozen=True)
class Request:
    """One request as the harness saw it: transaction ID, 5-tuple ends, arrival time, attribute codes."""

    txid: bytes
    src: Address
    dst: Address
    time: float
    attributes: frozenset[int] = frozenset()

    @property
    def pair(self) -> tuple[Address, Address]:
        """(source, destination): the candidate pair of an ICE check (RFC 8445 §6.1.2)."""
        return self.src, self.dst


@dataclass(frozen=True)
class Classified:
    """A request with its kind; ``first`` is its transaction's first send, ``previous`` the earlier transaction's."""

    request: Request
    kind: Kind
    first: Request
    previous: Request | None = None
    previous_answered: bool = False


@dataclass
class TransactionModel:
    """Classifies the IUT's requests as new transactions, retransmissions or repeats (RFC 8489 §5, §6.2.1).

    Feed requests in arrival order with :meth:`add` and the harness's responses with :meth:`answer` (a response
    ends a transaction, so a later request of the same pair with a new ID is a fresh check, not a repeat of an
    unanswered one).
    """

    classified: list[Classified] = field(default_factory=list)
    _sends: dict[tuple[bytes, Address, Address], list[Request]] = field(default_factory=dict)
    _by_pair: dict[tuple[Address, Address], list[bytes]] = field(default_factory=dict)
    _answered: dict[bytes, float] = field(default_factory=dict)

    @classmethod
    def of(cls, requests: Iterable[Request], answers: Iterable[tuple[bytes, float]] = ()) -> TransactionModel:
        """A model of ``requests`` (sorted by time) with the responses ``(txid, time)`` interleaved by time."""
        model = cls()
        events: list[tuple[float, int, Request | bytes]] = [(r.time, 1, r) for r in requests]
        events += [(t, 0, txid) for txid, t in answers]
        for time, _, item in sorted(events, key=lambda e: (e[0], e[1])):
            if isinstance(item, Request):
                model.add(item)
            else:
                model.answer(item, time)
        return model

    def answer(self, txid: bytes, time: float) -> None:
        """The harness answered ``txid`` at ``time`` (the first answer counts)."""
        self._answered.setdefault(txid, time)

    def add(self, request: Request) -> Classified:
        """Classify one request (in arrival order) and remember it."""
        key = (request.txid, *request.pair)
        sends = self._sends.get(key)
        if sends is not None:
            sends.append(request)
            out = Classified(request, Kind.RETRANSMISSION, sends[0])
        else:
            # The same ID towards another pair is a new transaction (its reuse is STUN-MSG-02's finding).
            self._sends[key] = [request]
            earlier = self._by_pair.setdefault(request.pair, [])
            if earlier:
                previous = self._sends[(earlier[-1], *request.pair)][0]
                answered = self._answered.get(previous.txid)
                out = Classified(
                    request,
                    Kind.REPEAT,
                    request,
                    previous,
                    answered is not None and answered <= request.time,
                )
            else:
                out = Classified(request, Kind.NEW, request)
            earlier.append(request.txid)
        self.classified.append(out)
        return out

    # -- what the model saw --------------------------------------------------------------------------------------

    def of_kind(self, kind: Kind) -> list[Classified]:
        """Every classified request of that kind, in arrival order."""
        return [c for c in self.classified if c.kind is kind]

    def sends(self, txid: bytes) -> list[Request]:
        """Every transmission of one transaction (the first, then its retransmissions), on any pair."""
        return [r for (t, _, _), sends in self._sends.items() if t == txid for r in sends]

    def transactions(self, pair: tuple[Address, Address] | None = None) -> list[Request]:
        """The first send of each transaction (of one pair, if given), in arrival order."""
        if pair is not None:
            return [self._sends[(t, *pair)][0] for t in self._by_pair.get(pair, [])]
        return [c.request for c in self.classified if c.kind is not Kind.RETRANSMISSION]

    def pairs(self) -> list[tuple[Address, Address]]:
        """The distinct (source, destination) pairs the IUT checked, in order of their first check."""
        return list(self._by_pair)

    def repeats_while_unanswered(self) -> list[Classified]:
        """Repeats of a pair whose previous transaction was still unanswered: a new check instead of a resend."""
        return [c for c in self.of_kind(Kind.REPEAT) if not c.previous_answered]

    @property
    def retransmits(self) -> bool | None:
        """True once a retransmission is seen; False when unanswered checks were repeated as new transactions
        and nothing was ever retransmitted; None when neither was observed (RFC 8489 §6.2.1)."""
        if self.of_kind(Kind.RETRANSMISSION):
            return True
        return False if self.repeats_while_unanswered() else None

    def rate(self, pair: tuple[Address, Address], start: float, end: float) -> float:
        """New transactions (new or repeat) per second on ``pair`` with ``start <= time < end``."""
        if end <= start:
            raise ValueError(f"empty window {start}..{end}")
        count = sum(1 for r in self.transactions(pair) if start <= r.time < end)
        return count / (end - start)

    def summary(self) -> str:
        """One line: counts of each kind and whether the IUT retransmits, for an INFO finding."""
        counts = Counter(c.kind for c in self.classified)
        retransmits: dict[bool | None, str] = {
            True: "retransmits",
            False: "never retransmits (repeats checks as new transactions)",
        }
        return (
            f"{len(self._sends)} transactions on {len(self._by_pair)} pairs: {counts[Kind.NEW]} new, "
            f"{counts[Kind.REPEAT]} repeats of a pair as a new transaction, {counts[Kind.RETRANSMISSION]} "
            f"retransmissions; the IUT {retransmits.get(self.retransmits, 'showed no retransmission behaviour')}"
        )
