"""Role determination and role conflicts, every branch of the table in both roles (RFC 8445 §6.1.1, §7.2.5.1,
§7.3.1.1, §16.1)."""

from __future__ import annotations

from typing import Literal

import pytest

from conformance.protocol.roles import TIEBREAKER_MAX, Role, RoleAction, decide_role_conflict
from conformance.tester.endpoint import Received
from conformance.tester.expect import Expect
from conformance.tester.harness import Harness
from conformance.tester.ice import BINDING, IcePeer, IceSession
from conformance.tester.ice_steps import is_check
from conformance.verdict import HarnessError, UnsupportedFeature

OTHER = {"controlling": "controlled", "controlled": "controlling"}


@pytest.mark.requirement("ICE-ROLE-01")
@pytest.mark.selftest(fault="swapped-initial-role")
async def test_checks_carry_the_role_the_iut_was_given(harness: Harness, expect: Expect, role: str) -> None:
    """ICE-ROLE-01 (RFC 8445 §6.1.1): the offerer's checks carry ICE-CONTROLLING, the answerer's ICE-CONTROLLED."""
    peer = await harness.peer()
    peer.auto_respond = False  # no conflict, no completion: only the IUT's own view of its role
    await harness.session(role, peer=peer)
    ep = peer.endpoint
    await ep.expect(
        is_check, 10, what="connectivity check from the IUT", findings=harness.findings, requirement="ICE-ROLE-01"
    )
    await harness.observe(1.0, "further checks, each of which must carry the given role")
    created = f"the IUT created {role} ({'offerer' if role == 'controlling' else 'answerer'}), with no role conflict"
    for rec in ep.find(is_check):
        expect(rec, what=created).role(role)


@pytest.mark.requirement("ICE-ROLE-01")
@pytest.mark.selftest(fault="ignore-lite-peer")
async def test_full_agent_facing_a_lite_peer_is_controlling(harness: Harness, expect: Expect) -> None:
    """ICE-ROLE-01 (RFC 8445 §6.1.1): a full agent answering an ICE-lite offer takes the controlling role."""
    peer = await harness.peer()
    session = await harness.session("controlled", peer=peer, lite=True)
    if session.local is None or session.local.ice_options is None:
        # The role follows from the SDP (offerer, a=ice-lite); without an SDP layer the adapter, not the IUT, decides.
        raise UnsupportedFeature("the adapter reports no SDP-level description (contract 1.1): a=ice-lite role rule")
    peer.role = "controlled"  # a lite agent is always controlled and sends no checks (RFC 8445 §2.5)
    first = await peer.endpoint.expect(
        is_check, 10, what="connectivity check from the IUT", findings=harness.findings, requirement="ICE-ROLE-01"
    )
    expect(first, what="the harness's description says a=ice-lite").role("controlling")


def _tiebreaker(variant: str, own: int) -> int:
    """The harness's tiebreaker for a variant: 0, the IUT's own, its own + 1, or 2^64 - 1 (RFC 8445 §16.1)."""
    return {"zero": 0, "equal": own, "plus-one": min(own + 1, TIEBREAKER_MAX), "max": TIEBREAKER_MAX}[variant]


async def _first_check(h: Harness, role: str) -> tuple[IceSession, IcePeer, Received]:
    """An IUT in ``role`` whose checks go unanswered for now; its first check (role attribute, tiebreaker)."""
    peer = await h.peer()
    peer.auto_respond = False
    session = await h.session(role, peer=peer)
    first = await peer.endpoint.expect(is_check, 10, what="connectivity check from the IUT")
    if first.role != role:
        raise HarnessError(
            f"the IUT created {role} checks claiming {first.role} (graded by ICE-ROLE-01): {first.describe()}"
        )
    return session, peer, first


def _new_checks(peer: IcePeer, known: set[bytes], since: float) -> list[Received]:
    """IUT checks of new transactions (not retransmissions) since ``since``."""
    return [r for r in peer.endpoint.find(is_check, since) if r.transaction_id not in known]


async def _conflict(h: Harness, role: str, variant: str, expected: RoleAction, requirement: str) -> None:
    """Send the IUT a check with its own role attribute and the variant's tiebreaker; grade by the role table."""
    f = h.findings
    session, peer, first = await _first_check(h, role)
    own = first.tiebreaker
    assert own is not None
    ours = _tiebreaker(variant, own)
    attribute: Literal["ICE-CONTROLLING", "ICE-CONTROLLED"] = "ICE-CONTROLLING"
    if role == "controlled":
        attribute = "ICE-CONTROLLED"
    action = decide_role_conflict(Role(role), own, attribute, ours)
    if action is not expected:
        raise HarnessError(f"IUT tiebreaker 0x{own:016x} leaves no room for the {variant} variant ({action.value})")
    ep = peer.endpoint
    known = {r.transaction_id for r in ep.find(is_check)}
    start = ep.now()
    conflict = peer.check(role=role, tiebreaker=ours)
    response = await peer.transact(conflict, session.iut_address, timeout=5)
    what = f"{attribute}=0x{ours:016x} against the IUT's 0x{own:016x}"
    if not h.expect(response, requirement, what=f"a check carrying {what}").arrived().ok or response is None:
        return
    peer.auto_respond = True
    if expected is RoleAction.SEND_487:
        h.expect(response, requirement, what=f"a check carrying {what}").error(BINDING, 487)
        # The harness gives way (RFC 8445 §7.2.5.1) and checks again; the triggered check shows the IUT's role.
        peer.role = OTHER[role]
        await peer.transact(peer.check(use_candidate=peer.role == "controlling"), session.iut_address, timeout=5)
        try:  # a triggered, nominating or consent check: any new transaction shows the role the IUT kept
            later = await ep.expect(
                lambda r: is_check(r) and r.transaction_id not in known and r.time >= start,
                12,
                what="a new check from the IUT after the 487",
            )
        except HarnessError:
            f.info("the IUT started no new check within 12 s of the 487: the kept role is judged from the 487 alone")
            return
        h.expect(later, requirement, what="after answering 487, its next check").role(role)
        return
    h.expect(response, requirement, what=f"a check carrying {what} (the IUT switches role)").success(BINDING)
    new_role = OTHER[role]
    peer.role = role  # the harness keeps the role it claimed
    later = await ep.expect(
        lambda r: is_check(r) and r.transaction_id not in known and r.time >= response.time,
        10,
        what="a check from the IUT after the role switch",
        findings=f,
        requirement=requirement,
    )
    h.expect(later, requirement, what=f"after losing the conflict ({what}), its next check").role(new_role)
    if new_role == "controlled":
        await h.observe(2.0, "no nomination from the IUT now controlled")
        for rec in _new_checks(peer, known, response.time):
            h.expect(rec, requirement, what="the IUT switched to controlled").lacks("USE-CANDIDATE")
    elif not ep.find(lambda r: is_check(r) and r.index is not None and r.has("USE-CANDIDATE"), response.time):
        await ep.expect(
            lambda r: is_check(r) and r.index is not None and r.has("USE-CANDIDATE"),
            10,
            what="a nominating check from the IUT, now controlling",
            findings=f,
            requirement=requirement,
        )


