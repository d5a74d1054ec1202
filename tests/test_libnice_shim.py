"""Self-tests of the libnice stdio shim: build cache, JSON-RPC framing, two real agents on loopback."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import socket
import subprocess
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

from conformance.adapters import libnice
from conformance.adapters.base import AgentConfig, Notification, RemoteError, TurnServer, Unsupported
from conformance.adapters.registry import get_iut
from conformance.adapters.stdio import StdioAdapter

T = TypeVar("T")

DEADLINE = 15.0  # seconds for any one expected event; loopback ICE completes in well under 1 s


@pytest.fixture(scope="module")
def shim_argv() -> list[str]:
    try:
        return libnice.argv()
    except libnice.LibniceMissing as exc:
        pytest.skip(f"libnice shim unavailable: {exc}")


def run(coro_fn: Callable[[], Awaitable[T]]) -> T:
    async def main() -> T:
        return await coro_fn()

    return asyncio.run(main())


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


@dataclass
class Events:
    """The notifications of one adapter, kept so a later expectation can match an earlier arrival."""

    adapter: StdioAdapter
    seen: list[Notification] = field(default_factory=list)

    async def expect(
        self,
        method: str,
        where: Callable[[dict[str, Any]], bool] = lambda p: True,
        deadline: float = DEADLINE,
    ) -> dict[str, Any]:
        """The first not yet matched notification ``method`` whose params satisfy ``where``."""
        for i, n in enumerate(self.seen):
            if n.method == method and where(n.params):
                del self.seen[i]
                return n.params
        try:
            async with asyncio.timeout(deadline):
                while True:
                    n = await self.adapter.notifications.get()
                    if n.method == method and where(n.params):
                        return n.params
                    self.seen.append(n)
        except TimeoutError:
            raise AssertionError(
                f"{self.adapter.name}: no {method} notification within {deadline} s; saw "
                f"{[(n.method, n.params) for n in self.seen]}\nshim stderr:\n{self.adapter.diagnostics()}"
            ) from None


def _addr(candidate: str) -> tuple[str, int]:
    """(address, port) of a candidate attribute value (RFC 8839 section 5.1)."""
    f = candidate.split()
    return f[4], int(f[5])


# -------------------------------------------------------------------------------------------------- build


def test_ensure_built_reuses_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    first = libnice.ensure_built()
    assert first.is_relative_to(tmp_path / "ice-conformance" / "libnice")
    assert os.access(first, os.X_OK)
    before = first.stat()

    def no_compile(cmd: list[str]) -> None:
        raise AssertionError(f"recompiled although the cache holds {first}: {cmd}")

    monkeypatch.setattr(libnice, "_compile", no_compile)
    second = libnice.ensure_built()
    assert second == first
    after = second.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert libnice.argv() == [str(first)]


def test_ensure_built_is_safe_when_builds_race(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    with ThreadPoolExecutor(4) as pool:
        paths = list(pool.map(lambda _: libnice.ensure_built(), range(4)))
    assert len(set(paths)) == 1
    folder = paths[0].parent
    assert [p.name for p in folder.iterdir()] == ["shim"]  # no temporary file left behind


def test_ensure_built_names_the_packages_when_prerequisites_are_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))  # neither pkg-config nor gcc
    with pytest.raises(libnice.LibniceMissing, match="apt-get install -y libnice-dev libjson-glib-dev"):
        libnice.ensure_built()


def test_spec_describes_the_iut() -> None:
    spec = get_iut("libnice")
    assert spec.name == "libnice" and spec.kind == "ice-agent"
    assert spec.pinned_version == libnice.pinned_version() == "0.1.21"
    assert "libnice-dev" in spec.install_hint and "libnice-dev" in spec.debian_packages
    assert {"controlling", "controlled", "set_credentials", "trickle", "turn_client"} <= libnice.capabilities()


# ------------------------------------------------------------------------------------------ JSON-RPC framing


class RawShim:
    """The shim driven line by line, for what StdioAdapter never sends (malformed lines)."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    async def send_line(self, line: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + b"\n")
        await self.proc.stdin.drain()

    async def read_response(self) -> dict[str, Any]:
        """The next line that is a response (has an id), skipping notifications."""
        assert self.proc.stdout is not None
        async with asyncio.timeout(DEADLINE):
            while True:
                line = await self.proc.stdout.readline()
                assert line, "the shim closed stdout"
                msg = json.loads(line)
                assert isinstance(msg, dict) and msg.get("jsonrpc") == "2.0", line
                if "id" in msg:
                    return msg


