"""The coturn adapter: ``start_server`` runs one ``turnserver`` 4.6 process on loopback (RFC 8656 server IUT).

Theory of operation: each ``start_server`` gets a private folder (user db, pid file, log), a listening port (the
asked one, or a free one for ``:0``) and a private relay port range, and starts ``turnserver`` with the flags of
``iuts.md`` §6: UDP only, long-term credentials for the given users and realm, loopback peers allowed, FINGERPRINT on.
The adapter then sends STUN Binding requests (retransmitted, RFC 8489 §6.2.1) until the server answers or a deadline
passes; a process that exits first is an :class:`AdapterError` quoting its log. ``options`` shorten timers where
coturn lets it (``max_allocation_lifetime``, ``permission_lifetime``, ``channel_lifetime``, ``stale_nonce``) and set
``user_quota``. ``diagnostics()`` is the tail of every server's log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conformance.adapters.base import (
    AdapterError,
    IutCrashed,
    IutInfo,
    Notification,
)
from conformance.adapters.base import Unsupported as _Unsupported
from conformance.packets import STUN, message_type

if TYPE_CHECKING:
    from conformance.adapters.registry import IutSpec

__all__ = ["OPTION_FLAGS", "CoturnAdapter", "install_hint", "turnserver_argv"]

logger = logging.getLogger(__name__)

READY_TIMEOUT = 10.0
#: Adapter options and the turnserver flag each maps to (values in seconds or counts).
OPTION_FLAGS = {
    "max_allocation_lifetime": "--max-allocate-lifetime",
    "permission_lifetime": "--permission-lifetime",
    "channel_lifetime": "--channel-lifetime",
    "stale_nonce": "--stale-nonce",
    "user_quota": "--user-quota",
}


def _declaration() -> IutSpec:
    from conformance.adapters.registry import iut_file

    return iut_file("coturn")


def install_hint() -> str:
    """What to install when ``turnserver`` is missing (``iut.toml``)."""
    return _declaration().install_hint


def turnserver_argv(
    binary: str,
    folder: Path,
    host: str,
    port: int,
    relay_range: tuple[int, int],
    realm: str,
    users: dict[str, str],
    options: dict[str, Any],
    external_ip: str | None = None,
) -> list[str]:
    """The ``turnserver`` command line for one server (flags of iuts.md §6).

    ``external_ip``: the public IP that stands for ``host`` (coturn's ``--external-ip=PUBLIC/PRIVATE``), so a server
    behind an address translation reports its relayed addresses as peers reach them
    (RFC 8656 §7.2, XOR-RELAYED-ADDRESS).
    """
    argv = [
        binary,
        "-c",
        "/dev/null",
        "-n",
        f"--listening-ip={host}",
        f"--relay-ip={host}",
        f"--listening-port={port}",
        f"--min-port={relay_range[0]}",
        f"--max-port={relay_range[1]}",
        "--lt-cred-mech",
        f"--realm={realm}",
        f"--userdb={folder / 'turndb'}",
        "--no-tls",
        "--no-dtls",
        "--no-cli",
        "--allow-loopback-peers",
        "--fingerprint",
        f"--pidfile={folder / 'turn.pid'}",
        "--log-file=stdout",
        "--simple-log",
        "-v",
    ]
    if external_ip:
        argv.append(f"--external-ip={external_ip}/{host}")
    argv += [f"--user={name}:{password}" for name, password in users.items()]
    for key, value in options.items():
        if key == "default_allocation_lifetime":
            continue  # coturn's default is fixed at 600 s; max_allocation_lifetime caps it
        flag = OPTION_FLAGS.get(key)
        if flag is None:
            raise _Unsupported(f"coturn has no option for {key!r}")
        argv.append(f"{flag}={int(value)}")
    return argv


@dataclass
class _Server:
    process: asyncio.subprocess.Process
    folder: Path
    address: str

    def log(self) -> str:
        with contextlib.suppress(OSError):
            return (self.folder / "turn.log").read_text(errors="replace")
        return ""


def _free_udp_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class _Probe(asyncio.DatagramProtocol):
    def __init__(self, txid: bytes) -> None:
        self.txid = txid
        self.answered: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if data[8:20] == self.txid and not self.answered.done():
            self.answered.set_result(True)


class CoturnAdapter:
    """coturn behind the :class:`~conformance.adapters.base.TurnServerAdapter` Protocol (no ICE-agent methods)."""

    def __init__(self, binary: str | None = None) -> None:
        self.binary = binary
        self.notifications: asyncio.Queue[Notification] = asyncio.Queue()
        self._servers: dict[str, _Server] = {}
        self._version = ""
        self._finished_logs: list[str] = []

    def _binary(self) -> str:
        found = self.binary or shutil.which("turnserver")
        if found is None or not os.access(found, os.X_OK):
            raise AdapterError(install_hint())
        return found

    async def initialize(self) -> IutInfo:
        """Find ``turnserver`` and read its version."""
        binary = self._binary()
        proc = await asyncio.create_subprocess_exec(
            binary, "--version", stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), 10)
        except TimeoutError:
            proc.kill()
            raise AdapterError(f"{binary} --version did not finish") from None
        self._version = out.decode(errors="replace").strip().splitlines()[-1] if out.strip() else "unknown"
        return IutInfo(name="coturn", version=self._version, capabilities=_declaration().capabilities or frozenset())

    async def start_server(
        self,
        kind: str,
        listen: str,
        realm: str | None = None,
        users: dict[str, str] | None = None,
        options: dict[str, Any] | None = None,
        external_ip: str | None = None,
    ) -> tuple[str, str]:
        """Start one turnserver; returns (server id, "host:port") once it answers a Binding request.

        ``external_ip`` is for the interop emulator only (not in the adapter contract): see :func:`turnserver_argv`.
        """
        if kind not in ("turn", "stun"):
            raise AdapterError(f"coturn: unknown server kind {kind!r}")
        binary = self._binary()
        host, _, port_text = listen.rpartition(":")
        host = host.strip("[]") or "127.0.0.1"
        port = int(port_text or 0) or _free_udp_port(host)
        base = random.randrange(49152, 65000 - 64, 64)
        folder = Path(tempfile.mkdtemp(prefix="coturn-"))
        argv = turnserver_argv(
            binary,
            folder,
            host,
            port,
            (base, base + 63),
            realm or "iut.test",
            dict(users or {}),
            dict(options or {}),
            external_ip,
        )
        logger.info("starting %s", " ".join(argv))
        log = (folder / "turn.log").open("wb")
        try:
            process = await asyncio.create_subprocess_exec(
                *argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        finally:
            log.close()
        address = f"{host}:{port}"
        server = _Server(process, folder, address)
        self._servers[address] = server
        try:
            await self._wait_ready(server, host, port)
        except AdapterError:
            await self.stop_server(address)
            raise
        return address, address

    async def _wait_ready(self, server: _Server, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + READY_TIMEOUT
        msg = STUN(type=message_type("Binding", "request"))
        data = bytes(msg)
        probe = _Probe(data[8:20])
        answered: asyncio.Future[Any] = probe.answered
        transport, _ = await loop.create_datagram_endpoint(lambda: probe, local_addr=(host, 0))
        exited: asyncio.Future[Any] = loop.create_task(server.process.wait())
        try:
            rto = 0.1
            while loop.time() < deadline:
                transport.sendto(data, (host, port))
                done, _ = await asyncio.wait({answered, exited}, timeout=min(rto, max(0.0, deadline - loop.time())))
                if answered in done:
                    return
                if exited in done:
                    tail = "\n".join(server.log().splitlines()[-20:])
                    raise AdapterError(f"turnserver exited with {server.process.returncode} at start-up:\n{tail}")
                rto = min(rto * 2, 1.0)
            tail = "\n".join(server.log().splitlines()[-20:])
            raise AdapterError(
                f"turnserver on {host}:{port} did not answer a Binding within {READY_TIMEOUT:g} s\n{tail}"
            )
        finally:
            transport.close()
            if not exited.done():
                exited.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await exited

    async def stop_server(self, server: str) -> None:
        """Stop a turnserver (SIGTERM, then SIGKILL after 3 s) and keep its log for diagnostics."""
        s = self._servers.pop(server, None)
        if s is None:
            raise AdapterError(f"coturn: no server {server!r}")
        if s.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(s.process.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(s.process.wait(), 3)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(s.process.pid, signal.SIGKILL)
                await s.process.wait()
        self._finished_logs = [*self._finished_logs[-3:], s.log()]
        shutil.rmtree(s.folder, ignore_errors=True)

    async def shutdown(self) -> None:
        """Stop every server."""
        for address in list(self._servers):
            await self.stop_server(address)

    def death(self) -> IutCrashed | None:
        """The first running turnserver that died without a ``stop_server`` (a signal or an exit), or None."""
        for address, s in self._servers.items():
            if s.process.returncode is not None:
                tail = "\n".join(s.log().splitlines()[-10:])
                return IutCrashed(f"turnserver {address}", s.process.returncode, tail=tail)
        return None

    def diagnostics(self) -> str:
        """The tail of the logs of the running servers and of the last stopped one."""
        logs = [s.log() for s in self._servers.values()] + self._finished_logs[-1:]
        return "\n".join("\n".join(text.splitlines()[-200:]) for text in logs)

    # -- not an ICE agent ------------------------------------------------------------------------------------
