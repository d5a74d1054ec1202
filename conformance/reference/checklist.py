"""The reference peer's checklist: its candidates, candidate pairs and their check state (RFC 8445 §5, §6)."""

from __future__ import annotations

import asyncio
import enum
import ipaddress
import logging
import secrets
import string
from dataclasses import dataclass
from typing import Any, Literal

from conformance.protocol.candidate import Candidate, format_candidate
from conformance.protocol.roles import Role

from .codec import Address

logger = logging.getLogger(__name__)

__all__ = [
    "CandidatePair",
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


ICE_CHARS = string.ascii_letters + string.digits


def random_text(n: int) -> str:
    return "".join(secrets.choice(ICE_CHARS) for _ in range(n))
