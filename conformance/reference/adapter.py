"""The reference peer as an in-process IUT: :class:`ReferenceAdapter` maps the adapter contract onto :class:`IceAgent`.

Faults come from the constructor (every agent) and from ``AgentConfig.options["faults"]`` (one agent). Other
options: ``tiebreaker`` (int), ``consent`` (bool), ``consent_interval`` and ``consent_timeout`` (seconds, so a
self-test can scale RFC 7675's timers), ``ta`` and ``rto`` (seconds), ``max_pairs``, and ``rfc5245`` (bool: the
legal variant of an RFC 5245 agent that applies none of set_remote's options and nominates aggressively). Legal
variants of issue 12 for the self-tests: ``max_pairs`` (int, the RFC 8445 §6.1.2.5 pair limit), ``ping_interval``
(seconds: never retransmit, ping every pair again as a new transaction at that interval, USE-CANDIDATE on every
check while controlling) and ``strict_pair_limit`` (bool: pairs learnt from incoming checks obey ``max_pairs`` too).
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import itertools
import logging
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from conformance import __version__

from ..adapters.base import (
    AdapterError,
    AgentConfig,
    Credentials,
    ErrorCode,
    IutInfo,
    LocalDescription,
    Notification,
    RemoteError,
    Unsupported,
)
from ..protocol.candidate import format_candidate, parse_candidate
from ..protocol.roles import Role
from .agent import AgentSettings, IceAgent
from .checklist import NoPairError
from .faults import UnknownFault, check_faults

__all__ = ["CAPABILITIES", "NAME", "ReferenceAdapter"]

logger = logging.getLogger(__name__)

NAME = "reference-peer"

#: What the reference agent implements (docs/adapter-contract.md, "Capabilities").
CAPABILITIES = frozenset(
    {
        "controlling",
        "controlled",
        "set_credentials",
        "trickle",
        "consent",
        "multi_component",
        "restart",
        "ipv6",
        "stun_client",
    }
)

_KNOWN_OPTIONS = frozenset(
    {
        "faults",
        "tiebreaker",
        "consent",
        "consent_interval",
        "consent_timeout",
        "ta",
        "rto",
        "max_pairs",
        "rfc5245",
        "ping_interval",
        "strict_pair_limit",
    }
)

#: The set_remote options (contract 1.1) the reference agent takes in: it reads all of them (contract 1.2).
_REMOTE_OPTIONS = ("ice_options", "ice_mismatch", "default_destination")


def _split_address(text: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` (docs/adapter-contract.md) to (host, port); ValueError when malformed."""
    host, sep, port = text.rpartition(":")
    if not sep:
        raise ValueError(f"{text!r} has no port")
    host = host.removeprefix("[").removesuffix("]")
    return str(ipaddress.ip_address(host)), int(port)


