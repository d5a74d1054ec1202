"""The interop runner: every ordered pair of IUTs on every emulated topology, one cell at a time or in parallel.

Theory of operation: a cell is (controlling IUT, controlled IUT, topology). The runner gives the cell an address
slot of the emulator (:class:`~conformance.netem.topology.AddressPlan`), starts a :class:`~conformance.netem.Network`
with a capture and, on relay topologies, a coturn TURN server outside the plan (docs/netem.md, "Wiring recipe").
It then acts as the signalling channel in offer/answer order (RFC 8445 §5.3, RFC 8839 §3): the controlling IUT
gathers and offers, the controlled IUT gets the offer before it gathers (SDP-driven stacks need that order) and
answers; every candidate crosses :meth:`Network.rewrite_candidate`; trickled candidates and end-of-candidates are
relayed one at a time when both IUTs declare ``trickle`` (RFC 8838 §13). Both IUTs ``connect``; the cell waits on
their ``selected_pair`` and ``state`` notifications with a deadline, sends a datagram each way when both have a
data API, closes both, and judges the capture (:mod:`conformance.tester.monitor`). A pair that does not connect
gets a cause read from the wire: which checks were sent, which were delivered, what the emulator dropped and why.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import json
import logging
import os
import shutil
import subprocess
import time
import zlib
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conformance import __version__
from conformance.adapters.base import Adapter, AdapterError, AgentConfig, Notification, TurnServer, Unsupported
from conformance.adapters.coturn import CoturnAdapter
from conformance.adapters.registry import get_iut, make_adapter
from conformance.catalog import load_catalog
from conformance.netem import TOPOLOGIES, AddressPlan, Network
from conformance.netem.topology import Side
from conformance.protocol.candidate import CandidateError, parse_candidate
from conformance.report.model import case_slug
from conformance.tester.capture import Capture, write_pcap
from conformance.tester.ladder import render_ladder
from conformance.tester.monitor import CHECKED_REQUIREMENTS, PeerSignalling, WireReport, check_wire

__all__ = [
    "CONNECT_DEADLINE",
    "LOSS_CONNECT_DEADLINE",
    "NETNS_ENV",
    "CellResult",
    "CellSpec",
    "RunOptions",
    "cells_for",
    "in_own_netns",
    "iut_needs_netns",
    "known_topologies",
    "run_cell",
    "run_matrix",
    "write_summary",
]

logger = logging.getLogger(__name__)

#: Seconds from ``connect`` until both sides must report a selected pair (RFC 8445 §8).
CONNECT_DEADLINE = 20.0
#: The same under loss (a lossy access link slows checks by their retransmissions, RFC 8445 §14.3).
LOSS_CONNECT_DEADLINE = 40.0
#: Set in the environment of a run the interop command started inside its own loopback-only namespace.
NETNS_ENV = "ICE_CONFORMANCE_INTEROP_NETNS"
#: IUTs that cannot bind a given address and gather on the host's interface addresses instead: inside the
#: run's own namespace, the side's emulator address is added to ``lo`` for them while their cell runs.
GATHER_ON_INTERFACE_ADDRESSES = frozenset({"libwebrtc", "firefox"})
#: IUTs that gather on one loopback address only (127.0.0.1, lo's primary), never on the emulator's side
#: addresses added to ``lo``: their cells are UNSUPPORTED, with the reason.
LOOPBACK_PRIMARY_ONLY = {
    "chromium": (
        "Chromium gathers only on lo's primary address 127.0.0.1 (one address per interface), never on the "
        "emulator's side address, so it cannot be placed on a side of the emulated network"
    ),
}
#: Seconds a trickling IUT gets to end gathering when its peer takes only complete descriptions.
GATHER_BUDGET = 5.0
TURN_USER = "interop"
TURN_PASSWORD = "interop-secret"
TURN_REALM = "interop.test"
#: Deadlines of the adapter requests (the stdio adapters have their own, these bound the in-process ones too).
_REQUEST_DEADLINE = 30.0
_SHUTDOWN_DEADLINE = 10.0
_DATA_ATTEMPTS = 5
_LEVEL_VERDICT = {"MUST": "FAIL", "SHOULD": "NON-STRICT", "MAY": "INFO", "INFO": "INFO"}
_SEVERITY = ("ERROR", "FAIL", "NON-STRICT", "INFO", "UNSUPPORTED", "PASS")
_DROP_WORDS = {
    "filtered": "filtered by {dst}'s NAT (RFC 4787 §5)",
    "blackholed": "sent to {dst}'s private address (a black hole)",
    "no-mapping": "sent to an external port of {dst}'s NAT with no live mapping",
    "lost": "lost on a lossy link",
    "firewalled": "firewalled: the public network carries no side-to-side traffic",
    "hairpin": "hairpinned to the sender's own NAT, which does not hairpin",
    "unknown-source": "from an address the emulator does not know (the IUT did not bind its interface)",
}


@dataclass(frozen=True)
class CellSpec:
    """One cell of the matrix: ``controlling`` (side a) against ``controlled`` (side b) on ``topology``."""

    controlling: str
    controlled: str
    topology: str

    @property
    def cell_id(self) -> str:
        """``interop/<topology>/<controlling>-vs-<controlled>``: the case ID in the report."""
        return f"interop/{self.topology}/{self.controlling}-vs-{self.controlled}"

    @property
    def seed(self) -> int:
        """A seed derived from the cell alone, so loss schedules repeat from run to run."""
        return zlib.crc32(self.cell_id.encode())


@dataclass
class RunOptions:
    """Knobs of a run."""

    out: Path
    parallel: int = 1
    connect_deadline: float = CONNECT_DEADLINE
    loss_connect_deadline: float = LOSS_CONNECT_DEADLINE
    #: "relay": a TURN server only on topologies that need one; "always": on every topology; "never".
    turn: str = "relay"
    netns: bool = False
    slot_offset: int = 0
    progress: Callable[[CellResult], None] | None = None


@dataclass
class CellResult:
    """Everything recorded for one cell (one ``summary.json`` record)."""

    spec: CellSpec
    verdict: str = "ERROR"
    connected: bool = False
    expected: str = "direct"
    path: str | None = None
    times: dict[str, float | None] = field(default_factory=dict)
    selected: dict[str, dict[str, str]] = field(default_factory=dict)
    checks: dict[str, Any] = field(default_factory=dict)
    data: dict[str, str] = field(default_factory=dict)
    violations: list[dict[str, str]] = field(default_factory=list)
    suppressed: dict[str, int] = field(default_factory=dict)
    cause: str = ""
    notes: list[str] = field(default_factory=list)
    error: str = ""
    states: dict[str, list[str]] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    netem: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)
    started: float = 0.0
    duration: float = 0.0

    @property
    def met_expectation(self) -> bool:
        """Connected as the topology says (RFC 8445 §8) with no violation graded FAIL, and no harness ERROR."""
        return self.verdict not in ("FAIL", "ERROR")

    def outcome(self) -> dict[str, Any]:
        """The parts two runs must agree on (timings and counts vary; these must not)."""
        return {
            "verdict": self.verdict,
            "connected": self.connected,
            "path": self.path,
            "selected": {s: {k: v[k] for k in ("local", "remote")} for s, v in sorted(self.selected.items())},
            "violations": sorted({v["requirement"] + " by " + v["by"] for v in self.violations}),
            "data": dict(sorted(self.data.items())),
        }

    def message(self) -> str:
        """The report's message: outcome, cause, violations, notes."""
        lines: list[str] = []
        if self.error:
            lines.append(f"ERROR (harness or adapter): {self.error}")
        elif self.connected:
            t = ", ".join(f"{s}: {v:.3f} s" for s, v in sorted(self.times.items()) if v is not None)
            lines.append(f"connected ({self.path}; expected {self.expected}); connect-to-selected-pair {t}")
        else:
            lines.append(f"did not connect (expected a {self.expected} pair)")
        if self.cause:
            lines.append(f"cause on the wire: {self.cause}")
        for v in self.violations:
            lines.append(f"{v['requirement']} ({v['by']}): {v['message']}")
        for req, n in sorted(self.suppressed.items()):
            lines.append(f"{req}: {n} more violations not listed")
        if self.data:
            lines.append("data: " + "; ".join(f"{k}: {v}" for k, v in sorted(self.data.items())))
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    def record(self) -> dict[str, Any]:
        """The ``summary.json`` record (``kind: "interop"``, read by the report's interop grid)."""
        a, b = self.spec.controlling, self.spec.controlled
        return {
            "kind": "interop",
            "nodeid": self.spec.cell_id,
            "case_id": self.spec.cell_id,
            "iut": a,
            "iut_version": self.versions.get("a", ""),
            "pair": [a, b],
            "versions": dict(self.versions),
            "topology": self.spec.topology,
            "expected": self.expected,
            "connected": self.connected,
            "path": self.path,
            "times": dict(self.times),
            "selected": self.selected,
            "checks": self.checks,
            "data": dict(self.data),
            "violations": list(self.violations),
            "suppressed": dict(self.suppressed),
            "cause": self.cause,
            "notes": list(self.notes),
            "states": dict(self.states),
            "netem": self.netem,
            "verdict": self.verdict,
            "level": "",
            "requirements": list(CHECKED_REQUIREMENTS),
            "message": self.message(),
            "duration": round(self.duration, 3),
            "started": self.started,
            "artifacts": dict(self.artifacts),
        }


