"""A complete ICE exchange between the harness and the IUT, in either role (RFC 8445 §7, §8).

Cases that observe what a conforming run looks like (message format, credentials, nomination) share this script:
the harness plays a conforming full agent, answers the IUT's checks, checks back, nominates when it is controlling,
and waits for the IUT to report its selected pair.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass

from conformance.adapters.base import IutCrashed, LocalDescription, Notification, RemoteError, describe_exit, iut_death
from conformance.packets import BINDING, REQUEST, SUCCESS
from conformance.tester.endpoint import Endpoint, Received
from conformance.tester.harness import Harness
from conformance.tester.ice import IceSession
from conformance.verdict import HarnessError

__all__ = [
    "ROLE_ATTRIBUTES",
    "Exchange",
    "host_line",
    "is_check",
    "is_data",
    "open_endpoints",
    "requests_from_iut",
    "requests_until_quiet",
    "restart_iut",
    "run_exchange",
    "sanity_probe",
    "send_data",
]


@dataclass
class Exchange:
    """What one exchange produced: the session, the IUT's checks, and its selected pair (if reported)."""

    session: IceSession
    iut_checks: list[Received]
    nominations: list[Received]
    selected: Notification | None


def _is_iut_check(rec: Received) -> bool:
    return rec.is_type(BINDING, REQUEST)


async def run_exchange(h: Harness, role: str, *, timeout: float = 10.0, **session_kwargs: object) -> Exchange:
    """Run ICE to a selected pair with the IUT in ``role`` (the harness takes the other role)."""
    session = await h.session(role, **session_kwargs)  # type: ignore[arg-type]
    peer = session.peer
    ep = peer.endpoint
    target = session.iut_address
    if role == "controlling":
        # The IUT checks and nominates; the peer's auto-responder answers, and it checks back (a triggered check).
        first = await ep.expect(_is_iut_check, timeout, what="connectivity check from the IUT")
        await peer.transact(peer.check(), first.src, timeout=timeout)

        def nominating(r: Received) -> bool:
            return _is_iut_check(r) and r.has("USE-CANDIDATE")

        if not ep.find(nominating):
            # The nomination cases grade its absence; here the exchange just ends without it.
            with contextlib.suppress(HarnessError):
                await ep.expect(nominating, timeout, what="nominating check (USE-CANDIDATE) from the IUT")
    else:
        response = await peer.transact(peer.check(), target, timeout=timeout)
        if response is None or not response.is_type(BINDING, SUCCESS):
            raise HarnessError(f"the IUT did not answer the harness's check to {target}: {response}")
        await peer.transact(peer.check(use_candidate=True), target, timeout=timeout)
    selected = await h.log.wait("selected_pair", timeout=timeout)
    checks = ep.find(_is_iut_check)
    nominations = [r for r in checks if r.has("USE-CANDIDATE")]
    return Exchange(session, checks, nominations, selected)


def host_line(foundation: str, priority: int, address: tuple[str, int], component: int = 1) -> str:
    """A host candidate attribute value (RFC 8839 §5.1) for a harness endpoint."""
    return f"candidate:{foundation} {component} udp {priority} {address[0]} {address[1]} typ host"


async def open_endpoints(h: Harness, count: int, label: str, hosts: list[str] | None = None) -> list[Endpoint]:
    """``count`` plain harness endpoints, spread round-robin over ``hosts`` (loopback addresses)."""
    pool = hosts or [h.host]
    return [await h.endpoint(f"{label} {i + 1}", pool[i % len(pool)]) for i in range(count)]


def requests_from_iut(endpoints: list[Endpoint], since: float = 0.0) -> list[Received]:
    """Every Binding request the IUT sent to these endpoints since ``since``, in kernel arrival order (a loaded
    harness reads several sockets in the order the selector reports them, not in the order datagrams came)."""
    recs = [r for ep in endpoints for r in ep.find(lambda r: r.is_type(BINDING, REQUEST), since)]
    return sorted(recs, key=lambda r: r.arrived)


