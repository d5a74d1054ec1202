"""Link impairments as pure schedules: seeded loss and a delay line that returns deadlines (design.md, Network).

Nothing here reads a clock or sleeps. :class:`LossSchedule` draws from its own seeded :class:`random.Random`, one
draw per datagram in arrival order, so the same traffic under the same seed loses the same datagrams.
:class:`DelayLine` holds datagrams with their release deadlines; the caller arms one timer at
:meth:`DelayLine.next_deadline` and takes :meth:`DelayLine.due` items when it fires.
"""

from __future__ import annotations

import heapq
import itertools
import random
from typing import Generic, TypeVar

__all__ = ["DelayLine", "LossSchedule"]

T = TypeVar("T")


class LossSchedule:
    """Independent (Bernoulli) loss at ``rate``, reproducible under ``seed``."""

    def __init__(self, rate: float, seed: int | str = 0) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"loss rate must be within 0..1, not {rate!r}")
        self.rate = rate
        self._rng = random.Random(seed)
        self.seen = 0
        self.dropped = 0

    def drop(self) -> bool:
        """Whether the next datagram is lost; consumes one draw per datagram when the rate is non-zero."""
        self.seen += 1
        if self.rate == 0.0:
            return False
        lost = self._rng.random() < self.rate
        self.dropped += lost
        return lost


class DelayLine(Generic[T]):
    """A bounded set of items, each released at its own deadline, in deadline then arrival order."""

    def __init__(self, capacity: int = 4096) -> None:
        if capacity < 1:
            raise ValueError("a delay line needs room for at least one item")
        self.capacity = capacity
        self._heap: list[tuple[float, int, T]] = []
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, now: float, delay: float, item: T) -> float | None:
        """Hold ``item`` until ``now + delay``; returns that deadline, or None when the line is full (a drop)."""
        if len(self._heap) >= self.capacity:
            return None
        deadline = now + delay
        heapq.heappush(self._heap, (deadline, next(self._seq), item))
        return deadline

    def next_deadline(self) -> float | None:
        """The earliest release time, or None when empty."""
        return self._heap[0][0] if self._heap else None

    def due(self, now: float) -> list[T]:
        """Remove and return the items whose deadline is at or before ``now``."""
        out: list[T] = []
        while self._heap and self._heap[0][0] <= now:
            out.append(heapq.heappop(self._heap)[2])
        return out

    def clear(self) -> list[T]:
        """Remove and return every held item."""
        items = [entry[2] for entry in sorted(self._heap)]
        self._heap.clear()
        return items
