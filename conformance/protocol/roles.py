"""ICE role-conflict decision for an incoming Binding request, as one table (RFC 8445 §7.3.1.1).

Theory of operation: RFC 8445 §7.3.1.1 compares the receiving agent's own tiebreaker with the one in the
request's role attribute. Both rules in the RFC read "larger than or equal to": a controlling agent that sees
ICE-CONTROLLING keeps its role and answers 487 when its tiebreaker is >= the attribute's, and switches to
controlled when it is smaller; a controlled agent that sees ICE-CONTROLLED switches to controlling when its
tiebreaker is >= the attribute's, and answers 487 when it is smaller. So on equal tiebreakers a controlling
agent sends 487 and a controlled agent switches. :data:`ROLE_CONFLICT_TABLE` holds those rules keyed by
(own role, attribute, own >= peer); code, tests and reports all read it.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from types import MappingProxyType
from typing import Final, Literal

__all__ = [
    "ICE_CONTROLLED",
    "ICE_CONTROLLING",
    "ROLE_CONFLICT_TABLE",
    "TIEBREAKER_MAX",
    "Role",
    "RoleAction",
    "RoleAttribute",
    "decide_role_conflict",
    "role_after",
]

ICE_CONTROLLING: Final = "ICE-CONTROLLING"
ICE_CONTROLLED: Final = "ICE-CONTROLLED"
TIEBREAKER_MAX: Final = 2**64 - 1
"""Tiebreakers are 64-bit unsigned integers (RFC 8445 §16.1)."""

RoleAttribute = Literal["ICE-CONTROLLING", "ICE-CONTROLLED"]


class Role(Enum):
    """ICE agent role (RFC 8445 §6.1.1)."""

    CONTROLLING = "controlling"
    CONTROLLED = "controlled"


class RoleAction(Enum):
    """What the receiver of a Binding request does about its role (RFC 8445 §7.3.1.1)."""

    NO_CONFLICT = "no_conflict"
    SEND_487 = "send_487"
    SWITCH_ROLE = "switch_role"


# (own role, role attribute in the request or None, own tiebreaker >= peer tiebreaker) -> action.
ROLE_CONFLICT_TABLE: Final[Mapping[tuple[Role, str | None, bool], RoleAction]] = MappingProxyType(
    {
        (Role.CONTROLLING, ICE_CONTROLLING, True): RoleAction.SEND_487,
        (Role.CONTROLLING, ICE_CONTROLLING, False): RoleAction.SWITCH_ROLE,
        (Role.CONTROLLING, ICE_CONTROLLED, True): RoleAction.NO_CONFLICT,
        (Role.CONTROLLING, ICE_CONTROLLED, False): RoleAction.NO_CONFLICT,
        (Role.CONTROLLING, None, True): RoleAction.NO_CONFLICT,
        (Role.CONTROLLING, None, False): RoleAction.NO_CONFLICT,
        (Role.CONTROLLED, ICE_CONTROLLED, True): RoleAction.SWITCH_ROLE,
        (Role.CONTROLLED, ICE_CONTROLLED, False): RoleAction.SEND_487,
        (Role.CONTROLLED, ICE_CONTROLLING, True): RoleAction.NO_CONFLICT,
        (Role.CONTROLLED, ICE_CONTROLLING, False): RoleAction.NO_CONFLICT,
        (Role.CONTROLLED, None, True): RoleAction.NO_CONFLICT,
        (Role.CONTROLLED, None, False): RoleAction.NO_CONFLICT,
    }
)


def decide_role_conflict(
    own_role: Role,
    own_tiebreaker: int,
    attribute: RoleAttribute | None,
    peer_tiebreaker: int | None,
) -> RoleAction:
    """Look up the action for a request carrying ``attribute`` with ``peer_tiebreaker`` (RFC 8445 §7.3.1.1).

    ``attribute`` None means the request carried neither role attribute; ``peer_tiebreaker`` is then ignored
    and may be None.
    """
    if not isinstance(own_role, Role):
        raise ValueError(f"own role {own_role!r} is not a Role")
    if not 0 <= own_tiebreaker <= TIEBREAKER_MAX:
        raise ValueError(f"own tiebreaker {own_tiebreaker} is not a 64-bit unsigned value (RFC 8445 §16.1)")
    if attribute is None:
        return ROLE_CONFLICT_TABLE[(own_role, None, True)]
    if attribute not in (ICE_CONTROLLING, ICE_CONTROLLED):
        raise ValueError(f"role attribute {attribute!r} is neither ICE-CONTROLLING nor ICE-CONTROLLED")
    if peer_tiebreaker is None or not 0 <= peer_tiebreaker <= TIEBREAKER_MAX:
        raise ValueError(f"{attribute} tiebreaker {peer_tiebreaker!r} is not a 64-bit unsigned value (RFC 8445 §16.1)")
    return ROLE_CONFLICT_TABLE[(own_role, attribute, own_tiebreaker >= peer_tiebreaker)]


def role_after(own_role: Role, action: RoleAction) -> Role:
    """Return the receiver's role after taking ``action`` (RFC 8445 §7.3.1.1)."""
    if action is RoleAction.SWITCH_ROLE:
        return Role.CONTROLLED if own_role is Role.CONTROLLING else Role.CONTROLLING
    return own_role