async def requests_until_quiet(endpoints: list[Endpoint], quiet: float, timeout: float) -> list[Received]:
    """The IUT's Binding requests to ``endpoints``, once every endpoint has had one or none came for ``quiet`` s.

    An agent may check only some of many candidates (RFC 8445 §6.1.2.5 lets it prune and limit pairs), so the
    wait ends when its checks stop reaching new endpoints; ``timeout`` bounds it. The time counts as a deliberate
    wait of the first endpoint. Raises HarnessError when no request came at all.
    """
    loop = asyncio.get_running_loop()
    start = loop.time()
    arrived = asyncio.Event()

    def note(r: Received) -> None:
        if r.is_type(BINDING, REQUEST):
            arrived.set()

    unhooks = [ep.on_datagram(note) for ep in endpoints]
    try:
        for _ in range(100_000):  # bounded: each round ends on an arrival or a timeout
            reached = {r.dst for r in requests_from_iut(endpoints, start)}
            left = start + timeout - loop.time()
            if len(reached) == len(endpoints) or left <= 0:
                break
            arrived.clear()
            try:
                await asyncio.wait_for(arrived.wait(), min(left, quiet) if reached else left)
            except TimeoutError:
                if reached:
                    break
    finally:
        for unhook in unhooks:
            unhook()
        endpoints[0].waited += loop.time() - start
    recs = requests_from_iut(endpoints, start)
    if not recs:
        raise HarnessError(f"no check from the IUT reached any of {len(endpoints)} candidates within {timeout:g} s")
    return recs


async def sanity_probe(h: Harness, session: IceSession, when: str, requirement: str | None = None) -> None:
    """A valid check must get a success (style point 8); before a hostile input its absence is an ERROR.

    After the hostile input (``requirement`` given) a missing answer means the IUT stopped working: that
    requirement's violation, quoted as such.
    """
    peer = session.peer
    reply = await peer.transact(peer.check(), session.iut_address, timeout=3.0, note=f"sanity probe {when}")
    if reply is not None and reply.is_type(BINDING, SUCCESS):
        return
    got = reply.describe() if reply is not None else "no response"
    message = f"a valid check {when} got {got} (sanity probe to {session.iut_address})"
    check_iut_alive(h, message)
    if requirement is None:
        raise HarnessError(message)
    h.findings.violation(requirement, f"the IUT stopped answering valid checks: {message}")


# -- helpers for the role, nomination, consent and restart cases (RFC 8445 §7, §8, §9; RFC 7675) -----------------

ROLE_ATTRIBUTES = {"controlling": "ICE-CONTROLLING", "controlled": "ICE-CONTROLLED"}


def is_check(rec: Received) -> bool:
    """A Binding request (an ICE connectivity or consent check, RFC 8445 §7.2.2)."""
    return rec.is_type(BINDING, REQUEST)


def is_data(rec: Received) -> bool:
    """Application data: a datagram that is not STUN (first byte above 3, RFC 7983 §7)."""
    return bool(rec.data) and rec.data[0] > 3


async def send_data(h: Harness, agent: str, payload: bytes, component: int = 1) -> bool:
    """Ask the IUT to send ``payload`` on its selected pair; False when it refuses (no pair, no consent).

    An IUT without the operation raises :class:`~conformance.adapters.base.Unsupported` (UNSUPPORTED).
    """
    try:
        await h.iut.send(agent, component, payload)
    except RemoteError:
        return False
    return True


async def restart_iut(h: Harness, session: IceSession, candidates: list[str] | None = None) -> LocalDescription:
    """An ICE restart (RFC 8445 §9) driven through the IUT: new IUT and harness credentials, checks started."""
    h.require("restart")
    await h.iut.restart(session.agent)
    desc = await h.iut.gather(session.agent)
    peer = session.peer
    peer.new_credentials()
    peer.remote_ufrag, peer.remote_pwd = desc.ufrag, desc.pwd
    await h.iut.set_remote(session.agent, peer.ufrag, peer.pwd, peer.candidates() if candidates is None else candidates)
    await h.iut.connect(session.agent)
    return desc


async def first_since(
    ep: Endpoint, predicate: Callable[[Received], bool], since: float, window: float
) -> Received | None:
    """The first datagram matching ``predicate`` from ``since`` to ``since + window`` (already arrived or not)."""
    seen = ep.find(predicate, since)
    if seen:
        return seen[0]
    remaining = since + window - ep.now()
    if remaining <= 0:
        return None
    return await ep.expect_silence(predicate, remaining)


def check_iut_alive(h: Harness, context: str) -> None:
    """Raise when the IUT's process is gone, so that silence from a dead IUT is not graded as behaviour.

    A death from a signal raises :class:`~conformance.adapters.base.IutCrashed`, which the plugin grades FAIL
    under ROB-CRASH-01; an exit with a code (possibly the shim's own) or a process the harness killed is ERROR.
    """
    death = iut_death(h.iut)
    if death is not None:
        raise IutCrashed(death.name, death.returncode, f"({context})", death.tail)
    code = getattr(h.iut, "returncode", None)
    if code is not None:
        raise HarnessError(f"the IUT process {describe_exit(code)} ({context}); see its stderr")
