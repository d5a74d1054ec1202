"""ICE restart: new credentials, roles kept unless the peer redetermines them, data on the old pair meanwhile
(RFC 8445 §6.1.1, §9, §12.1)."""

from __future__ import annotations

import pytest

from conformance.packets import check_integrity
from conformance.protocol.keys import short_term_key
from conformance.protocol.priority import candidate_priority
from conformance.protocol.roles import TIEBREAKER_MAX
from conformance.tester.endpoint import Received
from conformance.tester.expect import Expect
from conformance.tester.harness import Harness
from conformance.tester.ice import BINDING, SUCCESS, IcePeer
from conformance.tester.ice_steps import (
    ROLE_ATTRIBUTES,
    host_line,
    is_check,
    is_data,
    restart_iut,
    run_exchange,
    send_data,
)
from conformance.verdict import HarnessError

OTHER = {"controlling": "controlled", "controlled": "controlling"}


def _new_generation(peer: IcePeer) -> object:
    user = f"{peer.ufrag}:".encode()
    return lambda r: is_check(r) and r.index is not None and (r.value("USERNAME") or b"").startswith(user)


async def _restarted(h: Harness, role: str) -> tuple[IcePeer, str, str, Received]:
    """An exchange, then an IUT restart; returns the peer, the old ufrag and pwd, and the first new check."""
    h.require("restart")
    x = await run_exchange(h, role)
    if x.selected is None:
        raise HarnessError("the IUT reported no selected pair before the restart")
    s, peer = x.session, x.session.peer
    old_ufrag, old_pwd = peer.remote_ufrag, peer.remote_pwd
    await restart_iut(h, s)
    if role == "controlled":
        # The controlling harness checks first, with the lowest tie-breaker: a conforming controlled IUT sees no
        # conflict, and an IUT that wrongly took the controlling role keeps it (RFC 8445 §7.3.1.1), so it shows.
        await peer.transact(peer.check(tiebreaker=0), s.iut_address, timeout=5)
    first = await peer.endpoint.expect(
        _new_generation(peer),
        10,
        what="a check from the IUT with the new credentials",  # type: ignore[arg-type]
    )
    return peer, old_ufrag, old_pwd, first


@pytest.mark.requirement("ICE-RST-01")
@pytest.mark.selftest(fault="restart-keeps-pwd")
async def test_restart_changes_both_credentials(harness: Harness, expect: Expect, role: str) -> None:
    """ICE-RST-01 (RFC 8445 §9, §7.2.2): a restart changes ufrag and pwd; later checks use the new ones."""
    f = harness.findings
    peer, old_ufrag, old_pwd, first = await _restarted(harness, role)
    f.check(peer.remote_ufrag != old_ufrag, "ICE-RST-01", f"the restart kept the ufrag {old_ufrag!r}")
    f.check(peer.remote_pwd != old_pwd, "ICE-RST-01", "the restart kept the pwd (only the ufrag changed)")
    check = expect(first, what="the first check after the restart")
    check.sound(check_integrity(first.data, peer.local_key), "MESSAGE-INTEGRITY keyed with the harness's new pwd")
    user = f"{peer.ufrag}:{peer.remote_ufrag}".encode()
    check.that(first.index is not None and first.value("USERNAME") == user, f"USERNAME {user!r}")
    response = await peer.transact(peer.check(), first.src, timeout=5)
    expect(response, what="a check with the IUT's new credentials").that(
        response is not None
        and response.is_type(BINDING, SUCCESS)
        and check_integrity(response.data, short_term_key(peer.remote_pwd)) is None,
        "a Binding success response keyed with the IUT's new pwd",
    )


@pytest.mark.requirement("ICE-RST-02")
@pytest.mark.selftest(fault="restart-flips-role")
async def test_restart_keeps_the_role(harness: Harness, expect: Expect, role: str) -> None:
    """ICE-RST-02 (RFC 8445 §9, §6.1.1): checks after a restart carry the pre-restart role attribute."""
    _, _, _, first = await _restarted(harness, role)
    expect(first, what=f"the IUT was {role} before the restart; its first check after it").role(role)


