"""The in-repo reference ICE peer: it connects (to itself and to aioice), and each fault shows on the wire."""

from __future__ import annotations

import asyncio
import contextlib
import struct
import subprocess
import sys
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest

from conformance.adapters import Adapter, AdapterError, AgentConfig, ErrorCode, RemoteError, StdioAdapter
from conformance.adapters.aioice import AioiceAdapter
from conformance.catalog import load_catalog
from conformance.packets import STUN, attr, check_fingerprint, check_integrity, parse
from conformance.protocol import decompose_priority, parse_candidate
from conformance.reference import CAPABILITIES, FAULTS, ReferenceAdapter

from .test_adapter_aioice import Inbox, exchange_data, host_port, state_is

T = TypeVar("T")
REF_UFRAG, REF_PWD = "REFU", "referencePasswordOf24ch"
T_UFRAG, T_PWD = "TSTR", "testerPasswordOf22char"
BIG_TIEBREAKER = 2**63


def run(coro: Coroutine[Any, Any, T], deadline: float = 20.0) -> T:
    async def bounded() -> T:
        async with asyncio.timeout(deadline):
            return await coro

    return asyncio.run(bounded())


# --- helpers: a raw UDP tester and a reference agent under probe ---------------------------------------------


class Tester(asyncio.DatagramProtocol):
    __test__ = False

    """A raw UDP socket on 127.0.0.1 playing the remote ICE peer."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[bytes, tuple[str, int]]] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.queue.put_nowait((data, (addr[0], addr[1])))

    @classmethod
    async def open(cls) -> Tester:
        loop = asyncio.get_running_loop()
        transport, proto = await loop.create_datagram_endpoint(cls, local_addr=("127.0.0.1", 0))
        proto.transport = transport
        return proto

    @property
    def address(self) -> tuple[str, int]:
        assert self.transport is not None
        host, port = self.transport.get_extra_info("sockname")[:2]
        return host, port

    def candidate(self, priority: int = 1000) -> str:
        return f"candidate:T 1 udp {priority} {self.address[0]} {self.address[1]} typ host"

    def send(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self.transport is not None
        self.transport.sendto(data, addr)

    async def next(
        self, where: Callable[[bytes], bool] = lambda d: True, deadline: float = 3.0
    ) -> tuple[bytes, tuple[str, int]]:
        async with asyncio.timeout(deadline):
            while True:
                data, addr = await self.queue.get()
                if where(data):
                    return data, addr

    def drain(self) -> int:
        """Forget what arrived so far; returns how many datagrams were dropped."""
        n = 0
        while not self.queue.empty():
            self.queue.get_nowait()
            n += 1
        return n

    async def silent(self, where: Callable[[bytes], bool] = lambda d: True, window: float = 0.5) -> bool:
        """True when nothing matching arrives within ``window`` (silence is proven only by a deadline)."""
        try:
            await self.next(where, deadline=window)
        except TimeoutError:
            return True
        return False

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


@dataclass
class Target:
    adapter: ReferenceAdapter
    agent: str
    address: tuple[str, int]
    candidates: list[str]
    inbox: Inbox


async def target(
    faults: tuple[str, ...] = (),
    *,
    role: str = "controlled",
    remote: list[str] | None = None,
    connect: bool = False,
    trickle: bool = False,
    components: int = 1,
    **options: Any,
) -> Target:
    """A reference agent with chosen credentials whose peer is the tester (credentials T_UFRAG/T_PWD)."""
    adapter = ReferenceAdapter(faults)
    cfg = AgentConfig(role, components=components, ufrag=REF_UFRAG, pwd=REF_PWD, trickle=trickle, options=options)
    agent = await adapter.create_agent(cfg)
    desc = await adapter.gather(agent)
    await adapter.set_remote(agent, T_UFRAG, T_PWD, remote or [])
    if connect:
        await adapter.connect(agent)
    inbox = Inbox(adapter)
    candidates = list(desc.candidates)
    if trickle:
        note = await inbox.expect("candidate", lambda p: p["candidate"] is not None)
        candidates.append(note.params["candidate"])
    return Target(adapter, agent, host_port(candidates[0]), candidates, inbox)


def request(
    *,
    username: bytes = f"{REF_UFRAG}:{T_UFRAG}".encode(),
    key: str = REF_PWD,
    mi: bool = True,
    fp: bool = True,
    extra: tuple[Any, ...] = (),
    role: Any = None,
    padding: bytes | None = None,
    bad_crc: bool = False,
) -> bytes:
    """A connectivity check to the reference agent, built with the harness's Scapy layers (RFC 8445 §7.2.2)."""
    user = attr.Username(username=username) if padding is None else attr.Username(username=username, padding=padding)
    attrs: list[Any] = [user, attr.Priority(priority=1853824767)]
    attrs.append(role if role is not None else attr.IceControlling(tiebreaker=1))
    attrs.extend(extra)
    if mi:
        attrs.append(attr.MessageIntegrity())
    if fp:
        attrs.append(attr.Fingerprint(crc=0x12345678) if bad_crc else attr.Fingerprint())
    return bytes(STUN(type=0x0001, key=key.encode(), attributes=attrs))


