"""TURN client: permissions, channels and data through the relay, with ICE running over it (RFC 8656 §9-§12,
RFC 8445 §7.2.1, §12.1)."""

from __future__ import annotations

import struct

import pytest

from conformance.adapters.base import Notification, Unsupported
from conformance.packets import CHANNEL_BIND, INDICATION, REFRESH, REQUEST, SEND
from conformance.protocol.keys import long_term_key
from conformance.tester.endpoint import Address, Received
from conformance.tester.harness import Harness
from conformance.tester.ice import IcePeer, IceSession
from conformance.tester.relay_agent import relay_session, wait_selected
from conformance.tester.turn_client import CLIENT_REALM, USERS, xor_address
from conformance.tester.turn_server import TurnServer
from conformance.tester.turn_steps import payload, scripted_turn_server
from conformance.verdict import HarnessError, UnsupportedFeature

PROMPT = 3.0
SILENCE = 3.0
MD5_KEY = long_term_key("alice", CLIENT_REALM, USERS["alice"])


def _is_channel_data(r: Received) -> bool:
    return len(r.data) >= 4 and 0x40 <= r.data[0] <= 0x7F


def _is_send(r: Received) -> bool:
    return r.is_type(SEND, INDICATION)


def _is_check(data: bytes) -> bool:
    return len(data) >= 20 and data[:2] == b"\x00\x01"


async def _connected(h: Harness, server: TurnServer, **kw: object) -> tuple[IceSession, IcePeer, Address]:
    """ICE through the scripted relay, completed (ERROR when it does not complete): session, peer, IUT client."""
    session, peer = await relay_session(h, server, **kw)  # type: ignore[arg-type]
    if not await wait_selected(h, session):
        raise HarnessError("precondition: ICE through the relay did not complete within 15 s")
    if not server.allocations:
        raise HarnessError("precondition: the IUT holds no allocation on the scripted server")
    return session, peer, next(iter(server.allocations))


def _channel_peer(server: TurnServer, client: Address, r: Received) -> Address | None:
    """The peer a ChannelData from ``client`` goes to, from the ChannelBind requests the client sent."""
    number = struct.unpack_from("!H", r.data)[0]
    peer: Address | None = None
    for req in server.requests_of(CHANNEL_BIND):
        if req.src == client and req.time <= r.time and req.index is not None:
            raw = req.value("CHANNEL-NUMBER")
            if raw is not None and struct.unpack_from("!H", raw)[0] == number:
                peer = xor_address(req, "XOR-PEER-ADDRESS")
    return peer


def _destinations(server: TurnServer, client: Address) -> list[tuple[Received, str | None]]:
    """Every Send indication and ChannelData the client sent, with the peer IP it goes to (None: unknown)."""
    out: list[tuple[Received, str | None]] = []
    for r in server.endpoint.history:
        if r.src != client:
            continue
        if _is_send(r):
            peer = xor_address(r, "XOR-PEER-ADDRESS")
            out.append((r, peer[0] if peer else None))
        elif _is_channel_data(r):
            peer = _channel_peer(server, client, r)
            out.append((r, peer[0] if peer else None))
    return out


def _permitted_before(server: TurnServer, client: Address, ip: str | None, when: float) -> list[str]:
    """How permissions for ``ip`` had been installed for ``client`` before ``when`` (within 300 s)."""
    return [how for t, c, p, how in server.installed if c == client and p == ip and when - 300 < t <= when]


def _inner(r: Received) -> bytes:
    """The application data a Send indication or ChannelData carries."""
    if _is_channel_data(r):
        length = struct.unpack_from("!H", r.data, 2)[0]
        return r.data[4 : 4 + length]
    value = r.value("DATA") if r.index is not None else None
    return value or b""


