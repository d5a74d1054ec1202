"""The shim side of the contract: serve any in-process :class:`Adapter` as JSON-RPC 2.0 over stdin/stdout.

Theory of operation: :func:`serve` reads one JSON object per line, validates and converts its params, and
runs the requests against the adapter one at a time, in order (so a pipelined ``create_agent`` then
``gather`` is never reordered), writing each response when it completes. A second task forwards the
adapter's notifications as JSON-RPC notifications, with ``bytes`` values base64-encoded. Exceptions map to
error objects: :class:`Unsupported` to -32601, bad params to -32602, :class:`RemoteError` to its own code,
anything else to -32603 with the exception text (docs/adapter-contract.md, "Errors"). ``shutdown`` or EOF on
stdin shuts the adapter down and ends the loop. Logging goes to stderr; stdout carries only the protocol.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from .base import (
    CONTRACT_VERSION,
    AdapterError,
    AgentConfig,
    ErrorCode,
    IutAdapter,
    IutInfo,
    LocalDescription,
    RemoteError,
    Unsupported,
    accepts_remote_options,
)
from .contract import METHODS, Method

__all__ = ["LineReader", "LineWriter", "main_for", "serve"]

logger = logging.getLogger(__name__)

_MAX_LINE = 1 << 20


class LineReader(Protocol):
    """Where requests come from (an :class:`asyncio.StreamReader` fits)."""

    async def readline(self) -> bytes: ...


class LineWriter(Protocol):
    """Where responses and notifications go (an :class:`asyncio.StreamWriter` fits)."""

    def write(self, data: bytes) -> None: ...

    async def drain(self) -> None: ...


class _BadParams(Exception):
    """Internal: the request's params do not fit the method (-32602)."""


class _ThreadReader:
    """Line reader over a blocking file (stdin redirected from a regular file)."""

    def __init__(self, fileobj: Any) -> None:
        self._file = fileobj

    async def readline(self) -> bytes:
        line: bytes = await asyncio.to_thread(self._file.readline, _MAX_LINE + 1)
        return line


class _BlockingWriter:
    """Line writer over a blocking file (stdout redirected to a regular file)."""

    def __init__(self, fileobj: Any) -> None:
        self._file = fileobj

    def write(self, data: bytes) -> None:
        self._file.write(data)

    async def drain(self) -> None:
        self._file.flush()


async def _stdio() -> tuple[LineReader, LineWriter]:
    """Async reader and writer over this process's stdin and stdout."""
    loop = asyncio.get_running_loop()
    reader: LineReader
    writer: LineWriter
    try:
        sreader = asyncio.StreamReader(limit=_MAX_LINE)
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(sreader), sys.stdin.buffer)
        reader = sreader
    except (ValueError, OSError):  # a regular file: no non-blocking pipe transport
        reader = _ThreadReader(sys.stdin.buffer)
    try:
        transport, protocol = await loop.connect_write_pipe(
            asyncio.streams.FlowControlMixin, os.fdopen(os.dup(sys.stdout.fileno()), "wb")
        )
        writer = asyncio.StreamWriter(transport, protocol, None, loop)
    except (ValueError, OSError):
        writer = _BlockingWriter(sys.stdout.buffer)
    return reader, writer


def _obj(params: dict[str, Any], key: str, kind: type, *, default: Any = ..., nullable: bool = False) -> Any:
    """One param, type-checked; raises _BadParams naming it."""
    if key not in params:
        if default is ...:
            raise _BadParams(f"missing param {key!r}")
        return default
    value = params[key]
    if value is None and nullable:
        return None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise _BadParams(f"param {key!r} must be {kind.__name__}, got {type(value).__name__}")
    return value


def _args(method: Method, params: dict[str, Any]) -> list[Any]:
    """The method's params in table order, type-checked (``contract.METHODS``)."""
    out = []
    for p in method.params:
        kind = p.kind if isinstance(p.kind, type) else object
        out.append(_obj(params, p.name, kind, default=... if p.required else p.default, nullable=p.nullable))
    return out