def is_request(data: bytes) -> bool:
    return len(data) >= 20 and data[0] < 4 and struct.unpack_from("!H", data)[0] == 0x0001


def answer(check: bytes, source: tuple[str, int], *, code: int | None = None, mi: bool = True) -> bytes:
    """The tester's response to the reference agent's check: success or an error, keyed with T_PWD."""
    req = STUN(check)
    attrs: list[Any]
    if code is None:
        attrs = [attr.XorMappedAddress(address=source[0], port=source[1])]
        mtype = 0x0101
    else:
        attrs = [attr.ErrorCode(code)]
        mtype = 0x0111
    if mi:
        attrs.append(attr.MessageIntegrity())
    attrs.append(attr.Fingerprint())
    return bytes(STUN(type=mtype, transaction_id=bytes(req.transaction_id), key=T_PWD.encode(), attributes=attrs))


async def probe(faults: tuple[str, ...], data: bytes, **kw: Any) -> tuple[bytes | None, tuple[str, int] | None]:
    """Send ``data`` to a fresh reference agent; its response, or (None, None) after 0.5 s of silence."""
    t, tester = await target(faults, **kw), await Tester.open()
    try:
        tester.send(data, t.address)
        try:
            return await tester.next(deadline=0.5)
        except TimeoutError:
            # The sanity probe: the agent is alive and answers a valid check.
            tester.send(request(), t.address)
            reply, _ = await tester.next()
            assert parse(reply).msg_class == 2
            return None, None
    finally:
        tester.close()
        await t.adapter.shutdown()


# --- connecting ----------------------------------------------------------------------------------------------


async def pair_up(
    a: Adapter, b: Adapter, cfg_a: AgentConfig, cfg_b: AgentConfig, *, trickle: bool = False
) -> tuple[str, str, Inbox, Inbox]:
    ia, ib = await a.create_agent(cfg_a), await b.create_agent(cfg_b)
    ina, inb = Inbox(a), Inbox(b)
    da, db = await a.gather(ia), await b.gather(ib)
    await a.set_remote(ia, db.ufrag, db.pwd, db.candidates)
    await b.set_remote(ib, da.ufrag, da.pwd, da.candidates)
    await a.connect(ia)
    await b.connect(ib)
    if trickle:
        for src, dst, src_id, dst_id in ((ina, b, ia, ib), (inb, a, ib, ia)):
            while True:
                note = await src.expect("candidate", lambda p, i=src_id: p["agent"] == i)
                await dst.add_remote_candidate(dst_id, note.params["candidate"])
                if note.params["candidate"] is None:
                    break
    await ina.expect("state", state_is(ia, "connected"))
    await inb.expect("state", state_is(ib, "connected"))
    return ia, ib, ina, inb


@pytest.mark.parametrize(
    "extra",
    [{}, {"components": 2}, {"trickle": True}, {"interfaces": ["::1"]}],
    ids=["basic", "two-components", "trickle", "ipv6"],
)
def test_reference_pair_connects_and_exchanges_data(extra: dict[str, Any]) -> None:
    async def main() -> None:
        a, b = ReferenceAdapter(), ReferenceAdapter()
        try:
            ia, ib, ina, inb = await pair_up(
                a,
                b,
                AgentConfig("controlling", ufrag="AAAA", pwd="a" * 22, **extra),
                AgentConfig("controlled", **extra),
                trickle=bool(extra.get("trickle")),
            )
            components = extra.get("components", 1)
            for comp in range(1, components + 1):
                pa = await ina.expect("selected_pair", lambda p, c=comp: p["agent"] == ia and p["component"] == c)
                pb = await inb.expect("selected_pair", lambda p, c=comp: p["agent"] == ib and p["component"] == c)
                assert host_port(pa.params["local"]) == host_port(pb.params["remote"])
                assert host_port(pa.params["remote"]) == host_port(pb.params["local"])
                await exchange_data(a, ia, ina, b, ib, inb, comp=comp)
            assert ina.states(ia) == ["new", "checking", "connected"]
            await a.close(ia)
            await ina.expect("state", state_is(ia, "closed"))
        finally:
            await a.shutdown()
            await b.shutdown()

    run(main())


