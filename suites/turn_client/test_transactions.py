"""TURN client: how many transactions it keeps outstanding towards its TURN server (RFC 8489 §6.2)."""

from __future__ import annotations

import pytest

from conformance.packets import CHANNEL_BIND, CREATE_PERMISSION, REQUEST
from conformance.tester.endpoint import Received
from conformance.tester.harness import Harness
from conformance.tester.relay_agent import relay_session
from conformance.tester.turn_steps import scripted_turn_server

LIMIT = 10  # RFC 8489 §6.2
PEERS = 15  # remote candidates on distinct IPs, so the IUT has more than LIMIT permissions to ask for
WINDOW = 10.0  # seconds watched after the first permission request: covers retransmissions at 0.5, 1.5, 3.5, 7.5 s
MIN_RTO = 0.5  # RFC 8489 §6.2.1: a request not yet answered is outstanding at least this long after it was sent


def _permission_request(r: Received) -> bool:
    return r.is_type(CREATE_PERMISSION, REQUEST) or r.is_type(CHANNEL_BIND, REQUEST)


def most_outstanding(requests: list[Received]) -> tuple[int, list[bytes]]:
    """The largest number of transactions certainly outstanding at once, and their IDs.

    None of these requests is ever answered, so a transaction is outstanding from its first sending until at least
    its last retransmission plus the minimum RTO (RFC 8489 §6.2.1). The count is taken at each first sending."""
    spans: dict[bytes, tuple[float, float]] = {}
    for r in requests:
        first, last = spans.get(r.transaction_id, (r.time, r.time))
        spans[r.transaction_id] = (min(first, r.time), max(last, r.time))
    best: list[bytes] = []
    for start, _ in spans.values():
        open_then = [txid for txid, (f, last) in spans.items() if f <= start <= last + MIN_RTO]
        if len(open_then) > len(best):
            best = open_then
    return len(best), best


@pytest.mark.requirement("STUN-RTX-03")
@pytest.mark.needs("turn_client")
@pytest.mark.selftest(fault="permissions-all-at-once", verdict="NON-STRICT")
async def test_at_most_ten_transactions_outstanding_to_the_server(harness: Harness) -> None:
    """STUN-RTX-03 (RFC 8489 §6.2): with 16 remote peers and a TURN server that never answers CreatePermission or
    ChannelBind, the client keeps at most ten of those transactions outstanding at once. ICE paces its checks and
    its gathering (RFC 8445 §14), but the permissions and channels it asks the TURN server for have no other limit
    to their rate, so §6.2's default applies."""
    server = await scripted_turn_server(harness)
    server.script(_permission_request, lambda r: None, times=None)
    extra = [f"candidate:X{i} 1 udp {2130706431 - i} 127.0.1.{i} {40000 + i} typ host" for i in range(1, PEERS + 1)]
    await relay_session(harness, server, extra_candidates=extra)

    def requests(latest: Received | None = None) -> list[Received]:
        seen = [r for r in server.endpoint.history if _permission_request(r)]
        return [*seen, latest] if latest is not None and latest not in seen else seen

    # No permission request at all is inconclusive here (an ERROR); TURN-PERM-05 judges data sent without one.
    first = await server.endpoint.expect(
        _permission_request, 15, what="CreatePermission or ChannelBind for the harness's peers"
    )
    over = await server.endpoint.expect_silence(
        lambda r: _permission_request(r) and most_outstanding(requests(r))[0] > LIMIT,
        max(0.0, first.time + WINDOW - server.endpoint.now()),
    )
    count, txids = most_outstanding(requests(over))
    harness.findings.check(
        count <= LIMIT,
        "STUN-RTX-03",
        f"{count} CreatePermission/ChannelBind transactions were outstanding to the TURN server at once "
        f"(none answered; limit {LIMIT}): {', '.join(t.hex() for t in txids[:12])}",
    )
