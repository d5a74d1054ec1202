"""The emulated network's routing decision, pure: one datagram in, one decision out (RFC 4787 §4.1, §5, §6).

Theory of operation: every datagram the emulator sees arrives on one of its own sockets (the *local* address) from
some real *source*. :meth:`Fabric.route` names both in the emulated world, then decides:

* the source is an IUT when its IP lies in a side's private network; its datagram leaves through that side's NAT
  (:meth:`Nat.outbound <conformance.netem.nat.Nat.outbound>`), then crosses the side's access link (uplink loss);
* the source is a real public server (a TURN server, its relayed addresses) when its IP was registered with
  :meth:`Fabric.add_upstream`; on the public network it goes by the proxy IP standing for it, same port;
* the local address says where the datagram goes: the emulator's STUN server, a proxy (forwarded to the real
  server), a NAT external address (the destination side's downlink loss, then
  :meth:`Nat.inbound <conformance.netem.nat.Nat.inbound>` filtering), or a black hole.

The answer is a :class:`Deliver` (send these bytes from this emulator address to this real address after this
delay), a :class:`StunRequest` (the STUN server must answer; :meth:`Fabric.reply` routes the answer) or a
:class:`Drop` with its reason. Mappings, filter state and loss draws live here; sockets and clocks do not.
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass
from typing import Literal, NamedTuple

from conformance.netem.behavior import DIRECT, Address
from conformance.netem.impair import LossSchedule
from conformance.netem.nat import Mapping, Nat
from conformance.netem.topology import SIDES, AddressPlan, Side, Topology

__all__ = [
    "Deliver",
    "Drop",
    "DropReason",
    "Exposure",
    "Fabric",
    "Link",
    "Route",
    "StunRequest",
]

logger = logging.getLogger(__name__)

Link = tuple[Side, Literal["up", "down"]]
DropReason = Literal[
    "blackholed",  # sent to a private address of a side: nothing there from the other side (RFC 4787 §4.1)
    "filtered",  # the NAT's filtering behaviour refused it (RFC 4787 §5)
    "no-mapping",  # sent to an external port with no live mapping (expired, rebound: RFC 4787 §4.3)
    "hairpin",  # sent to the NAT's own external address and the NAT does not hairpin (RFC 4787 §6)
    "lost",  # the access link's loss schedule took it
    "firewalled",  # side-to-side traffic on a topology whose public network carries none
    "unknown-source",  # from an address that is neither a side's private network nor a registered server
    "unroutable",  # to an emulator address that leads nowhere
]


@dataclass(frozen=True)
class Deliver:
    """Send the datagram from emulator address ``src`` to real address ``dst`` after ``delay`` seconds."""

    src: Address
    dst: Address
    delay: float
    links: tuple[Link, ...]
    #: The capture's endpoint label for the outgoing leg: "netem:a", "netem:b" or "netem:public".
    egress: str


@dataclass(frozen=True)
class StunRequest:
    """A datagram for the emulator's STUN server; ``seen`` is its source on the public network (RFC 8489 §6.3)."""

    server: Address
    seen: Address
    delay: float
    links: tuple[Link, ...]


@dataclass(frozen=True)
class Drop:
    """The datagram goes nowhere, and why."""

    reason: DropReason
    side: Side | None = None


Route = Deliver | StunRequest | Drop


class Exposure(NamedTuple):
    """How an address of one side is told to the other: the address, and what the emulator does there."""

    address: Address
    kind: Literal["public", "static", "blackhole", "proxy"]
    mapping: Mapping | None = None


