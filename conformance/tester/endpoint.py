"""Harness endpoints on real UDP sockets, with the expectation API (design.md, "The data flow of one case").

Theory of operation: an :class:`Endpoint` owns one asyncio datagram socket. Every datagram in or out is recorded in
the case's :class:`~conformance.tester.capture.Capture` and kept in the endpoint's history as a :class:`Received`.
:meth:`Endpoint.expect` returns the first datagram of the history (from a start time, not yet taken by an earlier
expectation) that matches a predicate, waiting on arrivals with a deadline; :meth:`Endpoint.expect_silence` watches a
window and returns the first matching datagram, if any. Handlers registered with :meth:`Endpoint.on_datagram` see every
arrival first (auto-responders live there). Nothing here sleeps: every wait is a future with a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import select
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from conformance.packets import STUN, StunParseError, parse
from conformance.packets.fast import StunIndex, index
from conformance.tester.capture import Capture
from conformance.verdict import CaseEnded, Findings, HarnessError

__all__ = ["Address", "Endpoint", "Predicate", "Received", "hold_kernel_stamps"]

logger = logging.getLogger(__name__)

Address = tuple[str, int]

_SIOCGSTAMPNS = 0x8907  # Linux: the kernel's receive time of the socket's last datagram (socket(7))
_SO_TIMESTAMPNS = 35  # Linux: ask for a receive stamp with each datagram (socket(7))
_STAMP_MAX_LAG = 5.0  # seconds; a kernel stamp further back (or in the future) is not trusted
_STAMP_HOLDER: list[socket.socket] = []  #: one socket per process that keeps the kernel's receive stamping on


def hold_kernel_stamps(deadline: float = 2.0) -> None:
    """Switch the kernel's receive stamping on for this process and wait until it is on (socket(7) SO_TIMESTAMPNS).

    Linux stamps arrivals only while some socket asks for stamps, and a kernel worker turns the switch on a little
    after the first asks: a datagram received before then is stamped with the time it is read, which would make
    ``Received.arrived`` the read time. One socket held open for the process keeps the switch on; a probe to itself
    confirms it is on (a stamp taken before the read began). Bounded by ``deadline`` seconds; on failure the
    endpoints fall back to the read time, which is logged.
    """
    if _STAMP_HOLDER:
        return
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
    sock.bind(("127.0.0.1", 0))
    _STAMP_HOLDER.append(sock)
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        sock.sendto(b"stamp", sock.getsockname())
        if not select.select([sock], [], [], max(0.0, end - time.monotonic()))[0]:
            break
        before = time.time()
        _, ancillary, _, _ = sock.recvmsg(16, socket.CMSG_SPACE(16))
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(payload) >= 16:
                sec, nsec = struct.unpack("@qq", payload[:16])
                if sec + nsec / 1e9 < before:  # stamped on arrival, not on reading: the switch is on
                    return
        os.sched_yield()  # give the kernel's worker a turn
    logger.warning("kernel receive stamps are not on; datagram times are read times")


@dataclass(eq=False)
class Received:
    """A datagram the endpoint received: bytes, addresses, loop time, and lazy STUN views.

    ``time`` is when the harness read it (expectations and windows use it); ``arrived`` is when the kernel
    received it, on the same clock: on a loaded machine the loop reads queued datagrams late and back to back, so
    judgements of the IUT's own timing (pacing, retransmission intervals) use ``arrived``.
    """

    data: bytes
    src: Address
    dst: Address
    time: float
    taken: bool = field(default=False, repr=False)
    arrived: float = field(default=-1.0, repr=False)

    def __post_init__(self) -> None:
        if self.arrived < 0:
            self.arrived = self.time

    @cached_property
    def index(self) -> StunIndex | None:
        """The fast header/attribute index, or None when not well-formed STUN."""
        return index(self.data)

    @cached_property
    def msg(self) -> STUN | None:
        """The strictly parsed STUN message, or None."""
        if self.index is None:
            return None
        try:
            return parse(self.data)
        except StunParseError:
            return None

    @property
    def is_stun(self) -> bool:
        """Whether this is a well-formed STUN message."""
        return self.index is not None

    def is_type(self, method: int, cls: int) -> bool:
        """Whether this is STUN with that method and class (RFC 8489 §5)."""
        i = self.index
        return i is not None and i.method == method and i.msg_class == cls

    @property
    def transaction_id(self) -> bytes:
        """The transaction ID (empty for non-STUN)."""
        return self.index.transaction_id if self.index is not None else b""

    def has(self, attribute: str | int) -> bool:
        """Whether this is STUN carrying that attribute, by RFC name (``"USE-CANDIDATE"``) or code."""
        return self.index is not None and self.index.has(attribute)

    def value(self, attribute: str | int) -> bytes | None:
        """The raw value of the first such attribute, by RFC name or code; None when absent or not STUN."""
        return self.index.value(attribute) if self.index is not None else None

    @property
    def error_code(self) -> int | None:
        """The ERROR-CODE as class × 100 + number (RFC 8489 §14.8), e.g. 487; None without a well-formed one."""
        return self.index.error_code if self.index is not None else None

    @property
    def role(self) -> str | None:
        """The role a check claims, ``"controlling"`` or ``"controlled"`` (RFC 8445 §7.1.3), or None.

        Read from an 8-byte ICE-CONTROLLING or ICE-CONTROLLED attribute, ICE-CONTROLLING first.
        """
        return self._role_attribute[0]

    @property
    def tiebreaker(self) -> int | None:
        """The tiebreaker of the role attribute (RFC 8445 §16.1), or None without one."""
        return self._role_attribute[1]

    @cached_property
    def _role_attribute(self) -> tuple[str | None, int | None]:
        for name, role in (("ICE-CONTROLLING", "controlling"), ("ICE-CONTROLLED", "controlled")):
            raw = self.value(name)
            if raw is not None and len(raw) == 8:
                return role, int.from_bytes(raw, "big")
        return None, None

    def describe(self) -> str:
        """A one-line description quoting the message's fields, for failure messages."""
        if self.msg is not None:
            fields = []
            for a in self.msg.attributes:
                name = a.attribute_name
                if name in ("USERNAME", "SOFTWARE", "REALM", "NONCE"):
                    fields.append(f"{name}={bytes(getattr(a, name.lower(), b'') or b'')!r}")
                elif name == "PRIORITY":
                    fields.append(f"PRIORITY={a.priority}")
                elif name in ("ICE-CONTROLLING", "ICE-CONTROLLED"):
                    fields.append(f"{name}=0x{a.tiebreaker:016x}")
                elif name == "ERROR-CODE":
                    fields.append(f"ERROR-CODE={a.code}")
                elif name in ("XOR-MAPPED-ADDRESS", "XOR-PEER-ADDRESS", "XOR-RELAYED-ADDRESS"):
                    fields.append(f"{name}={a.address}:{a.port}")
                else:
                    fields.append(name)
            txid = self.transaction_id.hex()
            return f"{self.msg.type_name} txid={txid} from {self.src[0]}:{self.src[1]} [{', '.join(fields)}]"
        return f"{len(self.data)}-byte datagram 0x{self.data[:8].hex()}… from {self.src[0]}:{self.src[1]}"


