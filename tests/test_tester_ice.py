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


class _Adapter:
    """An in-process adapter of contract 1.0 (set_remote takes no options) or 1.2 (it reports applied_options)."""

    def __init__(self, applied: list[str] | None = None) -> None:
        self.notifications: asyncio.Queue[Any] = asyncio.Queue()
        self.calls: list[dict[str, Any]] = []
        self.applied = applied

    async def create_agent(self, config: Any) -> str:
        return "a1"

    async def gather(self, agent: str) -> LocalDescription:
        return LocalDescription("u", "p", [])

    async def connect(self, agent: str) -> None: ...


class _Adapter10(_Adapter):
    async def set_remote(self, agent: str, ufrag: str, pwd: str, candidates: list[str], lite: bool = False) -> None:
        self.calls.append({})


class _Adapter12(_Adapter):
    async def set_remote(
        self, agent: str, ufrag: str, pwd: str, candidates: list[str], lite: bool = False, options: Any = None
    ) -> list[str] | None:
        self.calls.append(dict(options or {}))
        return None if self.applied is None else list(self.applied)


async def _open(adapter: _Adapter, role: str = "controlled", **kwargs: Any) -> IceSession:
    peer = await IcePeer.open(Capture(), "127.0.0.1")
    try:
        log = NotificationLog(adapter)  # type: ignore[arg-type]
        return await IceSession.open(adapter, peer, role, log, **kwargs)  # type: ignore[arg-type]
    finally:
        peer.close()


def test_sdp_options_against_an_adapter_without_them_are_not_delivered() -> None:
    """A 1.0 in-process adapter gets the 1.0 call; every option it was not given is "not supported", and a case
    that needs one is UNSUPPORTED."""

    async def main() -> None:
        adapter = _Adapter10()
        session = await _open(adapter, remote_options={"ice_mismatch": True})
        assert session.agent == "a1" and adapter.calls == [{}]  # the 1.0 call, without options
        assert session.options_delivery() == [
            "ice2: not supported by this adapter",
            "ice_mismatch: not supported by this adapter",
        ]
        with pytest.raises(UnsupportedFeature, match="ice_mismatch: not supported by this adapter"):
            session.require_option("ice_mismatch", "RFC 8839 §4.2.5")

    asyncio.run(main())


@pytest.mark.parametrize(
    ("applied", "ice2", "mismatch"),
    [
        (["ice_options", "ice_mismatch"], True, True),
        (["ice_options"], True, False),
        ([], False, False),
        (None, False, False),  # an adapter that does not report delivers nothing
    ],
)
def test_delivery_is_what_the_adapter_reports(applied: list[str] | None, ice2: bool, mismatch: bool) -> None:
    """Contract 1.2: only ``applied_options`` makes an option delivered, whatever the adapter's signature."""

    async def main() -> None:
        for role in ("controlled", "controlling"):
            adapter = _Adapter12(applied)
            session = await _open(adapter, role, remote_options={"ice_mismatch": True})
            assert adapter.calls == [{"ice_options": ["ice2"], "ice_mismatch": True}]
            assert session.delivered("ice2") is ice2
            assert session.delivered("ice_mismatch") is mismatch
            assert ("ice2: delivered" in session.options_delivery()) is ice2

    asyncio.run(main())


def test_an_empty_ice_options_list_is_reported_as_such() -> None:
    """A case playing an RFC 5245 peer (ICE-NOM-06) signals no ice-options: no ice2 line, reported as ice_options."""

    async def main() -> None:
        adapter = _Adapter12(["ice_options"])
        session = await _open(adapter, remote_options={"ice_options": []})
        assert adapter.calls == [{"ice_options": []}]
        assert session.options_delivery() == ["ice_options: delivered"]
        assert not session.delivered("ice2")

    asyncio.run(main())