def test_reference_role_conflict_resolves_when_both_controlling() -> None:
    async def main() -> None:
        a, b = ReferenceAdapter(), ReferenceAdapter()
        try:
            ia, ib, ina, inb = await pair_up(
                a,
                b,
                AgentConfig("controlling", options={"tiebreaker": 10}),
                AgentConfig("controlling", options={"tiebreaker": 5}),
            )
            await exchange_data(a, ia, ina, b, ib, inb)
            assert "role controlling -> controlled" in b.diagnostics()
            assert "role controlling -> controlled" not in a.diagnostics()
        finally:
            await a.shutdown()
            await b.shutdown()

    run(main())


def test_reference_restart_selects_a_new_pair() -> None:
    async def main() -> None:
        a, b = ReferenceAdapter(), ReferenceAdapter()
        try:
            ia, ib, ina, inb = await pair_up(a, b, AgentConfig("controlling"), AgentConfig("controlled"))
            await ina.expect("selected_pair", lambda p: p["agent"] == ia)
            await inb.expect("selected_pair", lambda p: p["agent"] == ib)
            ca, cb = await a.restart(ia), await b.restart(ib)
            assert len(ca.ufrag) >= 4 and len(ca.pwd) >= 22
            # Data keeps flowing on the old pair during the restart (RFC 8445 §9).
            await exchange_data(a, ia, ina, b, ib, inb)
            await a.set_remote(ia, cb.ufrag, cb.pwd, (await b.gather(ib)).candidates)
            await b.set_remote(ib, ca.ufrag, ca.pwd, (await a.gather(ia)).candidates)
            await ina.expect("selected_pair", lambda p: p["agent"] == ia)
            await inb.expect("selected_pair", lambda p: p["agent"] == ib)
            await ina.expect("state", state_is(ia, "connected"))
            await exchange_data(a, ia, ina, b, ib, inb)
            assert "role" not in a.diagnostics().split("ICE restart")[-1]  # roles kept (RFC 8445 §9)
        finally:
            await a.shutdown()
            await b.shutdown()

    run(main())


@pytest.mark.parametrize("reference_role", ["controlling", "controlled"])
def test_reference_interoperates_with_aioice(reference_role: str) -> None:
    async def main() -> None:
        ref, aio = ReferenceAdapter(), AioiceAdapter()
        other = "controlled" if reference_role == "controlling" else "controlling"
        try:
            await aio.initialize()
            ir, ia, inr, ina = await pair_up(
                ref,
                aio,
                AgentConfig(reference_role, ufrag=REF_UFRAG, pwd=REF_PWD),
                AgentConfig(other, ufrag=T_UFRAG, pwd=T_PWD),
            )
            pr = await inr.expect("selected_pair", lambda p: p["agent"] == ir)
            pa = await ina.expect("selected_pair", lambda p: p["agent"] == ia)
            assert host_port(pr.params["local"]) == host_port(pa.params["remote"])
            assert host_port(pr.params["remote"]) == host_port(pa.params["local"])
            await exchange_data(ref, ir, inr, aio, ia, ina)
        finally:
            await ref.shutdown()
            await aio.shutdown()

    run(main())


def test_reference_stdio_shim_initializes_and_gathers() -> None:
    async def main() -> None:
        shim = StdioAdapter(
            [sys.executable, "-m", "conformance.reference", "--fault", "no-fingerprint"],
            request_timeout=5.0,
            start_timeout=15.0,
        )
        try:
            info = await shim.initialize()
            assert info.name == "reference-peer"
            assert info.capabilities == CAPABILITIES
            agent = await shim.create_agent(AgentConfig("controlled", ufrag=REF_UFRAG, pwd=REF_PWD))
            desc = await shim.gather(agent)
            assert (desc.ufrag, desc.pwd) == (REF_UFRAG, REF_PWD)
            cand = parse_candidate(desc.candidates[0])
            assert cand.priority == (126 << 24) + (65535 << 8) + 255
            # The fault given on the command line is active: a valid check is answered without FINGERPRINT.
            tester = await Tester.open()
            try:
                await shim.set_remote(agent, T_UFRAG, T_PWD, [])
                tester.send(request(), (cand.address, cand.port))
                reply, _ = await tester.next()
                assert parse(reply).msg_class == 2 and parse(reply).attr("FINGERPRINT") is None
            finally:
                tester.close()
            with pytest.raises(RemoteError) as err:
                await shim.send(agent, 1, b"x")
            assert err.value.code == ErrorCode.INVALID_STATE
        finally:
            await shim.shutdown()

    run(main())


