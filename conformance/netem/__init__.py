"""Network emulation on loopback for interop runs: NAT behaviours (RFC 4787 §4.1, §5), loss, delay, rebinding.

:class:`Network` is the userspace emulator (the default); :class:`Nat`, :class:`Fabric` and the schedules are its
pure decision logic; :mod:`conformance.netem.namespace` is the optional network-namespace mode. docs/netem.md gives
the wiring an interop runner must follow.
"""

from __future__ import annotations

from conformance.netem.behavior import (
    BEHAVIOURS,
    DIRECT,
    Address,
    Filtering,
    MappingBehavior,
    NatBehavior,
)
from conformance.netem.fabric import Deliver, Drop, Exposure, Fabric, StunRequest
from conformance.netem.impair import DelayLine, LossSchedule
from conformance.netem.nat import Inbound, Mapping, Nat, NatExhausted, Outbound
from conformance.netem.network import DropEvent, NetemStats, Network
from conformance.netem.topology import SIDES, TOPOLOGIES, AddressPlan, Side, SideSpec, Topology, topology

__all__ = [
    "BEHAVIOURS",
    "DIRECT",
    "SIDES",
    "TOPOLOGIES",
    "Address",
    "AddressPlan",
    "DelayLine",
    "Deliver",
    "Drop",
    "DropEvent",
    "Exposure",
    "Fabric",
    "Filtering",
    "Inbound",
    "LossSchedule",
    "Mapping",
    "MappingBehavior",
    "Nat",
    "NatBehavior",
    "NatExhausted",
    "NetemStats",
    "Network",
    "Outbound",
    "Side",
    "SideSpec",
    "StunRequest",
    "Topology",
    "topology",
]