async def _with_raw(argv: list[str], body: Callable[[RawShim], Awaitable[None]]) -> int | None:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        await body(RawShim(proc))
        assert proc.stdin is not None
        proc.stdin.close()
        async with asyncio.timeout(DEADLINE):
            return await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def test_malformed_line_gets_parse_error_and_the_shim_lives_on(shim_argv: list[str]) -> None:
    async def body(shim: RawShim) -> None:
        await shim.send_line(b'{"jsonrpc": "2.0", "id": 1, "method": ')
        reply = await shim.read_response()
        assert reply["id"] is None
        assert reply["error"]["code"] == -32700
        await shim.send_line(b"\xff\xfe not utf-8")
        assert (await shim.read_response())["error"]["code"] == -32700
        await shim.send_line(b"[1, 2]")
        assert (await shim.read_response())["error"]["code"] == -32600
        await shim.send_line(json.dumps({"jsonrpc": "2.0", "id": 7, "method": "initialize"}).encode())
        reply = await shim.read_response()
        assert reply["id"] == 7 and reply["result"]["name"] == "libnice"

    assert run(lambda: _with_raw(shim_argv, body)) == 0  # stdin EOF ends the shim cleanly


def test_unknown_method_gets_method_not_found(shim_argv: list[str]) -> None:
    async def body(shim: RawShim) -> None:
        await shim.send_line(json.dumps({"jsonrpc": "2.0", "id": "x", "method": "no_such_method"}).encode())
        reply = await shim.read_response()
        assert reply["id"] == "x"
        assert reply["error"]["code"] == -32601

    run(lambda: _with_raw(shim_argv, body))

    async def through_adapter() -> None:
        async with StdioAdapter(shim_argv, name="libnice") as ad:
            await ad.initialize()
            with pytest.raises(Unsupported):
                await ad.call("no_such_method")
            with pytest.raises(RemoteError) as err:
                await ad.gather("no-such-agent")
            assert err.value.code == -32001

    run(through_adapter)


def test_initialize_declares_name_version_and_capabilities(shim_argv: list[str]) -> None:
    async def body() -> None:
        async with StdioAdapter(shim_argv, name="libnice") as ad:
            info = await ad.initialize()
            assert info.name == "libnice"
            assert info.version == libnice.libnice_version()
            assert info.capabilities == libnice.capabilities()
            assert info.contract == "1.0"
            await ad.shutdown()
            assert ad.returncode == 0

    run(body)


# --------------------------------------------------------------------------------------- two real agents


@dataclass
class Pair:
    a: StdioAdapter
    b: StdioAdapter
    ea: Events
    eb: Events
    ia: str
    ib: str


async def _connect_pair(
    a: StdioAdapter,
    b: StdioAdapter,
    iface: str,
    *,
    trickle: bool = False,
    components: int = 1,
    lite_b: bool = False,
) -> tuple[Pair, dict[int, tuple[dict[str, Any], dict[str, Any]]]]:
    """Controlling A and controlled B with chosen credentials, connected; the selected pairs."""
    ea, eb = Events(a), Events(b)
    await a.initialize()
    await b.initialize()
    ia = await a.create_agent(
        AgentConfig(
            role="controlling",
            ufrag="AAAA",
            pwd="a" * 22,
            interfaces=[iface],
            trickle=trickle,
            components=components,
        )
    )
    ib = await b.create_agent(
        AgentConfig(
            role="controlled",
            ufrag="BBBB",
            pwd="b" * 22,
            interfaces=[iface],
            trickle=trickle,
            components=components,
            options={"lite": True} if lite_b else {},
        )
    )
    la, lb = await a.gather(ia), await b.gather(ib)
    assert (la.ufrag, la.pwd, lb.ufrag, lb.pwd) == ("AAAA", "a" * 22, "BBBB", "b" * 22)
    cands_a, cands_b = list(la.candidates), list(lb.candidates)
    if trickle:
        assert cands_a == [] and cands_b == []
        for ev, out in ((ea, cands_a), (eb, cands_b)):
            while (c := (await ev.expect("candidate"))["candidate"]) is not None:
                out.append(c)
    for cands in (cands_a, cands_b):
        assert len(cands) >= components
        assert all(c.startswith("candidate:") and _addr(c)[0] == iface for c in cands), cands
        assert {int(c.split()[1]) for c in cands} == set(range(1, components + 1))
    await a.set_remote(ia, lb.ufrag, lb.pwd, [] if trickle else cands_b, lite=lite_b)
    await b.set_remote(ib, la.ufrag, la.pwd, [] if trickle else cands_a)
    await a.connect(ia)
    await b.connect(ib)
    if trickle:
        for c in cands_b:
            await a.add_remote_candidate(ia, c)
        for c in cands_a:
            await b.add_remote_candidate(ib, c)
        await a.add_remote_candidate(ia, None)
        await b.add_remote_candidate(ib, None)
    pairs = {}
    for comp in range(1, components + 1):
        pa = await ea.expect("selected_pair", lambda p, c=comp: p["component"] == c)  # type: ignore[misc]
        pb = await eb.expect("selected_pair", lambda p, c=comp: p["component"] == c)  # type: ignore[misc]
        pairs[comp] = (pa, pb)
    return Pair(a, b, ea, eb, ia, ib), pairs


