"""The harness side of an out-of-process shim: JSON-RPC 2.0, one object per line, over stdin/stdout.

Theory of operation: :class:`StdioAdapter` starts the shim as a child process in its own process group
(lazily, on ``initialize`` or :meth:`StdioAdapter.start`). One reader task parses stdout line by line: a
response resolves the future of its pending request, a notification goes to
:attr:`StdioAdapter.notifications`. Another task drains stderr into a bounded tail that
:meth:`StdioAdapter.diagnostics` returns. Every request has a deadline; a missed deadline kills the process
group. Anything the shim writes that breaks the contract (a line that is not a JSON-RPC 2.0 object, an unknown
id, a result that is not an object) makes the adapter unusable: pending and later requests fail with
:class:`AdapterError` quoting the offending line. The same happens when the shim exits. All of these are the
harness's ERROR, never the IUT's FAIL (docs/adapter-contract.md).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import logging
import os
import signal
from collections import deque
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from .base import (
    CAPABILITIES,
    CONTRACT_VERSION,
    AdapterError,
    AdapterTimeout,
    AgentConfig,
    Credentials,
    ErrorCode,
    IutCrashed,
    IutInfo,
    LocalDescription,
    Notification,
    RemoteError,
    Unsupported,
    applied_options,
    describe_exit,
)
from .contract import METHODS, ContractChecker, program_name

__all__ = ["DEFAULT_METHOD_TIMEOUTS", "StdioAdapter"]

logger = logging.getLogger(__name__)

#: Per-method deadlines (seconds) that differ from ``request_timeout``; ``initialize`` uses ``start_timeout``.
DEFAULT_METHOD_TIMEOUTS: Mapping[str, float] = {
    "gather": 30.0,  # a TURN allocation or an unreachable STUN server may take a few retransmissions
    "shutdown": 2.0,
}

_MAX_LINE = 1 << 20  # longest accepted stdout line (bytes)
_QUOTE = 200  # characters of an offending line quoted in an error
_NOTIFICATION_LIMIT = 10_000  # notifications kept unread; the oldest are dropped beyond
_EXIT_WAIT = 2.0  # seconds to wait for a process to exit before it is killed


def _quote(line: bytes | str) -> str:
    """The offending line, truncated to 200 characters, for an error message."""
    text = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
    text = text.rstrip("\r\n")
    return repr(text[:_QUOTE] + ("..." if len(text) > _QUOTE else ""))


class _Broken(Exception):
    """Internal: the shim broke the framing contract (docs/adapter-contract.md, "Framing")."""


class StdioAdapter:
    """An :class:`~conformance.adapters.base.Adapter` that drives a shim program over stdio JSON-RPC 2.0."""

    def __init__(
        self,
        argv: list[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        request_timeout: float = 10.0,
        start_timeout: float = 15.0,
        name: str | None = None,
        method_timeouts: Mapping[str, float] | None = None,
        stderr_limit: int = 256 * 1024,
        stderr_lines: int = 200,
    ) -> None:
        if not argv:
            raise ValueError("StdioAdapter needs a command line (argv is empty)")
        self.argv = list(argv)
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.request_timeout = request_timeout
        self.start_timeout = start_timeout
        #: Messages name the shim: by ``name`` when given, else by its program, then by the name it reports.
        self.name = name or program_name(self.argv)
        self._named = name is not None
        #: The contract rules checked on what the shim returns and notifies (docs/adapter-contract.md).
        self.contract = ContractChecker()
        self.method_timeouts: dict[str, float] = {**DEFAULT_METHOD_TIMEOUTS, **(method_timeouts or {})}
        self.notifications: asyncio.Queue[Notification] = asyncio.Queue()
        #: Notifications dropped because more than 10 000 were left unread.
        self.dropped_notifications = 0
        #: The result of ``initialize``, once it has run.
        self.info: IutInfo | None = None
        self._stderr_limit = stderr_limit
        self._stderr_lines = stderr_lines
        self._stderr = bytearray()
        self._stderr_dropped = 0
        self._stderr_total = 0
        self._proc: asyncio.subprocess.Process | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, tuple[str, asyncio.Future[dict[str, Any]]]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._abandoned: deque[int] = deque(maxlen=1024)  # ids of requests whose caller was cancelled
        self._broken: str | None = None
        self._closed = False
        self._killed = False  # the harness killed the process group (a deadline, a broken line, shutdown)
        self._death: IutCrashed | None = None
        self._start_lock = asyncio.Lock()
        self._write_lock = asyncio.Lock()

    # -- lifecycle -------------------------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        """The shim's process id (and process group id), or None before start."""
        return self._proc.pid if self._proc else None

    @property
    def returncode(self) -> int | None:
        """The shim's exit code once it has exited."""
        return self._proc.returncode if self._proc else None

    async def start(self) -> None:
        """Start the shim program (idempotent); ``initialize`` calls it."""
        async with self._start_lock:
            self._check_usable()
            if self._proc is not None:
                return
            logger.debug("starting %s: %s", self.name, self.argv)
            try:
                self._proc = await asyncio.create_subprocess_exec(
                    *self.argv,
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                    env=self.env,
                    cwd=self.cwd,
                    limit=_MAX_LINE,
                    start_new_session=True,
                )
            except OSError as exc:
                self._broken = f"could not start {self.argv!r}: {exc}"
                raise AdapterError(f"{self.name}: {self._broken}") from exc
            self._tasks = [
                asyncio.create_task(self._read_stdout(), name=f"{self.name}-stdout"),
                asyncio.create_task(self._read_stderr(), name=f"{self.name}-stderr"),
            ]

    async def shutdown(self) -> None:
        """Ask the shim to exit (``shutdown``), then close stdin, then kill; idempotent, never raises."""
        if self._closed:
            return
        self._closed = True
        proc = self._proc
        if proc is None:
            return
        try:
            if self._broken is None and proc.returncode is None:
                with contextlib.suppress(AdapterError):
                    await self._request("shutdown", {}, check_closed=False)
            if proc.stdin is not None and not proc.stdin.is_closing():
                proc.stdin.close()
            if proc.returncode is None:
                try:
                    await asyncio.wait_for(proc.wait(), _EXIT_WAIT)
                except TimeoutError:
                    logger.warning("%s did not exit after shutdown; killing it", self.name)
            self._kill()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), _EXIT_WAIT)
        except Exception:  # shutdown must never raise
            logger.exception("error while shutting down %s", self.name)
            self._kill()
        finally:
            self._fail_pending(AdapterError(f"{self.name}: the adapter was shut down"))
            await self._stop_tasks()

    async def __aenter__(self) -> StdioAdapter:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.shutdown()

    def death(self) -> IutCrashed | None:
        """How the process died when nobody asked it to (a signal, an exit of its own), or None while it lives.

        A process the harness killed (a missed deadline, a contract violation) or shut down is not a death.
        """
        proc = self._proc
        gone = proc is not None and proc.returncode is not None
        if self._death is None and proc is not None and gone and not (self._killed or self._closed):
            self._death = IutCrashed(self.name, proc.returncode or 0, tail="\n".join(self.stderr_tail(10)))
        return self._death

    @property
    def broken(self) -> str | None:
        """Why the adapter is unusable (a malformed line, a dead process), or None while it works."""
        return self._broken

    def stderr_mark(self) -> int:
        """The number of stderr bytes received so far: pass it to :meth:`diagnostics` to get what came after."""
        return self._stderr_total

    def diagnostics(self, since: int | None = None) -> str:
        """The shim's stderr (its last 256 KiB, or what came after ``since``) and why the adapter became unusable."""
        parts: list[str] = []
        start = 0 if since is None else since - self._stderr_dropped
        if start < 0 or (since is None and self._stderr_dropped):
            parts.append(f"[{self._stderr_dropped} earlier bytes of stderr dropped]\n")
        parts.append(self._stderr[max(start, 0) :].decode("utf-8", "replace"))
        if self._broken:
            parts.append(f"\n[adapter unusable: {self._broken}]\n")
        return "".join(parts)

    def stderr_tail(self, lines: int | None = None) -> list[str]:
        """The last lines of the shim's stderr (200 by default)."""
        n = self._stderr_lines if lines is None else lines
        if n <= 0:
            return []
        return self._stderr.decode("utf-8", "replace").splitlines()[-n:]

    # -- the contract (docs/adapter-contract.md, "Methods") ----------------------------------------------

    async def initialize(self) -> IutInfo:
        """``initialize``: start the shim, announce the contract version, read its declaration."""
        await self.start()
        result = await self._request("initialize", {"contract": CONTRACT_VERSION}, timeout=self.start_timeout)
        name, version, caps = result["name"], result["version"], result["capabilities"]
        if not all(isinstance(c, str) for c in caps):
            raise AdapterError(f"{self.name}: initialize: capabilities must be strings, got {caps!r}")
        unknown = sorted(set(caps) - CAPABILITIES)
        if unknown:
            raise AdapterError(
                f"{self.name}: initialize declared unknown capabilities {unknown}; known: {sorted(CAPABILITIES)}"
            )
        contract = str(result.get("contract", CONTRACT_VERSION))
        if contract.split(".")[0] != CONTRACT_VERSION.split(".")[0]:
            raise AdapterError(
                f"{self.name}: speaks adapter contract {contract}, the harness speaks {CONTRACT_VERSION}"
            )
        self.info = IutInfo(name=name, version=version, capabilities=frozenset(caps), contract=contract)
        if not self._named:
            self.name = name
        return self.info

    async def create_agent(self, config: AgentConfig) -> str:
        """``create_agent``: returns the shim's agent id."""
        result = await self._request("create_agent", config.to_json())
        agent = str(result["agent"])
        self.contract.agent_created(agent, config.components)
        return agent

    async def gather(self, agent: str) -> LocalDescription:
        """``gather``: local credentials and candidate attribute values (RFC 8839 §5.1)."""
        result = await self._request("gather", {"agent": agent})
        cands = result["candidates"]
        if not all(isinstance(c, str) for c in cands):
            raise AdapterError(f"{self.name}: gather: candidates must be strings, got {cands!r}")
        self.contract.check_candidates(self.name, "gather", cands)
        optional: dict[str, Any] = {}
        for name in ("ice_options", "remote_candidates"):  # contract 1.1, optional
            value = result.get(name)
            if value is not None:
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise AdapterError(f"{self.name}: gather: {name} must be a list of strings, got {value!r}")
                optional[name] = list(value)
        return LocalDescription(
            ufrag=result["ufrag"],
            pwd=result["pwd"],
            candidates=list(cands),
            **optional,
        )

    async def set_remote(
        self,
        agent: str,
        ufrag: str,
        pwd: str,
        candidates: list[str],
        lite: bool = False,
        options: dict[str, Any] | None = None,
    ) -> list[str] | None:
        """``set_remote``: the peer's credentials and candidates (RFC 8445 §5.3); ``options`` since 1.1.

        Returns the shim's ``applied_options`` (contract 1.2), or None when it leaves the field out."""
        params: dict[str, Any] = {"agent": agent, "ufrag": ufrag, "pwd": pwd, "candidates": list(candidates)}
        if lite:
            params["lite"] = True
        if options:
            params["options"] = dict(options)
        result = await self._request("set_remote", params)
        return applied_options(f"{self.name}: set_remote", result.get("applied_options"))

    async def add_remote_candidate(self, agent: str, candidate: str | None) -> None:
        """``add_remote_candidate``: one trickled candidate, or None for end-of-candidates (RFC 8838 §13)."""
        await self._request("add_remote_candidate", {"agent": agent, "candidate": candidate})

    async def connect(self, agent: str) -> None:
        """``connect``: start connectivity checks; returns at once (RFC 8445 §6.1.4)."""
        await self._request("connect", {"agent": agent})

    async def send(self, agent: str, component: int, data: bytes) -> None:
        """``send``: one datagram on the selected pair of a component (data base64 on the wire)."""
        await self._request(
            "send",
            {"agent": agent, "component": component, "data": base64.b64encode(data).decode("ascii")},
        )

    async def restart(self, agent: str) -> Credentials:
        """``restart``: ICE restart with new local credentials (RFC 8445 §9)."""
        result = await self._request("restart", {"agent": agent})
        return Credentials(ufrag=result["ufrag"], pwd=result["pwd"])

    async def close(self, agent: str) -> None:
        """``close``: close an agent and release its sockets."""
        await self._request("close", {"agent": agent})

    async def start_server(
        self,
        kind: str,
        listen: str,
        realm: str | None = None,
        users: dict[str, str] | None = None,
        options: dict[str, Any] | None = None,
    ) -> tuple[str, str]:
        """``start_server``: a STUN or TURN server IUT; returns (server id, "host:port")."""
        params: dict[str, Any] = {"kind": kind, "listen": listen}
        if realm is not None:
            params["realm"] = realm
        if users is not None:
            params["users"] = dict(users)
        if options is not None:
            params["options"] = dict(options)
        result = await self._request("start_server", params)
        address = result["address"]
        server = result.get("server", address)
        return str(server), address

    async def stop_server(self, server: str) -> None:
        """``stop_server``: stop a server started by ``start_server``."""
        await self._request("stop_server", {"server": server})

    async def call(
        self, method: str, params: dict[str, Any] | None = None, *, timeout: float | None = None
    ) -> dict[str, Any]:
        """Any request by name (an extension method or a newer contract's); returns the result object."""
        return await self._request(method, params or {}, timeout=timeout)

    # -- internals -----------------------------------------------------------------------------------------

    def _check_result(self, method: str, result: dict[str, Any]) -> dict[str, Any]:
        """The result, once every field ``contract.METHODS`` requires of it is there with its type (§3)."""
        spec = METHODS.get(method)
        for field in spec.result if spec is not None else ():
            if field.name not in result:
                raise AdapterError(f"{self.name}: {method}: result lacks {field.name!r}: {_quote(json.dumps(result))}")
            value = result[field.name]
            if not isinstance(value, field.kind) or isinstance(value, bool):
                raise AdapterError(
                    f"{self.name}: {method}: result field {field.name!r} has the wrong type: "
                    f"{_quote(json.dumps(result))}"
                )
        return result

    def _check_usable(self) -> None:
        if self._broken is not None:
            raise AdapterError(f"{self.name}: the adapter is unusable: {self._broken}")
        if self._closed:
            raise AdapterError(f"{self.name}: the adapter was shut down")

    def _deadline(self, method: str) -> float:
        if method == "initialize":
            return self.start_timeout
        return self.method_timeouts.get(method, self.request_timeout)

    async def _request(
        self, method: str, params: dict[str, Any], *, timeout: float | None = None, check_closed: bool = True
    ) -> dict[str, Any]:
        """Send one request and await its result within its deadline (docs/adapter-contract.md, "Timing")."""
        if check_closed:
            self._check_usable()
        elif self._broken is not None:
            raise AdapterError(f"{self.name}: the adapter is unusable: {self._broken}")
        if self._proc is None:
            await self.start()
        proc = self._proc
        assert proc is not None and proc.stdin is not None
        if proc.returncode is not None and not self._pending:
            # The reader may not have noticed the exit yet.
            death = self.death()
            if death is not None:
                raise IutCrashed(
                    self.name, death.returncode, f"before {method!r} was sent", death.tail, stalled_in=method
                )
            raise AdapterError(self._exit_message(method), stalled_in=method)
        deadline = self._deadline(method) if timeout is None else timeout
        rid = next(self._ids)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[dict[str, Any]] = loop.create_future()
        self._pending[rid] = (method, future)
        line = json.dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": params}) + "\n"
        try:
            async with asyncio.timeout(deadline):
                try:
                    async with self._write_lock:
                        proc.stdin.write(line.encode("utf-8"))
                        await proc.stdin.drain()
                except (ConnectionError, RuntimeError) as exc:
                    logger.debug("%s: write failed: %s", self.name, exc)
                    # The process is gone: the reader reports its exit code to the future.
                return self._check_result(method, await future)
        except TimeoutError:
            reason = f"no answer to {method!r} within {deadline:g} s; the shim was killed"
            self._break(reason)
            self._kill()
            tail = "\n".join(self.stderr_tail(10))
            raise AdapterTimeout(
                f"{self.name}: {reason}" + (f"; last stderr lines:\n{tail}" if tail else ""), stalled_in=method
            ) from None
        finally:
            self._pending.pop(rid, None)
            if not future.done() or future.cancelled():
                self._abandoned.append(rid)

    def _break(self, reason: str) -> None:
        if self._broken is None:
            self._broken = reason
            logger.warning("%s is unusable: %s", self.name, reason)

    def _fail_pending(self, exc: AdapterError) -> None:
        for _method, fut in list(self._pending.values()):
            if not fut.done():
                fut.set_exception(exc)
                # The awaiting request may already have timed out; never log "exception never retrieved".
                fut.exception()

    def _kill(self) -> None:
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        self._killed = True
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        except PermissionError:  # pragma: no cover - the group leader exec'd something setuid
            with contextlib.suppress(ProcessLookupError):
                proc.kill()

    def _exit_message(self, method: str | None) -> str:
        rc = self.returncode
        what = describe_exit(rc) if rc is not None else "closed its stdout"
        during = f" while {method!r} was pending" if method else ""
        tail = "\n".join(self.stderr_tail(10))
        return f"{self.name}: the shim {what}{during}" + (
            f"; last stderr lines:\n{tail}" if tail else "; it wrote nothing on stderr"
        )

    async def _stop_tasks(self) -> None:
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current and not task.done():
                task.cancel()
        for task in self._tasks:
            if task is not current:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def _read_stdout(self) -> None:
        """Reader task: dispatch every stdout line until EOF or a contract violation."""
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        try:
            while True:
                try:
                    line = await proc.stdout.readline()
                except ValueError:  # LimitOverrunError is re-raised as ValueError
                    raise _Broken(f"a stdout line longer than {_MAX_LINE} bytes") from None
                if not line:
                    break
                if not line.strip():
                    continue
                self._dispatch(line)
        except _Broken as exc:
            reason = f"contract violation on stdout: {exc}"
            self._break(reason)
            self._fail_pending(AdapterError(f"{self.name}: {reason}"))
            self._kill()
            return
        # EOF: the shim exited (or closed stdout). Wait for its exit code and its last stderr.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), _EXIT_WAIT)
        if proc.returncode is None:
            self._kill()
        stderr_task = self._tasks[1] if len(self._tasks) > 1 else None
        if stderr_task is not None:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(stderr_task), 1.0)
        pending = [m for m, f in self._pending.values() if not f.done()]
        message = self._exit_message(pending[0] if pending else None)
        death = self.death()
        stalled = pending[0] if pending else None
        failure: AdapterError = AdapterError(message, stalled_in=stalled)
        if death is not None:
            during = f"while {stalled!r} was pending" if stalled else ""
            failure = IutCrashed(self.name, death.returncode, during, death.tail, stalled_in=stalled)
            message = str(failure)
        if not self._closed:
            self._break(message.removeprefix(f"{self.name}: "))
        self._fail_pending(failure)

    def _dispatch(self, line: bytes) -> None:
        """Route one stdout line: a response to its request, a notification to the queue."""
        try:
            msg = json.loads(line)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise _Broken(f"not JSON: {_quote(line)}") from None
        if not isinstance(msg, dict):
            raise _Broken(f"not a JSON object: {_quote(line)}")
        if msg.get("jsonrpc") != "2.0":
            raise _Broken(f'jsonrpc is not "2.0": {_quote(line)}')
        if "id" not in msg:
            self._notification(msg, line)
            return
        if "method" in msg:
            raise _Broken(f"a request from the shim (the contract has none): {_quote(line)}")
        rid = msg["id"]
        entry = self._pending.get(rid) if isinstance(rid, int) and not isinstance(rid, bool) else None
        if entry is None and rid in self._abandoned:
            logger.debug("%s: late response to abandoned request %r", self.name, rid)
            return
        if entry is None:
            raise _Broken(f"a response with id {rid!r}, which matches no pending request: {_quote(line)}")
        method, future = entry
        if future.done():  # its request timed out a moment ago
            return
        if "error" in msg:
            err = msg["error"]
            if not (isinstance(err, dict) and isinstance(err.get("code"), int) and isinstance(err.get("message"), str)):
                raise _Broken(f"a malformed error object: {_quote(line)}")
            code, text = int(err["code"]), str(err["message"])
            if code == ErrorCode.METHOD_NOT_FOUND:
                future.set_exception(Unsupported(f"{self.name}: {method}: not supported ({code}: {text})"))
            else:
                future.set_exception(RemoteError(method, code, text, err.get("data")))
            return
        if "result" not in msg:
            raise _Broken(f"a response with neither result nor error: {_quote(line)}")
        result = msg["result"]
        if not isinstance(result, dict):
            raise _Broken(f"the result of {method!r} is not a JSON object: {_quote(line)}")
        future.set_result(result)

    def _notification(self, msg: dict[str, Any], line: bytes) -> None:
        """Queue a notification (docs/adapter-contract.md, "Notifications"); params stay in JSON form."""
        method = msg.get("method")
        params = msg.get("params", {})
        if not isinstance(method, str) or not isinstance(params, dict):
            raise _Broken(f"a notification without a method name or with non-object params: {_quote(line)}")
        problem = self.contract.notification(method, params)
        if problem is not None:
            logger.warning("%s: contract violation (%s)", self.name, problem)
        if self.notifications.qsize() >= _NOTIFICATION_LIMIT:
            self.notifications.get_nowait()
            self.dropped_notifications += 1
            if self.dropped_notifications == 1:
                logger.warning(
                    "%s: more than %d unread notifications; dropping the oldest",
                    self.name,
                    _NOTIFICATION_LIMIT,
                )
        self.notifications.put_nowait(Notification(method, params, time=asyncio.get_running_loop().time()))

    async def _read_stderr(self) -> None:
        """Stderr task: keep a bounded tail of the shim's stderr (docs/adapter-contract.md, "stderr")."""
        proc = self._proc
        assert proc is not None and proc.stderr is not None
        while True:
            chunk = await proc.stderr.read(65536)
            if not chunk:
                return
            self._stderr += chunk
            self._stderr_total += len(chunk)
            excess = len(self._stderr) - self._stderr_limit
            if excess > 0:
                del self._stderr[:excess]
                self._stderr_dropped += excess
            if logger.isEnabledFor(logging.DEBUG):
                for text in chunk.decode("utf-8", "replace").splitlines():
                    logger.debug("%s stderr: %s", self.name, text)
