"""The userspace emulator on loopback sockets: a thin asyncio layer over :class:`~conformance.netem.fabric.Fabric`.

Theory of operation: the emulator owns every address of the emulated public network that anything can send to: its
STUN server, one socket per NAT mapping (RFC 4787 §4.1: the external (IP, port)), one per proxy address of a real
server (the TURN server and its relayed addresses), and the black holes standing for unreachable private addresses.
A datagram read from any of them goes to :meth:`Fabric.route <conformance.netem.fabric.Fabric.route>`; a
:class:`~conformance.netem.fabric.Deliver` is sent from the socket at its source address, at once or through the
delay line (``loop.call_at``), a :class:`~conformance.netem.fabric.Drop` is counted by reason. Sockets are plain
non-blocking UDP sockets watched with ``loop.add_reader``, so a mapping's socket exists before the datagram that
created it is forwarded. Each datagram is recorded twice in the :class:`~conformance.tester.capture.Capture` when one
is given: as it reached the emulator ("in") and as the emulator sent it on ("out"), with the capture endpoint label
naming the leg ("netem:a", "netem:b", "netem:public"); a dropped datagram's "in" record carries the reason as note.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from conformance.netem.behavior import Address
from conformance.netem.fabric import Deliver, Drop, Fabric, StunRequest
from conformance.netem.impair import DelayLine
from conformance.netem.topology import SIDES, AddressPlan, Side, Topology
from conformance.netem.topology import topology as _topology
from conformance.packets import BINDING, REQUEST, STUN, SUCCESS, attr, message_type
from conformance.packets.fast import index
from conformance.protocol.candidate import CandidateError, format_candidate, parse_candidate
from conformance.tester.capture import Capture
from conformance.verdict import HarnessError

__all__ = ["DropEvent", "NetemStats", "Network"]

logger = logging.getLogger(__name__)

_READ_BURST = 64
_MAX_DATAGRAM = 65535
_RETIRED_SINKS = 256
_EVENTS = 2000
_BIND_ATTEMPTS = 4
_WAITERS = 64
Role = Literal["external", "stun", "proxy", "blackhole"]


@dataclass(frozen=True)
class DropEvent:
    """One dropped datagram: loop time, reason, the side whose NAT or link dropped it, addresses, size."""

    time: float
    reason: str
    side: str | None
    src: Address
    dst: Address
    size: int


@dataclass
class NetemStats:
    """What the emulator forwarded and what it dropped, by reason and by side."""

    forwarded: int = 0
    stun_answered: int = 0
    dropped: collections.Counter[str] = field(default_factory=collections.Counter)
    by_side: collections.Counter[tuple[str, str]] = field(default_factory=collections.Counter)

    def drops(self, reason: str | None = None, side: str | None = None) -> int:
        """The number of drops, optionally of one reason and/or charged to one side."""
        if side is None:
            return sum(self.dropped.values()) if reason is None else self.dropped[reason]
        return sum(n for (s, r), n in self.by_side.items() if s == side and (reason is None or r == reason))

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly summary for reports."""
        return {
            "forwarded": self.forwarded,
            "stun_answered": self.stun_answered,
            "dropped": dict(self.dropped),
            "by_side": {f"{s}:{r}": n for (s, r), n in self.by_side.items()},
        }


@dataclass
class _Sock:
    address: Address
    role: Role
    sock: socket.socket


@dataclass(frozen=True)
class _Held:
    src: Address
    dst: Address
    data: bytes
    egress: str


