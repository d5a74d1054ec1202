"""The harness's scripted TURN server carries no faults; the reference's FaultyTurnServer owns them (issue 14 §5)."""

from __future__ import annotations

import asyncio
import inspect
from pathlib import Path

import pytest

from conformance.reference.faults import TURN_SERVER_FAULTS
from conformance.reference.turn_server_faults import FaultyTurnServer
from conformance.tester import turn_server
from conformance.tester.capture import Capture
from conformance.tester.endpoint import Address, Endpoint
from conformance.tester.turn_client import TurnClient
from conformance.tester.turn_server import TurnServer


def test_turn_server_names_no_reference_fault() -> None:
    """No fault name appears in tester/turn_server.py, and TurnServer takes no ``faults``."""
    source = Path(inspect.getfile(turn_server)).read_text()
    assert [n for n in TURN_SERVER_FAULTS if f'"{n}"' in source] == []
    assert "faults" not in inspect.signature(TurnServer).parameters


def test_faulty_turn_server_overrides_every_fault() -> None:
    """Each fault of the catalogue is switched in the subclass (its one owner)."""
    source = Path(inspect.getfile(FaultyTurnServer)).read_text()
    assert [n for n in TURN_SERVER_FAULTS if f'"{n}"' not in source] == []


def test_faulty_turn_server_rejects_an_unknown_fault() -> None:
    async def main() -> None:
        with pytest.raises(ValueError, match="no-such-fault"):
            await FaultyTurnServer.open(Capture(), faults=["no-such-fault"])

    asyncio.run(main())


async def _mapped(server_type: type[TurnServer], **kw: object) -> tuple[Address | None, Address]:
    capture = Capture()
    server = await server_type.open(capture, **kw)
    ep = await Endpoint.open(capture, "127.0.0.1", 0, "client")
    try:
        client = TurnClient(ep, server.address, "alice", "secret")
        assert await client.allocate() is not None
        return client.mapped, ep.address
    finally:
        ep.close()
        server.close()


def test_turn_server_reports_the_source_as_xor_mapped_address() -> None:
    """RFC 8656 §7.2: the plain server reports the client's source; the fault changes the port."""
    mapped, source = asyncio.run(_mapped(TurnServer))
    assert mapped == source
    mapped, source = asyncio.run(_mapped(FaultyTurnServer, faults=["wrong-mapped-address"]))
    assert mapped == (source[0], source[1] ^ 1)