def test_reference_cli_lists_faults() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "conformance.reference", "--list-faults"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    for name in FAULTS:
        assert name in out.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "conformance.reference", "--fault", "nope"], capture_output=True, text=True, timeout=30
    )
    assert bad.returncode == 2 and "no-fingerprint" in bad.stderr


def test_reference_faults_name_catalog_requirements() -> None:
    catalog = load_catalog()
    for fault in FAULTS.values():
        assert fault.breaks and fault.description
        for req in fault.breaks:
            assert req in catalog, f"{fault.name}: {req}"


def test_reference_unknown_fault_raises_adapter_error() -> None:
    with pytest.raises(AdapterError, match=r"known faults: .*no-fingerprint"):
        ReferenceAdapter(["nope"])

    async def main() -> None:
        ad = ReferenceAdapter()
        with pytest.raises(AdapterError, match="known faults"):
            await ad.create_agent(AgentConfig("controlling", options={"faults": ["nope"]}))
        agent = await ad.create_agent(AgentConfig("controlling", options={"faults": ["no-fingerprint"]}))
        await ad.gather(agent)
        await ad.shutdown()

    run(main())


# --- faults seen on the wire: answers to the tester's checks -------------------------------------------------

VALID_FAULTS = [None, "no-fingerprint", "bad-fingerprint", "response-wrong-key", "response-with-username"]


@pytest.mark.parametrize("fault", VALID_FAULTS)
def test_reference_answer_to_valid_check(fault: str | None) -> None:
    reply, _ = run(probe((fault,) if fault else (), request()))
    assert reply is not None
    msg = parse(reply)
    assert msg.msg_class == 2
    xma = msg.attr("XOR-MAPPED-ADDRESS")
    assert xma is not None
    fp_problem = check_fingerprint(reply)
    own_key, peer_key = check_integrity(reply, REF_PWD.encode()), check_integrity(reply, T_PWD.encode())
    if fault is None:
        assert fp_problem is None and own_key is None and msg.attr("USERNAME") is None
        assert msg.attr("SOFTWARE") is not None
    elif fault == "no-fingerprint":
        assert fp_problem == "no FINGERPRINT attribute"
    elif fault == "bad-fingerprint":
        assert fp_problem is not None and fp_problem.startswith("FINGERPRINT is 0x")
    elif fault == "response-wrong-key":
        assert own_key is not None and peer_key is None
    elif fault == "response-with-username":
        assert msg.attr("USERNAME") is not None and own_key is None


@pytest.mark.parametrize("fault", [None, "asymmetric-response"])
def test_reference_answers_from_the_request_destination(fault: str | None) -> None:
    async def main() -> None:
        t, tester = await target((fault,) if fault else ()), await Tester.open()
        try:
            tester.send(request(), t.address)
            _, source = await tester.next()
            assert (source == t.address) is (fault is None)
        finally:
            tester.close()
            await t.adapter.shutdown()

    run(main())


@pytest.mark.parametrize("fault", [None, "error-with-integrity", "accept-bad-integrity"])
def test_reference_answer_to_bad_integrity(fault: str | None) -> None:
    reply, _ = run(probe((fault,) if fault else (), request(key="wrong-password-000000")))
    assert reply is not None
    msg = parse(reply)
    if fault == "accept-bad-integrity":
        assert msg.msg_class == 2
        return
    assert msg.msg_class == 3 and msg.error_code == 401
    assert msg.attr("USERNAME") is None
    assert (msg.attr("MESSAGE-INTEGRITY") is not None) is (fault == "error-with-integrity")


@pytest.mark.parametrize("fault", [None, "no-400-missing-mi"])
def test_reference_answer_to_missing_integrity(fault: str | None) -> None:
    reply, _ = run(probe((fault,) if fault else (), request(mi=False)))
    assert reply is not None
    msg = parse(reply)
    assert msg.msg_class == 3 and msg.attr("MESSAGE-INTEGRITY") is None
    assert msg.error_code == (401 if fault else 400)


def test_reference_answer_to_unknown_ufrag() -> None:
    reply, _ = run(probe((), request(username=b"nobody:TSTR")))
    assert reply is not None and parse(reply).error_code == 401