CASES = [
    pytest.param("127.0.0.1", False, 1, id="ipv4"),
    pytest.param("127.0.0.1", True, 1, id="ipv4-trickle"),
    pytest.param("127.0.0.1", False, 2, id="ipv4-two-components"),
    pytest.param(
        "::1",
        True,
        2,
        id="ipv6-trickle-two-components",
        marks=pytest.mark.skipif(not _ipv6_loopback(), reason="no ::1 here"),
    ),
]


@pytest.mark.parametrize(("iface", "trickle", "components"), CASES)
def test_two_shims_connect_and_exchange_data(shim_argv: list[str], iface: str, trickle: bool, components: int) -> None:
    async def body() -> None:
        async with (
            StdioAdapter(shim_argv, name="libnice-A") as a,
            StdioAdapter(shim_argv, name="libnice-B") as b,
        ):
            pair, pairs = await _connect_pair(a, b, iface, trickle=trickle, components=components)
            for comp, (pa, pb) in pairs.items():
                assert pa["agent"] == pair.ia and pb["agent"] == pair.ib
                assert _addr(pa["local"]) == _addr(pb["remote"])
                assert _addr(pa["remote"]) == _addr(pb["local"])
                assert pa["local"].split()[1] == str(comp)
            for comp in pairs:
                ping, pong = b"ping\x00\xff" + bytes([comp]), b"pong\x01" + bytes([comp])
                await pair.a.send(pair.ia, comp, ping)
                got = await pair.eb.expect("data", lambda p, c=comp: p["component"] == c)  # type: ignore[misc]
                assert base64.b64decode(got["data"]) == ping
                await pair.b.send(pair.ib, comp, pong)
                got = await pair.ea.expect("data", lambda p, c=comp: p["component"] == c)  # type: ignore[misc]
                assert base64.b64decode(got["data"]) == pong
            for ev, agent in ((pair.ea, pair.ia), (pair.eb, pair.ib)):
                done = await ev.expect("state", lambda p: p["state"] == "completed")
                assert done["agent"] == agent
            await pair.a.close(pair.ia)
            closed = await pair.ea.expect("state", lambda p: p["state"] == "closed")
            assert closed["agent"] == pair.ia

    run(body)


def test_restart_gives_new_or_chosen_credentials(shim_argv: list[str]) -> None:
    async def body() -> None:
        async with StdioAdapter(shim_argv, name="libnice") as ad:
            await ad.initialize()
            agent = await ad.create_agent(AgentConfig(role="controlling", ufrag="RRRR", pwd="r" * 22))
            before = await ad.gather(agent)
            fresh = await ad.restart(agent)
            assert (fresh.ufrag, fresh.pwd) != (before.ufrag, before.pwd)
            assert len(fresh.ufrag) >= 4 and len(fresh.pwd) >= 22  # RFC 8445 section 5.3
            chosen = await ad.call("restart", {"agent": agent, "ufrag": "NEWU", "pwd": "n" * 22})
            assert chosen == {"ufrag": "NEWU", "pwd": "n" * 22}

    run(body)


