"""A NAT as a pure state machine: mapping table, filtering decision and timers (RFC 4787 §4.1–§4.3, §5).

Theory of operation: :meth:`Nat.outbound` takes an internal endpoint, a destination and the time, finds or creates
the mapping whose key the behaviour's :data:`~conformance.netem.behavior.MAPPING_KEY` gives, records the destination
as a filter permission, and returns the external (IP, port). :meth:`Nat.inbound` takes an external address, a
source and the time and returns the internal endpoint, or the reason the datagram is dropped, by
:data:`~conformance.netem.behavior.FILTER_ADMITS`. No clock is read and no socket touched: the caller passes ``now``
and asks :meth:`Nat.next_deadline` when to call :meth:`Nat.expire`. Mappings idle for ``timeout`` seconds are dead at
once for every decision (RFC 4787 §4.3); :meth:`Nat.expire` only reports them so the caller can free resources.
"""

from __future__ import annotations

import logging
import math
import random
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

from conformance.netem.behavior import FILTER_ADMITS, MAPPING_KEY, Address, MappingKey, NatBehavior

__all__ = ["DropReason", "Inbound", "Mapping", "Nat", "NatExhausted", "Outbound"]

logger = logging.getLogger(__name__)

DropReason = Literal["no-mapping", "filtered"]

#: Permissions kept per mapping; beyond it the least recently used destination is forgotten (bounded state).
MAX_PERMISSIONS = 4096


class NatExhausted(RuntimeError):
    """No external port is left in the NAT's range (RFC 4787 §4.2.1, REQ-3: no port overloading)."""


@dataclass
class Mapping:
    """One NAT mapping: internal endpoint to external (IP, port), with the destinations it sent to (RFC 4787 §4.1)."""

    key: MappingKey
    internal: Address
    external: Address
    created: float
    refreshed: float
    #: Destination -> time of the last outbound datagram to it: the filter state (RFC 4787 §5).
    permissions: dict[Address, float] = field(default_factory=dict)
    #: A static mapping never expires (the one-to-one translation of a side without NAT).
    static: bool = False

    def expires(self, timeout: float) -> float:
        """When the mapping dies if nothing refreshes it (RFC 4787 §4.3)."""
        return math.inf if self.static else self.refreshed + timeout

    def live_permissions(self, now: float, timeout: float) -> list[Address]:
        """The destinations sent to within ``timeout`` seconds (RFC 4787 §5)."""
        if self.static:
            return list(self.permissions)
        return [d for d, t in self.permissions.items() if now - t < timeout]


class Outbound(NamedTuple):
    """The outcome of one outbound datagram: the external address and whether the mapping is new (RFC 4787 §4.1)."""

    external: Address
    mapping: Mapping
    created: bool


class Inbound(NamedTuple):
    """The outcome of one inbound datagram: the internal endpoint, or None and why (RFC 4787 §5)."""

    internal: Address | None
    reason: DropReason | None
    mapping: Mapping | None


