"""Topologies as data: per side a NAT behaviour (RFC 4787 §4.1, §5) or none, link loss and delay, a rebinding time.

Two sides, ``a`` and ``b``, each with one IUT on a private loopback network, meet on an emulated public network that
also holds the emulator's STUN server and the proxies of real public servers (a TURN server). :class:`AddressPlan`
gives every address; :data:`TOPOLOGIES` names the presets an interop runner picks from.
"""

from __future__ import annotations

import ipaddress
import math
import re
from dataclasses import dataclass, field, replace
from typing import Literal

from conformance.netem.behavior import Address, Filtering, MappingBehavior, NatBehavior

__all__ = ["SIDES", "TOPOLOGIES", "AddressPlan", "Side", "SideSpec", "Topology", "topology"]

Side = Literal["a", "b"]
SIDES: tuple[Side, Side] = ("a", "b")

_EIM = MappingBehavior.ENDPOINT_INDEPENDENT
_APDM = MappingBehavior.ADDRESS_AND_PORT_DEPENDENT


@dataclass(frozen=True)
class SideSpec:
    """One side: its NAT (None: a public host, RFC 4787 §4.1 does not apply), its access link, its rebinding."""

    nat: NatBehavior | None = None
    #: Probability that a datagram crossing this side's access link (either way) is lost.
    loss: float = 0.0
    #: Seconds added to every datagram crossing this side's access link (either way).
    delay: float = 0.0
    #: Seconds after start at which the NAT drops every mapping (RFC 4787 §4.3); None: never.
    rebind_at: float | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.loss <= 1.0:
            raise ValueError(f"loss must be within 0..1, not {self.loss!r}")
        if not (0.0 <= self.delay < math.inf):
            raise ValueError(f"delay must be a finite non-negative number of seconds, not {self.delay!r}")
        if self.rebind_at is not None and not self.rebind_at >= 0.0:
            raise ValueError(f"rebind_at must be non-negative seconds, not {self.rebind_at!r}")

    @property
    def label(self) -> str:
        """``public`` or the NAT's short behaviour name (RFC 4787 §4.1, §5)."""
        return "public" if self.nat is None else self.nat.label


@dataclass(frozen=True)
class Topology:
    """Both sides, and whether the public network carries side-to-side traffic at all."""

    name: str
    a: SideSpec = field(default_factory=SideSpec)
    b: SideSpec = field(default_factory=SideSpec)
    description: str = ""
    #: False: the public network drops datagrams between the sides' addresses, so only a relay connects them.
    peer_to_peer: bool = True
    #: What an ICE pair should end up on: "direct" (host, srflx or prflx) or "relay" (RFC 8445 §5.1.1).
    expect: Literal["direct", "relay"] = "direct"

    def side(self, side: Side) -> SideSpec:
        """The spec of ``side``."""
        if side == "a":
            return self.a
        if side == "b":
            return self.b
        raise ValueError(f"unknown side {side!r}; sides are 'a' and 'b'")

    def with_side(self, side: Side, spec: SideSpec) -> Topology:
        """A copy with ``side`` replaced."""
        return replace(self, a=spec) if side == "a" else replace(self, b=spec)


def _nat(mapping: MappingBehavior, filtering: Filtering) -> NatBehavior:
    return NatBehavior(mapping=mapping, filtering=filtering)


_EIF = _nat(_EIM, Filtering.ENDPOINT_INDEPENDENT)
_ADF = _nat(_EIM, Filtering.ADDRESS_DEPENDENT)
_APDF = _nat(_EIM, Filtering.ADDRESS_AND_PORT_DEPENDENT)
_SYMMETRIC = _nat(_APDM, Filtering.ADDRESS_AND_PORT_DEPENDENT)


