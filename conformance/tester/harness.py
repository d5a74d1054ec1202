"""The per-case harness: the IUT, the capture, endpoints and ICE sessions, and their clean-up.

A case receives one :class:`Harness` (the ``harness`` fixture). Everything it opens through it is closed when the
case ends, and the capture becomes the case's pcap and ladder diagram. Its :class:`Monitor` judges every datagram the
IUT sends (conformance/tester/monitor.py); the plugin grades what it finds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from conformance.adapters.base import Adapter, IutInfo
from conformance.tester.capture import Capture
from conformance.tester.endpoint import Endpoint, Predicate, Received
from conformance.tester.expect import Expect
from conformance.tester.ice import IcePeer, IceSession, NotificationLog
from conformance.tester.monitor import Monitor
from conformance.tester.options import case_options
from conformance.verdict import Findings, UnsupportedFeature

__all__ = ["Harness"]

logger = logging.getLogger(__name__)


class Harness:
    """What a case works with: ``iut`` (the adapter), ``info``, ``findings``, ``capture``, ``monitor``, factories."""

    def __init__(self, adapter: Adapter, info: IutInfo, findings: Findings, capture: Capture, host: str) -> None:
        self.iut = adapter
        self.info = info
        self.findings = findings
        self.capture = capture
        self.host = host
        self._peers: list[IcePeer] = []
        self._endpoints: list[Endpoint] = []
        self._sessions: list[IceSession] = []
        self._log: NotificationLog | None = None
        self._deferred: list[Callable[[], Awaitable[object]]] = []
        #: Deliberate waits outside endpoints (e.g. IUT notifications awaited over a protocol timer).
        self.extra_waited = 0.0
        #: Newer revisions (8489, 8656) the IUT claims (--require) or is known to implement in part
        #: (conformance/revisions.py); their rules are then graded as written.
        self.required_revisions: frozenset[int] = frozenset()
        #: The passive monitor of every datagram the IUT sends in this case.
        self.monitor = Monitor(lambda: self.required_revisions)
        capture.observers.append(self.monitor.observe)
        #: ``harness.expect(reply)``: verifiers graded against the case's requirement (conformance/tester/expect.py).
        self.expect = Expect(findings)

    def require(self, *capabilities: str) -> None:
        """Raise UNSUPPORTED unless the IUT declares every capability."""
        missing = [c for c in capabilities if c not in self.info.capabilities]
        if missing:
            raise UnsupportedFeature(f"{self.info.name} does not declare {', '.join(missing)}")

    @property
    def log(self) -> NotificationLog:
        """The IUT's notifications for this case."""
        if self._log is None:
            self._log = NotificationLog(self.iut)
        return self._log

    async def endpoint(self, label: str = "harness", host: str | None = None, port: int = 0) -> Endpoint:
        """A plain UDP endpoint on loopback (on ``port``, or one the kernel picks)."""
        ep = await Endpoint.open(self.capture, host or self.host, port, label)
        self._endpoints.append(ep)
        return ep

    async def peer(self, components: int = 1, label: str = "harness peer") -> IcePeer:
        """A scripted ICE peer with fresh credentials."""
        p = await IcePeer.open(self.capture, self.host, components, label)
        self._peers.append(p)
        return p

    async def session(self, role: str, peer: IcePeer | None = None, **kwargs: Any) -> IceSession:
        """An IUT agent in ``role`` wired to ``peer`` (a new one by default), checks started."""
        self.require(role)
        if kwargs.get("ufrag") is not None or kwargs.get("pwd") is not None:
            self.require("set_credentials")
        if kwargs.get("components", 1) > 1:
            self.require("multi_component")
        peer = peer or await self.peer(kwargs.get("components", 1))
        kwargs["options"] = case_options(kwargs.get("options"))
        s = await IceSession.open(self.iut, peer, role, self.log, **kwargs)
        self._sessions.append(s)
        self.monitor.add_session(s)
        for i, c in enumerate(s.candidates):
            self.capture.label((c.address, c.port), f"IUT {c.kind} {i + 1}")
        return s

    @property
    def endpoints(self) -> list[Endpoint]:
        """Every harness endpoint of the case: plain ones, then the peers'."""
        return self._endpoints + [ep for p in self._peers for ep in p.endpoints if ep not in self._endpoints]

    @property
    def sessions(self) -> list[IceSession]:
        """The IUT agents the case opened, oldest first."""
        return list(self._sessions)

    def received(
        self, predicate: Predicate | None = None, since: float = 0.0, endpoints: list[Endpoint] | None = None
    ) -> list[Received]:
        """Every datagram the case's endpoints (or ``endpoints``) received since ``since`` matching ``predicate``,
        in arrival order."""
        eps = self.endpoints if endpoints is None else endpoints
        recs = [r for ep in eps for r in ep.find(predicate or (lambda r: True), since)]
        return sorted(recs, key=lambda r: r.arrived)

    async def wait(
        self,
        predicate: Predicate,
        timeout: float,
        since: float | None = None,
        endpoints: list[Endpoint] | None = None,
    ) -> Received | None:
        """The first datagram at any endpoint of the case (or of ``endpoints``, e.g. a scripted TURN server's)
        matching ``predicate``, or None at the deadline.

        ``since`` (loop time) lets a datagram that already arrived count; by default only new arrivals do. The
        predicate may judge the whole history (e.g. "the fifth data datagram"): it is asked on each arrival. The
        time counts as a deliberate wait: it ends a window as soon as its evidence is in.
        """
        loop = asyncio.get_running_loop()
        began = loop.time()
        eps = self.endpoints if endpoints is None else endpoints
        if since is not None:
            seen = self.received(predicate, since, eps)
            if seen:
                return seen[0]
        future: asyncio.Future[Received] = loop.create_future()

        def arrived(rec: Received) -> None:
            if not future.done() and predicate(rec):
                future.set_result(rec)

        unhooks = [ep.on_datagram(arrived) for ep in eps]
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            return None
        finally:
            for unhook in unhooks:
                unhook()
            self.extra_waited += loop.time() - began

    async def observe(self, seconds: float, reason: str) -> None:
        """A deliberate window of ``seconds``: nothing ends it early, because what it watches for must not happen.

        ``reason`` says what the window is for ("no data before consent", "retransmissions of the old check"); what
        arrived in it is judged afterwards from the endpoints' histories. Counts as a deliberate wait.
        """
        if seconds <= 0:
            return
        logger.debug("observing %.2f s: %s", seconds, reason)
        loop = asyncio.get_running_loop()
        began = loop.time()
        never: asyncio.Future[None] = loop.create_future()
        try:
            await asyncio.wait_for(never, seconds)
        except TimeoutError:
            pass
        finally:
            self.extra_waited += loop.time() - began

    def options_delivery(self) -> list[str]:
        """Per signalled option of every session, whether the IUT got it (``ice2: delivered``), for the report."""
        return list(dict.fromkeys(line for s in self._sessions for line in s.options_delivery()))

    @property
    def waited(self) -> float:
        """Seconds the case spent in deliberate waits (silence windows, protocol timers), over all endpoints."""
        return sum(ep.waited for ep in self.endpoints) + self.extra_waited

    def defer(self, cleanup: Callable[[], Awaitable[object]]) -> None:
        """Run ``cleanup`` when the case ends (last registered, first run), before sockets close."""
        self._deferred.append(cleanup)

    async def aclose(self) -> None:
        """Run deferred clean-ups, then close sessions, peers, endpoints and the notification log."""
        for cleanup in reversed(self._deferred):
            try:
                await cleanup()
            except Exception as exc:
                logger.info("clean-up: %s", exc)
        for s in self._sessions:
            await s.close()
        for p in self._peers:
            p.close()
        for ep in self._endpoints:
            ep.close()
        if self._log is not None:
            await self._log.close()
