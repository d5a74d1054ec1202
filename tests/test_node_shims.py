"""Self-tests of the Node.js shims (werift-ice, libjuice via node-datachannel, libwebrtc via @roamhq/wrtc).

Each shim is installed through :func:`conformance.adapters.node.ensure_installed` and driven through
:class:`~conformance.adapters.stdio.StdioAdapter`: the declaration, JSON-RPC framing errors, two agents of the
same stack connecting (controlling offerer + controlled answerer), cross-stack pairs, and data both ways
where the stack exposes ICE-level data (werift only). When network namespaces are available every shim of a
test joins one loopback-only namespace; otherwise the shims' own loopback restrictions apply.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import json
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest

from conformance.adapters import node
from conformance.adapters.base import AgentConfig, Notification, RemoteError, Unsupported
from conformance.adapters.registry import get_iut
from conformance.adapters.stdio import StdioAdapter
from conformance.netns import loopback, wrap

T = TypeVar("T")

pytestmark = [
    pytest.mark.node,
    pytest.mark.skipif(not node.node_available(), reason="node (Node.js) is not installed"),
]

#: The npm-only shims; the browser shims (a Debian binary driven by puppeteer-core) are tests/test_browser_shims.py.
SHIMS = sorted(
    name
    for name, spec in node.node_shims().items()
    if spec.kind == "ice-agent" and spec.node is not None and spec.node.binary is None
)
#: Stacks whose shim exposes ICE-level data (send / data notifications); the others answer -32601.
SENDS_DATA = {"werift"}
DEADLINE = 20.0  # seconds for any one expected event; loopback ICE completes in well under 1 s
LOCAL = {"controlling": ("ctlAA", "controllingpassword0001"), "controlled": ("ctdBB", "controlledpassword00002")}


def run(coro_fn: Callable[[], Awaitable[T]]) -> T:
    async def main() -> T:
        return await coro_fn()

    return asyncio.run(main())


@pytest.fixture(scope="module")
def netns() -> Iterator[str | None]:
    with loopback() as path:
        yield path


@pytest.fixture(scope="module")
def launched() -> dict[str, tuple[list[str], dict[str, str]]]:
    t0 = time.monotonic()
    out = {name: node.launch(name) for name in SHIMS}  # installs on first use; npm failure is an error
    print(f"ensure_installed for {SHIMS}: {time.monotonic() - t0:.2f} s")  # noqa: T201
    return out


def adapter(launched: dict[str, tuple[list[str], dict[str, str]]], name: str, netns: str | None) -> StdioAdapter:
    argv, env = launched[name]
    return StdioAdapter(wrap(argv, join=netns) if netns else argv, env=env, name=name)


@dataclass
class Events:
    """The notifications of one adapter, kept so that an expectation can match an earlier arrival."""

    adapter: StdioAdapter
    seen: list[Notification] = field(default_factory=list)

    async def expect(self, pred: Callable[[Notification], bool], what: str) -> Notification:
        for n in self.seen:
            if pred(n):
                return n
        deadline = time.monotonic() + DEADLINE
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                seen = [(n.method, n.params) for n in self.seen]
                raise AssertionError(
                    f"{self.adapter.name}: no {what} within {DEADLINE} s; saw {seen}\n"
                    f"stderr:\n{self.adapter.diagnostics()}"
                )
            try:
                n = await asyncio.wait_for(self.adapter.notifications.get(), left)
            except TimeoutError:
                continue
            self.seen.append(n)
            if pred(n):
                return n


def is_state(agent: str, *states: str) -> Callable[[Notification], bool]:
    return lambda n: n.method == "state" and n.params["agent"] == agent and n.params["state"] in states


def is_pair(agent: str) -> Callable[[Notification], bool]:
    return lambda n: n.method == "selected_pair" and n.params["agent"] == agent


def is_data(agent: str, data: bytes) -> Callable[[Notification], bool]:
    return lambda n: n.method == "data" and n.params["agent"] == agent and base64.b64decode(n.params["data"]) == data


def address_of(candidate: str) -> str:
    return candidate.split()[4]


def is_loopback(addr: str) -> bool:
    try:
        return ipaddress.ip_address(addr).is_loopback
    except ValueError:
        return False


async def connect_pair(
    a: StdioAdapter, b: StdioAdapter, interfaces: list[str], *, loopback_pair: bool = True
) -> tuple[str, str, Events, Events, float]:
    """A controlling (offerer), B controlled (answerer): the order every stack accepts.

    ``loopback_pair=False`` skips the check that the selected local candidate is on loopback: libwebrtc has
    no bind option, so outside a loopback-only namespace it may check from (and select) another interface.
    """
    ua, pa = LOCAL["controlling"]
    ub, pb = LOCAL["controlled"]
    ea, eb = Events(a), Events(b)
    agent_a = await a.create_agent(AgentConfig(role="controlling", ufrag=ua, pwd=pa, interfaces=interfaces))
    agent_b = await b.create_agent(AgentConfig(role="controlled", ufrag=ub, pwd=pb, interfaces=interfaces))
    t0 = time.monotonic()
    la = await a.gather(agent_a)
    assert (la.ufrag, la.pwd) == (ua, pa), "chosen credentials not used"
    assert la.candidates and all(c.startswith("candidate:") for c in la.candidates)
    await b.set_remote(agent_b, la.ufrag, la.pwd, la.candidates)
    lb = await b.gather(agent_b)
    assert (lb.ufrag, lb.pwd) == (ub, pb), "chosen credentials not used"
    assert lb.candidates
    for c in [*la.candidates, *lb.candidates]:
        assert address_of(c) in interfaces, f"candidate outside the requested interfaces: {c}"
    await a.set_remote(agent_a, lb.ufrag, lb.pwd, lb.candidates)
    await a.connect(agent_a)
    await b.connect(agent_b)
    for ev, agent in ((ea, agent_a), (eb, agent_b)):
        await ev.expect(is_state(agent, "connected", "completed"), "state connected")
        pair = await ev.expect(is_pair(agent), "selected_pair")
        assert pair.params["component"] == 1
        if loopback_pair:
            assert is_loopback(address_of(pair.params["local"])), pair.params
    return agent_a, agent_b, ea, eb, time.monotonic() - t0


@pytest.mark.parametrize("name", SHIMS)
def test_initialize_declares_capabilities(launched: dict[str, tuple[list[str], dict[str, str]]], name: str) -> None:
    async def main() -> None:
        async with adapter(launched, name, None) as a:
            info = await a.initialize()
            assert info.capabilities == node.capabilities(name)
            spec = get_iut(name)
            assert info.name in (spec.name, spec.node.package if spec.node else None)
            assert info.version == spec.pinned_version
            assert info.contract == "1.2"
            assert node.installed_version(name) is not None

    run(main)


@pytest.mark.parametrize("name", SHIMS)
def test_framing_errors(launched: dict[str, tuple[list[str], dict[str, str]]], name: str) -> None:
    """Bad JSON gets -32700 (id null), an unknown method -32601; shutdown replies and exits 0."""
    argv, env = launched[name]

    async def main() -> None:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        assert proc.stdin is not None and proc.stdout is not None

        async def exchange(line: bytes) -> dict[str, Any]:
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(line + b"\n")
            await proc.stdin.drain()
            out: dict[str, Any] = json.loads(await asyncio.wait_for(proc.stdout.readline(), DEADLINE))
            return out

        try:
            bad = await exchange(b"{not json")
            assert bad["error"]["code"] == -32700 and bad["id"] is None, bad
            unknown = await exchange(b'{"jsonrpc":"2.0","id":7,"method":"no_such_method","params":{}}')
            assert unknown["error"]["code"] == -32601 and unknown["id"] == 7, unknown
            agent = await exchange(b'{"jsonrpc":"2.0","id":8,"method":"gather","params":{"agent":"nope"}}')
            assert agent["error"]["code"] == -32001, agent
            bye = await exchange(b'{"jsonrpc":"2.0","id":9,"method":"shutdown","params":{}}')
            assert bye == {"jsonrpc": "2.0", "id": 9, "result": {}}
            assert await asyncio.wait_for(proc.wait(), DEADLINE) == 0
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()

    run(main)


@pytest.mark.parametrize("name", SHIMS)
def test_same_stack_pair_connects(
    launched: dict[str, tuple[list[str], dict[str, str]]], netns: str | None, name: str
) -> None:
    async def main() -> None:
        async with adapter(launched, name, netns) as a, adapter(launched, name, netns) as b:
            await a.initialize()
            info = await b.initialize()
            strict = netns is not None or name != "libwebrtc"
            agent_a, agent_b, ea, eb, took = await connect_pair(a, b, ["127.0.0.1"], loopback_pair=strict)
            print(f"{name} <-> {name}: connected in {took * 1000:.0f} ms")  # noqa: T201
            if name in SENDS_DATA:
                await a.send(agent_a, 1, b"ping")
                await eb.expect(is_data(agent_b, b"ping"), "data ping")
                await b.send(agent_b, 1, b"pong")
                await ea.expect(is_data(agent_a, b"pong"), "data pong")
            else:
                with pytest.raises(Unsupported):
                    await a.send(agent_a, 1, b"ping")
            assert {"controlling", "controlled", "set_credentials"} <= info.capabilities
            await a.close(agent_a)
            await ea.expect(is_state(agent_a, "closed"), "state closed")

    run(main)


CROSS = [("werift", "libjuice"), ("libjuice", "libwebrtc"), ("libwebrtc", "werift")]


@pytest.mark.parametrize(("ctl", "ctd"), CROSS, ids=[f"{a}-{b}" for a, b in CROSS])
def test_cross_stack_pair_connects(
    launched: dict[str, tuple[list[str], dict[str, str]]], netns: str | None, ctl: str, ctd: str
) -> None:
    async def main() -> None:
        async with adapter(launched, ctl, netns) as a, adapter(launched, ctd, netns) as b:
            await a.initialize()
            await b.initialize()
            strict = netns is not None or "libwebrtc" not in (ctl, ctd)
            *_, took = await connect_pair(a, b, ["127.0.0.1"], loopback_pair=strict)
            print(f"{ctl} (controlling) <-> {ctd} (controlled): connected in {took * 1000:.0f} ms")  # noqa: T201

    run(main)


@pytest.mark.parametrize("name", SHIMS)
def test_controlled_needs_remote_before_gather(
    launched: dict[str, tuple[list[str], dict[str, str]]], name: str
) -> None:
    """SDP answerers cannot gather before the offer is known: an INVALID_STATE error, never a fake."""

    async def main() -> None:
        async with adapter(launched, name, None) as a:
            await a.initialize()
            agent = await a.create_agent(AgentConfig(role="controlled"))
            if name == "werift":
                assert (await a.gather(agent)).candidates
                return
            with pytest.raises(RemoteError) as err:
                await a.gather(agent)
            assert err.value.code == -32000

    run(main)


@pytest.mark.parametrize("name", SHIMS)
def test_refuses_non_loopback(launched: dict[str, tuple[list[str], dict[str, str]]], name: str) -> None:
    async def main() -> None:
        async with adapter(launched, name, None) as a:
            await a.initialize()
            for cfg in (
                AgentConfig(role="controlling", interfaces=["192.0.2.1"]),
                AgentConfig(role="controlling", stun_servers=["198.51.100.1:3478"]),
            ):
                with pytest.raises(RemoteError) as err:
                    await a.create_agent(cfg)
                assert err.value.code == -32602

    run(main)


@pytest.mark.parametrize("name", ["libjuice", "libwebrtc"])
def test_sdp_shims_write_the_peers_ice_options(
    launched: dict[str, tuple[list[str], dict[str, str]]], name: str, netns: str | None
) -> None:
    """set_remote's ``options.ice_options`` (contract 1.1) become the remote SDP's a=ice-options (RFC 8839 §5.6)."""

    async def main() -> None:
        async with adapter(launched, name, netns) as a:
            await a.initialize()
            agent = await a.create_agent(AgentConfig(role="controlled", interfaces=["127.0.0.1"]))
            cand = "candidate:1 1 udp 2130706431 127.0.0.1 9 typ host"
            await a.set_remote(agent, "peerAA", "peerpassword00000000001", [cand], options={"ice_options": ["ice2"]})
            await a.gather(agent)  # the answerer applies the remote offer before answering
            logged = "\n".join(a.stderr_tail())
            assert "a=ice-options:ice2" in logged, logged

    run(main)