@pytest.mark.requirement("ICE-ROLE-02")
@pytest.mark.parametrize("variant", ["zero", "equal"])
@pytest.mark.selftest(fault="no-487")
async def test_controlling_iut_with_the_larger_tiebreaker_answers_487(harness: Harness, variant: str) -> None:
    """ICE-ROLE-02 (RFC 8445 §7.3.1.1): ICE-CONTROLLING <= own tiebreaker (equal too): 487 and the role kept."""
    await _conflict(harness, "controlling", variant, RoleAction.SEND_487, "ICE-ROLE-02")


@pytest.mark.requirement("ICE-ROLE-03")
@pytest.mark.parametrize("variant", ["plus-one", "max"])
@pytest.mark.selftest(fault="no-role-switch")
async def test_controlling_iut_with_the_smaller_tiebreaker_switches(harness: Harness, variant: str) -> None:
    """ICE-ROLE-03 (RFC 8445 §7.3.1.1): ICE-CONTROLLING > own tiebreaker: success, then controlled checks."""
    await _conflict(harness, "controlling", variant, RoleAction.SWITCH_ROLE, "ICE-ROLE-03")


@pytest.mark.requirement("ICE-ROLE-04")
@pytest.mark.parametrize("variant", ["zero", "equal"])
@pytest.mark.selftest(fault="no-role-switch")
async def test_controlled_iut_with_the_larger_tiebreaker_switches(harness: Harness, variant: str) -> None:
    """ICE-ROLE-04 (RFC 8445 §7.3.1.1): ICE-CONTROLLED <= own tiebreaker (equal too): success, then controlling."""
    await _conflict(harness, "controlled", variant, RoleAction.SWITCH_ROLE, "ICE-ROLE-04")


@pytest.mark.requirement("ICE-ROLE-05")
@pytest.mark.parametrize("variant", ["plus-one", "max"])
@pytest.mark.selftest(fault="controlled-no-487")
async def test_controlled_iut_with_the_smaller_tiebreaker_answers_487(harness: Harness, variant: str) -> None:
    """ICE-ROLE-05 (RFC 8445 §7.3.1.1): ICE-CONTROLLED > own tiebreaker: 487 and the role kept."""
    await _conflict(harness, "controlled", variant, RoleAction.SEND_487, "ICE-ROLE-05")


@pytest.mark.requirement("ICE-ROLE-06")
@pytest.mark.selftest(fault="ignore-487")
@pytest.mark.selftest(fault="keep-tiebreaker")
async def test_a_487_flips_the_role_and_changes_the_tiebreaker(harness: Harness, expect: Expect, role: str) -> None:
    """ICE-ROLE-06 (RFC 8445 §7.2.5.1, §16.1): after a 487 the pair is checked again, other role, new tiebreaker."""
    f = harness.findings
    peer = await harness.peer()
    conflicted: list[bytes] = []

    def responder(rec: Received) -> bytes | None:
        if not conflicted:
            conflicted.append(rec.transaction_id)
        return bytes(peer.error(rec, 487)) if rec.transaction_id == conflicted[0] else None

    peer.responder = responder
    await harness.session(role, peer=peer)
    ep = peer.endpoint
    first = await ep.expect(is_check, 10, what="connectivity check from the IUT")
    tiebreaker = first.tiebreaker
    if first.role != role or first.transaction_id != conflicted[0]:
        raise HarnessError(f"unexpected first check (role attribute graded by ICE-ROLE-01): {first.describe()}")
    again = await ep.expect(
        lambda r: is_check(r) and r.transaction_id != first.transaction_id and (r.src, r.dst) == (first.src, first.dst),
        5,
        since=first.time,
        what="the check repeated on the same pair after the 487",
        findings=f,
        requirement="ICE-ROLE-06",
    )
    repeated = expect(again, what=f"after a 487 to its {role} check, the repeated check").role(OTHER[role])
    repeated.that(again.tiebreaker != tiebreaker, f"a new tiebreaker (RFC 8445 §16.1), not 0x{tiebreaker or 0:016x}")
