"""Recognising a hung or dying IUT across the run's workers, so its remaining cases end at once.

Theory of operation: every case that reached the IUT appends one line to a log shared by the run's workers (the
controller creates it and passes its path to xdist workers): the case's node ID and the adapter method that timed
out or was pending when the shim died, or ``-`` when the case ended otherwise. Lines are appended under an
exclusive ``flock``, so the file's order is the order in which cases ended, whichever worker ran them. When the
last :data:`LIMIT` lines all name the same method, the IUT is declared hung: a marker line ``HUNG`` is appended,
and every case that starts afterwards, on any worker, is ERROR at once with a message naming the method and the
three cases. Each failure killed its shim, so the next case ran on a fresh one: three in a row in the same method is
a property of the IUT (or its shim), not of one slow case.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Final

__all__ = ["LIMIT", "HungLog"]

LIMIT: Final = 3
"""Consecutive cases failing in the same adapter method after which the IUT is declared hung."""

_OK: Final = "-"
_HUNG: Final = "HUNG"


class HungLog:
    """The run's shared log of how each case left the IUT (one line per case)."""

    def __init__(self, path: Path, limit: int = LIMIT) -> None:
        self.path = path
        self.limit = limit

    @contextlib.contextmanager
    def _locked(self) -> Iterator[IO[str]]:
        with self.path.open("a+", encoding="utf-8") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                handle.seek(0)
                yield handle
            finally:
                handle.flush()
                os.fsync(handle.fileno())
                fcntl.flock(handle, fcntl.LOCK_UN)

    def record(self, nodeid: str, method: str | None) -> str | None:
        """Log a case's end (``method``: the adapter method that hung or died, else None); the verdict if now hung."""
        with self._locked() as handle:
            lines = handle.read().splitlines()
            hung = _hung_message(lines)
            if hung is not None:
                return hung
            entry = f"{nodeid}\t{method or _OK}"
            handle.write(entry + "\n")
            tail = [line.split("\t", 1) for line in [*lines, entry][-self.limit :]]
            methods = {m for _, m in tail}
            if len(tail) == self.limit and len(methods) == 1 and _OK not in methods:
                (only,) = methods
                message = (
                    f"the IUT is hung: its adapter timed out or died in {only!r} in {self.limit} consecutive cases, "
                    f"each on a fresh shim ({', '.join(n for n, _ in tail)}); remaining cases not run"
                )
                handle.write(f"{_HUNG}\t{message}\n")
                return message
        return None

    def verdict(self) -> str | None:
        """The hung message if the IUT was declared hung, else None (cheap: read before every case)."""
        try:
            with self.path.open(encoding="utf-8") as handle:
                return _hung_message(handle.read().splitlines())
        except FileNotFoundError:
            return None


def _hung_message(lines: list[str]) -> str | None:
    for line in lines:
        if line.startswith(_HUNG + "\t"):
            return line.split("\t", 1)[1]
    return None
