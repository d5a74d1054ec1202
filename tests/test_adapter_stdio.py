"""StdioAdapter against misbehaving shims, and the server (serve) round trip (docs/adapter-contract.md)."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

from conformance.adapters import (
    AdapterError,
    AdapterTimeout,
    AgentConfig,
    IutInfo,
    LocalDescription,
    Notification,
    RemoteError,
    StdioAdapter,
    UnknownIut,
    Unsupported,
    get_iut,
    known_iuts,
    make_adapter,
)
from conformance.adapters.base import CONTRACT_VERSION, Credentials
from conformance.adapters.server import serve

SHIMS = Path(__file__).resolve().parent / "shims"
T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T], deadline: float = 20.0) -> T:
    """Run one test coroutine with an overall deadline."""

    async def bounded() -> T:
        async with asyncio.timeout(deadline):
            return await coro

    return asyncio.run(bounded())


def shim(name: str, *args: str, **kw: Any) -> StdioAdapter:
    """A StdioAdapter on one of tests/shims, with 1 s deadlines."""
    kw.setdefault("request_timeout", 1.0)
    kw.setdefault("start_timeout", 1.0)
    return StdioAdapter([sys.executable, str(SHIMS / f"{name}.py"), *args], name=name, **kw)


async def fails_with(exc_type: type[BaseException], call: Callable[[], Awaitable[Any]]) -> tuple[BaseException, float]:
    """Await call, which must raise exc_type; returns the exception and the time it took."""
    t0 = time.monotonic()
    with pytest.raises(exc_type) as info:
        await call()
    return info.value, time.monotonic() - t0


@pytest.mark.parametrize(
    ("mode", "cause"),
    [
        ("notjson", "not JSON: 'Segmentation fault? no, just garbage xxx"),
        ("array", "not a JSON object: '[1, 2, 3]'"),
        ("version", 'jsonrpc is not "2.0"'),
        ("wrongtype", "the result of 'initialize' is not a JSON object"),
    ],
)
def test_stdio_garbage_line_breaks_the_adapter(mode: str, cause: str) -> None:
    async def main() -> None:
        adapter = shim("garbage", mode)
        try:
            exc, took = await fails_with(AdapterError, adapter.initialize)
            assert not isinstance(exc, AdapterTimeout)
            assert cause in str(exc)
            assert "contract violation on stdout" in str(exc)
            assert took < 1.0
            if mode == "notjson":  # the quoted line is truncated to 200 characters
                assert "x" * 150 + "..." in str(exc)
                assert "x" * 300 not in str(exc)
            later, _ = await fails_with(AdapterError, lambda: adapter.gather("a1"))
            assert "unusable" in str(later) and cause in str(later)
        finally:
            await adapter.shutdown()
        assert adapter.returncode is not None

    run(main())


def test_stdio_garbage_after_a_good_initialize() -> None:
    async def main() -> None:
        adapter = shim("garbage", "later")
        try:
            info = await adapter.initialize()
            assert info == IutInfo("testshim", "0.0", frozenset({"controlling"}), "1.0")
            exc, _ = await fails_with(AdapterError, lambda: adapter.gather("a1"))
            assert "not JSON: '{oops'" in str(exc)
        finally:
            await adapter.shutdown()

    run(main())


def test_stdio_unknown_capability_is_named() -> None:
    async def main() -> None:
        adapter = shim("garbage", "unknowncap")
        try:
            exc, _ = await fails_with(AdapterError, adapter.initialize)
            assert "unknown capabilities ['telepathy']" in str(exc)
        finally:
            await adapter.shutdown()

    run(main())


def test_stdio_crash_mid_request_names_exit_code_and_stderr() -> None:
    async def main() -> None:
        adapter = shim("crash")
        try:
            exc, took = await fails_with(AdapterError, adapter.initialize)
            text = str(exc)
            assert "exited with code 3" in text
            assert "while 'initialize' was pending" in text
            assert "fatal: the ICE agent exploded" in text
            assert took < 1.0
            later, _ = await fails_with(AdapterError, lambda: adapter.connect("a1"))
            assert "exited with code 3" in str(later)
            assert adapter.stderr_tail(1) == ["fatal: the ICE agent exploded"]
            assert len(adapter.stderr_tail()) == 200
            assert "noise line 0\n" in adapter.diagnostics()
        finally:
            await adapter.shutdown()
            await adapter.shutdown()  # idempotent, and quiet on a dead process

    run(main())


def test_stdio_crash_between_requests() -> None:
    async def main() -> None:
        adapter = shim("crash", "after-init")
        try:
            await adapter.initialize()
            exc, _ = await fails_with(AdapterError, lambda: adapter.gather("a1"))
            assert "exited with code 3 while 'gather' was pending" in str(exc)
        finally:
            await adapter.shutdown()

    run(main())


def test_stdio_hang_times_out_and_kills() -> None:
    async def main() -> None:
        adapter = shim("hang", start_timeout=0.5)
        try:
            exc, took = await fails_with(AdapterTimeout, adapter.initialize)
            assert "no answer to 'initialize' within 0.5 s" in str(exc)
            assert "hang shim started" in str(exc)
            assert 0.4 < took < 1.5
            assert adapter.pid is not None
            assert await asyncio.wait_for(_wait_exit(adapter), 2.0) is not None
            later, _ = await fails_with(AdapterError, lambda: adapter.gather("a1"))
            assert "unusable: no answer to 'initialize'" in str(later)
        finally:
            await adapter.shutdown()

    run(main())


async def _wait_exit(adapter: StdioAdapter) -> int | None:
    proc = adapter._proc
    assert proc is not None
    return await proc.wait()


def test_stdio_per_method_deadline() -> None:
    async def main() -> None:
        adapter = shim("hang", method_timeouts={"gather": 0.3})
        try:
            exc, took = await fails_with(AdapterTimeout, lambda: adapter.gather("a1"))
            assert "'gather' within 0.3 s" in str(exc)
            assert took < 1.0
        finally:
            await adapter.shutdown()

    run(main())


def test_stdio_unknown_id() -> None:
    async def main() -> None:
        adapter = shim("wrong_id")
        try:
            exc, took = await fails_with(AdapterError, adapter.initialize)
            assert "matches no pending request" in str(exc)
            assert "id 1001" in str(exc)
            assert took < 1.0
        finally:
            await adapter.shutdown()

    run(main())


def test_stdio_minus_32601_is_unsupported_and_other_errors_remote() -> None:
    async def main() -> None:
        adapter = shim("unsupported")
        try:
            info = await adapter.initialize()
            assert info.name == "testshim"
            note = await asyncio.wait_for(adapter.notifications.get(), 1.0)
            assert (note.method, note.params) == ("state", {"agent": "x", "state": "new"})
            assert note.time > 0
            exc, _ = await fails_with(Unsupported, lambda: adapter.restart("x"))
            assert "restart: not supported (-32601: method restart not found)" in str(exc)
            remote, _ = await fails_with(RemoteError, lambda: adapter.create_agent(AgentConfig("controlling")))
            assert isinstance(remote, RemoteError)
            assert (remote.code, remote.message, remote.data) == (-32000, "no agents today", {"why": "test"})
            assert "create_agent: error -32000" in str(remote)
            # Still usable after error objects.
            await fails_with(Unsupported, lambda: adapter.start_server("turn", "127.0.0.1:0"))
        finally:
            t0 = time.monotonic()
            await adapter.shutdown()
            assert time.monotonic() - t0 < 1.0  # the shim exits on "shutdown"
        assert adapter.returncode == 0
        closed, _ = await fails_with(AdapterError, adapter.initialize)
        assert "shut down" in str(closed)

    run(main())


def test_stdio_late_answer_to_a_cancelled_request_is_ignored(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="conformance.adapters.stdio")

    async def main() -> None:
        adapter = shim("unsupported")
        try:
            await adapter.initialize()
            gathering = asyncio.create_task(adapter.gather("a1"))
            await asyncio.sleep(0)  # let the request go out (a scheduling step, not a wait for an event)
            gathering.cancel()
            with pytest.raises(asyncio.CancelledError):
                await gathering
            # The shim now answers the abandoned gather, then this request.
            await fails_with(Unsupported, lambda: adapter.restart("a1"))
            await fails_with(Unsupported, lambda: adapter.restart("a1"))
        finally:
            await adapter.shutdown()
        assert adapter.returncode == 0

    run(main())
    assert "late response to abandoned request 2" in caplog.text


def test_stdio_missing_program() -> None:
    async def main() -> None:
        adapter = StdioAdapter(["/nonexistent/shim-binary"], request_timeout=1.0)
        exc, _ = await fails_with(AdapterError, adapter.initialize)
        assert "could not start" in str(exc)
        await adapter.shutdown()

    run(main())


def test_stdio_shutdown_before_start_is_a_no_op() -> None:
    async def main() -> None:
        adapter = shim("hang")
        await adapter.shutdown()
        assert adapter.pid is None

    run(main())


# -- registry ------------------------------------------------------------------------------------


def test_registry_knows_aioice_and_names_the_known_on_error() -> None:
    assert {"aioice", "aioice-stdio"} <= set(known_iuts())
    assert get_iut("aioice").launcher == "inprocess" and get_iut("aioice").kind == "ice-agent"
    assert get_iut("aioice-stdio").launcher == "stdio"
    caps = get_iut("aioice").declared_capabilities()
    assert caps is not None and {"controlling", "controlled", "set_credentials"} <= caps
    assert "restart" not in caps and "lite" not in caps
    with pytest.raises(UnknownIut, match=r"unknown IUT 'nope'; known IUTs: .*aioice"):
        get_iut("nope")


def test_registry_cmd_makes_a_stdio_adapter() -> None:
    adapter = make_adapter(cmd=f"{sys.executable} -u {SHIMS / 'hang.py'}", request_timeout=1.0)
    assert isinstance(adapter, StdioAdapter)
    assert adapter.argv[1:] == ["-u", str(SHIMS / "hang.py")]
    assert adapter.request_timeout == 1.0
    with pytest.raises(ValueError, match="empty"):
        make_adapter(cmd="  ")


# -- the server (serve) ------------------------------------------------------------------------


class _FakeAdapter:
    """A minimal in-process adapter for the server tests: echoes ``send`` back as ``data``."""

    def __init__(self) -> None:
        self.notifications: asyncio.Queue[Notification] = asyncio.Queue()
        self.shut = False

    async def initialize(self) -> IutInfo:
        return IutInfo("fake", "1.2.3", frozenset({"controlling", "trickle"}))

    async def create_agent(self, config: AgentConfig) -> str:
        if config.role != "controlling":
            raise RemoteError("create_agent", -32602, f"bad role {config.role}")
        return "f1"

    async def gather(self, agent: str) -> LocalDescription:
        return LocalDescription("ufra", "p" * 22, ["candidate:1 1 udp 1 127.0.0.1 9 typ host"])

    async def set_remote(self, agent: str, ufrag: str, pwd: str, candidates: list[str], lite: bool = False) -> None:
        return None

    async def add_remote_candidate(self, agent: str, candidate: str | None) -> None:
        return None

    async def connect(self, agent: str) -> None:
        raise AdapterError("the fake cannot connect")

    async def send(self, agent: str, component: int, data: bytes) -> None:
        note = Notification("data", {"agent": agent, "component": component, "data": data[::-1]})
        self.notifications.put_nowait(note)

    async def restart(self, agent: str) -> Credentials:
        raise Unsupported("no restart")

    async def close(self, agent: str) -> None:
        raise ZeroDivisionError("boom")

    async def start_server(
        self,
        kind: str,
        listen: str,
        realm: str | None = None,
        users: dict[str, str] | None = None,
        options: dict[str, Any] | None = None,
    ) -> tuple[str, str]:
        return "s1", listen

    async def stop_server(self, server: str) -> None:
        return None

    async def shutdown(self) -> None:
        self.shut = True

    def diagnostics(self) -> str:
        return ""


class _Sink:
    """A LineWriter that hands each written line to a queue."""

    def __init__(self) -> None:
        self.lines: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    def write(self, data: bytes) -> None:
        for line in data.splitlines():
            self.lines.put_nowait(json.loads(line))

    async def drain(self) -> None:
        return None


def test_server_maps_methods_errors_and_notifications() -> None:
    async def main() -> None:
        fake = _FakeAdapter()
        reader = asyncio.StreamReader()
        sink = _Sink()
        task = asyncio.create_task(serve(fake, reader, sink))

        async def ask(line: str) -> dict[str, Any]:
            reader.feed_data(line.encode() + b"\n")
            return await asyncio.wait_for(sink.lines.get(), 2.0)

        def req(rid: int, method: str, params: Any) -> str:
            return json.dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": params})

        r = await ask(req(1, "initialize", {"contract": CONTRACT_VERSION}))
        assert r["result"] == {
            "name": "fake",
            "version": "1.2.3",
            "capabilities": ["controlling", "trickle"],
            "contract": CONTRACT_VERSION,
        }
        assert (await ask(req(2, "create_agent", {"role": "controlling"})))["result"] == {"agent": "f1"}
        bad_role = await ask(req(3, "create_agent", {"role": "controlled"}))
        assert bad_role["error"]["code"] == -32602
        assert (await ask(req(4, "nope", {})))["error"]["code"] == -32601
        assert (await ask(req(5, "restart", {"agent": "f1"})))["error"] == {
            "code": -32601,
            "message": "no restart",
        }
        missing = await ask(req(6, "gather", {}))
        assert missing["error"]["code"] == -32602 and "'agent'" in missing["error"]["message"]
        assert (await ask(req(7, "connect", {"agent": "f1"})))["error"] == {
            "code": -32603,
            "message": "the fake cannot connect",
        }
        crash = await ask(req(8, "close", {"agent": "f1"}))
        assert crash["error"] == {"code": -32603, "message": "ZeroDivisionError: boom"}
        assert (await ask("not json"))["error"]["code"] == -32700
        assert (await ask('{"jsonrpc": "1.0", "id": 9, "method": "x"}'))["error"]["code"] == -32600
        bad_b64 = await ask(req(10, "send", {"agent": "f1", "component": 1, "data": "!!"}))
        assert bad_b64["error"]["code"] == -32602
        b64 = base64.b64encode(b"abc").decode()
        sent = await ask(req(11, "send", {"agent": "f1", "component": 1, "data": b64}))
        note = await asyncio.wait_for(sink.lines.get(), 2.0)
        both = sorted([sent, note], key=lambda m: "id" in m)
        assert both[0] == {
            "jsonrpc": "2.0",
            "method": "data",
            "params": {"agent": "f1", "component": 1, "data": base64.b64encode(b"cba").decode()},
        }
        assert both[1] == {"jsonrpc": "2.0", "id": 11, "result": {}}
        started = await ask(req(12, "start_server", {"kind": "turn", "listen": "127.0.0.1:3478"}))
        assert started["result"] == {"server": "s1", "address": "127.0.0.1:3478"}
        assert (await ask(req(13, "shutdown", {})))["result"] == {}
        await asyncio.wait_for(task, 2.0)
        assert fake.shut

    run(main())


def test_server_eof_shuts_the_adapter_down() -> None:
    async def main() -> None:
        fake = _FakeAdapter()
        reader = asyncio.StreamReader()
        reader.feed_eof()
        await asyncio.wait_for(serve(fake, reader, _Sink()), 2.0)
        assert fake.shut

    run(main())


@pytest.mark.parametrize(
    ("mode", "options", "applied"),
    [
        ("report", {"ice_options": ["ice2"], "ice_mismatch": True}, ["ice_options"]),
        ("report", {"ice_mismatch": True}, []),
        ("omit", {"ice_options": ["ice2"]}, None),  # a shim without contract 1.2 reports nothing
    ],
)
def test_stdio_applied_options_are_what_the_shim_reports(
    mode: str, options: dict[str, Any], applied: list[str] | None
) -> None:
    """Contract 1.2: set_remote's optional ``applied_options``; a shim that leaves it out delivered nothing."""

    async def main() -> None:
        adapter = shim("options", mode)
        try:
            await adapter.initialize()
            assert await adapter.set_remote("a1", "u", "p" * 22, [], options=options) == applied
        finally:
            await adapter.shutdown()

    run(main())