class Fabric:
    """The two NATs, the links, the upstream servers, and the routing decision (RFC 4787 §4–§6)."""

    def __init__(self, topology: Topology, plan: AddressPlan | None = None, seed: int | str = 0) -> None:
        self.topology = topology
        self.plan = plan or AddressPlan()
        self.seed = seed
        self.nats: dict[Side, Nat] = {
            side: Nat(topology.side(side).nat or DIRECT, self.plan.external_ip(side), seed=f"{seed}/{side}")
            for side in SIDES
        }
        self.loss: dict[Link, LossSchedule] = {
            (side, d): LossSchedule(topology.side(side).loss, seed=f"loss/{seed}/{side}/{d}")
            for side in SIDES
            for d in ("up", "down")
        }
        self._proxy_of: dict[str, str] = {}
        self._upstream_of: dict[str, str] = {}
        self._external_side = {self.plan.external_ip(side): side for side in SIDES}
        self._blackhole_side = {self.plan.blackhole(side): side for side in SIDES}
        self._created: list[tuple[Side, Mapping]] = []

    # -- registry ---------------------------------------------------------------------------------------------

    def add_upstream(self, ip: str) -> str:
        """Register a real server's IP; returns the public IP standing for it (same ports)."""
        if ip in self._proxy_of:
            return self._proxy_of[ip]
        addr = ipaddress.IPv4Address(ip)
        if addr in self.plan.public_network or self.plan.side_of(ip) is not None:
            raise ValueError(f"upstream {ip} lies inside the emulated network {self.plan.public_network}")
        proxy = self.plan.proxy_ip(len(self._proxy_of))
        self._proxy_of[ip] = proxy
        self._upstream_of[proxy] = ip
        logger.debug("fabric: upstream %s is %s on the public network", ip, proxy)
        return proxy

    def proxy_of(self, upstream: Address) -> Address:
        """The public address standing for a real server address (registered IP, same port)."""
        return (self._proxy_of[upstream[0]], upstream[1])

    def upstream_of(self, proxy: Address) -> Address | None:
        """The real server address behind a proxy address, or None."""
        ip = self._upstream_of.get(proxy[0])
        return None if ip is None else (ip, proxy[1])

    def is_proxy(self, address: Address) -> bool:
        """Whether ``address`` is on a proxy IP."""
        return address[0] in self._upstream_of

    def external_side(self, address: Address) -> Side | None:
        """The side whose public IP ``address`` is on, or None."""
        return self._external_side.get(address[0])

    def take_created(self) -> list[tuple[Side, Mapping]]:
        """The mappings created since the last call, whose external addresses need sockets (RFC 4787 §4.1)."""
        created, self._created = self._created, []
        return created

    # -- exposure (candidate rewriting) -----------------------------------------------------------------------

    def expose(self, side: Side, address: Address, now: float = 0.0) -> Exposure:
        """What the other side must be told for ``address``, a candidate address of ``side`` (RFC 4787 §4.1)."""
        ip = address[0]
        owner = self.plan.side_of(ip)
        if owner is not None and ip not in self._blackhole_side:
            if owner == side and self.topology.side(side).nat is None:
                mapping = self.nats[side].add_static(address, now)
                self._created.append((side, mapping))
                return Exposure(mapping.external, "static", mapping)
            return Exposure((self.plan.blackhole(owner), address[1]), "blackhole")
        if ip in self._external_side or ip in self._upstream_of or address == self.plan.stun_server:
            return Exposure(address, "public")
        if ip in self._proxy_of:
            return Exposure(self.proxy_of(address), "proxy")
        logger.warning("fabric: %s:%d is no address of the emulated network; told as a black hole", *address)
        return Exposure((self.plan.blackhole(side), address[1]), "blackhole")

    # -- routing ----------------------------------------------------------------------------------------------

    def route(self, local: Address, source: Address, now: float) -> Route:
        """Decide the fate of one datagram that arrived on emulator address ``local`` from ``source``."""
        side = self.plan.side_of(source[0])
        if side is not None:
            return self._from_inside(side, source, local, now)
        if source[0] in self._proxy_of:
            return self.forward(self.proxy_of(source), local, now, ())
        return Drop("unknown-source")

    def reply(self, server: Address, to: Address, now: float) -> Deliver | Drop:
        """Route the STUN server's answer to ``to``, the request's source on the public network (RFC 8489 §6.3)."""
        route = self.forward(server, to, now, ())
        if isinstance(route, StunRequest):
            return Drop("unroutable")
        return route

    def _from_inside(self, side: Side, internal: Address, target: Address, now: float) -> Route:
        if target[0] in self._blackhole_side:
            return Drop("blackholed", self._blackhole_side[target[0]])
        nat = self.nats[side]
        if nat.owns(target):
            return self._hairpin(side, internal, target, now)
        if not self._routable(target):
            return Drop("unroutable", side)
        out = self._outbound(side, internal, target, now)
        if self.loss[(side, "up")].drop():
            return Drop("lost", side)
        return self.forward(out, target, now, ((side, "up"),))

    def _outbound(self, side: Side, internal: Address, target: Address, now: float) -> Address:
        out = self.nats[side].outbound(internal, target, now)
        if out.created:
            self._created.append((side, out.mapping))
        return out.external

    def _hairpin(self, side: Side, internal: Address, target: Address, now: float) -> Route:
        """Loop back inside with the sender's external address as source (RFC 4787 §6, REQ-9a)."""
        nat = self.nats[side]
        if not nat.behavior.hairpinning:
            return Drop("hairpin", side)
        external = self._outbound(side, internal, target, now)
        inbound = nat.inbound(target, external, now)
        if inbound.internal is None:
            return Drop(inbound.reason or "filtered", side)
        return Deliver(external, inbound.internal, 0.0, (), f"netem:{side}")

    def _routable(self, target: Address) -> bool:
        return target == self.plan.stun_server or target[0] in self._upstream_of or target[0] in self._external_side

    def forward(self, source: Address, target: Address, now: float, links: tuple[Link, ...]) -> Route:
        """Carry a datagram already on the public network from ``source`` to ``target`` (RFC 4787 §5)."""
        delay = sum(self._delay(link) for link in links)
        if target == self.plan.stun_server:
            return StunRequest(target, source, delay, links)
        upstream = self.upstream_of(target)
        if upstream is not None:
            return Deliver(source, upstream, delay, links, "netem:public")
        side = self.external_side(target)
        if side is None:
            return Drop("unroutable")
        source_side = self.external_side(source)
        if not self.topology.peer_to_peer and source_side is not None and source_side != side:
            return Drop("firewalled", side)
        if self.loss[(side, "down")].drop():
            return Drop("lost", side)
        inbound = self.nats[side].inbound(target, source, now)
        if inbound.internal is None:
            return Drop(inbound.reason or "filtered", side)
        down: Link = (side, "down")
        return Deliver(source, inbound.internal, delay + self._delay(down), (*links, down), f"netem:{side}")

    def _delay(self, link: Link) -> float:
        return self.topology.side(link[0]).delay