@pytest.mark.parametrize("fault", [None, "ignore-unknown-required"])
def test_reference_answer_to_unknown_required_attribute(fault: str | None) -> None:
    unknown = attr.StunAttribute(type=0x7F00, value=b"\x00\x01\x02\x03")
    reply, _ = run(probe((fault,) if fault else (), request(extra=(unknown,))))
    assert reply is not None
    msg = parse(reply)
    if fault:
        assert msg.msg_class == 2
        return
    assert msg.error_code == 420
    listed = msg.attr("UNKNOWN-ATTRIBUTES")
    assert listed is not None and list(listed.types) == [0x7F00]
    assert check_integrity(reply, REF_PWD.encode()) is None


@pytest.mark.parametrize("fault", [None, "reject-space-padding"])
def test_reference_ignores_padding_content(fault: str | None) -> None:
    # USERNAME "REFU:TSTR" is 9 bytes: 3 padding bytes, here spaces (RFC 8489 §14).
    reply, _ = run(probe((fault,) if fault else (), request(padding=b"   ")))
    assert (reply is None) is (fault is not None)


@pytest.mark.parametrize("fault", [None, "accept-bad-fingerprint"])
def test_reference_drops_bad_fingerprint(fault: str | None) -> None:
    reply, _ = run(probe((fault,) if fault else (), request(bad_crc=True)))
    assert (reply is None) is (fault is None)


@pytest.mark.parametrize("fault", [None, "answer-indication"])
def test_reference_ignores_indications(fault: str | None) -> None:
    indication = bytes(STUN(type=0x0011, attributes=[attr.Fingerprint()]))
    reply, _ = run(probe((fault,) if fault else (), indication))
    assert (reply is None) is (fault is None)


@pytest.mark.parametrize("fault", [None, "no-487"])
def test_reference_controlling_wins_role_conflict(fault: str | None) -> None:
    data = request(role=attr.IceControlling(tiebreaker=1))
    reply, _ = run(probe((fault,) if fault else (), data, role="controlling", tiebreaker=BIG_TIEBREAKER))
    assert reply is not None
    msg = parse(reply)
    if fault:
        assert msg.msg_class == 2
    else:
        assert msg.error_code == 487 and check_integrity(reply, REF_PWD.encode()) is None


@pytest.mark.parametrize("fault", [None, "no-role-switch"])
def test_reference_controlled_loses_role_conflict(fault: str | None) -> None:
    async def main() -> None:
        t, tester = await target((fault,) if fault else (), tiebreaker=BIG_TIEBREAKER), await Tester.open()
        try:
            tester.send(request(role=attr.IceControlled(tiebreaker=1)), t.address)
            reply, _ = await tester.next(lambda d: not is_request(d))
            assert parse(reply).msg_class == 2
            switched = "role controlled -> controlling" in t.adapter.diagnostics()
            assert switched is (fault is None)
        finally:
            tester.close()
            await t.adapter.shutdown()

    run(main())


# --- faults seen on the wire: the reference agent's own checks ------------------------------------------------


async def first_check(faults: tuple[str, ...], role: str = "controlling", **options: Any) -> tuple[STUN, bytes]:
    tester = await Tester.open()
    t = await target(faults, role=role, remote=[tester.candidate()], connect=True, **options)
    try:
        data, _ = await tester.next(is_request)
        return STUN(data), data
    finally:
        tester.close()
        await t.adapter.shutdown()


@pytest.mark.parametrize(
    "fault",
    [None, "swapped-username", "wrong-integrity-key", "priority-attr-host-pref", "bad-header-length", "no-fingerprint"],
)
def test_reference_check_contents(fault: str | None) -> None:
    msg, data = run(first_check((fault,) if fault else ()))
    username = msg.attr("USERNAME")
    prio = msg.attr("PRIORITY")
    assert username is not None and prio is not None
    assert msg.attr("ICE-CONTROLLING") is not None and msg.attr("ICE-CONTROLLED") is None
    assert msg.attr("USE-CANDIDATE") is None and msg.attr("SOFTWARE") is not None
    good_user = username.username == f"{T_UFRAG}:{REF_UFRAG}".encode()
    good_key = check_integrity(data, T_PWD.encode()) is None
    good_prio = decompose_priority(prio.priority) == (110, 65535, 1)
    good_length = struct.unpack_from("!H", data, 2)[0] == len(data) - 20
    good_fp = check_fingerprint(data) is None
    verdicts = {
        "swapped-username": good_user,
        "wrong-integrity-key": good_key,
        "priority-attr-host-pref": good_prio,
        "bad-header-length": good_length,
        "no-fingerprint": good_fp,
    }
    for name, ok in verdicts.items():
        if name == "wrong-integrity-key" and fault == "bad-header-length":
            continue  # the HMAC covers the adjusted length, not the header as sent
        assert ok is (fault != name), name
    if fault == "priority-attr-host-pref":
        assert decompose_priority(prio.priority)[0] == 126


