"""Candidate and candidate-pair priorities (RFC 8445 §5.1.2, §6.1.2.3)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Final, TypeVar

__all__ = [
    "COMPONENT_MAX",
    "LOCAL_PREFERENCE_MAX",
    "PRIORITY_MAX",
    "TYPE_PREFERENCE",
    "TYPE_PREFERENCE_MAX",
    "candidate_priority",
    "decompose_priority",
    "order_pairs",
    "pair_priority",
]

K = TypeVar("K")

TYPE_PREFERENCE: Final[Mapping[str, int]] = MappingProxyType({"host": 126, "prflx": 110, "srflx": 100, "relay": 0})
"""RECOMMENDED type preferences by candidate type (RFC 8445 §5.1.2.2)."""

TYPE_PREFERENCE_MAX: Final = 126
"""Largest allowed type preference (RFC 8445 §5.1.2.1)."""

LOCAL_PREFERENCE_MAX: Final = 65535
"""Largest allowed local preference (RFC 8445 §5.1.2.1)."""

COMPONENT_MAX: Final = 256
"""Largest component ID (RFC 8445 §5.1.2.1, RFC 8839 §5.1)."""

PRIORITY_MAX: Final = 2**31 - 1
"""Largest allowed candidate priority; the smallest is 1 (RFC 8445 §5.1.2)."""

_U32_MAX: Final = 2**32 - 1


def candidate_priority(type_pref: int, local_pref: int, component: int) -> int:
    """Priority = 2^24·type_pref + 2^8·local_pref + (256 - component), range-checked (RFC 8445 §5.1.2.1)."""
    if not 0 <= type_pref <= TYPE_PREFERENCE_MAX:
        raise ValueError(f"type preference {type_pref} is outside 0..126 (RFC 8445 §5.1.2.1)")
    if not 0 <= local_pref <= LOCAL_PREFERENCE_MAX:
        raise ValueError(f"local preference {local_pref} is outside 0..65535 (RFC 8445 §5.1.2.1)")
    if not 1 <= component <= COMPONENT_MAX:
        raise ValueError(f"component ID {component} is outside 1..256 (RFC 8445 §5.1.2.1)")
    priority = (type_pref << 24) + (local_pref << 8) + (256 - component)
    if priority < 1:
        raise ValueError(
            f"type preference {type_pref}, local preference {local_pref} and component {component} give "
            "priority 0, outside 1..2^31-1 (RFC 8445 §5.1.2)"
        )
    return priority


def decompose_priority(priority: int) -> tuple[int, int, int]:
    """Split a 32-bit priority into (type_pref, local_pref, component) per the formula (RFC 8445 §5.1.2.1).

    Any unsigned 32-bit value is accepted, so an IUT's out-of-range values can be inspected; a low byte of 0
    reads as component 256.
    """
    if not 0 <= priority <= _U32_MAX:
        raise ValueError(f"priority {priority} is not an unsigned 32-bit value (RFC 8445 §16.1)")
    return priority >> 24, (priority >> 8) & 0xFFFF, 256 - (priority & 0xFF)


def pair_priority(g: int, d: int) -> int:
    """Pair priority 2^32·MIN(G,D) + 2·MAX(G,D) + (G>D?1:0), G the controlling side (RFC 8445 §6.1.2.3)."""
    for name, value in (("G", g), ("D", d)):
        if not 1 <= value <= PRIORITY_MAX:
            raise ValueError(f"candidate priority {name}={value} is outside 1..2^31-1 (RFC 8445 §5.1.2)")
    return (min(g, d) << 32) + 2 * max(g, d) + (1 if g > d else 0)


def order_pairs(pairs: Iterable[tuple[int, int, K]]) -> list[tuple[int, int, K]]:
    """Sort (G, D, key) triples by decreasing pair priority; ties keep input order (RFC 8445 §6.1.2.3)."""
    return sorted(pairs, key=lambda pair: pair_priority(pair[0], pair[1]), reverse=True)