class Nat:
    """One NAPT box with one external IP: mappings, filter permissions, timers and rebinding (RFC 4787 §4–§6)."""

    def __init__(
        self,
        behavior: NatBehavior,
        external_ip: str,
        *,
        seed: int | str = 0,
        port_range: tuple[int, int] = (20000, 59999),
    ) -> None:
        low, high = port_range
        if not 1024 <= low <= high <= 65535:
            raise ValueError(f"port range {port_range} must lie within 1024..65535")
        self.behavior = behavior
        self.external_ip = external_ip
        self.port_range = (low, high)
        self._by_key: dict[MappingKey, Mapping] = {}
        self._by_port: dict[int, Mapping] = {}
        #: Ports never to hand out again: retired by rebinding or expiry, or refused by the operating system.
        self._retired: set[int] = set()
        self._next = random.Random(f"nat/{seed}/{external_ip}").randint(low, high)
        #: Mappings created so far, and rebinds done (for reports).
        self.created = 0
        self.rebinds = 0

    # -- queries ----------------------------------------------------------------------------------------------

    @property
    def mappings(self) -> list[Mapping]:
        """Every mapping in the table (live or not yet swept)."""
        return list(self._by_port.values())

    def lookup(self, external: Address, now: float) -> Mapping | None:
        """The live mapping owning ``external``, or None (RFC 4787 §4.3)."""
        if external[0] != self.external_ip:
            return None
        m = self._by_port.get(external[1])
        if m is None or m.expires(self.behavior.timeout) <= now:
            return None
        return m

    def owns(self, address: Address) -> bool:
        """Whether ``address`` is on this NAT's external IP (a hairpin destination, RFC 4787 §6)."""
        return address[0] == self.external_ip

    def next_deadline(self) -> float | None:
        """The earliest time a mapping expires, or None when none can (RFC 4787 §4.3)."""
        deadlines = [m.expires(self.behavior.timeout) for m in self._by_port.values()]
        finite = [d for d in deadlines if d != math.inf]
        return min(finite) if finite else None

    # -- transitions ------------------------------------------------------------------------------------------

    def outbound(self, internal: Address, destination: Address, now: float) -> Outbound:
        """Translate a datagram from ``internal`` to ``destination``, refreshing its mapping (RFC 4787 §4.1, §4.3)."""
        key = MAPPING_KEY[self.behavior.mapping](internal, destination)
        m = self._by_key.get(key)
        created = False
        if m is not None and m.expires(self.behavior.timeout) <= now:
            self._drop(m)
            m = None
        if m is None:
            port = self._allocate(internal[1])
            m = Mapping(key=key, internal=internal, external=(self.external_ip, port), created=now, refreshed=now)
            self._by_key[key] = m
            self._by_port[port] = m
            self.created += 1
            created = True
            logger.debug("nat %s: new mapping %s -> %s for %s", self.external_ip, internal, m.external, destination)
        m.refreshed = now
        perms = m.permissions
        perms.pop(destination, None)  # re-insert: the dict stays in least-recently-used order
        perms[destination] = now
        if len(perms) > MAX_PERMISSIONS:
            del perms[next(iter(perms))]
        return Outbound(m.external, m, created)

    def inbound(self, external: Address, source: Address, now: float) -> Inbound:
        """Admit or drop one datagram from ``source`` to ``external`` by the filtering behaviour (RFC 4787 §5)."""
        m = self.lookup(external, now)
        if m is None:
            return Inbound(None, "no-mapping", None)
        sent_to = m.live_permissions(now, self.behavior.timeout)
        if not FILTER_ADMITS[self.behavior.filtering](sent_to, source):
            return Inbound(None, "filtered", m)
        if self.behavior.inbound_refresh:
            m.refreshed = now
        return Inbound(m.internal, None, m)

    def add_static(self, internal: Address, now: float = 0.0) -> Mapping:
        """A permanent, port-preserving mapping with no filtering, for a side without NAT (RFC 4787 §4.1)."""
        key = MAPPING_KEY[self.behavior.mapping](internal, ("0.0.0.0", 0))
        m = self._by_key.get(key)
        if m is not None:
            m.static = True
            return m
        port = self._allocate(internal[1])
        m = Mapping(key=key, internal=internal, external=(self.external_ip, port), created=now, refreshed=now)
        m.static = True
        self._by_key[key] = m
        self._by_port[port] = m
        self.created += 1
        return m

    def expire(self, now: float) -> list[Mapping]:
        """Remove and return the mappings idle past the timeout (RFC 4787 §4.3)."""
        dead = [m for m in self._by_port.values() if m.expires(self.behavior.timeout) <= now]
        for m in dead:
            self._drop(m)
        return dead

    def rebind(self) -> list[Mapping]:
        """Forget every mapping, as a NAT reboot does; their ports are never handed out again (RFC 4787 §4.3)."""
        dropped = list(self._by_port.values())
        for m in dropped:
            self._drop(m)
        self.rebinds += 1
        logger.info("nat %s: rebinding dropped %d mappings", self.external_ip, len(dropped))
        return dropped

    def discard(self, mapping: Mapping) -> None:
        """Remove a mapping whose port the operating system refused; the port is not tried again."""
        self._drop(mapping)

    # -- internals --------------------------------------------------------------------------------------------

    def _drop(self, m: Mapping) -> None:
        if self._by_key.get(m.key) is m:
            del self._by_key[m.key]
        if self._by_port.get(m.external[1]) is m:
            del self._by_port[m.external[1]]
        self._retired.add(m.external[1])

    def _free(self, port: int) -> bool:
        return port not in self._by_port and port not in self._retired

    def _allocate(self, internal_port: int) -> int:
        """An external port: the internal one when preserving and free, else the next free one (RFC 4787 §4.2.1)."""
        low, high = self.port_range
        if self.behavior.port_preserving and internal_port >= 1024 and self._free(internal_port):
            return internal_port
        size = high - low + 1
        for _ in range(size):
            port = self._next
            self._next = low if port >= high else port + 1
            if self._free(port):
                return port
        raise NatExhausted(f"nat {self.external_ip}: no free port in {low}..{high}")
