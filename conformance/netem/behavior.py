"""NAT behaviours as data: the mapping and filtering tables of RFC 4787 §4.1 and §5, read by code, tests and docs."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "BEHAVIOURS",
    "DIRECT",
    "FILTER_ADMITS",
    "MAPPING_KEY",
    "Address",
    "Filtering",
    "MappingBehavior",
    "MappingKey",
    "NatBehavior",
]

#: An (IPv4 address, port) pair.
Address = tuple[str, int]
#: What a NAT keys a mapping on: the internal endpoint, plus the destination IP or (IP, port) (RFC 4787 §4.1).
MappingKey = tuple[Address, str | None, int | None]


class MappingBehavior(StrEnum):
    """How a NAT reuses an external (IP, port) across destinations (RFC 4787 §4.1)."""

    ENDPOINT_INDEPENDENT = "endpoint-independent"
    ADDRESS_DEPENDENT = "address-dependent"
    ADDRESS_AND_PORT_DEPENDENT = "address-and-port-dependent"


class Filtering(StrEnum):
    """Which inbound sources a NAT admits to a mapping (RFC 4787 §5)."""

    ENDPOINT_INDEPENDENT = "endpoint-independent"
    ADDRESS_DEPENDENT = "address-dependent"
    ADDRESS_AND_PORT_DEPENDENT = "address-and-port-dependent"


def _key_eim(internal: Address, destination: Address) -> MappingKey:
    return (internal, None, None)


def _key_adm(internal: Address, destination: Address) -> MappingKey:
    return (internal, destination[0], None)


def _key_apdm(internal: Address, destination: Address) -> MappingKey:
    return (internal, destination[0], destination[1])


#: RFC 4787 §4.1: X1':x1' equals X2':x2' for all Y2:y2 (EIM); iff Y2 == Y1 (ADM); iff Y2:y2 == Y1:y1 (APDM).
MAPPING_KEY: dict[MappingBehavior, Callable[[Address, Address], MappingKey]] = {
    MappingBehavior.ENDPOINT_INDEPENDENT: _key_eim,
    MappingBehavior.ADDRESS_DEPENDENT: _key_adm,
    MappingBehavior.ADDRESS_AND_PORT_DEPENDENT: _key_apdm,
}


def _admit_eif(sent_to: Iterable[Address], source: Address) -> bool:
    return True


def _admit_adf(sent_to: Iterable[Address], source: Address) -> bool:
    return any(d[0] == source[0] for d in sent_to)


def _admit_apdf(sent_to: Iterable[Address], source: Address) -> bool:
    return any(d == source for d in sent_to)


#: RFC 4787 §5: given the live destinations the mapping has sent to, whether a datagram from ``source`` passes.
FILTER_ADMITS: dict[Filtering, Callable[[Iterable[Address], Address], bool]] = {
    Filtering.ENDPOINT_INDEPENDENT: _admit_eif,
    Filtering.ADDRESS_DEPENDENT: _admit_adf,
    Filtering.ADDRESS_AND_PORT_DEPENDENT: _admit_apdf,
}

#: (behaviour, RFC 4787 section, one-line definition): the table docs/netem.md and the self-tests follow.
BEHAVIOURS: tuple[tuple[MappingBehavior | Filtering, str, str], ...] = (
    (MappingBehavior.ENDPOINT_INDEPENDENT, "4.1", "one external (IP, port) per internal (IP, port), any destination"),
    (MappingBehavior.ADDRESS_DEPENDENT, "4.1", "a new external (IP, port) per destination IP"),
    (MappingBehavior.ADDRESS_AND_PORT_DEPENDENT, "4.1", "a new external (IP, port) per destination (IP, port)"),
    (Filtering.ENDPOINT_INDEPENDENT, "5", "any source may reach a live mapping"),
    (Filtering.ADDRESS_DEPENDENT, "5", "only sources at an IP the internal endpoint sent to"),
    (Filtering.ADDRESS_AND_PORT_DEPENDENT, "5", "only the exact (IP, port) the internal endpoint sent to"),
)


@dataclass(frozen=True)
class NatBehavior:
    """A NAT: mapping (RFC 4787 §4.1), filtering (§5), port preservation (§4.2.1), refresh (§4.3), hairpinning (§6)."""

    mapping: MappingBehavior = MappingBehavior.ENDPOINT_INDEPENDENT
    filtering: Filtering = Filtering.ENDPOINT_INDEPENDENT
    #: Try the internal port as the external port first (RFC 4787 §4.2.1, REQ-2 allows it).
    port_preserving: bool = False
    #: Loop a datagram sent to this NAT's own external address back inside (RFC 4787 §6, REQ-9).
    hairpinning: bool = False
    #: Idle seconds before a mapping expires; RFC 4787 §4.3 REQ-5 asks at least 120, recommends 300 or more.
    timeout: float = 300.0
    #: Whether admitted inbound traffic refreshes the mapping (RFC 4787 §4.3 REQ-6a: MAY); outbound always does.
    inbound_refresh: bool = False

    def __post_init__(self) -> None:
        if not self.timeout > 0:
            raise ValueError(f"mapping timeout must be positive, not {self.timeout!r} (RFC 4787 §4.3)")

    @property
    def label(self) -> str:
        """A short name such as ``eim-apdf`` (RFC 4787 §4.1, §5)."""
        short = {"endpoint-independent": "ei", "address-dependent": "ad", "address-and-port-dependent": "apd"}
        return f"{short[self.mapping.value]}m-{short[self.filtering.value]}f"


#: A side with no NAT: a static one-to-one translation, port preserved, nothing filtered, no expiry (RFC 4787 §4.1).
DIRECT = NatBehavior(port_preserving=True, hairpinning=True, timeout=math.inf)