def cells_for(iuts: Iterable[str], topologies: Iterable[str], must_include: Iterable[str] = ()) -> list[CellSpec]:
    """Every ordered pair (self-pairs included) on every topology; with ``must_include``, only pairs involving one."""
    names = list(dict.fromkeys(iuts))
    wanted = set(must_include)
    out = []
    for topo in topologies:
        for a in names:
            for b in names:
                if wanted and a not in wanted and b not in wanted:
                    continue
                out.append(CellSpec(a, b, topo))
    return out


class _Side:
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


class _SlotPool:
    """Address slots of the emulator (one per running cell), reused least-recently first."""

    def __init__(self, count: int, offset: int = 0) -> None:
        self.free: deque[int] = deque(((offset + i) % 250) + 1 for i in range(count))
        self.ready = asyncio.Condition()

    async def take(self) -> int:
        async with self.ready:
            await self.ready.wait_for(lambda: bool(self.free))
            return self.free.popleft()

    async def give(self, slot: int) -> None:
        async with self.ready:
            self.free.append(slot)
            self.ready.notify()


def _kind(candidate: str | None) -> str:
    if not candidate:
        return "?"
    try:
        return parse_candidate(candidate).kind
    except CandidateError:
        return "?"


def _worst(verdicts: Iterable[str]) -> str:
    seen = set(verdicts)
    return next((v for v in _SEVERITY if v in seen), "PASS")


