"""The reference peer's checklist: its candidates, candidate pairs and their check state (RFC 8445 §5, §6).

:class:`CheckList` is the checklist's own logic without I/O: forming and pruning pairs (RFC 8445 §6.1.2), choosing
the next check (§6.1.4.2), the triggered-check queue (§7.3.1.4), pair states (§6.1.2.6) and the valid and selected
pairs (§7.2.5.3, §8.1.1). The agent (conformance/reference/agent.py) owns the sockets, transactions and timers, and
passes the faults that change the checklist as the constructor's flags.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import ipaddress
import logging
import secrets
import string
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from conformance.protocol.candidate import Candidate, format_candidate
from conformance.protocol.priority import PRIORITY_MAX, pair_priority
from conformance.protocol.roles import Role

from .codec import Address

logger = logging.getLogger(__name__)

__all__ = [
    "CandidatePair",
    "CheckList",
    "Credentials",
    "LocalCandidate",
    "NoPairError",
    "PairState",
    "RemoteCandidate",
    "Transaction",
]


def norm_address(addr: Any) -> Address:
    """(host, port) with the host in canonical form (IPv6 socket addresses have 4 fields)."""
    return str(ipaddress.ip_address(addr[0])), int(addr[1])


class PairState(enum.Enum):
    """Candidate pair states (RFC 8445 §6.1.2.6); Frozen is used only by the no-triggered-check fault."""

    FROZEN = "Frozen"
    WAITING = "Waiting"
    IN_PROGRESS = "In-Progress"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class NoPairError(ConnectionError):
    """No pair may carry data on that component: none is valid yet, or consent was lost (RFC 7675 §5.1)."""


class _CandidateBase:
    """What a local and a remote candidate share: address, IP version and SDP form (RFC 8839 §5.1)."""

    component: int
    host: str
    port: int
    priority: int
    foundation: str
    type: str

    @property
    def address(self) -> Address:
        return self.host, self.port

    @property
    def version(self) -> int:
        return ipaddress.ip_address(self.host).version

    def sdp(self) -> str:
        """The "candidate:..." attribute value (RFC 8839 §5.1)."""
        return format_candidate(
            Candidate(self.foundation, self.component, "udp", self.priority, self.host, self.port, self.type)
        )


@dataclass(eq=False)
class LocalCandidate(_CandidateBase):
    """A host candidate and its socket (RFC 8445 §5.1.1.1)."""

    component: int
    host: str
    port: int
    foundation: str
    local_pref: int
    priority: int
    transport: asyncio.DatagramTransport | None = None
    side: asyncio.DatagramTransport | None = None  # second socket, for the asymmetric-response fault

    type = "host"


@dataclass(eq=False)
class RemoteCandidate(_CandidateBase):
    """A remote candidate: signalled, trickled or peer-reflexive (RFC 8445 §7.3.1.3)."""

    component: int
    host: str
    port: int
    priority: int
    type: str
    foundation: str


@dataclass(frozen=True)
class Credentials:
    """One ICE generation's credentials, as a pair uses them (RFC 8445 §7.2.2)."""

    local_ufrag: str
    local_pwd: str
    remote_ufrag: str
    remote_pwd: str


@dataclass(eq=False)
class CandidatePair:
    """A candidate pair and its check state (RFC 8445 §6.1.2)."""

    local: LocalCandidate
    remote: RemoteCandidate
    generation: int
    state: PairState = PairState.WAITING
    nominated: bool = False
    nominate_on_success: bool = False
    transaction: Transaction | None = None
    consent_at: float | None = None
    consent_revoked: bool = False
    consent_lost: bool = False
    credentials: Credentials | None = None

    @property
    def component(self) -> int:
        return self.local.component

    def describe(self) -> str:
        return f"{self.local.host}:{self.local.port} -> {self.remote.host}:{self.remote.port}"


@dataclass(eq=False)
class Transaction:
    txid: bytes
    pair: CandidatePair
    request: bytes
    kind: Literal["check", "consent"]
    use_candidate: bool
    key: bytes
    role: Role
    sends: int = 0
    timer: asyncio.TimerHandle | None = None
    cancelled: bool = False


#: The agent's logger: (level, message, arguments), as :func:`logging.log`.
Log = Callable[..., None]


def _module_log(level: int, msg: str, *args: object) -> None:
    logger.log(level, msg, *args)