def _b64(params: dict[str, Any], key: str) -> bytes:
    try:
        return base64.b64decode(_obj(params, key, str), validate=True)
    except ValueError as exc:
        raise _BadParams(f"param {key!r} is not base64: {exc}") from None


def _jsonable(value: Any) -> Any:
    """Notification params in JSON form: bytes become base64 text."""
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _initialize_result(info: IutInfo) -> dict[str, Any]:
    return {
        "name": info.name,
        "version": info.version,
        "capabilities": sorted(info.capabilities),
        "contract": CONTRACT_VERSION,
    }


def _gather_result(desc: LocalDescription) -> dict[str, Any]:
    out: dict[str, Any] = {"ufrag": desc.ufrag, "pwd": desc.pwd, "candidates": list(desc.candidates)}
    if desc.ice_options is not None:  # contract 1.1
        out["ice_options"] = list(desc.ice_options)
    if desc.remote_candidates is not None:
        out["remote_candidates"] = list(desc.remote_candidates)
    return out


#: How each method's return value becomes its JSON result (the others answer ``{}``).
_RESULTS: dict[str, Callable[[Any], dict[str, Any]]] = {
    "initialize": _initialize_result,
    "create_agent": lambda agent: {"agent": agent},
    "gather": _gather_result,
    # Contract 1.2: what the adapter handed to its IUT; left out when it does not say.
    "set_remote": lambda applied: {} if applied is None else {"applied_options": list(applied)},
    "restart": lambda creds: {"ufrag": creds.ufrag, "pwd": creds.pwd},
    "start_server": lambda started: {"server": started[0], "address": started[1]},
}


def _bind(adapter: IutAdapter, method: str, params: dict[str, Any]) -> Callable[[], Awaitable[dict[str, Any]]]:
    """Validate params against ``contract.METHODS`` and return the call to make (docs/adapter-contract.md §3).

    A method outside the table, or one of the other kind than the adapter's, is -32601 (unsupported)."""
    spec = METHODS.get(method)
    if spec is None:
        raise Unsupported(f"unknown method {method!r}")
    fn = getattr(adapter, method, None)
    if fn is None:
        kind = "an ICE agent" if spec.kind == "ice-agent" else "a STUN or TURN server"
        raise Unsupported(f"{method}: this IUT is not {kind}")
    args = _args(spec, params)
    if method == "initialize":
        theirs = args.pop()
        if isinstance(theirs, str) and theirs.split(".")[0] != CONTRACT_VERSION.split(".")[0]:
            logger.warning("the harness speaks contract %s, this shim %s", theirs, CONTRACT_VERSION)
    elif method == "create_agent":
        try:
            args = [AgentConfig.from_json(params)]
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise _BadParams(f"create_agent: {type(exc).__name__}: {exc}") from None
    elif method == "set_remote":
        if not all(isinstance(c, str) for c in args[3]):
            raise _BadParams("param 'candidates' must be a list of strings")
        remote_options = args.pop()
        if remote_options and accepts_remote_options(fn):  # contract 1.1; older adapters get the 1.0 call
            fn = functools.partial(fn, options=remote_options)
    elif method == "send":
        args[2] = _b64(params, "data")
    encode = _RESULTS.get(method, lambda _: {})

    async def call() -> dict[str, Any]:
        return encode(await fn(*args))

    return call


def _error(rid: Any, code: int, message: str, data: Any = None) -> dict[str, Any]:
    err: dict[str, Any] = {"code": int(code), "message": message}
    if data is not None:
        err["data"] = data
    return {"jsonrpc": "2.0", "id": rid, "error": err}