@pytest.mark.requirement("ICE-RST-03")
@pytest.mark.selftest(fault="no-role-switch")
async def test_restart_accepts_a_role_redetermined_by_the_peer(harness: Harness, expect: Expect, role: str) -> None:
    """ICE-RST-03 (RFC 8445 §6.1.1): the harness restarts with the roles flipped (RFC 5245 peer); the IUT follows."""
    f = harness.findings
    harness.require("restart")
    x = await run_exchange(harness, role)
    if x.selected is None:
        raise HarnessError("the IUT reported no selected pair before the restart")
    s, peer = x.session, x.session.peer
    peer.auto_respond = False
    await restart_iut(harness, s)
    ep = peer.endpoint
    peer.role = role  # the harness now claims the IUT's old role
    # The tiebreaker that makes the IUT give way under RFC 8445 §7.3.1.1 (max against a controlling IUT, 0 against
    # a controlled one): the in-band form of the peer's role redetermination.
    tiebreaker = TIEBREAKER_MAX if role == "controlling" else 0
    response = await peer.transact(peer.check(tiebreaker=tiebreaker), s.iut_address, timeout=5)
    peer.auto_respond = True
    flipped = f"after a restart with roles flipped, the harness's {ROLE_ATTRIBUTES[role]} check"
    expect(response, what=flipped).success(BINDING)
    assert response is not None
    user = f"{peer.ufrag}:".encode()
    later = await ep.expect(
        lambda r: is_check(r) and r.time > response.time and (r.value("USERNAME") or b"").startswith(user),  # type: ignore[union-attr]
        10,
        what="a check from the IUT after the role flip",
        findings=f,
        requirement="ICE-RST-03",
    )
    expect(later, what=f"the harness took the {role} role in its restart; the IUT's next check").role(OTHER[role])


@pytest.mark.requirement("ICE-RST-04")
@pytest.mark.needs("restart")
@pytest.mark.selftest(fault="drop-pair-on-restart")
async def test_data_stays_on_the_old_pair_until_a_new_one_is_selected(harness: Harness) -> None:
    """ICE-RST-04 (RFC 8445 §9, §12.1): during a restart data uses the old selected pair, then the new one."""
    f = harness.findings
    x = await run_exchange(harness, "controlling")
    if x.selected is None:
        raise HarnessError("the IUT reported no selected pair before the restart")
    s, peer = x.session, x.session.peer
    a = peer.endpoint
    b = await harness.endpoint("harness peer B")
    peer.attach(b)
    payload = b"\x80before restart"
    since = a.now()
    await send_data(harness, s.agent, payload)
    await a.expect(lambda r: r.data == payload, 3, since=since, what="data on the selected pair before the restart")
    hold = [True]
    peer.responder = lambda rec: b"" if hold[0] and rec.dst == b.address else None
    await restart_iut(harness, s, [host_line("B", candidate_priority(126, 65535, 1), b.address)])
    t_rst = a.now()
    for i in range(6):
        await send_data(harness, s.agent, b"\x80during restart %d" % i)
        if await harness.wait(lambda r: r.dst == a.address and is_data(r), 0.3, since=t_rst) is not None:
            break  # the evidence is in: data reached the old selected pair during the restart
    during = a.find(is_data, t_rst)
    f.check(
        bool(during),
        "ICE-RST-04",
        "while the restart's checks went unanswered, no data from the IUT reached the old selected pair",
    )
    hold[0] = False
    b.send(bytes(peer.check()), s.iut_address, "check from B")  # a full peer checks too (RFC 8445 §7.2.4)
    new = await harness.log.wait("selected_pair", lambda n: n.time > t_rst and str(b.address[1]) in str(n.params), 10)
    f.check(new is not None, "ICE-RST-04", "the IUT reported no new selected pair to B after the restart")
    since = b.now()
    await send_data(harness, s.agent, b"\x80after restart")
    await b.expect(
        lambda r: r.data == b"\x80after restart",
        3,
        since=since,
        what="data on the new selected pair",
        findings=f,
        requirement="ICE-RST-04",
    )
