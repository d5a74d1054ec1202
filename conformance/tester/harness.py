"""The per-case harness: the IUT, the capture, endpoints and ICE sessions, and their clean-up.

A case receives one :class:`Harness` (the ``harness`` fixture). Everything it opens through it is closed when the
case ends, and the capture becomes the case's pcap and ladder diagram. Its :class:`Monitor` judges every datagram the
IUT sends (conformance/tester/monitor.py); the plugin grades what it finds.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from conformance.adapters.base import Adapter, IutInfo
from conformance.tester.capture import Capture
from conformance.tester.endpoint import Endpoint
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

    async def endpoint(self, label: str = "harness", host: str | None = None) -> Endpoint:
        """A plain UDP endpoint on loopback."""
        ep = await Endpoint.open(self.capture, host or self.host, 0, label)
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

    def options_delivery(self) -> list[str]:
        """Per signalled option of every session, whether the IUT got it (``ice2: delivered``), for the report."""
        return list(dict.fromkeys(line for s in self._sessions for line in s.options_delivery()))

    @property
    def waited(self) -> float:
        """Seconds the case spent in deliberate waits (silence windows, protocol timers), over all endpoints."""
        eps = self._endpoints + [ep for p in self._peers for ep in p.endpoints]
        return sum(ep.waited for ep in eps) + self.extra_waited

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