Predicate = Callable[[Received], bool]


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.endpoint._arrived(data, (str(addr[0]), int(addr[1])))

    def error_received(self, exc: Exception) -> None:
        logger.debug("%s: socket error %s", self.endpoint.label, exc)


class Endpoint:
    """One harness UDP socket with capture, history and expectations."""

    def __init__(self, capture: Capture, label: str) -> None:
        self.capture = capture
        self.label = label
        self.history: list[Received] = []
        self._transport: asyncio.DatagramTransport | None = None
        self._address: Address = ("", 0)
        self._waiters: list[tuple[Predicate, float, asyncio.Future[Received]]] = []
        self._handlers: list[Callable[[Received], None]] = []
        self._loop = asyncio.get_running_loop()
        self._fd: int | None = None  #: the socket, for kernel receive stamps
        #: Seconds this endpoint spent deliberately waiting (silence windows, protocol timers sat out).
        self.waited = 0.0

    @classmethod
    async def open(cls, capture: Capture, host: str = "127.0.0.1", port: int = 0, label: str = "harness") -> Endpoint:
        """Bind a UDP socket on a loopback address."""
        hold_kernel_stamps()
        ep = cls(capture, label)
        transport, _ = await ep._loop.create_datagram_endpoint(lambda: _Protocol(ep), local_addr=(host, port))
        ep._transport = transport
        ep._fd = transport.get_extra_info("socket").fileno()
        ep._kernel_stamp()  # the first query turns the socket's receive stamps on
        sock = transport.get_extra_info("sockname")
        ep._address = (str(sock[0]), int(sock[1]))
        capture.label(ep._address, label)
        return ep

    @property
    def address(self) -> Address:
        """The bound (host, port)."""
        return self._address

    def now(self) -> float:
        """The loop clock the history's times use."""
        return self._loop.time()

    def send(self, data: bytes, to: Address, note: str = "") -> None:
        """Send one datagram (recorded in the capture; ``note`` marks crafted ones)."""
        if self._transport is None:
            raise HarnessError(f"endpoint {self.label} is closed")
        self._transport.sendto(data, to)
        self.capture.record(self._address, to, data, "out", note=note, endpoint=self.label)

    def on_datagram(self, handler: Callable[[Received], None]) -> Callable[[], None]:
        """Call ``handler`` on every arrival (before expectations); returns a function that removes it."""
        self._handlers.append(handler)
        return lambda: self._handlers.remove(handler) if handler in self._handlers else None

    def _kernel_stamp(self) -> float | None:
        """Wall-clock time at which the kernel received the socket's last datagram, or None."""
        if self._fd is None:
            return None
        try:
            sec, nsec = struct.unpack("@qq", fcntl.ioctl(self._fd, _SIOCGSTAMPNS, bytes(16)))
        except OSError:
            return None
        return float(sec) + float(nsec) / 1e9

    def _arrived(self, data: bytes, src: Address) -> None:
        now = self._loop.time()
        stamp = self._kernel_stamp()
        lag = time.time() - stamp if stamp is not None else 0.0
        arrived = now - lag if 0.0 <= lag <= _STAMP_MAX_LAG else now
        rec = Received(data, src, self._address, now, arrived=arrived)
        self.capture.record(src, self._address, data, "in", endpoint=self.label)
        self.history.append(rec)
        for handler in list(self._handlers):
            try:
                handler(rec)
            except Exception:
                logger.exception("%s: handler failed", self.label)
        for waiter in list(self._waiters):
            predicate, since, future = waiter
            if not future.done() and rec.time >= since and predicate(rec):
                rec.taken = True
                future.set_result(rec)
                self._waiters.remove(waiter)
                break

    def find(self, predicate: Predicate, since: float = 0.0) -> list[Received]:
        """Every received datagram since ``since`` matching ``predicate`` (taken or not)."""
        return [r for r in self.history if r.time >= since and predicate(r)]

    async def expect(
        self,
        predicate: Predicate,
        timeout: float,
        *,
        since: float | None = None,
        what: str = "a matching message",
        findings: Findings | None = None,
        requirement: str | None = None,
        clause: str | None = None,
        deliberate: bool = False,
    ) -> Received:
        """The first untaken datagram since ``since`` (default: the endpoint's start) matching ``predicate``.

        ``deliberate``: the wait is a protocol timer the case sits out (a retransmission, a consent interval), so
        its time counts in :attr:`waited`.

        On timeout: with ``requirement`` (and ``findings``) the absence is that requirement's violation; without, it
        is a :class:`HarnessError` (ERROR), since nothing said the IUT had to send it.
        """
        start = 0.0 if since is None else since
        for rec in self.history:
            if not rec.taken and rec.time >= start and predicate(rec):
                rec.taken = True
                return rec
        future: asyncio.Future[Received] = self._loop.create_future()
        waiter = (predicate, start, future)
        self._waiters.append(waiter)
        began = self._loop.time()
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            message = f"no {what} arrived at {self.label} {self._address[0]}:{self._address[1]} within {timeout:g} s"
            if requirement is not None and findings is not None:
                findings.violation(requirement, message, clause)
                raise CaseEnded(message) from None
            raise HarnessError(message) from None
        finally:
            if deliberate:
                self.waited += self._loop.time() - began
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    async def expect_silence(self, predicate: Predicate, window: float) -> Received | None:
        """Watch ``window`` seconds from now; the first matching datagram, or None if all was quiet.

        The time spent counts as a deliberate wait (:attr:`waited`), not as harness overhead.
        """
        start = self._loop.time()
        future: asyncio.Future[Received] = self._loop.create_future()
        waiter = (predicate, start, future)
        self._waiters.append(waiter)
        try:
            return await asyncio.wait_for(future, window)
        except TimeoutError:
            return None
        finally:
            self.waited += self._loop.time() - start
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    def close(self) -> None:
        """Close the socket; pending expectations fail."""
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        for _, _, future in self._waiters:
            if not future.done():
                future.set_exception(HarnessError(f"endpoint {self.label} closed"))
        self._waiters.clear()
        with contextlib.suppress(Exception):
            self._handlers.clear()
