"""The transaction model over captured traffic: the IUT's requests to harness endpoints, and the harness's answers.

The classification itself lives in :mod:`conformance.protocol.transactions` (pure); this module only feeds it what
the endpoints received and what the harness sent back (RFC 8489 §5, §6.2.1).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from conformance.packets import REQUEST
from conformance.protocol.transactions import Request, TransactionModel
from conformance.tester.endpoint import Endpoint, Received

__all__ = ["model_of", "request_of"]

_RESPONSE_CLASSES = (0x0100, 0x0110)  # success and error response bits of the message type (RFC 8489 §5)


def request_of(rec: Received) -> Request:
    """The protocol model's view of one received request."""
    codes = frozenset(code for code, _, _ in rec.index.attributes) if rec.index is not None else frozenset()
    return Request(rec.transaction_id, rec.src, rec.dst, rec.arrived, codes)


def model_of(
    endpoints: Iterable[Endpoint],
    since: float = 0.0,
    method: int = 0x001,
    where: Callable[[Received], bool] | None = None,
) -> TransactionModel:
    """A :class:`TransactionModel` of the IUT's ``method`` requests to ``endpoints`` (Binding by default).

    The harness's responses from those endpoints (taken from the capture) mark transactions as answered; their
    wall-clock times are moved onto the endpoints' loop clock.
    """
    eps = list(endpoints)
    recs = [r for ep in eps for r in ep.find(lambda r: r.is_type(method, REQUEST), since) if where is None or where(r)]
    answers: list[tuple[bytes, float]] = []
    if eps:
        offset = eps[0].now() - time.time()
        mine = {ep.address for ep in eps}
        txids = {r.transaction_id for r in recs}
        for d in eps[0].capture.datagrams:
            if d.direction != "out" or d.src not in mine or len(d.data) < 20:
                continue
            msg_type = int.from_bytes(d.data[:2], "big")
            if msg_type & 0x0110 in _RESPONSE_CLASSES and d.data[8:20] in txids:
                answers.append((d.data[8:20], d.time + offset))
    return TransactionModel.of((request_of(r) for r in sorted(recs, key=lambda r: r.arrived)), answers)