async def serve(
    adapter: IutAdapter,
    reader: LineReader | None = None,
    writer: LineWriter | None = None,
) -> None:
    """Serve ``adapter`` over JSON-RPC 2.0 lines until ``shutdown`` or EOF (docs/adapter-contract.md)."""
    if reader is None or writer is None:
        std_reader, std_writer = await _stdio()
        reader = reader or std_reader
        writer = writer or std_writer
    out = writer
    write_lock = asyncio.Lock()
    done = asyncio.Event()

    async def emit(obj: dict[str, Any]) -> None:
        line = json.dumps(obj, separators=(",", ":")) + "\n"
        async with write_lock:
            out.write(line.encode("utf-8"))
            await out.drain()

    async def forward_notifications() -> None:
        while True:
            note = await adapter.notifications.get()
            params = _jsonable(note.params)
            await emit({"jsonrpc": "2.0", "method": note.method, "params": params})

    async def handle(rid: Any, method: str, call: Callable[[], Awaitable[dict[str, Any]]]) -> None:
        try:
            result = await call()
            response: dict[str, Any] = {"jsonrpc": "2.0", "id": rid, "result": result}
        except Unsupported as exc:
            response = _error(rid, ErrorCode.METHOD_NOT_FOUND, str(exc))
        except RemoteError as exc:
            response = _error(rid, exc.code, exc.message, exc.data)
        except AdapterError as exc:
            response = _error(rid, ErrorCode.INTERNAL_ERROR, str(exc))
        except Exception as exc:
            logger.exception("%s failed", method)
            response = _error(rid, ErrorCode.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}")
        try:
            await emit(response)
        except (ConnectionError, RuntimeError) as exc:
            logger.warning("could not write the response to %s: %s", method, exc)
            done.set()
        if method == "shutdown":
            done.set()

    forwarder = asyncio.create_task(forward_notifications(), name="notifications")

    async def read_loop() -> None:
        while True:
            try:
                line = await reader.readline()
            except ValueError:
                await emit(_error(None, ErrorCode.PARSE_ERROR, f"line longer than {_MAX_LINE} bytes"))
                continue
            if not line:
                logger.info("EOF on stdin")
                return
            if not line.strip():
                continue
            try:
                msg = json.loads(line)
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                await emit(_error(None, ErrorCode.PARSE_ERROR, f"not JSON: {exc}"))
                continue
            rid = msg.get("id") if isinstance(msg, dict) else None
            if (
                not isinstance(msg, dict)
                or msg.get("jsonrpc") != "2.0"
                or not isinstance(msg.get("method"), str)
                or not isinstance(msg.get("params", {}), dict)
            ):
                await emit(_error(rid, ErrorCode.INVALID_REQUEST, "not a JSON-RPC 2.0 request object"))
                continue
            method: str = msg["method"]
            if "id" not in msg:
                logger.warning("ignoring notification %r from the harness", method)
                continue
            try:
                call = _bind(adapter, method, msg.get("params", {}))
            except Unsupported as exc:
                await emit(_error(rid, ErrorCode.METHOD_NOT_FOUND, str(exc)))
                continue
            except _BadParams as exc:
                await emit(_error(rid, ErrorCode.INVALID_PARAMS, f"{method}: {exc}"))
                continue
            await handle(rid, method, call)
            if method == "shutdown":
                return

    reading = asyncio.create_task(read_loop(), name="read-loop")
    waiting = asyncio.create_task(done.wait(), name="done")
    try:
        await asyncio.wait({reading, waiting}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        reading.cancel()
        waiting.cancel()
        # EOF without shutdown: still release the IUT's sockets.
        if not done.is_set():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(adapter.shutdown(), 5.0)
        forwarder.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.gather(reading, waiting, forwarder, return_exceptions=True)
        # Flush what the adapter emitted last (e.g. "closed" states), within a bound.
        with contextlib.suppress(Exception):
            async with asyncio.timeout(1.0):
                while not adapter.notifications.empty():
                    note = adapter.notifications.get_nowait()
                    await emit({"jsonrpc": "2.0", "method": note.method, "params": _jsonable(note.params)})


def main_for(factory: Callable[[], IutAdapter], *, log_level: int | None = None) -> None:
    """Run ``factory()``'s adapter as a stdio shim: ``python -m ...`` entry points call this."""
    level = log_level
    if level is None:
        level = getattr(logging, os.environ.get("CONFORMANCE_SHIM_LOG", "INFO").upper(), logging.INFO)
    logging.basicConfig(stream=sys.stderr, level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    async def run() -> None:
        await serve(factory())

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())
