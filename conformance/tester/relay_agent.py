"""A relay-only IUT agent on the harness's scripted TURN server (RFC 8445 §5.1.1.2, RFC 8656): started for Allocate
cases, or wired to a harness ICE peer so that ICE runs through the relay."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

from conformance.adapters.base import AgentConfig
from conformance.adapters.base import TurnServer as TurnServerConfig
from conformance.tester.endpoint import Received
from conformance.tester.ice import IcePeer, IceSession
from conformance.tester.options import case_options
from conformance.tester.turn_client import (
    PEER_HOSTS,
)
from conformance.tester.turn_server import TurnServer

__all__ = [
    "RelayAgent",
    "relay_session",
    "start_relay_agent",
    "wait_selected",
]

logger = logging.getLogger(__name__)


def _turn_config(server: TurnServer, username: str, password: str | None) -> list[TurnServerConfig]:
    return [TurnServerConfig(server.uri(), username, server.users[username] if password is None else password)]


@dataclass
class RelayAgent:
    """An IUT agent told to use one TURN server, relay only, gathering in the background (RFC 8445 §5.1.1.2)."""

    h: Any
    agent: str
    gathering: asyncio.Task[Any]
    closed: bool = False

    async def gathered(self, timeout: float = 10.0) -> bool:
        """Whether gathering (hence the Allocate) finished successfully within ``timeout``."""
        done, _ = await asyncio.wait({self.gathering}, timeout=timeout)
        return bool(done) and not self.gathering.cancelled() and self.gathering.exception() is None

    async def close(self) -> None:
        """Close the IUT agent (a TURN client deletes its allocation here, RFC 8656 §8); errors are logged."""
        if self.closed:
            return
        self.closed = True
        self.gathering.cancel()
        with contextlib.suppress(BaseException):
            await self.gathering
        try:
            await asyncio.wait_for(self.h.iut.close(self.agent), 10)
        except Exception as exc:
            logger.info("closing agent %s: %s", self.agent, exc)


async def start_relay_agent(
    h: Any,
    server: TurnServer,
    *,
    role: str = "controlling",
    username: str = "alice",
    password: str | None = None,
    options: dict[str, Any] | None = None,
) -> RelayAgent:
    """Create a relay-only IUT agent on ``server`` and start gathering without waiting (for Allocate cases)."""
    h.require("turn_client", role)
    config = AgentConfig(
        role=role,
        turn_servers=_turn_config(server, username, password),
        relay_only=True,
        options=case_options(options),
    )
    agent = await h.iut.create_agent(config)
    h.log.watch(agent)
    task = asyncio.get_running_loop().create_task(h.iut.gather(agent))
    relay = RelayAgent(h, agent, task)
    h.defer(relay.close)
    return relay


async def relay_session(
    h: Any,
    server: TurnServer,
    *,
    role: str = "controlling",
    peer_host: str = PEER_HOSTS[0],
    username: str = "alice",
    options: dict[str, Any] | None = None,
    connect: bool = True,
    extra_candidates: list[str] | None = None,
) -> tuple[IceSession, IcePeer]:
    """A relay-only IUT agent wired to a harness ICE peer on ``peer_host``: ICE runs through ``server``'s relay.

    ``extra_candidates`` are signalled after the peer's own (remote candidates nobody answers for)."""
    h.require("turn_client")
    peer = await IcePeer.open(h.capture, peer_host, 1, "harness peer")

    def relay_only_network(r: Received) -> bytes | None:
        # Only the relay reaches the peer: a check from anywhere else (an agent that also pairs its unadvertised
        # host candidate) goes unanswered, as behind a firewall that lets only the TURN server through.
        return None if r.src in {a.relay.address for a in server.allocations.values()} else b""

    peer.responder = relay_only_network

    async def close_peer() -> None:
        peer.close()

    h.defer(close_peer)
    session = await h.session(
        role,
        peer=peer,
        turn_servers=_turn_config(server, username, None),
        relay_only=True,
        options=case_options(options),
        connect=connect,
        remote_candidates=[*peer.candidates(), *extra_candidates] if extra_candidates else None,
    )

    async def close_agent() -> None:
        try:
            await asyncio.wait_for(h.iut.close(session.agent), 10)
        except Exception as exc:
            logger.info("closing agent %s: %s", session.agent, exc)

    h.defer(close_agent)  # before the server closes, so the IUT's delete is answered
    for a in server.allocations.values():
        h.capture.label(a.relay.address, "relay (IUT's relayed candidate)")
        h.capture.label(a.client, "IUT TURN client")
    return session, peer


async def wait_selected(h: Any, session: IceSession, timeout: float = 15.0) -> bool:
    """Whether the IUT reported a selected pair for component 1 within ``timeout`` (RFC 8445 §8.1.1)."""

    def mine(n: Any) -> bool:
        return str(n.params.get("agent")) == session.agent

    return await h.log.wait("selected_pair", mine, timeout) is not None
