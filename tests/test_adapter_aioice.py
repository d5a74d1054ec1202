"""AioiceAdapter in process and through its stdio shim: two agents connect on loopback (iuts.md §1)."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import aioice.ice
import pytest

from conformance.adapters import (
    Adapter,
    AgentConfig,
    ErrorCode,
    Notification,
    RemoteError,
    StdioAdapter,
    Unsupported,
    make_adapter,
)
from conformance.adapters.aioice import AioiceAdapter, declared_capabilities
from conformance.adapters.contract import complete

T = TypeVar("T")
PWD_A = "harnessChosenPassword0"
PWD_B = "otherSideChosenPasswd1"


def run(coro: Coroutine[Any, Any, T], deadline: float = 30.0) -> T:
    """Run one test coroutine with an overall deadline."""

    async def bounded() -> T:
        async with asyncio.timeout(deadline):
            return await coro

    return asyncio.run(bounded())


class Inbox:
    """Notifications of one adapter, awaited with deadlines; everything seen is kept in arrival order."""

    def __init__(self, adapter: Adapter) -> None:
        self.adapter = adapter
        self.seen: list[Notification] = []
        self._taken: set[int] = set()

    async def expect(
        self, method: str, where: Callable[[dict[str, Any]], bool] = lambda p: True, deadline: float = 5.0
    ) -> Notification:
        """The first notification of that method satisfying ``where`` not returned before."""
        async with asyncio.timeout(deadline):
            checked = 0
            while True:
                for i in range(checked, len(self.seen)):
                    note = self.seen[i]
                    if i not in self._taken and note.method == method and where(note.params):
                        self._taken.add(i)
                        return note
                checked = len(self.seen)
                self.seen.append(await self.adapter.notifications.get())

    def states(self, agent: str) -> list[str]:
        return [n.params["state"] for n in self.seen if n.method == "state" and n.params["agent"] == agent]


def state_is(agent: str, state: str) -> Callable[[dict[str, Any]], bool]:
    return lambda p: p.get("agent") == agent and p.get("state") == state


async def pair_up(a: Adapter, b: Adapter, cfg_a: AgentConfig, cfg_b: AgentConfig) -> tuple[str, str, Inbox, Inbox]:
    """Create, gather, exchange descriptions and connect one agent on each adapter; wait for connected."""
    await a.initialize()
    await b.initialize()
    ia, ib = await a.create_agent(cfg_a), await b.create_agent(cfg_b)
    da, db = await asyncio.gather(a.gather(ia), b.gather(ib))
    await a.set_remote(ia, db.ufrag, db.pwd, db.candidates)
    await b.set_remote(ib, da.ufrag, da.pwd, da.candidates)
    await a.connect(ia)
    await b.connect(ib)
    ina, inb = Inbox(a), Inbox(b)
    await ina.expect("state", state_is(ia, "connected"))
    await inb.expect("state", state_is(ib, "connected"))
    return ia, ib, ina, inb


def host_port(candidate: str) -> tuple[str, int]:
    bits = candidate.removeprefix("candidate:").split()
    return bits[4], int(bits[5])


async def exchange_data(a: Adapter, ia: str, ina: Inbox, b: Adapter, ib: str, inb: Inbox, comp: int = 1) -> None:
    """One datagram each way on a component; each side gets a ``data`` notification."""
    await a.send(ia, comp, b"ping \x00\xff")
    got = await inb.expect("data", lambda p: p["agent"] == ib and p["component"] == comp)
    assert got.payload() == b"ping \x00\xff"
    assert got.params["data"] == "cGluZyAA/w=="  # JSON form (base64) on both routes
    await b.send(ib, comp, b"pong")
    back = await ina.expect("data", lambda p: p["agent"] == ia and p["component"] == comp)
    assert back.payload() == b"pong"


def test_aioice_in_process_pair_connects_with_chosen_credentials() -> None:
    async def main() -> None:
        a, b = AioiceAdapter(), AioiceAdapter()
        try:
            info = await a.initialize()
            assert info.name == "aioice" and info.version == "0.13.0"
            assert info.capabilities == declared_capabilities()
            t0 = time.monotonic()
            ia, ib, ina, inb = await pair_up(
                a,
                b,
                AgentConfig("controlling", ufrag="HARN", pwd=PWD_A),
                AgentConfig("controlled", ufrag="othr", pwd=PWD_B),
            )
            took = time.monotonic() - t0
            assert ina.states(ia) == ["new", "checking", "connected"]
            assert inb.states(ib) == ["new", "checking", "connected"]
            pa = await ina.expect("selected_pair", lambda p: p["agent"] == ia)
            pb = await inb.expect("selected_pair", lambda p: p["agent"] == ib)
            assert pa.params["component"] == pb.params["component"] == 1
            assert host_port(pa.params["local"]) == host_port(pb.params["remote"])
            assert host_port(pa.params["remote"]) == host_port(pb.params["local"])
            assert host_port(pa.params["local"])[0] == "127.0.0.1"
            # The selected pair is reported before "connected".
            connected = next(n for n in ina.seen if n.params == {"agent": ia, "state": "connected"})
            assert ina.seen.index(pa) < ina.seen.index(connected)
            await exchange_data(a, ia, ina, b, ib, inb)
            assert took < 5.0
            await a.close(ia)
            await ina.expect("state", state_is(ia, "closed"))
            assert "ICE completed" in a.diagnostics()
        finally:
            await a.shutdown()
            await b.shutdown()

    run(main())


def test_aioice_chosen_credentials_show_in_gather() -> None:
    async def main() -> None:
        a = AioiceAdapter()
        try:
            ia = await a.create_agent(AgentConfig("controlling", ufrag="HARN", pwd=PWD_A))
            desc = await a.gather(ia)
            assert (desc.ufrag, desc.pwd) == ("HARN", PWD_A)
            assert len(desc.candidates) == 1
            assert desc.candidates[0].startswith("candidate:")
            assert " udp 2130706431 127.0.0.1 " in desc.candidates[0]
            assert desc.candidates[0].endswith(" typ host")
        finally:
            await a.shutdown()

    run(main())


def test_aioice_multi_component_and_ipv6() -> None:
    async def main() -> None:
        a, b = AioiceAdapter(), AioiceAdapter()
        try:
            cfg = {"components": 2, "interfaces": ["::1"]}
            ia, ib, ina, inb = await pair_up(a, b, AgentConfig("controlling", **cfg), AgentConfig("controlled", **cfg))
            pairs = [n for n in ina.seen if n.method == "selected_pair"]
            assert [p.params["component"] for p in pairs] == [1, 2]
            assert all(host_port(p.params["local"])[0] == "::1" for p in pairs)
            await exchange_data(a, ia, ina, b, ib, inb, comp=2)
        finally:
            await a.shutdown()
            await b.shutdown()

    run(main())


def test_aioice_trickle_both_ways() -> None:
    async def main() -> None:
        a, b = AioiceAdapter(), AioiceAdapter()
        try:
            ia = await a.create_agent(AgentConfig("controlling", trickle=True))
            ib = await b.create_agent(AgentConfig("controlled", trickle=True))
            ina, inb = Inbox(a), Inbox(b)
            da, db = await a.gather(ia), await b.gather(ib)
            assert da.candidates == [] and db.candidates == []
            await a.set_remote(ia, db.ufrag, db.pwd, [])
            await b.set_remote(ib, da.ufrag, da.pwd, [])
            await a.connect(ia)
            await b.connect(ib)
            for src, dst, src_id, dst_id in ((ina, b, ia, ib), (inb, a, ib, ia)):
                while True:
                    note = await src.expect("candidate", lambda p, i=src_id: p["agent"] == i)
                    await dst.add_remote_candidate(dst_id, note.params["candidate"])
                    if note.params["candidate"] is None:
                        break
            await ina.expect("state", state_is(ia, "connected"))
            await inb.expect("state", state_is(ib, "connected"))
            await exchange_data(a, ia, ina, b, ib, inb)
        finally:
            await a.shutdown()
            await b.shutdown()

    run(main())


def test_aioice_fails_without_candidates() -> None:
    async def main() -> None:
        a = AioiceAdapter()
        try:
            ia = await a.create_agent(AgentConfig("controlling"))
            await a.gather(ia)
            await a.set_remote(ia, "peer", "p" * 22, [])  # non-trickle: this ends the candidates
            await a.connect(ia)
            inbox = Inbox(a)
            await inbox.expect("state", state_is(ia, "failed"))
            assert inbox.states(ia) == ["new", "checking", "failed"]
        finally:
            await a.shutdown()

    run(main())


def test_aioice_errors_and_unsupported_operations() -> None:
    async def main() -> None:
        a = AioiceAdapter()
        try:
            with pytest.raises(RemoteError) as bad_pwd:
                await a.create_agent(AgentConfig("controlling", ufrag="HARN", pwd="short"))
            assert bad_pwd.value.code == ErrorCode.INVALID_PARAMS
            with pytest.raises(RemoteError) as bad_role:
                await a.create_agent(AgentConfig("boss"))
            assert bad_role.value.code == ErrorCode.INVALID_PARAMS
            with pytest.raises(RemoteError) as unknown:
                await a.gather("zz")
            assert unknown.value.code == ErrorCode.UNKNOWN_AGENT
            ia = await a.create_agent(AgentConfig("controlled", trickle=True))
            with pytest.raises(RemoteError) as early:
                await a.connect(ia)
            assert early.value.code == ErrorCode.INVALID_STATE and "gather first" in early.value.message
            with pytest.raises(Unsupported, match="no ICE restart"):
                await a.restart(ia)
            assert not hasattr(a, "start_server")  # an ICE agent only: the harness sees it through complete()
            full = complete(a)
            with pytest.raises(Unsupported, match="not a STUN or TURN server"):
                await full.start_server("turn", "127.0.0.1:0")
            with pytest.raises(Unsupported):
                await full.stop_server("s1")
            with pytest.raises(RemoteError) as not_connected:
                await a.send(ia, 1, b"x")
            assert not_connected.value.code == ErrorCode.INVALID_STATE
            with pytest.raises(RemoteError) as garbage:
                await a.add_remote_candidate(ia, "candidate:garbage")
            assert garbage.value.code == ErrorCode.INVALID_PARAMS
            # mDNS candidates are ignored, never resolved by multicast.
            await a.add_remote_candidate(ia, "candidate:1 1 udp 2130706431 abcd-1234.local 5000 typ host")
            assert "ignores mDNS candidate 'candidate:1 1 udp 2130706431 abcd-1234.local" in a.diagnostics()
            await a.add_remote_candidate(ia, None)
            with pytest.raises(RemoteError) as after_end:
                await a.add_remote_candidate(ia, "candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host")
            assert after_end.value.code == ErrorCode.INVALID_STATE
        finally:
            await a.shutdown()

    run(main())


def test_aioice_interfaces_patch_does_not_leak() -> None:
    async def main() -> None:
        a, b = AioiceAdapter(), AioiceAdapter()
        try:
            ia = await a.create_agent(AgentConfig("controlling", interfaces=["127.0.0.1"]))
            ib = await b.create_agent(AgentConfig("controlling", interfaces=["::1"]))
            da, db = await asyncio.gather(a.gather(ia), b.gather(ib))
            assert [host_port(c)[0] for c in da.candidates] == ["127.0.0.1"]
            assert [host_port(c)[0] for c in db.candidates] == ["::1"]
            # Outside a gather the original function runs: upstream drops loopback.
            assert "127.0.0.1" not in aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=False)
        finally:
            await a.shutdown()
            await b.shutdown()

    run(main())


def _stdio() -> StdioAdapter:
    adapter = make_adapter("aioice-stdio", request_timeout=5.0, start_timeout=10.0)
    assert isinstance(adapter, StdioAdapter)
    return adapter


def test_aioice_stdio_shim_against_in_process_agent() -> None:
    async def main() -> None:
        shim, local = _stdio(), AioiceAdapter()
        try:
            info = await shim.initialize()
            assert info.name == "aioice" and info.capabilities == declared_capabilities()
            assert shim.argv[:3] == [sys.executable, "-m", "conformance.adapters.aioice"]
            ia, ib, ins, inl = await pair_up(
                shim,
                local,
                AgentConfig("controlled", ufrag="shim", pwd=PWD_A),
                AgentConfig("controlling", ufrag="locl", pwd=PWD_B),
            )
            assert ins.states(ia) == ["new", "checking", "connected"]
            ps = await ins.expect("selected_pair", lambda p: p["agent"] == ia)
            pl = await inl.expect("selected_pair", lambda p: p["agent"] == ib)
            assert host_port(ps.params["local"]) == host_port(pl.params["remote"])
            await exchange_data(shim, ia, ins, local, ib, inl)
            with pytest.raises(Unsupported):
                await shim.restart(ia)
            with pytest.raises(RemoteError) as unknown:
                await shim.close("nope")
            assert unknown.value.code == ErrorCode.UNKNOWN_AGENT
            await shim.close(ia)
            await ins.expect("state", state_is(ia, "closed"))
        finally:
            await shim.shutdown()
            await local.shutdown()
        assert shim.returncode == 0
        assert "agent a1 is Connection" in shim.diagnostics()

    run(main())


def test_aioice_two_stdio_shims() -> None:
    async def main() -> None:
        a, b = _stdio(), _stdio()
        try:
            ia, ib, ina, inb = await pair_up(a, b, AgentConfig("controlling", trickle=False), AgentConfig("controlled"))
            await ina.expect("selected_pair", lambda p: p["agent"] == ia)
            await inb.expect("selected_pair", lambda p: p["agent"] == ib)
            await exchange_data(a, ia, ina, b, ib, inb)
        finally:
            await asyncio.gather(a.shutdown(), b.shutdown())
        assert a.returncode == 0 and b.returncode == 0

    run(main())
