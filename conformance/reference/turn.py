"""The reference TURN IUT for self-tests: a correct TURN server and TURN client with switchable faults (RFC 8656).

Theory of operation: the server side is the harness's own :class:`~conformance.tester.turn_server.TurnServer` as
:class:`~conformance.reference.turn_server_faults.FaultyTurnServer` on a private capture, started by ``start_server``
with the server faults of the adapter (and of ``options["faults"]``). The client side is a small relay-only ICE agent
(``create_agent`` with ``turn_servers``): ``gather`` allocates on the first TURN server and offers the relayed
candidate; ``connect`` binds a channel (or creates a permission) towards each remote candidate and sends one
nominating connectivity check through the relay (RFC 8445 §7.2.2); it refreshes the allocation before expiry
(RFC 8656 §8) and deletes it on ``close``. Each fault breaks exactly one requirement, so a self-test can
show that the matching case fails. Never an IUT claim: it exists to test the harness.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import logging
import secrets
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from conformance import __version__
from conformance.adapters.base import (
    AdapterError,
    AgentConfig,
    Credentials,
    IutInfo,
    LocalDescription,
    Notification,
    Unsupported,
)
from conformance.packets import (
    ALLOCATE,
    BINDING,
    CHANNEL_BIND,
    CREATE_PERMISSION,
    INDICATION,
    REFRESH,
    REQUEST,
    SEND,
    STUN,
    SUCCESS,
    ChannelData,
    attr,
    check_integrity,
    message_type,
)
from conformance.protocol.keys import (
    PasswordAlgorithm,
    SecurityFeature,
    long_term_key,
    parse_nonce_features,
    short_term_key,
    userhash,
)
from conformance.reference.faults import TURN_CLIENT_FAULTS, TURN_SERVER_FAULTS
from conformance.reference.turn_server_faults import FaultyTurnServer
from conformance.tester.capture import Capture
from conformance.tester.endpoint import Address, Endpoint, Received
from conformance.tester.turn_client import split_address, xor_address
from conformance.tester.turn_server import TurnServer

__all__ = ["CLIENT_FAULTS", "NAME", "SERVER_FAULTS", "ReferenceTurnAdapter", "check_turn_faults"]

logger = logging.getLogger(__name__)

NAME = "reference-turn"

#: The faults of each side (conformance/reference/faults.py), by name.
SERVER_FAULTS = TURN_SERVER_FAULTS
CLIENT_FAULTS = TURN_CLIENT_FAULTS


def check_turn_faults(names: Iterable[str]) -> frozenset[str]:
    """The fault names, validated against both catalogues."""
    names = frozenset(names)
    unknown = sorted(names - SERVER_FAULTS.keys() - CLIENT_FAULTS.keys())
    if unknown:
        raise AdapterError(f"unknown reference-turn faults: {', '.join(unknown)}")
    return names


# ---------------------------------------------------------------------------------------------------------------
# The client side: a relay-only ICE agent
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class _Agent:
    id: str
    config: AgentConfig
    faults: frozenset[str]
    endpoint: Endpoint
    server: Address
    username: str
    password: str
    ufrag: str = field(default_factory=lambda: secrets.token_hex(4))
    pwd: str = field(default_factory=lambda: secrets.token_hex(12))
    realm: bytes | None = None
    nonce: bytes | None = None
    algorithm: PasswordAlgorithm = PasswordAlgorithm.MD5
    algorithms_echo: bytes | None = None
    anonymous: bool = False
    relayed: Address | None = None
    mapped: Address | None = None
    remote: list[Address] = field(default_factory=list)
    #: Candidate lines: the remote ones by address (from set_remote) and the relayed one (from gather).
    lines: dict[Address, str] = field(default_factory=dict)
    remote_ufrag: str = ""
    remote_pwd: str = ""
    channels: dict[Address, int] = field(default_factory=dict)
    permitted: set[str] = field(default_factory=set)
    selected: Address | None = None
    dead: bool = False
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    algorithms_packet: Any = None
    pending_check: bytes = b""
    check_future: asyncio.Future[bool] | None = None


class _NoResources(Exception):
    """An Allocate refused for lack of resources (486, 508; RFC 8656 §7.4)."""

    def __init__(self, code: int) -> None:
        super().__init__(f"Allocate refused with {code}")
        self.code = code


class _Failed(Exception):
    """A TURN transaction ended in an error the client gives up on."""

    def __init__(self, rec: Received | None) -> None:
        super().__init__(rec.describe() if rec is not None else "no response")
        self.rec = rec


class ReferenceTurnAdapter:
    """The reference TURN server and client behind the Adapter Protocol."""

    def __init__(self, faults: Iterable[str] = ()) -> None:
        self.faults = check_turn_faults(faults)
        self.notifications: asyncio.Queue[Notification] = asyncio.Queue()
        self._servers: dict[str, TurnServer] = {}
        self._agents: dict[str, _Agent] = {}
        self._ids = itertools.count(1)
        self._capture = Capture()

    async def initialize(self) -> IutInfo:
        caps = frozenset({"turn_server", "stun_server", "turn_client", "controlling"})  # no ipv6: TURN-ALLOC-10
        return IutInfo(name=NAME, version=__version__, capabilities=caps)

    # -- server --------------------------------------------------------------------------------------------

    async def start_server(
        self,
        kind: str,
        listen: str,
        realm: str | None = None,
        users: dict[str, str] | None = None,
        options: dict[str, Any] | None = None,
    ) -> tuple[str, str]:
        """A reference TURN server on ``listen``, with the adapter's and ``options["faults"]``'s faults."""
        opts = dict(options or {})
        faults = self.faults | check_turn_faults(opts.pop("faults", []))
        host, port = split_address(listen if ":" in listen else f"{listen}:0")
        server = await FaultyTurnServer.open(
            Capture(),
            host or "127.0.0.1",
            port,
            realm=realm or "iut.test",
            users=dict(users or {}),
            max_lifetime=int(opts.get("max_allocation_lifetime", 3600)),
            permission_lifetime=float(opts.get("permission_lifetime", 300)),
            channel_lifetime=float(opts.get("channel_lifetime", 600)),
            nonce_lifetime=float(opts["stale_nonce"]) if "stale_nonce" in opts else None,
            user_quota=int(opts["user_quota"]) if "user_quota" in opts else None,
            faults=faults & SERVER_FAULTS.keys(),
        )
        if "max_allocation_lifetime" in opts:
            server.default_lifetime = min(server.default_lifetime, server.max_lifetime)
        if "default_allocation_lifetime" in opts:
            server.default_lifetime = int(opts["default_allocation_lifetime"])
        address = f"{server.address[0]}:{server.address[1]}"
        self._servers[address] = server
        return address, address

    async def stop_server(self, server: str) -> None:
        s = self._servers.pop(server, None)
        if s is None:
            raise AdapterError(f"no server {server!r}")
        s.close()

    # -- client --------------------------------------------------------------------------------------------

    async def create_agent(self, config: AgentConfig) -> str:
        if not config.turn_servers:
            raise Unsupported("the reference TURN client is relay-only: give it a TURN server")
        turn = config.turn_servers[0]
        server = split_address(turn.uri.split(":", 1)[1].split("?", 1)[0])
        faults = self.faults | check_turn_faults(config.options.get("faults", []))
        ep = await Endpoint.open(self._capture, "127.0.0.1", 0, "reference TURN client")
        agent = _Agent(f"t{next(self._ids)}", config, faults, ep, server, turn.username, turn.password)
        ep.on_datagram(lambda r: self._incoming(agent, r))
        self._agents[agent.id] = agent
        return agent.id

    def _agent(self, agent: str) -> _Agent:
        try:
            return self._agents[agent]
        except KeyError:
            raise AdapterError(f"no agent {agent!r}") from None

    def _key(self, a: _Agent) -> bytes:
        if not a.realm:
            return bytes(16)
        return long_term_key(a.username, a.realm.decode("utf-8", "replace"), a.password, a.algorithm)

    def _build(self, a: _Agent, method: int, attrs: list[Any], *, auth: bool = True) -> STUN:
        out = list(attrs)
        if method in (ALLOCATE, REFRESH) and "no-software" not in a.faults:
            out.append(attr.Software(software=b"reference-turn"))
        sha256 = a.algorithm is PasswordAlgorithm.SHA256
        if a.nonce is None and "credentials-first" in a.faults:
            out.append(attr.Username(username=a.username.encode()))
        if auth and a.nonce is not None:
            if a.anonymous and "no-userhash" not in a.faults:
                out.append(attr.Userhash(userhash=userhash(a.username, (a.realm or b"").decode())))
            else:
                out.append(attr.Username(username=a.username.encode()))
            out += [attr.Realm(realm=a.realm or b""), attr.Nonce(nonce=a.nonce)]
            if a.algorithms_echo is not None:
                out.append(attr.PasswordAlgorithm(algorithm=int(a.algorithm)))
                out.append(a.algorithms_packet)
            out.append(attr.MessageIntegritySha256() if sha256 else attr.MessageIntegrity())
        out.append(attr.Fingerprint())
        key = self._key(a)
        return STUN(type=message_type(method, REQUEST), key=key, key_sha256=key if sha256 else None, attributes=out)

    async def _transact(
        self, a: _Agent, msg: STUN | bytes, to: Address | None = None, *, plain: bool = False
    ) -> Received | None:
        """One transaction on the RFC 8489 §6.2.1 schedule; ``plain``: an unauthenticated one (a Binding)."""
        data = bytes(msg)
        txid = data[8:20]
        dest = to or a.server
        ep = a.endpoint
        since = ep.now()
        rto = 0.5
        loop = asyncio.get_running_loop()
        for _ in range(7):
            ep.send(data, dest)
            try:
                rec = await ep.expect(
                    lambda r: r.transaction_id == txid and r.index is not None and r.index.msg_class >= SUCCESS,
                    rto,
                    since=since,
                )
            except Exception:
                rto *= 2
                continue
            if plain:
                return rec
            unauthenticated = (
                rec.index is not None
                and not rec.index.has("MESSAGE-INTEGRITY")
                and not rec.index.has("MESSAGE-INTEGRITY-SHA256")
            )
            code = rec.error_code if rec is not None else None
            lenient = (code == 400 and "accept-unauthenticated-400" in a.faults) or (
                code == 300 and ("follow-unauthenticated-alternate" in a.faults or "rfc5389-client" in a.faults)
            )
            if unauthenticated and a.nonce is not None and code not in (401, 438) and not lenient:
                since = loop.time()
                continue  # RFC 8489 §9.2.5: discard, keep retransmitting
            if not unauthenticated and a.nonce is not None and check_integrity(rec.data, self._key(a)) is not None:
                continue
            return rec
        return None

    async def _request(self, a: _Agent, method: int, attrs: list[Any], to: Address | None = None) -> Received:
        """One authenticated transaction with the 401/438 handling of RFC 8489 §9.2.5."""
        first_auth = a.nonce is None and "credentials-first" not in a.faults
        msg = self._build(a, method, attrs, auth=not first_auth)
        rec = await self._transact(a, msg, to)
        retries = 0
        while rec is not None and rec.error_code in (401, 438) and retries < 5:
            code = rec.error_code
            if code == 438 and "no-438-retry" in a.faults:
                break
            if code == 401 and retries > 0 and "retry-401-forever" not in a.faults:
                break  # the same credentials were refused: no loop (RFC 8489 §9.2.5)
            if not self._learn(a, rec):
                break
            retries += 1
            msg = self._build(a, method, attrs)
            if "reuse-txid-after-401" in a.faults:
                msg.transaction_id = bytes(rec.transaction_id)
            rec = await self._transact(a, msg, to)
        if rec is None or rec.error_code is not None:
            raise _Failed(rec)
        return rec

    def _learn(self, a: _Agent, rec: Received) -> bool:
        """Take REALM/NONCE (and the algorithms) from a 401/438; False when RFC 8489 §9.2.5 forbids a retry."""
        assert rec.index is not None
        nonce = rec.index.value("NONCE")
        realm = rec.index.value("REALM") or a.realm
        if nonce is None or realm is None:
            return False
        features = SecurityFeature.NONE
        with contextlib.suppress(ValueError):
            if "rfc5389-client" not in a.faults:  # an RFC 5389 client treats the NONCE as opaque
                features = parse_nonce_features(nonce) or SecurityFeature.NONE
        if features & SecurityFeature.PASSWORD_ALGORITHMS and "ignore-password-algorithms" not in a.faults:
            offered = rec.msg.attr("PASSWORD-ALGORITHMS") if rec.msg is not None else None
            if offered is None:
                return False
            algs = [int(e.algorithm) for e in offered.algorithms]
            chosen = next((x for x in algs if x in (PasswordAlgorithm.SHA256, PasswordAlgorithm.MD5)), None)
            if chosen is None:
                return False
            a.algorithm = PasswordAlgorithm(chosen)
            a.algorithms_echo = bytes(offered)[4:]
            a.algorithms_packet = offered
        a.anonymous = bool(features & SecurityFeature.USERNAME_ANONYMITY)
        a.realm, a.nonce = realm, nonce
        return True

    async def gather(self, agent: str) -> LocalDescription:
        """The relayed candidate (raddr = the mapped address) and, unless relay-only, the server-reflexive one from
        the same Allocate response; after a 486/508, a Binding request for the srflx alone (RFC 8445 §5.1.1.2)."""
        a = self._agent(agent)
        base = a.endpoint.address
        try:
            await self._allocate(a)
        except _NoResources as exc:
            if a.config.relay_only or "no-binding-after-486" in a.faults:
                raise AdapterError(f"TURN Allocate failed: {exc.code}") from None
            binding = STUN(type=message_type(BINDING, REQUEST), attributes=[attr.Fingerprint()])
            rec = await self._transact(a, binding, plain=True)
            a.mapped = xor_address(rec, "XOR-MAPPED-ADDRESS")
            return LocalDescription(ufrag=a.ufrag, pwd=a.pwd, candidates=[*self._srflx(a, base), self._host(base)])
        assert a.relayed is not None
        host, port = a.relayed
        mhost, mport = base if "relay-raddr-base" in a.faults else (a.mapped or base)
        cands = [] if a.config.relay_only else [*self._srflx(a, base), self._host(base)]
        relay_line = f"candidate:R1 1 udp 16777215 {host} {port} typ relay raddr {mhost} rport {mport}"
        a.lines[a.relayed] = relay_line
        if a.relayed != base or "keep-host-identical-relay" in a.faults:  # identical to a host: discard (§5.1.1.2)
            cands.insert(0, relay_line)
        return LocalDescription(ufrag=a.ufrag, pwd=a.pwd, candidates=cands)

    @staticmethod
    def _host(base: Address) -> str:
        """The host candidate the requests leave from (offered unless relay-only; RFC 8445 §5.1.1.1)."""
        return f"candidate:H1 1 udp 2130706431 {base[0]} {base[1]} typ host"

    @staticmethod
    def _srflx(a: _Agent, base: Address) -> list[str]:
        """The server-reflexive candidate at the mapped address, raddr = its base (RFC 8839 §5.1); none if equal."""
        if a.mapped is None or a.mapped == base:
            return []
        return [f"candidate:S1 1 udp 1694498815 {a.mapped[0]} {a.mapped[1]} typ srflx raddr {base[0]} rport {base[1]}"]

    async def _allocate(self, a: _Agent) -> None:
        transport = attr.RequestedTransport(protocol=6 if "tcp-transport" in a.faults else 17)
        attrs: list[Any] = [transport, attr.Lifetime(lifetime=600)]
        tried = 0
        to: Address | None = None
        while True:
            try:
                rec = await self._request(a, ALLOCATE, attrs, to)
                break
            except _Failed as exc:
                code = exc.rec.error_code if exc.rec is not None else None
                tried += 1
                if code == 300 and exc.rec is not None and tried < 3 and "ignore-alternate" not in a.faults:
                    alt = exc.rec.msg.attr("ALTERNATE-SERVER") if exc.rec.msg is not None else None
                    if alt is not None:  # an unauthenticated 300 never gets here (RFC 8489 §9.2.5, §10)
                        to = (str(alt.address), int(alt.port))
                        a.server = to
                        continue
                if code in (437, 440, 486, 508) and "retry-437-forever" in a.faults and tried < 6:
                    continue
                if code is not None and code >= 400 and "retry-5xx-forever" in a.faults and tried < 8:
                    continue
                if code is not None and 500 <= code < 600 and code != 508 and tried < 2:
                    continue  # one retry of a server error (RFC 8489 §6.3.4); 508: wait a minute (RFC 8656 §7.4)
                if code in (486, 508):
                    raise _NoResources(code) from None
                raise AdapterError(f"TURN Allocate failed: {exc}") from None
        a.relayed = xor_address(rec, "XOR-RELAYED-ADDRESS")
        a.mapped = xor_address(rec, "XOR-MAPPED-ADDRESS")
        if a.relayed is not None and ":" in a.relayed[0] and "keep-unusable-family" not in a.faults:
            with contextlib.suppress(_Failed):  # an IPv6 relay is unusable here: delete it (RFC 8656 §7.3)
                await self._request(a, REFRESH, [attr.Lifetime(lifetime=0)])
            a.dead = True
            raise AdapterError(f"TURN relayed address {a.relayed} is IPv6, which this client cannot use")
        raw = rec.index.value("LIFETIME") if rec.index is not None else None
        lifetime = struct.unpack("!I", raw)[0] if raw is not None and len(raw) == 4 else 600
        if "no-refresh" not in a.faults:
            a.tasks.append(asyncio.get_running_loop().create_task(self._refresher(a, lifetime)))

    async def _refresher(self, a: _Agent, lifetime: int) -> None:
        while not a.dead:
            lead = 60 if lifetime > 120 else lifetime / 3
            if "refresh-at-expiry" in a.faults:
                lead = 0.0
            await asyncio.sleep(max(0.5, lifetime - lead))  # the protocol timer itself (RFC 8656 §8)
            try:
                rec = await self._request(a, REFRESH, [attr.Lifetime(lifetime=600)])
            except _Failed as exc:
                if exc.rec is not None and exc.rec.error_code == 437 and "ignore-437" not in a.faults:
                    a.dead = True
                    await self._notify_state(a, "failed")
                return
            raw = rec.index.value("LIFETIME") if rec.index is not None else None
            lifetime = struct.unpack("!I", raw)[0] if raw is not None and len(raw) == 4 else 600

    async def set_remote(self, agent: str, ufrag: str, pwd: str, candidates: list[str], lite: bool = False) -> None:
        a = self._agent(agent)
        a.remote_ufrag, a.remote_pwd = ufrag, pwd
        for c in candidates:
            parts = c.split()
            if len(parts) >= 6 and parts[2].lower() == "udp":
                a.remote.append((parts[4], int(parts[5])))
                a.lines[(parts[4], int(parts[5]))] = c.removeprefix("a=")

    async def add_remote_candidate(self, agent: str, candidate: str | None) -> None:
        if candidate is not None:
            await self.set_remote(agent, self._agent(agent).remote_ufrag, self._agent(agent).remote_pwd, [candidate])

    async def connect(self, agent: str) -> None:
        a = self._agent(agent)
        a.tasks.append(asyncio.get_running_loop().create_task(self._checks(a)))

    async def _checks(self, a: _Agent) -> None:
        if "permissions-all-at-once" in a.faults:  # one transaction per peer, all outstanding together
            for peer in a.remote:
                a.tasks.append(asyncio.get_running_loop().create_task(self._permit_quietly(a, peer)))
        try:
            for peer in a.remote:
                if "check-before-permission" not in a.faults:
                    await self._prepare_peer(a, peer)
                check = STUN(
                    type=message_type(BINDING, REQUEST),
                    key=short_term_key(a.remote_pwd),
                    attributes=[
                        attr.Username(username=f"{a.remote_ufrag}:{a.ufrag}".encode()),
                        attr.Priority(priority=16777215),
                        attr.IceControlling(tiebreaker=secrets.randbits(64)),
                        attr.UseCandidate(),
                        attr.MessageIntegrity(),
                        attr.Fingerprint(),
                    ],
                )
                a.pending_check = bytes(check)[8:20]
                for attempt in range(5):
                    self._send_to_peer(a, peer, bytes(check))
                    if attempt == 0 and "check-before-permission" in a.faults:
                        await self._prepare_peer(a, peer)
                    if await self._await_check(a, 1.0):
                        a.selected = peer
                        if "no-channel" not in a.faults and peer not in a.channels:
                            await self._bind(a, peer)  # a channel once ICE is done (RFC 8445 §12.1)
                        await self.notifications.put(
                            Notification(
                                "selected_pair",
                                {
                                    "agent": a.id,
                                    "component": 1,
                                    # RFC 8839 candidate lines (adapter contract §3)
                                    "local": a.lines.get(a.relayed, "") if a.relayed else "",
                                    "remote": a.lines.get(peer, f"candidate:P1 1 udp 1 {peer[0]} {peer[1]} typ host"),
                                },
                            )
                        )
                        await self._notify_state(a, "connected")
                        return
            await self._notify_state(a, "failed")
        except _Failed as exc:
            logger.info("reference TURN client: %s", exc)
            if exc.rec is not None and exc.rec.error_code == 400 and "no-restart-after-400" not in a.faults:
                with contextlib.suppress(_Failed):  # start afresh (RFC 8656 §12.3)
                    await self._request(a, REFRESH, [attr.Lifetime(lifetime=0)])
                a.nonce = None
                for t in a.tasks:
                    if t is not asyncio.current_task():
                        t.cancel()
                with contextlib.suppress(Exception):
                    await self._allocate(a)
            await self._notify_state(a, "failed")

    async def _await_check(self, a: _Agent, timeout: float) -> bool:
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        a.check_future = fut
        try:
            return await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            return False

    async def _permit_quietly(self, a: _Agent, peer: Address) -> None:
        with contextlib.suppress(_Failed):
            await self._request(a, CREATE_PERMISSION, [attr.XorPeerAddress(family=1, address=peer[0], port=peer[1])])

    async def _prepare_peer(self, a: _Agent, peer: Address) -> None:
        """A permission before the checks: CreatePermission (RFC 8445 §7.2.1, RFC 8656 §11.1)."""
        if "data-before-permission" in a.faults and peer[0] not in a.permitted:
            self._send_to_peer(a, peer, b"early")
        if "channel-before-ice" in a.faults:
            await self._bind(a, peer)
        else:
            await self._request(a, CREATE_PERMISSION, [attr.XorPeerAddress(family=1, address=peer[0], port=peer[1])])
        a.permitted.add(peer[0])

    async def _bind(self, a: _Agent, peer: Address) -> None:
        number = 0x4000 + len(a.channels)
        peer_attr = attr.XorPeerAddress(family=1, address=peer[0], port=peer[1])
        await self._request(a, CHANNEL_BIND, [attr.ChannelNumber(channel=number), peer_attr])
        a.channels[peer] = number
        a.permitted.add(peer[0])

    def _send_to_peer(self, a: _Agent, peer: Address, data: bytes) -> None:
        if a.dead and "ignore-437" not in a.faults:
            return
        number = a.channels.get(peer)
        if number is not None:
            if "channel-length-padded" in a.faults:
                padded = data + b"\x00" * ((-len(data)) % 4)
                a.endpoint.send(bytes(ChannelData(channel=number, length=len(padded), data=padded)), a.server)
            elif "channel-out-of-range" in a.faults:
                a.endpoint.send(bytes(ChannelData(channel=0x5000, data=data)), a.server)
            elif "channel-length-lies" in a.faults:
                a.endpoint.send(bytes(ChannelData(channel=number, length=len(data) + 8, data=data)), a.server)
            else:
                a.endpoint.send(bytes(ChannelData(channel=number, data=data)), a.server)
            return
        attributes: list[Any] = [attr.XorPeerAddress(family=1, address=peer[0], port=peer[1])]
        if "send-without-data" not in a.faults:
            attributes.append(attr.Data(data=data))
        msg = STUN(type=message_type(SEND, INDICATION), attributes=attributes)
        a.endpoint.send(bytes(msg), a.server)

    def _incoming(self, a: _Agent, rec: Received) -> None:
        if rec.src != a.server:
            return
        data = rec.data
        if not data:
            return
        first = data[0]
        payload: bytes | None = None
        peer: Address | None = None
        if 0x40 <= first <= 0x4F and len(data) >= 4:
            number, length = struct.unpack_from("!HH", data)
            peer = next((p for p, n in a.channels.items() if n == number), None)
            payload = data[4 : 4 + length] if peer is not None else None
        elif first < 4 and rec.is_type(0x007, INDICATION) and rec.index is not None:
            peer = xor_address(rec, "XOR-PEER-ADDRESS")
            payload = rec.index.value("DATA")
            if "reject-data-indication" in a.faults and payload is not None and payload[:1] >= b"\x04":
                return
            if "deliver-malformed-data" in a.faults and (peer is None or payload is None):
                peer = peer or a.selected or (a.remote[0] if a.remote else ("0.0.0.0", 0))
                payload = payload or b""
            if peer is None or payload is None:
                return  # RFC 8656 §11.4
            if peer[0] not in a.permitted and "accept-unpermitted-data" not in a.faults:
                return  # no permission towards that peer (RFC 8656 §11.4)
        elif "deliver-reserved" in a.faults and (first > 0x4F or 4 <= first < 0x40):
            payload, peer = data, a.selected
        if payload is None or peer is None:
            return
        self._from_peer(a, peer, payload)

    def _from_peer(self, a: _Agent, peer: Address, payload: bytes) -> None:
        if payload[:1] and payload[0] < 4 and len(payload) >= 20:
            txid = payload[8:20]
            fut = a.check_future
            if payload[0:2] == b"\x01\x01" and txid == a.pending_check:
                if fut is not None and not fut.done():
                    fut.set_result(True)
                return
            if payload[0:2] == b"\x00\x01":
                response = STUN(
                    type=message_type(BINDING, SUCCESS),
                    transaction_id=txid,
                    key=short_term_key(a.pwd),
                    attributes=[
                        attr.XorMappedAddress(family=1, address=peer[0], port=peer[1]),
                        attr.MessageIntegrity(),
                        attr.Fingerprint(),
                    ],
                )
                self._send_to_peer(a, peer, bytes(response))
                return
        self.notifications.put_nowait(
            Notification("data", {"agent": a.id, "component": 1, "data": base64.b64encode(payload).decode()})
        )

    async def _notify_state(self, a: _Agent, state: str) -> None:
        await self.notifications.put(Notification("state", {"agent": a.id, "state": state}))

    async def send(self, agent: str, component: int, data: bytes) -> None:
        a = self._agent(agent)
        if a.selected is None:
            raise AdapterError("no selected pair yet")
        self._send_to_peer(a, a.selected, data)

    async def restart(self, agent: str) -> Credentials:
        raise Unsupported("the reference TURN client has no ICE restart")

    async def close(self, agent: str) -> None:
        a = self._agents.pop(agent, None)
        if a is None:
            raise AdapterError(f"no agent {agent!r}")
        for t in a.tasks:
            t.cancel()
        if a.relayed is not None and not a.dead and "no-delete" not in a.faults:
            with contextlib.suppress(_Failed):
                await self._request(a, REFRESH, [attr.Lifetime(lifetime=0)])
        a.dead = True
        a.endpoint.close()
        await self._notify_state(a, "closed")

    async def shutdown(self) -> None:
        for agent in list(self._agents):
            with contextlib.suppress(Exception):
                await self.close(agent)
        for server in list(self._servers):
            await self.stop_server(server)

    def diagnostics(self) -> str:
        return f"reference-turn faults: {', '.join(sorted(self.faults)) or 'none'}"