def test_restart_reconnects_with_the_new_credentials(shim_argv: list[str]) -> None:
    async def body() -> None:
        async with StdioAdapter(shim_argv, name="libnice-A") as a, StdioAdapter(shim_argv, name="libnice-B") as b:
            pair, _ = await _connect_pair(a, b, "127.0.0.1")
            ca, cb = await a.restart(pair.ia), await b.restart(pair.ib)
            assert ca.ufrag != "AAAA" and cb.ufrag != "BBBB"
            la, lb = await a.gather(pair.ia), await b.gather(pair.ib)
            assert (la.ufrag, la.pwd, lb.ufrag, lb.pwd) == (ca.ufrag, ca.pwd, cb.ufrag, cb.pwd)
            pair.ea.seen.clear()
            pair.eb.seen.clear()
            await a.set_remote(pair.ia, lb.ufrag, lb.pwd, lb.candidates)
            await b.set_remote(pair.ib, la.ufrag, la.pwd, la.candidates)
            await a.connect(pair.ia)
            await b.connect(pair.ib)
            await pair.ea.expect("selected_pair")
            await pair.eb.expect("selected_pair")
            await a.send(pair.ia, 1, b"after restart")
            got = await pair.eb.expect("data")
            assert base64.b64decode(got["data"]) == b"after restart"

    run(body)


def test_lite_agent_connects_to_a_full_agent(shim_argv: list[str]) -> None:
    async def body() -> None:
        async with StdioAdapter(shim_argv, name="libnice-A") as a, StdioAdapter(shim_argv, name="libnice-B") as b:
            pair, pairs = await _connect_pair(a, b, "127.0.0.1", lite_b=True)
            pa, pb = pairs[1]
            assert _addr(pa["local"]) == _addr(pb["remote"])
            await b.send(pair.ib, 1, b"from lite")
            assert base64.b64decode((await pair.ea.expect("data"))["data"]) == b"from lite"

    run(body)


def test_empty_interface_list_is_refused(shim_argv: list[str]) -> None:
    async def body() -> None:
        async with StdioAdapter(shim_argv, name="libnice") as ad:
            await ad.initialize()
            with pytest.raises(RemoteError) as err:
                await ad.create_agent(AgentConfig(role="controlling", interfaces=[]))
            assert err.value.code == -32602

    run(body)


def test_remote_candidates_unparseable_refused_unusable_ignored(shim_argv: list[str]) -> None:
    async def body() -> None:
        async with StdioAdapter(shim_argv, name="libnice") as ad:
            await ad.initialize()
            agent = await ad.create_agent(AgentConfig(role="controlled", trickle=True))
            await ad.gather(agent)
            with pytest.raises(RemoteError) as err:
                await ad.set_remote(agent, "XXXX", "x" * 22, ["candidate:garbage"])
            assert err.value.code == -32602 and "candidate:garbage" in err.value.message
            await ad.set_remote(
                agent,
                "XXXX",
                "x" * 22,
                [
                    "candidate:1 1 udp 2130706431 127.0.0.1 9 typ host generation 0",  # lower-case transport
                    "candidate:2 1 tcp 1518280447 127.0.0.1 9 typ host tcptype passive",  # ICE-TCP is off
                    "candidate:3 1 UDP 2130706431 0d9c6f3e-1.local 9 typ host",  # mDNS
                ],
            )
            await ad.add_remote_candidate(agent, "candidate:4 1 UDP 2130706430 127.0.0.1 10 typ host")
            await ad.add_remote_candidate(agent, None)
            with pytest.raises(RemoteError) as err:
                await ad.add_remote_candidate(agent, "candidate:5 1 UDP 2130706429 127.0.0.1 11 typ host")
            assert err.value.code == -32000
            stderr = ad.diagnostics()
            assert "ignoring remote candidate (not UDP" in stderr and "(an mDNS name)" in stderr

    run(body)