def test_stdio_malformed_applied_options_is_an_adapter_error() -> None:
    async def main() -> None:
        adapter = shim("options", "bad")
        try:
            await adapter.initialize()
            exc, _ = await fails_with(AdapterError, lambda: adapter.set_remote("a1", "u", "p" * 22, []))
            assert "applied_options must be a list of option names" in str(exc)
        finally:
            await adapter.shutdown()

    run(main())


@pytest.mark.parametrize("applied", [["ice_options"], [], None])
def test_server_passes_applied_options_on(applied: list[str] | None) -> None:
    """An in-process adapter served as a shim: its set_remote's return value becomes ``applied_options`` (omitted
    when None), so both routes report the same delivery."""

    class Reporting(_FakeAdapter):
        async def set_remote(
            self,
            agent: str,
            ufrag: str,
            pwd: str,
            candidates: list[str],
            lite: bool = False,
            options: dict[str, Any] | None = None,
        ) -> list[str] | None:
            return applied

    async def main() -> None:
        reader = asyncio.StreamReader()
        sink = _Sink()
        task = asyncio.create_task(serve(Reporting(), reader, sink))
        params = {"agent": "f1", "ufrag": "u", "pwd": "p" * 22, "candidates": [], "options": {"ice_options": ["ice2"]}}
        reader.feed_data(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "set_remote", "params": params}).encode())
        reader.feed_data(b"\n")
        answer = await asyncio.wait_for(sink.lines.get(), 2.0)
        assert answer["result"] == ({} if applied is None else {"applied_options": applied})
        reader.feed_eof()
        await asyncio.wait_for(task, 2.0)

    run(main())