class Network:
    """A running emulated network for one topology: two private sides, NATs, links, a STUN server, proxies."""

    def __init__(
        self,
        topology: Topology | str = "direct",
        *,
        plan: AddressPlan | None = None,
        seed: int | str = 0,
        capture: Capture | None = None,
        turn: Address | None = None,
        upstreams: Iterable[str] = (),
        queue_limit: int = 4096,
    ) -> None:
        self.topology = _topology(topology)
        self.plan = plan or AddressPlan()
        self.fabric = Fabric(self.topology, self.plan, seed)
        self.capture = capture
        self.stats = NetemStats()
        #: The most recent drops (bounded), for failure messages and reports.
        self.events: collections.deque[DropEvent] = collections.deque(maxlen=_EVENTS)
        self._loop = asyncio.get_running_loop()
        self._sockets: dict[Address, _Sock] = {}
        self._retired: collections.deque[Address] = collections.deque()
        self._delay: DelayLine[_Held] = DelayLine(queue_limit)
        self._delay_timer: asyncio.TimerHandle | None = None
        self._expiry: dict[Side, asyncio.TimerHandle] = {}
        self._timers: list[asyncio.TimerHandle] = []
        self._waiters: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []
        self._closed = False
        self.started = self._loop.time()
        self._turn: Address | None = None
        try:
            self._open(self.plan.stun_server, "stun")
            for ip in upstreams:
                self.fabric.add_upstream(ip)
            if turn is not None:
                self._turn = (self.fabric.add_upstream(turn[0]), turn[1])
                self._open(self._turn, "proxy")
        except BaseException:
            self.close()
            raise
        if self.capture is not None:
            self.capture.label(self.plan.stun_server, "STUN server (netem)")
            if self._turn is not None:
                self.capture.label(self._turn, "TURN server (netem proxy)")
        for side in SIDES:
            at = self.topology.side(side).rebind_at
            if at is not None:
                self._timers.append(self._loop.call_at(self.started + at, self.rebind, side))
        logger.info("netem: %s started on slot %d", self.topology.name, self.plan.slot)

    @classmethod
    async def start(cls, topology: Topology | str = "direct", **kwargs: Any) -> Network:
        """Start an emulator on the running loop (keywords as for the constructor)."""
        return cls(topology, **kwargs)

    async def __aenter__(self) -> Network:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    # -- what the runner tells each IUT -----------------------------------------------------------------------

    def interface(self, side: Side, index: int = 1) -> str:
        """The private address the IUT of ``side`` must bind on (create_agent ``interfaces``)."""
        return self.plan.interface(side, index)

    def stun_server(self, side: Side) -> Address:
        """The STUN server ``side`` is given; it answers with the NAT-external address it sees (RFC 8489 §6.3)."""
        self.topology.side(side)
        return self.plan.stun_server

    def stun_spec(self, side: Side) -> str:
        """:meth:`stun_server` as the ``host:port`` of create_agent ``stun_servers``."""
        host, port = self.stun_server(side)
        return f"{host}:{port}"

    def relay_address(self, side: Side) -> Address:
        """The TURN server as seen from ``side``: its proxy on the public network, reached through the NAT."""
        self.topology.side(side)
        if self._turn is None:
            raise HarnessError("netem: no TURN server was given (Network(turn=(host, port)))")
        return self._turn

    def turn_uri(self, side: Side) -> str:
        """:meth:`relay_address` as a ``turn:`` URI over UDP (RFC 7065)."""
        host, port = self.relay_address(side)
        return f"turn:{host}:{port}?transport=udp"

    def add_upstream(self, ip: str) -> str:
        """Put a real server's IP on the public network; returns its proxy IP (ports unchanged)."""
        return self.fabric.add_upstream(ip)

    def reachable_address(self, side: Side, address: Address) -> Address:
        """What the OTHER side must be told for ``address``, a candidate address of ``side`` (RFC 4787 §4.1).

        A public side's host address becomes its one-to-one public address; a NATed side's private address becomes a
        black hole; a real server's address (a TURN relayed address) becomes its proxy; public addresses pass.
        """
        exposure = self.fabric.expose(side, (address[0], int(address[1])), self._loop.time())
        self._bind_created()
        if exposure.kind == "blackhole":
            self._ensure(exposure.address, "blackhole")
        elif exposure.kind == "proxy" or self.fabric.is_proxy(exposure.address):
            # a real server's address, or one it already reports as its proxy (a TURN server told its external IP)
            self._ensure(exposure.address, "proxy")
        return exposure.address

    def public_address(self, server: Address) -> Address:
        """The public (proxy) address of a real server address whose IP was given as an upstream; binds it."""
        address = self.fabric.proxy_of((server[0], int(server[1])))
        self._ensure(address, "proxy")
        return address

    def rewrite_candidate(self, side: Side, candidate: str) -> str | None:
        """A candidate of ``side`` as the other side must get it (RFC 8839 §5.1), or None to leave it out.

        UDP candidates on IPv4 addresses are rewritten with :meth:`reachable_address`; the related address is kept
        (ICE never sends to it, RFC 8445 §5.1.3). TCP, IPv6 and hostname candidates are left out: the userspace
        emulator carries IPv4 UDP only.
        """
        try:
            c = parse_candidate(candidate)
        except CandidateError:
            logger.warning("netem: unparsable candidate %r left out", candidate)
            return None
        if c.protocol != "udp" or not _ipv4(c.address):
            return None
        host, port = self.reachable_address(side, (c.address, c.port))
        return format_candidate(replace(c, address=host, port=port))

    # -- control ----------------------------------------------------------------------------------------------

    def rebind(self, side: Side) -> None:
        """Make ``side``'s NAT drop every mapping; new traffic gets new external ports (RFC 4787 §4.3)."""
        dropped = self.fabric.nats[side].rebind()
        for m in dropped:
            self._retire(m.external)
        logger.info("netem: side %s rebinding at +%.3f s dropped %d mappings", side, self.elapsed(), len(dropped))
        self._wake()

    def elapsed(self) -> float:
        """Seconds since the emulator started (the clock of ``rebind_at``)."""
        return self._loop.time() - self.started

    async def until(self, condition: Callable[[], bool], timeout: float) -> None:
        """Wait until ``condition()`` holds, checked after every forward, drop and rebinding; raises on timeout."""
        if condition():
            return
        if len(self._waiters) >= _WAITERS:
            raise HarnessError("netem: too many waiters")
        future: asyncio.Future[None] = self._loop.create_future()
        waiter = (condition, future)
        self._waiters.append(waiter)
        try:
            await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise HarnessError(f"netem: condition not met within {timeout:g} s; {self.stats.as_dict()}") from None
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    def _wake(self) -> None:
        for condition, future in list(self._waiters):
            if not future.done():
                try:
                    met = condition()
                except Exception as exc:
                    future.set_exception(exc)
                    continue
                if met:
                    future.set_result(None)

    def mappings(self, side: Side) -> list[tuple[Address, Address]]:
        """The (internal, external) pairs in ``side``'s NAT table (RFC 4787 §4.1)."""
        return [(m.internal, m.external) for m in self.fabric.nats[side].mappings]

    def describe(self) -> dict[str, Any]:
        """The wiring, for logs and report attachments."""
        return {
            "topology": self.topology.name,
            "description": self.topology.description,
            "expect": self.topology.expect,
            "sides": {
                side: {
                    "interface": self.interface(side),
                    "behavior": self.topology.side(side).label,
                    "public_ip": self.plan.external_ip(side),
                    "loss": self.topology.side(side).loss,
                    "delay": self.topology.side(side).delay,
                    "rebind_at": self.topology.side(side).rebind_at,
                }
                for side in SIDES
            },
            "stun_server": self.stun_spec("a"),
            "turn_server": None if self._turn is None else self.turn_uri("a"),
            "stats": self.stats.as_dict(),
        }

    def close(self) -> None:
        """Stop: cancel timers, drop held datagrams, close every socket."""
        if self._closed:
            return
        self._closed = True
        for handle in [*self._timers, *self._expiry.values()]:
            handle.cancel()
        if self._delay_timer is not None:
            self._delay_timer.cancel()
        self._delay.clear()
        for entry in self._sockets.values():
            self._close_sock(entry)
        self._sockets.clear()
        for _, future in self._waiters:
            if not future.done():
                future.set_exception(HarnessError("netem: network closed"))
        logger.info("netem: %s closed; %s", self.topology.name, self.stats.as_dict())

    # -- sockets ----------------------------------------------------------------------------------------------

    def _open(self, address: Address, role: Role) -> bool:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            sock.bind(address)
        except OSError as exc:
            sock.close()
            if role == "stun":
                raise HarnessError(f"netem: cannot bind the STUN server on {address}: {exc}") from exc
            logger.warning("netem: cannot bind %s %s:%d: %s", role, address[0], address[1], exc)
            return False
        entry = _Sock(address, role, sock)
        self._sockets[address] = entry
        self._loop.add_reader(sock.fileno(), self._readable, entry)
        return True

    def _ensure(self, address: Address, role: Role) -> bool:
        return address in self._sockets or self._open(address, role)

    def _close_sock(self, entry: _Sock) -> None:
        with contextlib.suppress(Exception):
            self._loop.remove_reader(entry.sock.fileno())
        entry.sock.close()

    def _retire(self, address: Address) -> None:
        """Keep a dead mapping's socket as a counting sink (bounded); its port is never handed out again."""
        if address not in self._sockets:
            return
        self._retired.append(address)
        while len(self._retired) > _RETIRED_SINKS:
            old = self._retired.popleft()
            entry = self._sockets.pop(old, None)
            if entry is not None:
                self._close_sock(entry)

    def _bind_created(self) -> set[Address]:
        """Open sockets for new mappings; returns the external addresses the OS refused (their mappings removed)."""
        failed: set[Address] = set()
        for side, mapping in self.fabric.take_created():
            if self._ensure(mapping.external, "external"):
                if self.capture is not None:
                    self.capture.label(mapping.external, f"{side} public {mapping.external[1]}")
                self._arm_expiry(side)
            else:
                self.fabric.nats[side].discard(mapping)
                failed.add(mapping.external)
        return failed

    # -- the datagram path ------------------------------------------------------------------------------------

    def _readable(self, entry: _Sock) -> None:
        for _ in range(_READ_BURST):
            try:
                data, addr = entry.sock.recvfrom(_MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                logger.debug("netem: recv on %s failed: %s", entry.address, exc)
                return
            self._handle(entry.address, (str(addr[0]), int(addr[1])), data)

    def _handle(self, local: Address, src: Address, data: bytes) -> None:
        now = self._loop.time()
        ingress = self._ingress_label(src)
        for _ in range(_BIND_ATTEMPTS):
            route = self.fabric.route(local, src, now)
            failed = self._bind_created()
            if isinstance(route, Drop) or not failed:
                break
            source = route.src if isinstance(route, Deliver) else route.seen
            if source not in failed:
                break
        else:
            self._drop("bind-failed", None, src, local, data, ingress, now)
            return
        if isinstance(route, Drop):
            self._drop(route.reason, route.side, src, local, data, ingress, now)
            return
        self._record(src, local, data, "in", ingress)
        if isinstance(route, StunRequest):
            self._answer(route, src, local, data, now)
            return
        self._forward(route, data, now)

    def _answer(self, request: StunRequest, src: Address, local: Address, data: bytes, now: float) -> None:
        """Answer a Binding request with XOR-MAPPED-ADDRESS = the source seen on the public network (RFC 8489 §6.3)."""
        idx = index(data)
        host, port = request.seen
        if idx is not None and idx.type == message_type(BINDING, REQUEST):
            answer = bytes(
                STUN(
                    type=message_type(BINDING, SUCCESS),
                    transaction_id=idx.transaction_id,
                    attributes=[
                        attr.XorMappedAddress(family=1, address=host, port=port),
                        attr.Software(software=b"ice-conformance netem"),
                        attr.Fingerprint(),
                    ],
                )
            )
        elif len(data) >= 20 and data[:2] == b"\x00\x01" and int.from_bytes(data[2:4], "big") == len(data) - 20:
            # An RFC 3489 Binding request (no magic cookie, 128-bit transaction ID): a server answers it with
            # MAPPED-ADDRESS for backwards compatibility (RFC 5389 §12.2), as real STUN servers such as coturn do.
            answer = bytes(
                STUN(
                    type=message_type(BINDING, SUCCESS),
                    magic_cookie=int.from_bytes(data[4:8], "big"),
                    transaction_id=data[8:20],
                    attributes=[attr.MappedAddress(family=1, address=host, port=port)],
                )
            )
        else:
            self._drop("not-a-binding-request", None, src, local, data, "netem:stun", now, record=False)
            return
        reply = self.fabric.reply(request.server, request.seen, now)
        self._bind_created()
        if isinstance(reply, Drop):
            self._drop(reply.reason, reply.side, request.server, request.seen, answer, "netem:stun", now)
            return
        self.stats.stun_answered += 1
        self._forward(replace(reply, delay=reply.delay + request.delay), answer, now)

    def _forward(self, route: Deliver, data: bytes, now: float) -> None:
        if route.src not in self._sockets and not (self.fabric.is_proxy(route.src) and self._open(route.src, "proxy")):
            self._drop("bind-failed", None, route.src, route.dst, data, route.egress, now, record=False)
            return
        held = _Held(route.src, route.dst, data, route.egress)
        if route.delay <= 0:
            self._send(held)
            return
        deadline = self._delay.push(now, route.delay, held)
        if deadline is None:
            self._drop("queue-full", None, route.src, route.dst, data, route.egress, now, record=False)
            return
        self._arm_delay()

    def _send(self, held: _Held) -> None:
        entry = self._sockets.get(held.src)
        if entry is None:
            self._drop("closed", None, held.src, held.dst, held.data, held.egress, self._loop.time(), record=False)
            return
        try:
            entry.sock.sendto(held.data, held.dst)
        except BlockingIOError:
            self._drop("queue-full", None, held.src, held.dst, held.data, held.egress, self._loop.time(), record=False)
            return
        except OSError as exc:
            logger.debug("netem: send %s -> %s failed: %s", held.src, held.dst, exc)
            self._drop("send-failed", None, held.src, held.dst, held.data, held.egress, self._loop.time(), record=False)
            return
        self.stats.forwarded += 1
        self._record(held.src, held.dst, held.data, "out", held.egress)
        if self._waiters:
            self._wake()

    # -- timers -----------------------------------------------------------------------------------------------

    def _arm_delay(self) -> None:
        deadline = self._delay.next_deadline()
        if deadline is None or self._closed:
            return
        if self._delay_timer is not None:
            if self._delay_timer.when() <= deadline:
                return
            self._delay_timer.cancel()
        self._delay_timer = self._loop.call_at(deadline, self._release)

    def _release(self) -> None:
        self._delay_timer = None
        for held in self._delay.due(self._loop.time()):
            self._send(held)
        self._arm_delay()

    def _arm_expiry(self, side: Side) -> None:
        deadline = self.fabric.nats[side].next_deadline()
        if deadline is None or self._closed or math.isinf(deadline):
            return
        handle = self._expiry.get(side)
        if handle is not None:
            if handle.when() <= deadline:
                return
            handle.cancel()
        self._expiry[side] = self._loop.call_at(deadline, self._sweep, side)

    def _sweep(self, side: Side) -> None:
        self._expiry.pop(side, None)
        for m in self.fabric.nats[side].expire(self._loop.time()):
            logger.debug("netem: side %s mapping %s -> %s expired", side, m.internal, m.external)
            self._retire(m.external)
        self._arm_expiry(side)

    # -- accounting -------------------------------------------------------------------------------------------

    def _ingress_label(self, src: Address) -> str:
        side = self.plan.side_of(src[0])
        return f"netem:{side}" if side is not None else "netem:public"

    def _record(self, src: Address, dst: Address, data: bytes, direction: Literal["in", "out"], label: str) -> None:
        if self.capture is not None:
            self.capture.record(src, dst, data, direction, endpoint=label)

    def _drop(
        self,
        reason: str,
        side: str | None,
        src: Address,
        dst: Address,
        data: bytes,
        label: str,
        now: float,
        *,
        record: bool = True,
    ) -> None:
        self.stats.dropped[reason] += 1
        self.stats.by_side[(side or "-", reason)] += 1
        self.events.append(DropEvent(now, reason, side, src, dst, len(data)))
        if record and self.capture is not None:
            self.capture.record(src, dst, data, "in", note=f"netem dropped: {reason}", endpoint=label)
        if self._waiters:
            self._wake()


def _ipv4(host: str) -> bool:
    try:
        socket.inet_pton(socket.AF_INET, host)
    except OSError:
        return False
    return True