def test_invalid_create_agent_params_and_early_connect_are_refused(shim_argv: list[str]) -> None:
    async def body() -> None:
        async with StdioAdapter(shim_argv, name="libnice") as ad:
            await ad.initialize()
            for bad in (
                AgentConfig(role="boss"),
                AgentConfig(role="controlling", ufrag="abc", pwd="p" * 22),  # ufrag < 4 chars
                AgentConfig(role="controlling", ufrag="ab:c", pwd="p" * 22),  # ':' is not an ice-char
                AgentConfig(role="controlling", ufrag="abcd", pwd="p" * 21),  # pwd < 22 chars
                AgentConfig(role="controlling", interfaces=[]),  # libnice would use every interface
                AgentConfig(role="controlling", interfaces=["eth0"]),
            ):
                with pytest.raises(RemoteError) as err:
                    await ad.create_agent(bad)
                assert err.value.code == -32602, bad
            events = Events(ad)
            agent = await ad.create_agent(AgentConfig(role="controlling", options={"no_such_knob": 1}))
            assert (await events.expect("state"))["state"] == "new"
            with pytest.raises(RemoteError) as err:
                await ad.connect(agent)
            assert err.value.code == -32000
            with pytest.raises(RemoteError) as err:
                await ad.send(agent, 1, b"too early")
            assert err.value.code == -32000
            assert "ignoring unknown option no_such_knob" in ad.diagnostics()

    run(body)


# ----------------------------------------------------------------------------------------- TURN client


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _stun_answers(port: int, deadline: float) -> None:
    """Wait (by probing, each probe with its own short deadline) until a STUN server answers a Binding."""
    loop = asyncio.get_running_loop()
    request = bytes.fromhex("0001 0000 2112a442") + os.urandom(12)  # RFC 8489 section 5
    async with asyncio.timeout(deadline):
        while True:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.setblocking(False)
                await loop.sock_connect(s, ("127.0.0.1", port))
                await loop.sock_sendall(s, request)
                try:
                    async with asyncio.timeout(0.2):
                        reply = await loop.sock_recv(s, 2048)
                except (TimeoutError, ConnectionRefusedError):
                    continue
                if reply[8:20] == request[8:20]:
                    return


@pytest.mark.skipif(shutil.which("turnserver") is None, reason="coturn (turnserver) is not installed")
def test_relay_only_agent_connects_through_turn(shim_argv: list[str], tmp_path: Path) -> None:
    port = _free_udp_port()
    relay_lo = 49152 + (port % 8000)
    turn = subprocess.Popen(
        [
            "turnserver", "-c", "/dev/null", "-n", "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1",
            f"--listening-port={port}", f"--min-port={relay_lo}", f"--max-port={relay_lo + 40}",
            "--lt-cred-mech", "--user=alice:secret", "--realm=iut.test", f"--userdb={tmp_path / 'db'}",
            "--no-tls", "--no-dtls", "--no-cli", "--allow-loopback-peers", "--fingerprint",
            f"--pidfile={tmp_path / 'pid'}", "--log-file=stdout", "--simple-log",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip

    async def body() -> None:
        await _stun_answers(port, DEADLINE)
        async with StdioAdapter(shim_argv, name="libnice-A") as a, StdioAdapter(shim_argv, name="libnice-B") as b:
            ea, eb = Events(a), Events(b)
            await a.initialize()
            await b.initialize()
            server = TurnServer(f"turn:127.0.0.1:{port}", "alice", "secret")
            ia = await a.create_agent(AgentConfig(role="controlling", relay_only=True, turn_servers=[server]))
            ib = await b.create_agent(AgentConfig(role="controlled"))
            la, lb = await a.gather(ia), await b.gather(ib)
            assert la.candidates and all(" typ relay " in c for c in la.candidates), la.candidates
            await a.set_remote(ia, lb.ufrag, lb.pwd, lb.candidates)
            await b.set_remote(ib, la.ufrag, la.pwd, la.candidates)
            await a.connect(ia)
            await b.connect(ib)
            pa = await ea.expect("selected_pair")
            assert " typ relay " in pa["local"]
            await eb.expect("selected_pair")
            await a.send(ia, 1, b"through the relay")
            assert base64.b64decode((await eb.expect("data"))["data"]) == b"through the relay"
            await b.send(ib, 1, b"and back")
            assert base64.b64decode((await ea.expect("data"))["data"]) == b"and back"
            await a.close(ia)  # deallocates (RFC 8656 section 7): close waits for it

    try:
        run(body)
    finally:
        turn.terminate()
        turn.wait(timeout=DEADLINE)