@pytest.mark.parametrize("fault", [None, "controlled-nominates"])
def test_reference_controlled_checks_without_use_candidate(fault: str | None) -> None:
    msg, _ = run(first_check((fault,) if fault else (), role="controlled"))
    assert msg.attr("ICE-CONTROLLED") is not None
    assert (msg.attr("USE-CANDIDATE") is not None) is (fault is not None)


@pytest.mark.parametrize("fault", [None, "wrong-priority-formula", "duplicate-priorities", "type-pref-mismatch"])
def test_reference_candidate_priorities(fault: str | None) -> None:
    async def main() -> list[int]:
        t = await target((fault,) if fault else (), components=2)
        await t.adapter.shutdown()
        return [parse_candidate(c).priority for c in t.candidates]

    p1, p2 = run(main())
    parts = [decompose_priority(p1), decompose_priority(p2)]
    if fault is None:
        assert parts == [(126, 65535, 1), (126, 65535, 2)]
    elif fault == "wrong-priority-formula":
        assert parts[0][1] == 1 and p1 & 0xFF == 1
    elif fault == "duplicate-priorities":
        assert p1 == p2
    else:
        assert parts[0][0] != parts[1][0]


@pytest.mark.parametrize("fault", [None, "fast-retransmit"])
def test_reference_retransmission_interval(fault: str | None) -> None:
    async def main() -> float:
        tester = await Tester.open()
        t = await target((fault,) if fault else (), role="controlling", remote=[tester.candidate()], connect=True)
        try:
            loop = asyncio.get_running_loop()
            first, _ = await tester.next(is_request)
            t0 = loop.time()
            await tester.next(lambda d: is_request(d) and d[8:20] == first[8:20])
            return loop.time() - t0
        finally:
            tester.close()
            await t.adapter.shutdown()

    gap = run(main())
    assert (gap >= 0.45) is (fault is None), gap


@pytest.mark.parametrize("fault", [None, "constant-txid"])
def test_reference_transaction_ids(fault: str | None) -> None:
    async def main() -> set[bytes]:
        t1, t2 = await Tester.open(), await Tester.open()
        t = await target(
            (fault,) if fault else (), role="controlling", remote=[t1.candidate(), t2.candidate(2000)], connect=True
        )
        try:
            a, _ = await t1.next(is_request)
            b, _ = await t2.next(is_request)
            return {a[8:20], b[8:20]}
        finally:
            t1.close()
            t2.close()
            await t.adapter.shutdown()

    assert len(run(main())) == (1 if fault else 2)


async def answered_peer(
    faults: tuple[str, ...],
    *,
    role: str = "controlling",
    until: Callable[[STUN], bool],
    answer_with: Callable[[STUN, bytes, tuple[str, int]], bytes | None] | None = None,
    window: float = 1.5,
    **options: Any,
) -> list[STUN]:
    """The tester answers the agent's checks (success by default); the requests seen until ``until`` or silence."""
    tester = await Tester.open()
    t = await target(faults, role=role, remote=[tester.candidate()], connect=True, **options)
    seen: list[STUN] = []
    try:
        while True:
            try:
                data, src = await tester.next(is_request, deadline=window)
            except TimeoutError:
                return seen
            msg = STUN(data)
            seen.append(msg)
            if until(msg):
                return seen
            reply = answer_with(msg, data, src) if answer_with else answer(data, src)
            if reply is not None:
                tester.send(reply, src)
    finally:
        tester.close()
        await t.adapter.shutdown()


@pytest.mark.parametrize("fault", [None, "no-nomination"])
def test_reference_controlling_nominates(fault: str | None) -> None:
    seen = run(answered_peer((fault,) if fault else (), until=lambda m: m.attr("USE-CANDIDATE") is not None))
    nominated = any(m.attr("USE-CANDIDATE") is not None for m in seen)
    assert nominated is (fault is None)


