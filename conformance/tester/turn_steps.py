"""TURN steps the suites are written in (RFC 8656): start the IUT's TURN server, open relay peers, get an allocation,
a permission or a channel as a precondition (ERROR when refused), see a payload arrive, and start the scripted server
for TURN-client cases."""

from __future__ import annotations

import logging
import secrets
from typing import Any

from conformance.packets import (
    ALLOCATE,
    CHANNEL_BIND,
    CREATE_PERMISSION,
    SUCCESS,
)
from conformance.tester.endpoint import Endpoint, Received
from conformance.tester.options import case_options
from conformance.tester.turn_client import (
    CLIENT_REALM,
    PEER_HOSTS,
    REALM,
    USERS,
    TurnClient,
    TurnServerUnderTest,
    split_address,
)
from conformance.tester.turn_server import TurnServer
from conformance.verdict import HarnessError

__all__ = [
    "allocated",
    "bound",
    "payload",
    "peer_receives",
    "permitted",
    "relay_peers",
    "scripted_turn_server",
    "start_turn_server",
]

logger = logging.getLogger(__name__)


async def relay_peers(h: Any, count: int = 2, label: str = "peer") -> list[Endpoint]:
    """``count`` relay peers, each on its own loopback address (127.0.0.2, 127.0.0.3 ...)."""
    if count > len(PEER_HOSTS):
        raise HarnessError(f"at most {len(PEER_HOSTS)} relay peers, asked for {count}")
    return [await h.endpoint(f"{label} {i + 1}", PEER_HOSTS[i]) for i in range(count)]


async def start_turn_server(
    h: Any, *, realm: str = REALM, users: dict[str, str] | None = None, options: dict[str, Any] | None = None
) -> TurnServerUnderTest:
    """Ask the IUT to start a TURN server on loopback for this case; it is stopped when the case ends."""
    h.require("turn_server")
    users = dict(USERS if users is None else users)
    server_id, address = await h.iut.start_server("turn", "127.0.0.1:0", realm, users, case_options(options))

    async def stop() -> None:
        await h.iut.stop_server(server_id)

    h.defer(stop)
    where = split_address(address)
    h.capture.label(where, "IUT TURN server")
    h.monitor.add_turn_server(where, iut=True)
    return TurnServerUnderTest(server_id, where, realm, users)


async def allocated(
    h: Any,
    server: TurnServerUnderTest,
    username: str = "alice",
    *,
    host: str = "127.0.0.1",
    label: str = "TURN client",
    lifetime: int | None = None,
) -> TurnClient:
    """A client with a fresh allocation: the sanity precondition of most server cases (ERROR when refused)."""
    client = await TurnClient.open(h, server, username, host=host, label=label)
    rec = await client.allocate(lifetime=lifetime)
    if rec is None or not rec.is_type(ALLOCATE, SUCCESS) or client.relayed is None:
        got = rec.describe() if rec is not None else "no response"
        raise HarnessError(f"precondition: a plain authenticated Allocate as {username!r} did not succeed: {got}")
    h.capture.label(client.relayed, f"relay of {label}")
    return client


async def permitted(client: TurnClient, *peers: Endpoint) -> None:
    """Install permissions for the peers (a precondition: ERROR when the IUT refuses)."""
    rec = await client.create_permission(*(p.address for p in peers))
    if rec is None or not rec.is_type(CREATE_PERMISSION, SUCCESS):
        got = rec.describe() if rec is not None else "no response"
        raise HarnessError(f"precondition: CreatePermission did not succeed: {got}")


async def bound(client: TurnClient, number: int, peer: Endpoint) -> None:
    """Bind a channel to a peer (a precondition: ERROR when the IUT refuses)."""
    rec = await client.channel_bind(number, peer.address)
    if rec is None or not rec.is_type(CHANNEL_BIND, SUCCESS):
        got = rec.describe() if rec is not None else "no response"
        raise HarnessError(f"precondition: ChannelBind 0x{number:04x} did not succeed: {got}")


async def peer_receives(peer: Endpoint, payload: bytes, window: float) -> Received | None:
    """The datagram carrying exactly ``payload`` at the peer within ``window`` s (or already there), else None."""
    for r in peer.history:
        if r.data == payload:
            return r
    return await peer.expect_silence(lambda r: r.data == payload, window)


def payload(tag: str) -> bytes:
    """A unique application payload (never STUN- or ChannelData-shaped: it starts with 0x80, RTP-like)."""
    return b"\x80" + tag.encode() + b"-" + secrets.token_hex(6).encode()


async def scripted_turn_server(h: Any, label: str = "TURN server", **kw: Any) -> TurnServer:
    """A scripted TURN server on loopback for a TURN-client case (realm example.org), closed when the case ends."""
    h.require("turn_client")
    kw.setdefault("realm", CLIENT_REALM)
    server = await TurnServer.open(h.capture, h.host, 0, label, **kw)
    h.monitor.add_turn_server(server.address, iut=False)

    async def stop() -> None:
        server.close()

    h.defer(stop)
    return server