async def _ip(argv: list[str]) -> None:
    """Run ``ip ARGV`` (only inside the run's own namespace); AdapterError with its stderr on failure."""
    proc = await asyncio.create_subprocess_exec("ip", *argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _, err = await asyncio.wait_for(proc.communicate(), 10)
    except TimeoutError:
        proc.kill()
        raise AdapterError(f"ip {' '.join(argv)} did not finish") from None
    if proc.returncode != 0 and b"File exists" not in err:
        raise AdapterError(f"ip {' '.join(argv)} failed: {err.decode(errors='replace').strip()}")


async def _ip_addr(action: str, address: str) -> None:
    """Add or delete a /32 on ``lo``."""
    await _ip(["addr", action, f"{address}/32", "dev", "lo"])


class _Cell:
    """The run of one cell (see the module docstring)."""

    def __init__(self, spec: CellSpec, slot: int, options: RunOptions) -> None:
        self.spec = spec
        self.options = options
        self.topology = TOPOLOGIES[spec.topology]
        self.plan = AddressPlan(slot=slot)
        self.result = CellResult(spec, expected=self.topology.expect)
        self.a = _Side("a", spec.controlling, "controlling")
        self.b = _Side("b", spec.controlled, "controlled")
        self.capture = Capture()
        self.net: Network | None = None
        self.turns: dict[str, CoturnAdapter] = {}
        self.turn_servers: dict[str, tuple[str, int]] = {}
        self.turn_proxies: dict[str, tuple[str, int]] = {}
        self.routes: list[str] = []
        self.turn_log = ""
        self.stun_refused: Counter[str] = Counter()  #: per side: requests the emulator's STUN server refused
        self.trickle = False
        self.tasks: list[asyncio.Task[None]] = []
        lossy = any(self.topology.side(s).loss > 0 for s in ("a", "b"))
        self.deadline = options.loss_connect_deadline if lossy else options.connect_deadline
        self.folder = options.out / "cells" / case_slug(spec.cell_id.removeprefix("interop/"))

    async def _route_turn(self, side: str, proxy_ip: str) -> None:
        """Make traffic to ``side``'s TURN proxy leave from that side's address unless the socket is bound.

        Some TURN clients (aioice) open an unbound socket for the server; on loopback the kernel would pick
        127.0.0.1, which belongs to no side. A local route with a preferred source puts it on the side's private
        address, as a host with one interface would.
        """
        assert self.net is not None
        iface = self.net.interface("a" if side == "a" else "b")
        await _ip(["route", "add", "local", f"{proxy_ip}/32", "dev", "lo", "src", iface, "table", "local"])
        self.routes.append(proxy_ip)

    def other(self, s: _Side) -> _Side:
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
        self._judge()
        self._write_artifacts()
        return r

    # -- set-up -----------------------------------------------------------------------------------------------

    async def _setup(self) -> None:
        slot = self.plan.slot
        upstreams: list[str] = []
        if self.wants_turn:
            # One TURN server per side (RFC 8656), each on its own IP outside the plan (docs/netem.md, wiring 1),
            # so a TURN client socket that binds no address can still be charged to its side (see _route_turn).
            for side, second in (("a", 55), ("b", 56)):
                adapter = CoturnAdapter()
                self.turns[side] = adapter
                await asyncio.wait_for(adapter.initialize(), _REQUEST_DEADLINE)
                _, address = await asyncio.wait_for(
                    adapter.start_server(
                        "turn", f"127.{second}.{slot}.1:3478", realm=TURN_REALM, users={TURN_USER: TURN_PASSWORD}
                    ),
                    _REQUEST_DEADLINE,
                )
                h, _, p = address.rpartition(":")
                self.turn_servers[side] = (h, int(p))
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
            if self.options.netns:
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

    async def _start_side(self, s: _Side) -> None:
        assert self.net is not None
        iface = self.net.interface(s.side)
        if s.iut in LOOPBACK_PRIMARY_ONLY:
            raise Unsupported(LOOPBACK_PRIMARY_ONLY[s.iut])
        if s.iut in GATHER_ON_INTERFACE_ADDRESSES and not self.options.netns:
            self.result.notes.append(
                f"{s.iut} gathers only on the host's interface addresses and cannot bind {iface} outside the "
                "run's own network namespace (needs root and unshare -n)"
            )
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

    async def _create_agent(self, s: _Side) -> None:
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

    def _rewrite(self, s: _Side, candidate: str) -> str | None:
        assert self.net is not None
        if not self._own(s, candidate):
            return None
        return self.net.rewrite_candidate(s.side, candidate)

    def _own(self, s: _Side, candidate: str) -> bool:
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

    async def _gather(self, s: _Side) -> None:
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

    def _label(self, s: _Side, candidates: Iterable[str]) -> None:
        for c in candidates:
            with contextlib.suppress(CandidateError):
                cand = parse_candidate(c)
                self.capture.label((cand.address, cand.port), f"{s.label} {cand.kind}")

    async def _set_remote(self, s: _Side) -> None:
        """Give ``s`` the other side's description (rewritten for the emulated network), then any trickle."""
        assert s.adapter is not None
        adapter = s.adapter
        peer = self.other(s)
        offered = peer.gathered if self.trickle else list(peer.candidates)
        cands = [c for c in (self._rewrite(peer, x) for x in offered) if c is not None]
        await s.call("set_remote", lambda: adapter.set_remote(s.agent, peer.ufrag, peer.pwd, cands))
        s.remote_applied = True  # from now on, trickled candidates of the peer go straight to s
        if self.trickle:
            await self._flush_trickle(s)
        elif s.trickle_agent:
            s.pending_trickle.append(None)  # the peer's description was complete: end-of-candidates (RFC 8838 §13)
            await self._flush_trickle(s)

    async def _flush_trickle(self, s: _Side) -> None:
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

    async def _pump(self, s: _Side) -> None:
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
                    rewritten = self._rewrite(s, str(c))
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

    async def _await_data(self, key: str, src: _Side, dst: _Side, wait: float) -> str:
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
                await _ip(["route", "del", "local", f"{proxy_ip}/32", "dev", "lo", "table", "local"])

    def _servers(self) -> list[tuple[str, int]]:
        return [self.plan.stun_server, *self.turn_servers.values(), *self.turn_proxies.values()]

    def _judge(self) -> None:
        r = self.result
        a, b = self.a, self.b
        for s in (a, b):
            if s.connect_at is not None and s.connected_at is not None:
                at = s.selected_at if s.selected_at is not None else s.connected_at
                r.times[s.side] = round(max(0.0, at - s.connect_at), 3)
            else:
                r.times[s.side] = None
            if s.selected is not None:
                r.selected[s.side] = {
                    "local": _kind(s.selected["local"]),
                    "remote": _kind(s.selected["remote"]),
                    "local_candidate": s.selected["local"],
                    "remote_candidate": s.selected["remote"],
                }
        r.connected = a.connected_at is not None and b.connected_at is not None
        if r.connected:
            kinds = {v for sel in r.selected.values() for k, v in sel.items() if k in ("local", "remote")}
            r.path = "relay" if "relay" in kinds else "direct"
        wire = self._wire()
        r.checks = wire.checks()
        r.checks["unattributed"] = wire.unattributed_checks
        r.violations = [v.as_dict() for v in wire.violations]
        r.suppressed = wire.suppressed
        if r.error:
            if r.verdict != "UNSUPPORTED":
                r.verdict = "ERROR"
            return
        verdicts = ["PASS"]
        if not r.connected:
            verdicts.append("FAIL")
            r.cause = self._cause(wire)
        elif r.path != r.expected:
            r.notes.append(f"connected through a {r.path} pair where the topology expects {r.expected}")
            verdicts.append("INFO")
        catalog = load_catalog()
        for v in r.violations:
            level = catalog[v["requirement"]].level if v["requirement"] in catalog else "MUST"
            verdicts.append(_LEVEL_VERDICT.get(level, "FAIL"))
        r.verdict = _worst(verdicts)

    def _wire(self) -> WireReport:
        a, b = self.a, self.b
        sig = [
            PeerSignalling(
                s.side, s.iut, s.role, s.ufrag, s.pwd, tuple(s.candidates), str(self.plan.private_network(s.side))
            )
            for s in (a, b)
        ]
        return check_wire(self.capture.datagrams, sig[0], sig[1], servers=self._servers())

    def _cause(self, wire: WireReport) -> str:
        """Why the pair did not connect, read from the capture and the emulator's counters."""
        a, b = self.a, self.b
        names = {"a": a, "b": b}
        parts: list[str] = []
        for key, snd, rcv in (("a>b", a, b), ("b>a", b, a)):
            c = wire.directions[key]
            back = wire.directions[f"{rcv.side}>{snd.side}"]
            if not snd.candidates and snd.ufrag:
                parts.append(f"{snd.label} signalled no candidate")
            if c.requests_sent == 0:
                usable = [x for x in (self._rewrite(rcv, y) for y in rcv.candidates) if x is not None]
                parts.append(
                    f"{snd.label} sent no connectivity check to {rcv.label} ({len(usable)} usable remote candidates "
                    "signalled to it)"
                )
            elif c.requests_forwarded == 0:
                why = ", ".join(
                    f"{n} {_DROP_WORDS.get(k, k).format(dst=rcv.label)}" for k, n in c.requests_dropped.most_common()
                )
                parts.append(f"checks never reached {rcv.label}: {snd.label} sent {c.requests_sent}; {why}")
            elif back.success_sent == 0:
                parts.append(
                    f"no Binding success from {rcv.label} to {snd.label}'s checks ({c.requests_forwarded} delivered"
                    f", {back.errors_sent} error responses)"
                )
            elif back.success_forwarded == 0:
                why = ", ".join(
                    f"{n} {_DROP_WORDS.get(k, k).format(dst=snd.label)}" for k, n in back.success_dropped.most_common()
                )
                parts.append(f"{rcv.label}'s Binding success responses never reached {snd.label}: {why}")
        if not parts:
            ctl = wire.directions["a>b"]
            parts.append(
                "checks succeeded both ways, but no pair was selected on "
                + ", ".join(s.label for s in (a, b) if s.connected_at is None)
                + f" ({a.label} sent {ctl.with_use_candidate} checks with USE-CANDIDATE)"
            )
        for side, n in sorted(self.stun_refused.items()):
            parts.append(
                f"the emulator's STUN server refused {n} requests of {names[side].label} (not RFC 8489 Binding "
                "requests: no magic cookie, RFC 3489 form), so it learned no server-reflexive candidate"
            )
        if self.topology.expect == "relay":
            for s in names.values():
                if not any(_kind(c) == "relay" for c in s.candidates):
                    parts.append(f"{s.label} signalled no relay candidate (TURN allocation; see its log)")
        for s in (a, b):
            states = self.result.states.get(s.side, [])
            if states and states[-1] == "failed":
                parts.append(f"{s.label} reported ICE state failed")
            elif s.connected_at is None:
                parts.append(
                    f"{s.label} not connected within {self.deadline:g} s (states: {' '.join(states) or 'none'})"
                )
        return "; ".join(parts)

    def _write_artifacts(self) -> None:
        r = self.result
        folder = self.folder
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True, exist_ok=True)
        rel = self.options.out

        def put(kind: str, path: Path) -> None:
            r.artifacts[kind] = str(path.relative_to(rel))

        try:
            put("pcap", write_pcap(self.capture, folder / "capture.pcap"))
            title = f"{self.spec.controlling} (A, controlling) vs {self.spec.controlled} (B) on {self.spec.topology}"
            (folder / "ladder.svg").write_text(render_ladder(self.capture, title=title), encoding="utf-8")
            put("ladder", folder / "ladder.svg")
        except Exception as exc:  # an artifact must not cost the verdict
            logger.warning("%s: cannot write the capture: %s", self.spec.cell_id, exc)
            r.notes.append(f"capture artifacts not written: {exc}")
        logs = []
        for s in (self.a, self.b):
            text = s.adapter.diagnostics() if s.adapter is not None else ""
            path = folder / f"{s.side}-{case_slug(s.iut)}.log"
            path.write_text(text, encoding="utf-8")
            put(f"stderr_{s.side}", path)
            logs.append(f"===== side {s.side}: {s.iut} ({s.role}) =====\n{text}")
        turn_log = self.turn_log
        if turn_log:
            (folder / "coturn.log").write_text(turn_log, encoding="utf-8")
            put("turn_log", folder / "coturn.log")
            logs.append(f"===== TURN server (coturn) =====\n{turn_log}")
        (folder / "iut.log").write_text("\n".join(logs), encoding="utf-8")
        put("stderr", folder / "iut.log")
        (folder / "netem.json").write_text(json.dumps(r.netem, indent=2, default=str), encoding="utf-8")
        put("netem", folder / "netem.json")