@pytest.mark.requirement("TURN-PERM-05")
@pytest.mark.needs("turn_client")
@pytest.mark.selftest(fault="channel-length-lies", requirement="TURN-CHAN-06")
@pytest.mark.selftest(fault="data-before-permission")
@pytest.mark.selftest(fault="send-without-data", requirement="TURN-DATA-01")
async def test_no_data_to_a_peer_before_a_permission(harness: Harness) -> None:
    """TURN-PERM-05 (RFC 8656 §11.1): every Send indication or ChannelData to a peer IP follows a successful
    CreatePermission or ChannelBind covering that IP."""
    server = await scripted_turn_server(harness)
    session, _, client = await _connected(harness, server)
    data, asked = payload("perm-05"), server.endpoint.now()
    await harness.iut.send(session.agent, 1, data)
    # The payload relayed (in a Send indication or ChannelData) is the evidence; half a second at most.
    await harness.wait(lambda r: r.src == client and _inner(r) == data, 0.5, asked, [server.endpoint])
    sent = _destinations(server, client)
    if not sent:
        raise HarnessError("the IUT sent nothing through the relay")
    for r, ip in sent:
        harness.findings.check(
            bool(_permitted_before(server, client, ip, r.time)),
            "TURN-PERM-05",
            f"data to peer {ip} with no permission installed before it: {r.describe()}",
        )


@pytest.mark.requirement("ICE-CHK-08")
@pytest.mark.needs("turn_client")
@pytest.mark.selftest(fault="channel-before-ice", verdict="NON-STRICT")
@pytest.mark.selftest(fault="check-before-permission")
async def test_permission_precedes_checks_from_the_relayed_candidate(harness: Harness) -> None:
    """ICE-CHK-08 (RFC 8445 §7.2.1): the agent installs a permission for the remote IP before its first check
    through the relay; CreatePermission (not ChannelBind) is RECOMMENDED until ICE completes."""
    server = await scripted_turn_server(harness)
    _, peer = await relay_session(harness, server)

    def relayed_check(r: Received) -> bool:  # a check the IUT sent directly (not via the relay) does not count
        return _is_check(r.data) and r.src in {a.relay.address for a in server.allocations.values()}

    check = await peer.endpoint.expect(
        relayed_check,
        15,
        what="connectivity check relayed from the IUT's relayed candidate",
    )
    client = next(iter(server.allocations))
    carriers = [(r, ip) for r, ip in _destinations(server, client) if _is_check(_inner(r))]
    first, ip = carriers[0] if carriers else (check, peer.endpoint.address[0])
    how = _permitted_before(server, client, ip, first.time)
    harness.findings.check(
        bool(how),
        "ICE-CHK-08",
        f"the first check towards {ip} went through the relay before any permission for it: {first.describe()}",
        "permission_first",
    )
    dropped = [r for r, _ in server.dropped if r.src == client and _is_check(_inner(r))]
    harness.findings.check(
        not dropped,
        "ICE-CHK-08",
        f"a check was sent through the relay without a permission: {dropped[0].describe() if dropped else ''}",
        "permission_first",
    )
    harness.findings.check(
        "CreatePermission" in how,
        "ICE-CHK-08",
        f"the permission for {ip} before the checks came from {', '.join(how)}, not CreatePermission",
        "create_permission",
    )


@pytest.mark.requirement("TURN-CHAN-06")
@pytest.mark.needs("turn_client")
@pytest.mark.selftest(fault="channel-length-padded")
@pytest.mark.selftest(fault="channel-out-of-range")
async def test_channel_data_length_counts_only_the_data(harness: Harness) -> None:
    """TURN-CHAN-06 (RFC 8656 §12.4, §12.5): the IUT's ChannelData carries channel 0x4000-0x4FFF and a Length
    equal to the application data; UDP padding is optional and not counted."""
    server = await scripted_turn_server(harness)
    session, peer, client = await _connected(harness, server)
    data = payload("chan-06-odd")[:13]
    since = server.endpoint.now()
    await harness.iut.send(session.agent, 1, data)
    got = await peer.endpoint.expect(lambda r: r.data.startswith(data), PROMPT, what="the application data")
    carrier = server.endpoint.find(lambda r: r.src == client and data in r.data, since)
    channel = [r for r in carrier if _is_channel_data(r)]
    if not channel:
        harness.findings.info("the IUT sent the data in a Send indication: no ChannelData to check")
        return
    r = channel[0]
    number, length = struct.unpack_from("!HH", r.data)
    harness.findings.check(
        0x4000 <= number <= 0x4FFF,
        "TURN-CHAN-06",
        f"ChannelData on channel 0x{number:04x}: {r.data[:8].hex()}",
        "format",
    )
    harness.findings.check(
        length == len(data) and len(r.data) - 4 - length < 4,
        "TURN-CHAN-06",
        f"ChannelData Length {length} for {len(data)} bytes of data (datagram {len(r.data)} bytes); the peer got "
        f"{len(got.data)} bytes",
        "format",
    )