@pytest.mark.parametrize("fault", [None, "accept-unauthenticated-response"])
def test_reference_discards_unauthenticated_responses(fault: str | None) -> None:
    def unauthenticated(msg: STUN, data: bytes, src: tuple[str, int]) -> bytes:
        return answer(data, src, mi=False)

    seen = run(
        answered_peer(
            (fault,) if fault else (),
            until=lambda m: m.attr("USE-CANDIDATE") is not None,
            answer_with=unauthenticated,
            window=0.8,
        )
    )
    if fault:
        assert seen[-1].attr("USE-CANDIDATE") is not None
    else:
        # The unauthenticated success was discarded: the same transaction is retransmitted (STUN-AUTH-04).
        assert len(seen) >= 2 and bytes(seen[0].transaction_id) == bytes(seen[1].transaction_id)
        assert all(m.attr("USE-CANDIDATE") is None for m in seen)


@pytest.mark.parametrize("fault", [None, "ignore-487", "keep-tiebreaker"])
def test_reference_reacts_to_487(fault: str | None) -> None:
    def role_conflict(msg: STUN, data: bytes, src: tuple[str, int]) -> bytes:
        return answer(data, src, code=487)

    seen = run(
        answered_peer(
            (fault,) if fault else (),
            until=lambda m: m.attr("ICE-CONTROLLED") is not None,
            answer_with=role_conflict,
            window=0.8,
        )
    )
    first = seen[0].attr("ICE-CONTROLLING")
    assert first is not None
    if fault == "ignore-487":
        assert all(m.attr("ICE-CONTROLLED") is None for m in seen)
        return
    again = seen[-1].attr("ICE-CONTROLLED")
    assert again is not None, "no re-check after the 487"
    assert (again.tiebreaker == first.tiebreaker) is (fault == "keep-tiebreaker")


@pytest.mark.parametrize("fault", [None, "no-triggered-check"])
def test_reference_triggered_check_towards_prflx(fault: str | None) -> None:
    async def main() -> bool:
        t, tester = await target((fault,) if fault else (), trickle=True, connect=True), await Tester.open()
        try:
            tester.send(request(), t.address)
            reply, _ = await tester.next(lambda d: not is_request(d))
            assert parse(reply).msg_class == 2
            return not await tester.silent(is_request, window=0.5)
        finally:
            tester.close()
            await t.adapter.shutdown()

    assert run(main()) is (fault is None)


@pytest.mark.parametrize("fault", [None, "data-before-consent"])
def test_reference_no_data_before_a_valid_pair(fault: str | None) -> None:
    async def main() -> None:
        tester = await Tester.open()
        t = await target((fault,) if fault else (), remote=[tester.candidate()])
        try:
            if fault:
                await t.adapter.send(t.agent, 1, b"early")
                data, _ = await tester.next()
                assert data == b"early"
            else:
                with pytest.raises(RemoteError) as err:
                    await t.adapter.send(t.agent, 1, b"early")
                assert err.value.code == ErrorCode.INVALID_STATE
                assert await tester.silent(window=0.2)
        finally:
            tester.close()
            await t.adapter.shutdown()

    run(main())


def _after_selection(faults: tuple[str, ...], **options: Any) -> Any:
    """A controlling agent, nominated by the tester, then the consent checks that follow (scaled timers)."""
    selected: dict[str, int] = {"nominated": 0}

    def until(msg: STUN) -> bool:
        if msg.attr("USE-CANDIDATE") is not None:
            selected["nominated"] += 1
            return False
        return selected["nominated"] > 0  # the first check after the nomination is a consent check

    return answered_peer(faults, until=until, window=1.0, consent_interval=0.2, **options)


@pytest.mark.parametrize("fault", [None, "no-consent"])
def test_reference_consent_checks_follow_selection(fault: str | None) -> None:
    seen = run(_after_selection((fault,) if fault else ()))
    assert any(m.attr("USE-CANDIDATE") is not None for m in seen)
    consent = seen[-1].attr("USE-CANDIDATE") is None and len(seen) >= 3
    assert consent is (fault is None)