def _presets() -> dict[str, Topology]:
    t: dict[str, Topology] = {
        "direct": Topology("direct", description="both IUTs on the public network"),
    }
    for short, nat in (("eif", _EIF), ("adf", _ADF), ("apdf", _APDF)):
        t[f"nat-eim-{short}-one"] = Topology(
            f"nat-eim-{short}-one",
            a=SideSpec(nat=nat),
            description=f"side a behind an EIM/{short.upper()} NAT (RFC 4787 §4.1, §5); side b public",
        )
        t[f"nat-eim-{short}-both"] = Topology(
            f"nat-eim-{short}-both",
            a=SideSpec(nat=nat),
            b=SideSpec(nat=nat),
            description=f"both sides behind EIM/{short.upper()} NATs (RFC 4787 §4.1, §5)",
        )
    t["symmetric-one"] = Topology(
        "symmetric-one",
        a=SideSpec(nat=_SYMMETRIC),
        description="side a behind an APDM/APDF (symmetric) NAT, side b public: connects through a peer-reflexive pair",
    )
    t["symmetric-both"] = Topology(
        "symmetric-both",
        a=SideSpec(nat=_SYMMETRIC),
        b=SideSpec(nat=_SYMMETRIC),
        expect="relay",
        description="both sides behind APDM/APDF (symmetric) NATs (RFC 4787 §4.1): only a relay connects them",
    )
    t["relay-only"] = Topology(
        "relay-only",
        a=SideSpec(nat=_APDF),
        b=SideSpec(nat=_APDF),
        peer_to_peer=False,
        expect="relay",
        description="both sides behind EIM/APDF NATs and a public network that carries only traffic to servers",
    )
    t["loss-delay"] = Topology(
        "loss-delay",
        a=SideSpec(loss=0.10, delay=0.050),
        description="both sides public; side a's access link loses 10 % and adds 50 ms each way",
    )
    t["rebinding"] = Topology(
        "rebinding",
        a=SideSpec(nat=_APDF, rebind_at=3.0),
        description="side a behind an EIM/APDF NAT that drops its mappings 3 s after start (new external ports)",
    )
    return t


#: The named presets an interop runner picks from (docs/netem.md lists what each does).
TOPOLOGIES: dict[str, Topology] = _presets()


def topology(name_or_topology: str | Topology) -> Topology:
    """A preset by name (a :class:`Topology` passes through); unknown names list the known ones."""
    if isinstance(name_or_topology, Topology):
        return name_or_topology
    try:
        return TOPOLOGIES[name_or_topology]
    except KeyError:
        raise ValueError(f"unknown topology {name_or_topology!r}; known: {', '.join(TOPOLOGIES)}") from None


@dataclass(frozen=True)
class AddressPlan:
    """Every loopback address of one emulated network, in slot ``slot`` (one slot per parallel worker).

    Side a's private network is 127.10.<slot>.0/24, side b's 127.20.<slot>.0/24, the public one 127.100.<slot>.0/24.
    A side in ``routable`` has 10.10.<slot>.0/24 (a) or 10.20.<slot>.0/24 (b) instead: for a stack that never
    gathers on a loopback address (Chromium), and only inside a namespace the harness made (docs/interop.md).
    """

    slot: int = 0
    stun_port: int = 3478
    routable: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if not 0 <= self.slot <= 255:
            raise ValueError(f"address plan slot must be within 0..255, not {self.slot}")

    @classmethod
    def for_worker(cls, worker_id: str = "master", offset: int = 0) -> AddressPlan:
        """A plan per pytest-xdist worker ("master" -> slot 0 + offset, "gwN" -> slot N + 1 + offset)."""
        m = re.fullmatch(r"gw(\d+)", worker_id)
        base = int(m.group(1)) + 1 if m else 0
        return cls(slot=(base + offset) % 256)

    def private_network(self, side: Side) -> ipaddress.IPv4Network:
        """The private /24 of ``side``; the other side can reach none of it."""
        first = 10 if side in self.routable else 127
        return ipaddress.IPv4Network(f"{first}.{10 if side == 'a' else 20}.{self.slot}.0/24")

    def interface(self, side: Side, index: int = 1) -> str:
        """The private address the IUT of ``side`` binds on (``interfaces`` of create_agent)."""
        if not 1 <= index <= 200:
            raise ValueError("interface index must be within 1..200")
        return str(self.private_network(side)[index])

    def blackhole(self, side: Side) -> str:
        """The private address that stands for ``side``'s unreachable host candidates on the other side."""
        return str(self.private_network(side)[254])

    @property
    def public_network(self) -> ipaddress.IPv4Network:
        """The emulated public network."""
        return ipaddress.IPv4Network(f"127.100.{self.slot}.0/24")

    def external_ip(self, side: Side) -> str:
        """The public IP of ``side``: its NAT's external address, or its one-to-one public address."""
        return str(self.public_network[1 if side == "a" else 2])

    @property
    def stun_server(self) -> Address:
        """The emulator's STUN Binding server (RFC 8489 §6.3) on the public network."""
        return (str(self.public_network[3]), self.stun_port)

    def proxy_ip(self, index: int) -> str:
        """The public IP standing for the ``index``-th real server (0-based) that lives outside the plan."""
        if not 0 <= index < 100:
            raise ValueError("at most 100 upstream servers per network")
        return str(self.public_network[10 + index])

    def side_of(self, ip: str) -> Side | None:
        """The side whose private network holds ``ip``, or None."""
        try:
            addr = ipaddress.IPv4Address(ip)
        except ValueError:
            return None
        for side in SIDES:
            if addr in self.private_network(side):
                return side
        return None