@pytest.mark.requirement("TURN-CHAN-08")
@pytest.mark.needs("turn_client")
@pytest.mark.selftest(fault="no-restart-after-400", verdict="NON-STRICT")
async def test_400_to_channel_bind_restarts_the_allocation(harness: Harness) -> None:
    """TURN-CHAN-08 (RFC 8656 §12.3): after an unexpected 400 to ChannelBind the client should delete the
    allocation and start afresh with a new one."""
    server = await scripted_turn_server(harness)
    rule = server.script(
        lambda r: r.is_type(CHANNEL_BIND, REQUEST) and r.index is not None and r.has("MESSAGE-INTEGRITY"),
        lambda r: server.error(r, 400, key=MD5_KEY),
    )
    await relay_session(harness, server)
    if await server.endpoint.expect_silence(lambda r: r.is_type(CHANNEL_BIND, REQUEST), 15) is None:
        raise UnsupportedFeature(  # the stimulus cannot be delivered; TURN-CHAN-10 judges channel binding
            "the IUT sent no ChannelBind within 15 s, so its handling of a 400 to ChannelBind cannot be observed"
        )
    hit = rule.hits[0]

    def deletes(r: Received) -> bool:
        raw = r.value("LIFETIME") if r.index is not None else None
        return r.is_type(REFRESH, REQUEST) and raw == b"\x00\x00\x00\x00"

    await server.endpoint.expect(
        deletes,
        PROMPT + 2,
        since=hit.time,
        what="Refresh LIFETIME=0 after the 400 to ChannelBind",
        findings=harness.findings,
        requirement="TURN-CHAN-08",
    )
    await server.endpoint.expect(
        lambda r: r.is_type(0x003, REQUEST),
        PROMPT + 2,
        since=hit.time,
        what="new Allocate after the 400 to ChannelBind",
        findings=harness.findings,
        requirement="TURN-CHAN-08",
    )


@pytest.mark.requirement("TURN-CHAN-09")
@pytest.mark.needs("turn_client")
@pytest.mark.parametrize("first_byte", [0x50, 0xF0], ids=["0x50", "0xf0"])
@pytest.mark.selftest(fault="deliver-reserved")
async def test_reserved_first_bytes_are_dropped(harness: Harness, first_byte: int) -> None:
    """TURN-CHAN-09 (RFC 8656 §12, Table 3): a datagram from the server whose first byte is reserved is dropped,
    not delivered; a valid one afterwards still is."""
    server = await scripted_turn_server(harness)
    session, peer, client = await _connected(harness, server)
    await _observable_delivery(harness, session)
    bogus = bytes([first_byte]) + payload("reserved")[1:]
    server.endpoint.send(bogus, client, "reserved first byte")
    good = payload("after-reserved")
    assert server.allocations
    peer.endpoint.send(good, server.allocations[client].relay.address, "valid peer data")
    arrived = await _data(harness, session, good, PROMPT)
    if arrived is None:
        raise HarnessError("sanity: valid peer data through the relay was not delivered after the reserved datagram")
    delivered = [n for n in harness.log.of("data") if _mine(n, session) and n.payload() == bogus]
    harness.findings.check(
        not delivered, "TURN-CHAN-09", f"a datagram starting 0x{first_byte:02x} was delivered: {bogus[:12].hex()}"
    )


def _mine(n: Notification, session: IceSession) -> bool:
    return str(n.params.get("agent")) == session.agent


