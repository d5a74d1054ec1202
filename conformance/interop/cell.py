"""One interop cell: two IUTs on one emulated topology, signalled, connected and closed.

Theory of operation: a cell is (controlling IUT, controlled IUT, topology). The runner gives the cell an address
slot of the emulator (:class:`~conformance.netem.topology.AddressPlan`), starts a :class:`~conformance.netem.Network`
with a capture and, on relay topologies, a coturn TURN server outside the plan (docs/netem.md, "Wiring recipe").
It then acts as the signalling channel in offer/answer order (RFC 8445 §5.3, RFC 8839 §3): the controlling IUT
gathers and offers, the controlled IUT gets the offer before it gathers (SDP-driven stacks need that order) and
answers; every candidate crosses :meth:`Network.rewrite_candidate`; trickled candidates and end-of-candidates are
relayed one at a time when both IUTs declare ``trickle`` (RFC 8838 §13). Both IUTs ``connect``; the cell waits on
their ``selected_pair`` and ``state`` notifications with a deadline, sends a datagram each way when both have a
data API, closes both, and judges the capture (:mod:`conformance.interop.diagnosis`). A pair that does not connect
gets a cause read from the wire: which checks were sent, which were delivered, what the emulator dropped and why.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import itertools
import logging
import os
import subprocess
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

from conformance.adapters.base import Adapter, AdapterError, AgentConfig, Notification, TurnServer, Unsupported
from conformance.adapters.coturn import CoturnAdapter
from conformance.adapters.registry import get_iut, known_iuts, make_adapter
from conformance.adapters.stdio import StdioAdapter
from conformance.ids import slug
from conformance.interop.artifacts import write_artifacts
from conformance.interop.diagnosis import judge
from conformance.interop.model import CellResult, CellSpec, RunOptions
from conformance.netem import TOPOLOGIES, AddressPlan, Network
from conformance.netem.topology import Side
from conformance.protocol.candidate import CandidateError, parse_candidate
from conformance.tester.capture import Capture

__all__ = [
    "GATHER_ON_INTERFACE_ADDRESSES",
    "NO_LOOPBACK_GATHERING",
    "Cell",
    "CellSide",
    "ip",
    "ip_addr",
    "run_cell",
]

logger = logging.getLogger(__name__)

#: IUTs that cannot bind a given address and gather on the host's interface addresses instead (``iut.toml``'s
#: ``gathers_on_interfaces``): inside the run's own namespace, the side's emulator address is added to ``lo`` for
#: them while their cell runs.
GATHER_ON_INTERFACE_ADDRESSES = frozenset(n for n in known_iuts() if get_iut(n).gathers_on_interfaces)
#: IUTs that never gather on a loopback address: Chromium's network list skips loopback interfaces and addresses,
#: and --allow-loopback-in-peer-connection adds 127.0.0.1 alone. Inside the run's own namespace such a side runs
#: in a host namespace of its own, on a routable private address (``AddressPlan.routable``) of a veth pair into
#: the run's namespace (docs/interop.md, "Namespaces"); outside it the cell is UNSUPPORTED with this reason.
NO_LOOPBACK_GATHERING = {
    "chromium": (
        "Chromium never gathers on the emulator's loopback side addresses (its network list skips loopback "
        "interfaces and addresses; --allow-loopback-in-peer-connection adds 127.0.0.1 alone), and a routable side "
        "address needs the run's own network namespace (root and unshare -n)"
    ),
}
#: Seconds a trickling IUT gets to end gathering when its peer takes only complete descriptions.
GATHER_BUDGET = 5.0
TURN_USER = "interop"
TURN_PASSWORD = "interop-secret"
TURN_REALM = "interop.test"
TURN_PORT = 3478
#: Deadlines of the adapter requests (the stdio adapters have their own, these bound the in-process ones too).
_REQUEST_DEADLINE = 30.0
_SHUTDOWN_DEADLINE = 10.0
_DATA_ATTEMPTS = 5


class CellSide:
    """One IUT in a cell: its adapter, agent, notifications, and what it signalled."""

    def __init__(self, side: Side, iut: str, role: str) -> None:
        self.side: Side = side
        self.iut = iut
        self.role = role
        self.adapter: Adapter | None = None
        self.agent = ""
        self.caps: frozenset[str] = frozenset()
        self.version = ""
        self.lock = asyncio.Lock()
        self.ufrag = ""
        self.pwd = ""
        self.candidates: list[str] = []  #: every local candidate as the IUT gave it (gathered and trickled)
        self.gathered: list[str] = []  #: the candidates of the ``gather`` result
        self.trickle_agent = False  #: created with ``trickle: true`` (the IUT declares trickle)
        self.local_done = asyncio.Event()  #: end-of-candidates seen (RFC 8838 §13)
        self.states: list[str] = []
        self.selected: dict[str, str] | None = None
        self.selected_at: float | None = None
        self.connected_at: float | None = None
        self.connect_at: float | None = None
        self.ended = asyncio.Event()  #: connected, or failed/closed
        self.data: asyncio.Queue[bytes] = asyncio.Queue()
        self.pending_trickle: deque[str | None] = deque()
        self.remote_applied = False

    @property
    def label(self) -> str:
        return f"{self.side.upper()} ({self.iut})"

    async def call(self, what: str, coro_fn: Callable[[], Awaitable[Any]], timeout: float = _REQUEST_DEADLINE) -> Any:
        """One adapter request, serialised per agent (docs/adapter-contract.md §1) and bounded."""
        async with self.lock:
            try:
                return await asyncio.wait_for(coro_fn(), timeout)
            except TimeoutError:
                raise AdapterError(f"{self.label}: {what} did not complete within {timeout:g} s") from None


#: Serial numbers of host namespaces in this process (their names and veths are never reused).
_HOST_NAMESPACES = itertools.count(1)


async def ip(argv: list[str]) -> None:
    """Run ``ip ARGV`` (only inside the run's own namespace); AdapterError with its stderr on failure."""
    proc = await asyncio.create_subprocess_exec("ip", *argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _, err = await asyncio.wait_for(proc.communicate(), 10)
    except TimeoutError:
        proc.kill()
        raise AdapterError(f"ip {' '.join(argv)} did not finish") from None
    if proc.returncode != 0 and b"File exists" not in err:
        raise AdapterError(f"ip {' '.join(argv)} failed: {err.decode(errors='replace').strip()}")


async def ip_addr(action: str, address: str) -> None:
    """Add or delete a /32 on ``lo``."""
    await ip(["addr", action, f"{address}/32", "dev", "lo"])


class Cell:
    """The run of one cell (see the module docstring)."""

    def __init__(self, spec: CellSpec, slot: int, options: RunOptions) -> None:
        self.spec = spec
        self.options = options
        self.topology = TOPOLOGIES[spec.topology]
        iuts = (("a", spec.controlling), ("b", spec.controlled))
        routable = frozenset(side for side, iut in iuts if iut in NO_LOOPBACK_GATHERING and options.netns)
        self.plan = AddressPlan(slot=slot, routable=routable)
        self.result = CellResult(spec, expected=self.topology.expect)
        self.a = CellSide("a", spec.controlling, "controlling")
        self.b = CellSide("b", spec.controlled, "controlled")
        self.capture = Capture()
        self.net: Network | None = None
        self.turns: dict[str, CoturnAdapter] = {}
        self.turn_servers: dict[str, tuple[str, int]] = {}
        self.turn_proxies: dict[str, tuple[str, int]] = {}
        self.routes: list[str] = []
        self.host_ns: dict[str, str] = {}  #: side -> its host namespace (a side in ``plan.routable``)
        self.host_links: list[str] = []  #: the run-side ends of the host namespaces' veths
        self.local_routes: list[str] = []
        self.turn_log = ""
        self.stun_refused: Counter[str] = Counter()  #: per side: requests the emulator's STUN server refused
        self.trickle = False
        self.tasks: list[asyncio.Task[None]] = []
        lossy = any(self.topology.side(s).loss > 0 for s in ("a", "b"))
        self.deadline = options.loss_connect_deadline if lossy else options.connect_deadline
        self.folder = options.out / "cells" / slug(spec.cell_id.removeprefix("interop/"))

    async def _route_turn(self, side: str, proxy_ip: str) -> None:
        """Make traffic to ``side``'s TURN proxy leave from that side's address unless the socket is bound.

        Some TURN clients (aioice) open an unbound socket for the server; on loopback the kernel would pick
        127.0.0.1, which belongs to no side. A local route with a preferred source puts it on the side's private
        address, as a host with one interface would.
        """
        assert self.net is not None
        iface = self.net.interface("a" if side == "a" else "b")
        await ip(["route", "add", "local", f"{proxy_ip}/32", "dev", "lo", "src", iface, "table", "local"])
        self.routes.append(proxy_ip)

    def other(self, s: CellSide) -> CellSide:
        return self.b if s is self.a else self.a

    @property
    def wants_turn(self) -> bool:
        return self.options.turn == "always" or (self.options.turn == "relay" and self.topology.expect == "relay")

    async def run(self) -> CellResult:
        r = self.result
        r.started = time.time()
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        try:
            await self._setup()
            await self._signal_and_connect()
            await self._wait_connected()
            await self._exchange_data()
        except Unsupported as exc:
            r.verdict = "UNSUPPORTED"
            r.error = str(exc)
        except (AdapterError, OSError, ValueError) as exc:
            r.error = f"{type(exc).__name__}: {exc}"
            logger.info("%s: %s", self.spec.cell_id, r.error)
        except Exception as exc:  # a harness bug must not stop the matrix
            logger.exception("%s: harness failure", self.spec.cell_id)
            r.error = f"harness failure: {type(exc).__name__}: {exc}"
        finally:
            await self._teardown()
        r.duration = loop.time() - t0
        judge(self)
        write_artifacts(self)
        return r

    # -- set-up -----------------------------------------------------------------------------------------------

    async def _setup(self) -> None:
        slot = self.plan.slot
        upstreams: list[str] = []
        if self.wants_turn:
            # One TURN server per side (RFC 8656), each on its own IP outside the plan (docs/netem.md, wiring 1),
            # so a TURN client socket that binds no address can still be charged to its side (see _route_turn).
            self.turn_servers = {side: (f"127.{second}.{slot}.1", TURN_PORT) for side, second in (("a", 55), ("b", 56))}
            upstreams.append(self.turn_servers["b"][0])
        self.net = Network(
            self.topology,
            plan=self.plan,
            seed=self.spec.seed,
            capture=self.capture,
            turn=self.turn_servers.get("a"),
            upstreams=upstreams,
        )
        for side, server in self.turn_servers.items():
            proxy = self.net.public_address(server)
            self.turn_proxies[side] = proxy
            self.capture.label(proxy, f"TURN server of {side.upper()} (coturn, netem proxy)")
            # Peers reach the server's relayed addresses only through its proxy (same ports), so the server is told
            # the proxy's IP as its external address: its XOR-RELAYED-ADDRESS is then where peers reach it, as for a
            # TURN server configured for the translation in front of it (RFC 8656 §7.2). Without it a check from a
            # relayed candidate comes back with a mapped address unlike that candidate.
            adapter = CoturnAdapter()
            self.turns[side] = adapter
            await asyncio.wait_for(adapter.initialize(), _REQUEST_DEADLINE)
            await asyncio.wait_for(
                adapter.start_server(
                    "turn",
                    f"{server[0]}:{server[1]}",
                    realm=TURN_REALM,
                    users={TURN_USER: TURN_PASSWORD},
                    external_ip=proxy[0],
                ),
                _REQUEST_DEADLINE,
            )
            if self.options.netns and side not in self.plan.routable:
                await self._route_turn(side, proxy[0])
        for s in (self.a, self.b):
            await self._start_side(s)
        self.trickle = "trickle" in self.a.caps and "trickle" in self.b.caps
        for s in (self.a, self.b):
            s.trickle_agent = "trickle" in s.caps
        for s in (self.a, self.b):
            self.tasks.append(asyncio.create_task(self._pump(s), name=f"{self.spec.cell_id}-{s.side}-events"))
        for s in (self.a, self.b):
            await self._create_agent(s)

    async def _start_side(self, s: CellSide) -> None:
        assert self.net is not None
        iface = self.net.interface(s.side)
        if s.iut in NO_LOOPBACK_GATHERING and not self.options.netns:
            raise Unsupported(NO_LOOPBACK_GATHERING[s.iut])
        if s.iut in GATHER_ON_INTERFACE_ADDRESSES and not self.options.netns:
            self.result.notes.append(
                f"{s.iut} gathers only on the host's interface addresses and cannot bind {iface} outside the "
                "run's own network namespace (needs root and unshare -n)"
            )
        if s.side in self.plan.routable:
            adapter = await self._adapter_in_host_namespace(s)
        else:
            adapter = make_adapter(s.iut)
        s.adapter = adapter
        info = await s.call("initialize", adapter.initialize, 60.0)
        s.caps = info.capabilities
        s.version = info.version
        self.result.versions[s.side] = f"{info.name} {info.version}"
        if s.role not in s.caps:
            raise Unsupported(f"{s.iut} does not declare the {s.role} capability")
        if self.topology.expect == "relay" and self.wants_turn and "turn_client" not in s.caps:
            raise Unsupported(
                f"{s.iut} declares no turn_client capability, and {self.spec.topology} connects only through a relay"
            )

    async def _adapter_in_host_namespace(self, s: CellSide) -> Adapter:
        """The stdio shim of ``s`` started in a host namespace of its own (RFC 8445 §2: a host, with one interface).

        The namespace holds ``lo`` and ``eth0``, a veth into the run's namespace with the side's routable address
        (``AddressPlan.routable``); 127.0.0.1 stays local (the shim's page server and the browser's own sockets),
        the rest of 127.0.0.0/8, where the emulator lives, is routed out of ``eth0`` (``route_localnet`` on both
        ends). So the stack sees one non-loopback interface, and nothing from the other side or another cell.
        """
        spec = get_iut(s.iut)
        if spec.launcher == "inprocess":
            raise AdapterError(f"{s.iut}: only a stdio shim can run in a host namespace")
        side = s.side
        iface = self.plan.interface(side)
        # Names are new for every cell: a slot's previous host namespace can outlive its cell while the browser's
        # last processes exit, and `ip` here lets "File exists" pass, so a reused name would be a stale device.
        serial = next(_HOST_NAMESPACES)
        name = f"icn{os.getpid()}-{serial}{side}"
        link = f"ich{serial}{side}"
        await ip(["netns", "add", name])
        self.host_ns[side] = name
        await ip(["link", "add", link, "type", "veth", "peer", "name", "eth0", "netns", name])
        self.host_links.append(link)
        for key, value in ((f"ipv4/conf/{link}/route_localnet", "1"), (f"ipv6/conf/{link}/disable_ipv6", "1")):
            Path("/proc/sys/net", key).write_text(value, encoding="ascii")
        await ip(["link", "set", link, "up"])
        await ip(["route", "replace", f"{iface}/32", "dev", link])
        blackhole = self.plan.blackhole(side)  # the emulator binds it (docs/netem.md): local, as 127.0.0.0/8 is
        await ip(["route", "add", "local", f"{blackhole}/32", "dev", "lo", "table", "local"])
        self.local_routes.append(blackhole)
        sysctls = ["net.ipv4.conf.eth0.route_localnet=1", "net.ipv6.conf.eth0.disable_ipv6=1"]
        await ip(["netns", "exec", name, "sysctl", "-qw", *sysctls])
        for argv in (
            ["link", "set", "lo", "up"],
            ["link", "set", "eth0", "up"],
            ["addr", "add", f"{iface}/32", "dev", "eth0"],
            ["route", "del", "local", "127.0.0.0/8", "dev", "lo", "table", "local"],
            ["route", "add", "127.0.0.0/8", "dev", "eth0", "src", iface],
        ):
            await ip(["-n", name, *argv])
        cmd = spec.stdio_command()
        argv = ["nsenter", f"--net=/run/netns/{name}", "--", *cmd.argv]
        return StdioAdapter(argv, env=cmd.env, cwd=cmd.cwd, name=spec.name, **spec.stdio_options)

    async def _create_agent(self, s: CellSide) -> None:
        assert self.net is not None and s.adapter is not None
        adapter = s.adapter
        turn: list[TurnServer] = []
        proxy = self.turn_proxies.get(s.side)
        if proxy is not None:
            if "turn_client" not in s.caps:
                self.result.notes.append(f"{s.iut} declares no turn_client capability: no TURN server given")
            else:
                turn = [TurnServer(f"turn:{proxy[0]}:{proxy[1]}?transport=udp", TURN_USER, TURN_PASSWORD)]
        config = AgentConfig(
            role=s.role,
            interfaces=[self.net.interface(s.side)],
            stun_servers=[self.net.stun_spec(s.side)],
            turn_servers=turn,
            trickle=s.trickle_agent,
        )
        s.agent = await s.call("create_agent", lambda: adapter.create_agent(config))

    # -- signalling -------------------------------------------------------------------------------------------

    def rewrite(self, s: CellSide, candidate: str) -> str | None:
        """``s``'s candidate as the other side sees it on the emulated network; None when not ``s``'s own."""
        assert self.net is not None
        if not self._own(s, candidate):
            return None
        return self.net.rewrite_candidate(s.side, candidate)

    def _own(self, s: CellSide, candidate: str) -> bool:
        """Whether the candidate's base is ``s``'s interface (RFC 8445 §5.1.1): a stack that gathers on every
        local address may offer candidates whose base belongs to the other side's emulated network."""
        assert self.net is not None
        try:
            c = parse_candidate(candidate)
        except CandidateError:
            return True  # the emulator's rewrite logs and drops it
        other: Side = "b" if s.side == "a" else "a"
        if c.kind == "host":
            return c.address == self.net.interface(s.side) or self.plan.side_of(c.address) is None
        raddr = c.related_address
        if raddr is None or raddr in ("0.0.0.0", "::"):
            return True
        return self.plan.side_of(raddr) != other and raddr != self.plan.external_ip(other)

    async def _gather(self, s: CellSide) -> None:
        """Gather; a trickling IUT whose peer does not trickle is waited for until its end-of-candidates."""
        assert s.adapter is not None
        adapter = s.adapter
        desc = await s.call("gather", lambda: adapter.gather(s.agent), 60.0)
        s.ufrag, s.pwd = desc.ufrag, desc.pwd
        s.gathered = list(desc.candidates)
        for c in desc.candidates:
            if c not in s.candidates:
                s.candidates.append(c)
        self._label(s, desc.candidates)
        if s.trickle_agent and not self.trickle:
            # Half trickle (RFC 8838 §4): the peer takes one complete description, so collect until the end.
            try:
                await asyncio.wait_for(s.local_done.wait(), GATHER_BUDGET)
            except TimeoutError:
                self.result.notes.append(
                    f"{s.label} did not end gathering within {GATHER_BUDGET:g} s; its peer (no trickle) was given "
                    f"the {len(s.candidates)} candidates gathered so far"
                )

    def _label(self, s: CellSide, candidates: Iterable[str]) -> None:
        for c in candidates:
            with contextlib.suppress(CandidateError):
                cand = parse_candidate(c)
                self.capture.label((cand.address, cand.port), f"{s.label} {cand.kind}")

    async def _set_remote(self, s: CellSide) -> None:
        """Give ``s`` the other side's description (rewritten for the emulated network), then any trickle."""
        assert s.adapter is not None
        adapter = s.adapter
        peer = self.other(s)
        offered = peer.gathered if self.trickle else list(peer.candidates)
        cands = [c for c in (self.rewrite(peer, x) for x in offered) if c is not None]
        await s.call("set_remote", lambda: adapter.set_remote(s.agent, peer.ufrag, peer.pwd, cands))
        s.remote_applied = True  # from now on, trickled candidates of the peer go straight to s
        if self.trickle:
            await self._flush_trickle(s)
        elif s.trickle_agent:
            s.pending_trickle.append(None)  # the peer's description was complete: end-of-candidates (RFC 8838 §13)
            await self._flush_trickle(s)

    async def _flush_trickle(self, s: CellSide) -> None:
        assert s.adapter is not None
        adapter = s.adapter
        while s.pending_trickle:
            c = s.pending_trickle.popleft()
            try:
                await s.call("add_remote_candidate", functools.partial(adapter.add_remote_candidate, s.agent, c))
            except Unsupported:
                return

    async def _signal_and_connect(self) -> None:
        a, b = self.a, self.b
        # Offer/answer (RFC 8839 §3): the controlling side offers; the controlled side applies the offer, then
        # gathers and answers (the SDP-driven stacks refuse another order).
        await self._gather(a)
        await self._set_remote(b)
        await self._gather(b)
        await self._set_remote(a)
        loop = asyncio.get_running_loop()
        for s in (a, b):
            adapter = s.adapter
            assert adapter is not None
            s.connect_at = loop.time()
            await s.call("connect", functools.partial(adapter.connect, s.agent))

    async def _pump(self, s: CellSide) -> None:
        """Read ``s``'s notifications: trickled candidates to the peer, states, selected pair, data."""
        assert s.adapter is not None
        loop = asyncio.get_running_loop()
        peer = self.other(s)
        while True:
            n: Notification = await s.adapter.notifications.get()
            if n.params.get("agent") not in (s.agent, None) and s.agent:
                continue
            now = loop.time()
            if n.method == "candidate":
                c = n.params.get("candidate")
                if c is None:
                    s.local_done.set()
                    if self.trickle:
                        peer.pending_trickle.append(None)
                else:
                    if str(c) not in s.candidates:
                        s.candidates.append(str(c))
                    self._label(s, [str(c)])
                    rewritten = self.rewrite(s, str(c))
                    if self.trickle and rewritten is not None:
                        peer.pending_trickle.append(rewritten)
                if self.trickle and peer.remote_applied:
                    await self._flush_trickle(peer)
            elif n.method == "state":
                state = str(n.params.get("state"))
                s.states.append(state)
                if state in ("connected", "completed") and s.connected_at is None:
                    s.connected_at = now
                    s.ended.set()
                elif state in ("failed", "closed"):
                    s.ended.set()
            elif n.method == "selected_pair":
                if s.selected is None:
                    s.selected_at = now
                s.selected = {"local": str(n.params.get("local")), "remote": str(n.params.get("remote"))}
            elif n.method == "data":
                with contextlib.suppress(ValueError, KeyError):
                    s.data.put_nowait(base64.b64decode(n.params["data"], validate=True))

    # -- waiting and data -------------------------------------------------------------------------------------

    async def _wait_connected(self) -> None:
        """Wait until both sides connected, or one failed, or the deadline (RFC 8445 §8)."""
        a, b = self.a, self.b

        async def settled() -> None:
            while True:
                if any(s.ended.is_set() and s.connected_at is None for s in (a, b)):
                    return  # failed or closed without connecting
                pending = [s for s in (a, b) if not s.ended.is_set()]
                if not pending:
                    return
                waits = [asyncio.ensure_future(s.ended.wait()) for s in pending]
                try:
                    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for w in waits:
                        w.cancel()

        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(settled(), self.deadline)

    async def _exchange_data(self) -> None:
        """One datagram each way on the selected pair (RFC 8445 §12), retried on loss, with deadlines."""
        a, b = self.a, self.b
        r = self.result
        if a.connected_at is None or b.connected_at is None:
            return
        lossy = self.deadline > self.options.connect_deadline
        wait = 4.0 if lossy else 2.0
        directions = (("a>b", a, b), ("b>a", b, a))
        unsupported: list[str] = []
        for key, src, _dst in directions:
            adapter = src.adapter
            assert adapter is not None
            payload = f"interop {key} #1".encode()
            try:
                await src.call("send", functools.partial(adapter.send, src.agent, 1, payload))
            except Unsupported:
                unsupported.append(src.iut)
            except AdapterError as exc:
                r.data[key] = f"send failed: {exc}"
        if unsupported:
            text = f"n/a: no data API ({', '.join(sorted(set(unsupported)))})"
            r.data = {"a>b": text, "b>a": text}
            return
        for key, src, dst in directions:
            if key in r.data:
                continue
            r.data[key] = await self._await_data(key, src, dst, wait)

    async def _await_data(self, key: str, src: CellSide, dst: CellSide, wait: float) -> str:
        adapter = src.adapter
        assert adapter is not None
        for attempt in range(1, _DATA_ATTEMPTS + 1):
            if attempt > 1:
                payload = f"interop {key} #{attempt}".encode()
                try:
                    await src.call("send", functools.partial(adapter.send, src.agent, 1, payload))
                except AdapterError as exc:
                    return f"send failed: {exc}"
            deadline = asyncio.get_running_loop().time() + wait
            while True:
                left = deadline - asyncio.get_running_loop().time()
                if left <= 0:
                    break
                try:
                    got = await asyncio.wait_for(dst.data.get(), left)
                except TimeoutError:
                    break
                if got.startswith(f"interop {key} #".encode()):
                    return "ok" if attempt == 1 else f"ok (attempt {attempt})"
        return f"not delivered after {_DATA_ATTEMPTS} attempts ({wait:g} s each)"

    # -- tear-down and judgement ------------------------------------------------------------------------------

    async def _teardown(self) -> None:
        self.result.states = {s.side: list(s.states) for s in (self.a, self.b)}
        for s in (self.a, self.b):
            adapter = s.adapter
            if adapter is None:
                continue
            if s.agent:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(adapter.close(s.agent), _SHUTDOWN_DEADLINE)
        for s in (self.a, self.b):
            if s.adapter is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(s.adapter.shutdown(), _SHUTDOWN_DEADLINE)
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(BaseException):
                await task
        if self.net is not None:
            for e in self.net.events:
                side = self.plan.side_of(e.src[0])
                if e.reason == "not-a-binding-request" and side is not None:
                    self.stun_refused[side] += 1
            self.result.netem = self.net.describe()
            self.result.netem["drops_tail"] = [
                {
                    "t": round(e.time - self.net.started, 3),
                    "reason": e.reason,
                    "side": e.side,
                    "src": f"{e.src[0]}:{e.src[1]}",
                    "dst": f"{e.dst[0]}:{e.dst[1]}",
                }
                for e in list(self.net.events)[-50:]
            ]
            self.net.close()
        logs = []
        for which, turn in self.turns.items():
            logs.append(f"----- coturn of side {which} -----\n{turn.diagnostics()}")
            with contextlib.suppress(Exception):
                await asyncio.wait_for(turn.shutdown(), _SHUTDOWN_DEADLINE)
        self.turn_log = "\n".join(logs)
        for proxy_ip in self.routes:
            with contextlib.suppress(AdapterError, OSError):
                await ip(["route", "del", "local", f"{proxy_ip}/32", "dev", "lo", "table", "local"])
        for link in self.host_links:  # both ends and their routes go now, even if the namespace lingers
            with contextlib.suppress(AdapterError, OSError):
                await ip(["link", "del", link])
        for name in self.host_ns.values():
            with contextlib.suppress(AdapterError, OSError):
                await ip(["netns", "del", name])
        for address in self.local_routes:
            with contextlib.suppress(AdapterError, OSError):
                await ip(["route", "del", "local", f"{address}/32", "dev", "lo", "table", "local"])

    def servers(self) -> list[tuple[str, int]]:
        """The STUN and TURN servers of the cell (their traffic is not checked as ICE traffic)."""
        return [self.plan.stun_server, *self.turn_servers.values(), *self.turn_proxies.values()]


async def run_cell(spec: CellSpec, options: RunOptions, slot: int = 1) -> CellResult:
    """Run one cell on address slot ``slot``."""
    return await Cell(spec, slot, options).run()