class CheckList:
    """The candidate pairs of an agent's components, across ICE generations (RFC 8445 §6.1.2, §9).

    The flags are the faults that change the checklist: ``pair_limit`` off ignores max_pairs (no-pair-limit),
    ``ordered`` off checks the lowest-priority pair first (unordered-checks), ``cross_component`` pairs candidates of
    different components (cross-component-pairs), ``nominations`` is how many a component needs before it is done
    (nominate-twice), ``keep_first`` keeps the first selected pair (keep-first-nomination), ``select_latest`` selects
    the latest nominated pair (select-latest-nomination), ``select_best_valid`` selects the best valid pair when
    controlled (select-best-valid-pair).
    """

    def __init__(
        self,
        components: int,
        role: Role,
        max_pairs: int,
        log: Log = _module_log,
        *,
        pair_limit: bool = True,
        ordered: bool = True,
        cross_component: bool = False,
        nominations: int = 1,
        keep_first: bool = False,
        select_latest: bool = False,
        select_best_valid: bool = False,
    ) -> None:
        self.components = components
        self.role = role
        self.max_pairs = max_pairs
        self._log = log
        self.pair_limit = pair_limit
        self.ordered = ordered
        self.cross_component = cross_component
        self.nominations = nominations
        self.keep_first = keep_first
        self.select_latest = select_latest
        self.select_best_valid = select_best_valid
        self.generation = 0
        self.remote_candidates: list[RemoteCandidate] = []
        self.pairs: list[CandidatePair] = []
        self.selected: dict[int, CandidatePair] = {}
        #: Per component, the pairs nominated so far in this generation, in order (RFC 8445 §8.1.1).
        self.nominating: dict[int, list[CandidatePair]] = {}
        self.end_of_candidates = False
        self.triggered: collections.deque[tuple[CandidatePair, bool]] = collections.deque()
        self._prflx_count = 0

    # -- order ----------------------------------------------------------------------------------------------

    def priority(self, pair: CandidatePair) -> int:
        """Pair priority with G the controlling side's candidate (RFC 8445 §6.1.2.3)."""
        local = min(max(pair.local.priority, 1), PRIORITY_MAX)
        remote = min(max(pair.remote.priority, 1), PRIORITY_MAX)
        if self.role is Role.CONTROLLING:
            return pair_priority(local, remote)
        return pair_priority(remote, local)

    def best(self, pairs: list[CandidatePair]) -> CandidatePair:
        """The highest-priority pair of ``pairs``, the first of equals (RFC 8445 §6.1.2.3)."""
        return max(pairs, key=self.priority)

    def valid(self, component: int, generation: int | None = None) -> list[CandidatePair]:
        """The component's succeeded pairs (of one generation, if given): its valid list (RFC 8445 §7.2.5.3.2)."""
        return [
            p
            for p in self.pairs
            if p.component == component
            and p.state is PairState.SUCCEEDED
            and (generation is None or p.generation == generation)
        ]

    # -- forming pairs --------------------------------------------------------------------------------------

    def find_remote(self, component: int, address: Address) -> RemoteCandidate | None:
        for remote in self.remote_candidates:
            if remote.component == component and remote.address == address:
                return remote
        return None

    def find_pair(self, local: LocalCandidate, address: Address) -> CandidatePair | None:
        for pair in self.pairs:
            if pair.local is local and pair.remote.address == address:
                return pair
        return None

    def _pairable(self, local: LocalCandidate, remote: RemoteCandidate) -> bool:
        """Same component and IP address family (RFC 8445 §6.1.2.2)."""
        same = local.component == remote.component or self.cross_component
        return same and local.version == remote.version

    def add_remote(self, remote: RemoteCandidate, locals_: list[LocalCandidate]) -> None:
        """A signalled or trickled remote candidate, paired with each local one (RFC 8445 §6.1.2.2, RFC 8838 §11)."""
        self.remote_candidates.append(remote)
        for local in locals_:
            if self._pairable(local, remote):
                self.add_pair(local, remote)

    def pair_remotes(self, locals_: list[LocalCandidate]) -> None:
        """Pair the remote candidates signalled before gathering (RFC 8445 §6.1.2.2)."""
        for remote in list(self.remote_candidates):
            for local in locals_:
                if self._pairable(local, remote) and self.find_pair(local, remote.address) is None:
                    self.add_pair(local, remote)

    def add_prflx(self, component: int, addr: Address, priority: int) -> RemoteCandidate:
        """A peer-reflexive remote candidate learnt from a check (RFC 8445 §7.3.1.3)."""
        self._prflx_count += 1
        remote = RemoteCandidate(component, addr[0], addr[1], priority, "prflx", f"p{self._prflx_count}")
        self.remote_candidates.append(remote)
        self._log(logging.INFO, "peer-reflexive remote candidate %s", remote.sdp())
        return remote

    def add_pair(self, local: LocalCandidate, remote: RemoteCandidate, protect: bool = False) -> CandidatePair:
        """A new Waiting pair, then the limit; ``protect`` keeps the new pair itself (RFC 8445 §6.1.2.5)."""
        pair = CandidatePair(local, remote, self.generation)
        self.pairs.append(pair)
        self._log(logging.DEBUG, "new pair %s", pair.describe())
        self._limit(keep=pair if protect else None)
        return pair

    def _limit(self, keep: CandidatePair | None) -> None:
        """Discard the lowest-priority pairs beyond the limit, 100 by default (RFC 8445 §6.1.2.5)."""
        if not self.pair_limit:
            return
        current = [p for p in self.pairs if p.generation == self.generation]
        while len(current) > self.max_pairs:
            idle = [p for p in current if p is not keep and p.state in (PairState.WAITING, PairState.FROZEN)]
            if not idle:
                return
            victim = min(idle, key=self.priority)
            self.pairs.remove(victim)
            current.remove(victim)
            self._log(logging.DEBUG, "pair limit %d: discarded %s", self.max_pairs, victim.describe())

    def restart(self) -> None:
        """A new generation with no remote candidates and no pairs; selected pairs stay (RFC 8445 §9)."""
        self.generation += 1
        self.remote_candidates = []
        self.pairs = []
        self.triggered.clear()
        self.nominating.clear()
        self.end_of_candidates = False

    def forget(self) -> None:
        """No remote candidates and no pairs: ICE is off for the stream (RFC 8839 §4.2.5)."""
        self.remote_candidates = []
        self.pairs = []

    # -- checks ---------------------------------------------------------------------------------------------

    def enqueue(self, pair: CandidatePair, nominate: bool = False) -> None:
        """Queue a triggered check, or a nominating one (RFC 8445 §7.3.1.4, §8.1.1)."""
        self.triggered.append((pair, nominate))

    def trigger(self, pair: CandidatePair) -> None:
        """A triggered check: the pair is Waiting again unless it succeeded, and queued (RFC 8445 §7.3.1.4)."""
        if pair.state is not PairState.SUCCEEDED:
            pair.state = PairState.WAITING
        self.enqueue(pair)

    def next_check(self) -> tuple[CandidatePair, bool] | None:
        """Triggered checks first, then the highest-priority Waiting pair (RFC 8445 §6.1.4.2)."""
        while self.triggered:
            pair, nominate = self.triggered.popleft()
            if pair.generation == self.generation and (nominate or pair.state is PairState.WAITING):
                return pair, nominate
        waiting = [p for p in self.pairs if p.state is PairState.WAITING and not self.component_done(p.component)]
        if not waiting:
            return None
        if not self.ordered:
            return min(waiting, key=self.priority), False
        return self.best(waiting), False

    def checking(self, pair: CandidatePair, tx: Transaction) -> None:
        """A check was sent: In-Progress, unless already Succeeded (RFC 8445 §7.2.4)."""
        if pair.state is not PairState.SUCCEEDED:
            pair.state = PairState.IN_PROGRESS
        pair.transaction = tx

    def succeeded(self, pair: CandidatePair) -> bool:
        """A check succeeded: the pair is valid (RFC 8445 §7.2.5.3); True when it was not before."""
        if pair.state is PairState.SUCCEEDED:
            return False
        pair.state = PairState.SUCCEEDED
        return True

    def failed(self, pair: CandidatePair) -> None:
        """A check failed: the pair is Failed (RFC 8445 §7.2.5.2, §7.2.5.4)."""
        pair.state = PairState.FAILED

    # -- outcome --------------------------------------------------------------------------------------------

    def nominated(self, pair: CandidatePair) -> CandidatePair | None:
        """Mark a pair nominated; the component's newly selected pair, the best nominated one, or None when the
        selection stays (RFC 8445 §8.1.1)."""
        if self.select_best_valid and self.role is Role.CONTROLLED:
            valid = self.valid(pair.component, pair.generation)
            pair = self.best(valid) if valid else pair
        previous = self.selected.get(pair.component)
        if self.keep_first and previous is not None and previous.generation == pair.generation:
            pair.nominated = True
            return None
        pair.nominated = True
        nominated = [
            p for p in self.pairs if p.component == pair.component and p.nominated and p.generation == pair.generation
        ]
        best = self.best(nominated)
        if self.select_latest:
            best = pair
        if self.selected.get(pair.component) is best:
            return None
        self.selected[pair.component] = best
        return best

    def component_done(self, component: int) -> bool:
        """The component has a selected pair of this generation (RFC 8445 §8.1.2)."""
        pair = self.selected.get(component)
        if pair is None or pair.generation != self.generation:
            return False
        return not (self.nominations > 1 and len(self.nominating.get(component, [])) < self.nominations)

    def all_selected(self) -> bool:
        """Every component has a selected pair of this generation: ICE completed (RFC 8445 §8.1.2)."""
        return all(
            c in self.selected and self.selected[c].generation == self.generation for c in range(1, self.components + 1)
        )

    def failed_component(self) -> int | None:
        """A component whose pairs all failed, once the peer ended its candidates (RFC 8838 §8); else None."""
        if not self.end_of_candidates:
            return None
        for component in range(1, self.components + 1):
            if self.component_done(component):
                continue
            mine = [p for p in self.pairs if p.component == component]
            if mine and all(p.state is PairState.FAILED for p in mine):
                return component
        return None


ICE_CHARS = string.ascii_letters + string.digits


def random_text(n: int) -> str:
    return "".join(secrets.choice(ICE_CHARS) for _ in range(n))