async def run_cell(spec: CellSpec, options: RunOptions, slot: int = 1) -> CellResult:
    """Run one cell on address slot ``slot``."""
    return await _Cell(spec, slot, options).run()


async def run_matrix(cells: list[CellSpec], options: RunOptions) -> list[CellResult]:
    """Run the cells, ``options.parallel`` at a time, each on its own address slot; results in cell order."""
    pool = _SlotPool(max(1, options.parallel), options.slot_offset)
    if options.netns and any(x in GATHER_ON_INTERFACE_ADDRESSES for c in cells for x in (c.controlling, c.controlled)):
        # Added once for the whole run: a stack that watches the interfaces restarts gathering on every change.
        for slot in pool.free:
            for side in ("a", "b"):
                await _ip_addr("add", AddressPlan(slot=slot).interface(side))
    limit = asyncio.Semaphore(max(1, options.parallel))

    async def one(spec: CellSpec) -> CellResult:
        async with limit:
            slot = await pool.take()
            try:
                result = await run_cell(spec, options, slot)
            finally:
                await pool.give(slot)
        if options.progress is not None:
            options.progress(result)
        return result

    return list(await asyncio.gather(*(one(c) for c in cells)))


def write_summary(results: list[CellResult], out: Path, started: float, finished: float) -> Path:
    """``summary.json`` in the run folder: one ``kind: "interop"`` record per cell (conformance.report.model)."""
    records = [r.record() for r in results]
    counts = Counter(r["verdict"] for r in records)
    summary = {
        "harness_version": __version__,
        "kind": "interop",
        "started": started,
        "finished": finished,
        "iut": ", ".join(sorted({x for r in results for x in (r.spec.controlling, r.spec.controlled)})),
        "counts": {v: counts.get(v, 0) for v in ("PASS", "NON-STRICT", "FAIL", "INFO", "UNSUPPORTED", "ERROR")},
        "records": records,
    }
    path = out / "summary.json"
    path.write_text(json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")
    return path


def known_topologies() -> list[str]:
    """The preset names (docs/netem.md)."""
    return list(TOPOLOGIES)


def iut_needs_netns(name: str) -> bool:
    """Whether the registry says the IUT must run in a loopback-only namespace (``IutSpec.netns``)."""
    return get_iut(name).netns or name in GATHER_ON_INTERFACE_ADDRESSES


def in_own_netns() -> bool:
    """Whether this process runs in the namespace the interop command made for it."""
    return os.environ.get(NETNS_ENV) == "1"
