"""A complete ICE exchange between the harness and the IUT, in either role (RFC 8445 §7, §8).

Cases that observe what a conforming run looks like (message format, credentials, nomination) share this script:
the harness plays a conforming full agent, answers the IUT's checks, checks back, nominates when it is controlling,
and waits for the IUT to report its selected pair.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from conformance.adapters.base import Notification
from conformance.tester.endpoint import Received
from conformance.tester.harness import Harness
from conformance.tester.ice import BINDING, REQUEST, SUCCESS, IceSession
from conformance.verdict import HarnessError

__all__ = ["Exchange", "run_exchange"]

USE_CANDIDATE = 0x0025


@dataclass
class Exchange:
    """What one exchange produced: the session, the IUT's checks, and its selected pair (if reported)."""

    session: IceSession
    iut_checks: list[Received]
    nominations: list[Received]
    selected: Notification | None


def _is_iut_check(rec: Received) -> bool:
    return rec.is_type(BINDING, REQUEST)


async def run_exchange(h: Harness, role: str, *, timeout: float = 10.0, **session_kwargs: object) -> Exchange:
    """Run ICE to a selected pair with the IUT in ``role`` (the harness takes the other role)."""
    session = await h.session(role, **session_kwargs)  # type: ignore[arg-type]
    peer = session.peer
    ep = peer.endpoint
    target = session.iut_address
    if role == "controlling":
        # The IUT checks and nominates; the peer's auto-responder answers, and it checks back (a triggered check).
        first = await ep.expect(_is_iut_check, timeout, what="connectivity check from the IUT")
        await peer.transact(peer.check(), first.src, timeout=timeout)

        def nominating(r: Received) -> bool:
            return _is_iut_check(r) and r.index is not None and r.index.has(USE_CANDIDATE)

        if not ep.find(nominating):
            # The nomination cases grade its absence; here the exchange just ends without it.
            with contextlib.suppress(HarnessError):
                await ep.expect(nominating, timeout, what="nominating check (USE-CANDIDATE) from the IUT")
    else:
        response = await peer.transact(peer.check(), target, timeout=timeout)
        if response is None or not response.is_type(BINDING, SUCCESS):
            raise HarnessError(f"the IUT did not answer the harness's check to {target}: {response}")
        await peer.transact(peer.check(use_candidate=True), target, timeout=timeout)
    selected = await h.log.wait("selected_pair", timeout=timeout)
    checks = ep.find(_is_iut_check)
    nominations = [r for r in checks if r.index is not None and r.index.has(USE_CANDIDATE)]
    return Exchange(session, checks, nominations, selected)