async def _observable_delivery(h: Harness, session: IceSession) -> None:
    """UNSUPPORTED unless the adapter has ICE-level data: one that answers ``send`` with -32601 emits no ``data``
    notification either (docs/adapter-contract.md, send), so delivery to the application cannot be observed."""
    try:
        await h.iut.send(session.agent, 1, payload("probe"))
    except Unsupported:
        raise UnsupportedFeature(
            f"{h.info.name} exposes no ICE-level data (its send answers -32601), so delivery to the application "
            "is not observable"
        ) from None


async def _data(h: Harness, session: IceSession, data: bytes, timeout: float) -> Notification | None:
    return await h.log.wait("data", lambda n: _mine(n, session) and n.payload() == data, timeout)


@pytest.mark.requirement("TURN-CHAN-10")
@pytest.mark.needs("turn_client")
@pytest.mark.selftest(fault="no-channel", verdict="NON-STRICT")
async def test_channel_is_bound_to_the_selected_remote(harness: Harness) -> None:
    """TURN-CHAN-10 (RFC 8445 §12.1): with a relayed local candidate the agent should bind a channel to the
    selected remote candidate once ICE completes."""
    server = await scripted_turn_server(harness)
    _, peer, client = await _connected(harness, server)
    remote = peer.endpoint.address

    def binds_remote(r: Received) -> bool:
        return r.is_type(CHANNEL_BIND, REQUEST) and r.src == client and xor_address(r, "XOR-PEER-ADDRESS") == remote

    if not server.endpoint.find(binds_remote):
        await server.endpoint.expect(
            binds_remote,
            PROMPT + 2,
            what=f"ChannelBind to the selected remote {remote[0]}:{remote[1]}",
            findings=harness.findings,
            requirement="TURN-CHAN-10",
        )


@pytest.mark.requirement("TURN-DATA-04")
@pytest.mark.needs("turn_client")
@pytest.mark.selftest(fault="reject-data-indication")
async def test_data_indication_without_integrity_is_accepted(harness: Harness) -> None:
    """TURN-DATA-04 (RFC 8656 §5, §11.4): indications are never authenticated; a Data indication without
    MESSAGE-INTEGRITY from a permitted peer is delivered."""
    server = await scripted_turn_server(harness)
    session, peer, client = await _connected(harness, server)
    await _observable_delivery(harness, session)
    data = payload("data-04")
    server.data_indication(client, peer.endpoint.address, data)
    got = await _data(harness, session, data, PROMPT)
    harness.findings.check(
        got is not None, "TURN-DATA-04", f"a Data indication (no MESSAGE-INTEGRITY) carrying {data!r} was not delivered"
    )


@pytest.mark.requirement("TURN-DATA-05")
@pytest.mark.needs("turn_client")
@pytest.mark.parametrize("variant", ["no-peer-address", "no-data", "unpermitted-peer"])
@pytest.mark.selftest(fault="deliver-malformed-data", params=["no-peer-address", "no-data"])
@pytest.mark.selftest(fault="accept-unpermitted-data", verdict="NON-STRICT", params="unpermitted-peer")
async def test_malformed_or_unpermitted_data_indications_are_discarded(harness: Harness, variant: str) -> None:
    """TURN-DATA-05 (RFC 8656 §11.4): a Data indication without XOR-PEER-ADDRESS, or with neither DATA nor ICMP,
    is discarded; one from a peer without a permission should be."""
    server = await scripted_turn_server(harness)
    session, peer, client = await _connected(harness, server)
    await _observable_delivery(harness, session)
    data = payload(variant)
    if variant == "no-peer-address":
        server.data_indication(client, None, data)
    elif variant == "no-data":
        server.data_indication(client, peer.endpoint.address, None)
    else:
        server.data_indication(client, ("127.0.0.9", 40000), data)
    good = payload("sanity")
    server.data_indication(client, peer.endpoint.address, good)
    if await _data(harness, session, good, PROMPT) is None:
        raise HarnessError("sanity: a valid Data indication after the bad one was not delivered")
    wanted = b"" if variant == "no-data" else data
    delivered = [n for n in harness.log.of("data") if _mine(n, session) and n.payload() == wanted]
    harness.findings.check(
        not delivered,
        "TURN-DATA-05",
        f"a Data indication ({variant}) was delivered to the application",
        "permission_check" if variant == "unpermitted-peer" else "required_attrs",
    )
