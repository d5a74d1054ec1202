"""The tester's ICE session signalling (conformance/tester/ice.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from conformance.adapters.base import LocalDescription, accepts_remote_options
from conformance.tester.capture import Capture
from conformance.tester.ice import IcePeer, IceSession, NotificationLog
from conformance.verdict import UnsupportedFeature


def test_set_remote_options_reach_adapters_that_take_them() -> None:
    """Contract 1.1 ``options`` (the harness's ice2, RFC 8445 §10) go only to a set_remote that accepts them."""

    async def v10(agent: str, ufrag: str, pwd: str, candidates: list[str], lite: bool = False) -> None: ...

    async def v11(
        agent: str, ufrag: str, pwd: str, candidates: list[str], lite: bool = False, options: Any = None
    ) -> None: ...

    async def proxy(*args: Any, **kwargs: Any) -> None: ...

    assert not accepts_remote_options(v10)
    assert accepts_remote_options(v11)
    assert accepts_remote_options(proxy)


def test_sdp_options_against_an_adapter_without_them_are_unsupported() -> None:
    """A case that needs set_remote options (contract 1.1) against a 1.0 in-process adapter is UNSUPPORTED."""

    class Adapter10:
        notifications: asyncio.Queue[Any]

        def __init__(self) -> None:
            self.notifications = asyncio.Queue()
            self.calls: list[str] = []

        async def create_agent(self, config: Any) -> str:
            return "a1"

        async def set_remote(self, agent: str, ufrag: str, pwd: str, candidates: list[str], lite: bool = False) -> None:
            self.calls.append("set_remote")

        async def gather(self, agent: str) -> LocalDescription:
            return LocalDescription("u", "p", [])

        async def connect(self, agent: str) -> None: ...

    async def main() -> None:
        adapter = Adapter10()
        peer = await IcePeer.open(Capture(), "127.0.0.1")
        try:
            log = NotificationLog(adapter)  # type: ignore[arg-type]
            with pytest.raises(UnsupportedFeature, match="no SDP signalling"):
                await IceSession.open(adapter, peer, "controlled", log, remote_options={"ice_mismatch": True})  # type: ignore[arg-type]
            session = await IceSession.open(adapter, peer, "controlled", log)  # type: ignore[arg-type]
            assert session.agent == "a1" and adapter.calls == ["set_remote"]  # the 1.0 call, without options
        finally:
            peer.close()

    asyncio.run(main())