@pytest.mark.parametrize("fault", [None, "consent-no-expiry", "ignore-403"])
def test_reference_stops_sending_without_consent(fault: str | None) -> None:
    """Consent expires after the (scaled) timeout, or is revoked at once by a 403 (RFC 7675 §5.1, §5.2)."""

    async def main() -> None:
        tester = await Tester.open()
        t = await target(
            (fault,) if fault else (),
            role="controlling",
            remote=[tester.candidate()],
            connect=True,
            consent_interval=0.1,
            consent_timeout=0.6,
        )
        loop = asyncio.get_running_loop()
        try:
            nominated = False
            while not nominated:  # answer checks until the nomination succeeded
                data, src = await tester.next(is_request)
                nominated = STUN(data).attr("USE-CANDIDATE") is not None
                tester.send(answer(data, src), src)
            await t.inbox.expect("state", state_is(t.agent, "connected"))
            last_answer = loop.time()
            if fault == "ignore-403":
                data, src = await tester.next(is_request)
                tester.send(answer(data, src, code=403), src)
                # The next consent check proves the 403 was processed; data still flows.
                await tester.next(is_request)
                await t.adapter.send(t.agent, 1, b"still")
                assert (await tester.next(lambda d: not is_request(d)))[0] == b"still"
                return
            # Consent checks go unanswered from here on.
            if fault == "consent-no-expiry":
                # The agent's own consent checks, still coming, mark the time past the timeout.
                while loop.time() - last_answer < 0.9:
                    await tester.next(is_request)
                await t.adapter.send(t.agent, 1, b"late")
                assert (await tester.next(lambda d: not is_request(d)))[0] == b"late"
            else:
                await t.inbox.expect("state", state_is(t.agent, "failed"))
                assert loop.time() - last_answer >= 0.6
                with pytest.raises(RemoteError, match="consent lost"):
                    await t.adapter.send(t.agent, 1, b"late")
                tester.drain()
                assert await tester.silent(is_request, window=0.3)  # no consent checks after the loss
        finally:
            tester.close()
            await t.adapter.shutdown()

    run(main())


def test_reference_403_revokes_consent_at_once() -> None:
    async def main() -> None:
        tester = await Tester.open()
        t = await target((), role="controlling", remote=[tester.candidate()], connect=True, consent_interval=0.1)
        try:
            nominated = False
            while not nominated:
                data, src = await tester.next(is_request)
                nominated = STUN(data).attr("USE-CANDIDATE") is not None
                tester.send(answer(data, src), src)
            await t.inbox.expect("state", state_is(t.agent, "connected"))
            data, src = await tester.next(is_request)
            tester.send(answer(data, src, code=403), src)
            async with asyncio.timeout(2.0):
                while True:
                    try:
                        await t.adapter.send(t.agent, 1, b"x")
                    except RemoteError as exc:
                        assert "consent" in str(exc)
                        return
                    await tester.next(lambda d: not is_request(d))
        finally:
            tester.close()
            await t.adapter.shutdown()

    run(main())


@pytest.mark.parametrize("fault", [None, "nominate-twice"])
def test_reference_nominates_one_pair_per_component(fault: str | None) -> None:
    async def main() -> list[int]:
        t1, t2 = await Tester.open(), await Tester.open()
        t = await target(
            (fault,) if fault else (), role="controlling", remote=[t1.candidate(2000), t2.candidate(1000)], connect=True
        )
        nominations = [0, 0]
        second_nominated = asyncio.Event()

        async def answer_all(i: int, tester: Tester) -> None:
            while True:
                data, src = await tester.next(is_request, deadline=10.0)
                if STUN(data).attr("USE-CANDIDATE") is not None:
                    nominations[i] += 1
                    if i == 1:
                        second_nominated.set()
                tester.send(answer(data, src), src)

        tasks = [asyncio.create_task(answer_all(i, x)) for i, x in enumerate((t1, t2))]
        try:
            await t.inbox.expect("state", state_is(t.agent, "connected"))
            with contextlib.suppress(TimeoutError):  # a second nomination would follow within a few Ta
                await asyncio.wait_for(second_nominated.wait(), 2.0 if fault else 0.4)
            return nominations
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            t1.close()
            t2.close()
            await t.adapter.shutdown()

    first, second = run(main())
    assert first >= 1
    assert (second >= 1) is (fault is not None)


@pytest.mark.parametrize("fault", [None, "accept-asymmetric"])
def test_reference_fails_pair_on_asymmetric_response(fault: str | None) -> None:
    async def main() -> None:
        peer, elsewhere = await Tester.open(), await Tester.open()
        t = await target((fault,) if fault else (), role="controlling", remote=[peer.candidate()], connect=True)
        try:
            data, src = await peer.next(is_request)
            elsewhere.send(answer(data, src), src)  # the success comes from another port
            if fault:
                nominating, _ = await peer.next(lambda d: is_request(d) and STUN(d).attr("USE-CANDIDATE") is not None)
                assert nominating
            else:
                await t.inbox.expect("state", state_is(t.agent, "failed"))
        finally:
            peer.close()
            elsewhere.close()
            await t.adapter.shutdown()

    run(main())