class ReferenceAdapter:
    """The in-repo reference ICE peer behind the :class:`~conformance.adapters.base.Adapter` Protocol."""

    def __init__(self, faults: Iterable[str] = ()) -> None:
        try:
            self.faults = check_faults(faults)
        except UnknownFault as exc:
            raise AdapterError(str(exc)) from None
        self.notifications: asyncio.Queue[Notification] = asyncio.Queue()
        self._agents: dict[str, IceAgent] = {}
        self._trickle: dict[str, bool] = {}
        self._journals: list[IceAgent] = []
        self._ids = itertools.count(1)

    def _agent(self, method: str, agent_id: str) -> IceAgent:
        try:
            return self._agents[agent_id]
        except KeyError:
            raise RemoteError(method, ErrorCode.UNKNOWN_AGENT, f"unknown agent {agent_id!r}") from None

    def _sink(self, agent_id: str) -> Any:
        def emit(method: str, params: dict[str, Any]) -> None:
            out = {"agent": agent_id, **params}
            if method == "data":
                out["data"] = base64.b64encode(params["data"]).decode("ascii")
            self.notifications.put_nowait(Notification(method, out, time=asyncio.get_running_loop().time()))

        return emit

    def _settings(self, config: AgentConfig) -> AgentSettings:
        method = "create_agent"
        if config.role not in ("controlling", "controlled"):
            raise RemoteError(method, ErrorCode.INVALID_PARAMS, f"bad role {config.role!r}")
        if not 1 <= config.components <= 256:
            raise RemoteError(method, ErrorCode.INVALID_PARAMS, f"bad component count {config.components}")
        if config.turn_servers or config.relay_only:
            raise Unsupported("create_agent: the reference peer gathers host and server-reflexive candidates (no TURN)")
        try:
            stun_servers = tuple(_split_address(s) for s in config.stun_servers)
        except ValueError as exc:
            raise RemoteError(method, ErrorCode.INVALID_PARAMS, f"bad stun_servers entry: {exc}") from None
        options = dict(config.options)
        unknown = sorted(set(options) - _KNOWN_OPTIONS)
        if unknown:
            logger.info("reference peer ignores options %s", unknown)
        extra = options.get("faults", [])
        if isinstance(extra, str) or not isinstance(extra, list | tuple):
            raise RemoteError(method, ErrorCode.INVALID_PARAMS, "option 'faults' must be a list of fault names")
        try:
            faults = self.faults | check_faults(extra)
        except UnknownFault as exc:
            raise AdapterError(str(exc)) from None
        try:
            interfaces = tuple(str(ipaddress.ip_address(i)) for i in config.interfaces)
        except ValueError as exc:
            raise RemoteError(method, ErrorCode.INVALID_PARAMS, str(exc)) from None
        settings = AgentSettings(
            controlling=config.role == "controlling",
            components=config.components,
            ufrag=config.ufrag,
            pwd=config.pwd,
            interfaces=interfaces or ("127.0.0.1",),
            faults=faults,
            stun_servers=stun_servers,
        )
        try:
            if "max_pairs" in options:
                settings.max_pairs = int(options["max_pairs"])
                if settings.max_pairs < 1:
                    raise ValueError("option 'max_pairs' must be at least 1")
            if "tiebreaker" in options:
                settings.tiebreaker = int(options["tiebreaker"])
            if "consent" in options:
                settings.consent = bool(options["consent"])
            settings.rfc5245 = bool(options.get("rfc5245", False))
            settings.strict_pair_limit = bool(options.get("strict_pair_limit", False))
            for name in ("consent_interval", "consent_timeout", "ta", "rto", "ping_interval"):
                if name in options:
                    value = float(options[name])
                    if value <= 0:
                        raise ValueError(f"option {name!r} must be positive")
                    setattr(settings, name, value)
        except (TypeError, ValueError) as exc:
            raise RemoteError(method, ErrorCode.INVALID_PARAMS, str(exc)) from None
        return settings

    async def initialize(self) -> IutInfo:
        """``initialize``: the reference peer, the package version, its capabilities."""
        return IutInfo(name=NAME, version=__version__, capabilities=CAPABILITIES)

    async def create_agent(self, config: AgentConfig) -> str:
        """``create_agent``: one :class:`IceAgent` with the adapter's and the config's faults."""
        settings = self._settings(config)
        agent_id = f"r{next(self._ids)}"
        try:
            agent = IceAgent(settings, self._sink(agent_id), name=agent_id)
        except ValueError as exc:
            raise RemoteError("create_agent", ErrorCode.INVALID_PARAMS, str(exc)) from None
        self._agents[agent_id] = agent
        self._trickle[agent_id] = config.trickle
        self._journals = [*self._journals[-50:], agent]
        agent._emit("state", {"state": "new"})
        if agent.faults:
            agent._log(logging.INFO, "faults: %s", ", ".join(sorted(agent.faults)))
        return agent_id

    async def gather(self, agent_id: str) -> LocalDescription:
        """``gather``: credentials and host candidates; a trickle agent sends them as notifications instead."""
        agent = self._agent("gather", agent_id)
        try:
            candidates = [c.sdp() for c in await agent.gather()]
            candidates += [agent.srflx_sdp(*srflx) for srflx in agent.srflx]
        except OSError as exc:
            raise AdapterError(f"gather: cannot bind: {exc}") from None
        candidates += self._extra_candidates(agent, candidates)
        trickle = self._trickle[agent_id]
        if trickle or "trickle-always" in agent.faults:
            self._announce(agent_id, agent, candidates)
        if trickle:
            candidates = []
        return LocalDescription(
            ufrag=agent.ufrag,
            pwd=agent.pwd,
            candidates=candidates,
            ice_options=self._ice_options(agent, trickle),
            remote_candidates=self._remote_candidates(agent),
        )

    @staticmethod
    def _extra_candidates(agent: IceAgent, candidates: list[str]) -> list[str]:
        """Candidate lines the candidate faults add (RFC 8445 §5.1.1.1, §5.1.3)."""
        out: list[str] = []
        if "site-local-candidate" in agent.faults:
            out.append("candidate:9 1 udp 2130706175 fec0::1 9 typ host")
        if "redundant-candidates" in agent.faults:
            for value in candidates:
                c = parse_candidate(value)
                out.append(format_candidate(replace(c, foundation=c.foundation + "r", priority=c.priority - 1)))
        return out

    def _announce(self, agent_id: str, agent: IceAgent, candidates: list[str]) -> None:
        """Trickle the local candidates, then end-of-candidates naming the generation (RFC 8838 §13)."""
        emit = self._sink(agent_id)
        ufrag = agent.ufrag

        def send() -> None:
            for value in candidates:
                emit("candidate", {"candidate": value})
            emit("candidate", {"candidate": None, "ufrag": ufrag})
            if "candidates-after-eoc" in agent.faults and candidates:
                emit("candidate", {"candidate": candidates[0]})

        if "check-before-trickle" in agent.faults:
            asyncio.get_running_loop().call_later(3.0, send)
        else:
            send()

    @staticmethod
    def _ice_options(agent: IceAgent, trickle: bool) -> list[str]:
        """The a=ice-options tokens (RFC 8445 §10, RFC 8838 §3)."""
        out = [] if "no-ice2" in agent.faults else ["ice2"]
        return out + (["trickle"] if trickle else [])

    @staticmethod
    def _remote_candidates(agent: IceAgent) -> list[str]:
        """a=remote-candidates: the selected remote candidates, in a controlling agent's re-offer (RFC 8839 §5.2)."""
        allowed = agent.role is Role.CONTROLLING or "remote-candidates-in-answer" in agent.faults
        if not allowed or not agent.selected or "no-remote-candidates" in agent.faults:
            return []
        return [agent.selected[c].remote.sdp() for c in sorted(agent.selected)]

    async def set_remote(
        self,
        agent_id: str,
        ufrag: str,
        pwd: str,
        candidates: list[str],
        lite: bool = False,
        options: dict[str, Any] | None = None,
    ) -> list[str]:
        """``set_remote``: non-trickle agents end the remote candidates here; ``options`` as in contract 1.1.

        Returns the options the agent took in (contract 1.2): none for the ``rfc5245`` variant."""
        agent = self._agent("set_remote", agent_id)
        if lite:
            agent.peer_is_lite()
        applied: list[str] = []
        if options and agent.settings.rfc5245:
            agent._log(logging.INFO, "RFC 5245 variant: ignoring the peer's options %s", sorted(options))
        elif options:
            agent.sdp_options(options)
            applied = [name for name in _REMOTE_OPTIONS if name in options]
        agent.set_remote(ufrag, pwd, candidates, end_of_candidates=not self._trickle[agent_id])
        return applied

    async def add_remote_candidate(self, agent_id: str, candidate: str | None) -> None:
        """``add_remote_candidate``: a trickled candidate or end-of-candidates (RFC 8838 §13)."""
        self._agent("add_remote_candidate", agent_id).add_remote_candidate(candidate)

    async def connect(self, agent_id: str) -> None:
        """``connect``: start checks in the background."""
        agent = self._agent("connect", agent_id)
        if not agent.local_candidates:
            raise RemoteError("connect", ErrorCode.INVALID_STATE, f"agent {agent_id}: gather first")
        agent.connect()

    async def send(self, agent_id: str, component: int, data: bytes) -> None:
        """``send``: one datagram on the component's selected (or best valid) pair."""
        agent = self._agent("send", agent_id)
        try:
            agent.send(component, data)
        except NoPairError as exc:
            raise RemoteError("send", ErrorCode.INVALID_STATE, f"agent {agent_id}: {exc}") from None

    async def restart(self, agent_id: str) -> Credentials:
        """``restart``: new ufrag and pwd, same role (RFC 8445 §9)."""
        ufrag, pwd = self._agent("restart", agent_id).restart()
        return Credentials(ufrag, pwd)

    async def close(self, agent_id: str) -> None:
        """``close``: stop the agent and emit ``state`` closed."""
        agent = self._agent("close", agent_id)
        del self._agents[agent_id]
        await agent.close()

    async def shutdown(self) -> None:
        """``shutdown``: close every agent; idempotent."""
        for agent_id in list(self._agents):
            await self.close(agent_id)

    def diagnostics(self) -> str:
        """The journal of each agent (the last 1000 lines each)."""
        lines = [line for agent in self._journals for line in agent.journal]
        return "\n".join(lines) + ("\n" if lines else "")
