"""TURN on the harness side, as the client of a TURN-server IUT (RFC 8656 §7–§12).

Theory of operation: :class:`TurnClient` is one harness UDP endpoint speaking TURN to the IUT server with long-term
credentials (RFC 8489 §9.2): :meth:`TurnClient.request` sends a request, retransmits it at 0.5 s doubling (RFC 8489
§6.2.1), learns REALM and NONCE from a 401 and a fresh NONCE from a 438, and returns the response as a
:class:`Received` (or None when nothing came). Every field is overridable, and :meth:`TurnClient.send_raw` sends crafted
bytes, so a malformed request is one keyword away. The steps cases build from it: conformance/tester/turn_steps.py.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from conformance.packets import (
    ALLOCATE,
    CHANNEL_BIND,
    CREATE_PERMISSION,
    DATA,
    INDICATION,
    REFRESH,
    REQUEST,
    SEND,
    STUN,
    SUCCESS,
    ChannelData,
    attr,
    message_type,
)
from conformance.protocol.keys import (
    long_term_key,
)
from conformance.tester.endpoint import Address, Endpoint, Received
from conformance.verdict import HarnessError

__all__ = [
    "CLIENT_REALM",
    "PEER_HOSTS",
    "REALM",
    "USERS",
    "TurnClient",
    "TurnServerUnderTest",
    "format_address",
    "relayed_payload",
    "split_address",
    "xor_address",
]

logger = logging.getLogger(__name__)

#: The realm and users every TURN case configures on the IUT server (RFC 8489 §9.2).
REALM = "iut.test"
USERS: dict[str, str] = {"alice": "secret", "bob": "hunter2"}
#: Loopback addresses of the relay peers (Linux routes all of 127/8 on lo).
PEER_HOSTS = ("127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5")
#: The realm of the scripted server in the TURN-client cases (the catalog's example, RFC 8489 §9.2.5).
CLIENT_REALM = "example.org"


def split_address(text: str) -> Address:
    """``"host:port"`` or ``"[v6]:port"`` to an address tuple."""
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def format_address(address: Address) -> str:
    """An address tuple as ``host:port``."""
    return f"[{address[0]}]:{address[1]}" if ":" in address[0] else f"{address[0]}:{address[1]}"


def xor_address(rec: Received | None, name: str) -> Address | None:
    """An XOR-*-ADDRESS attribute of a message as an address tuple (RFC 8489 §14.2)."""
    if rec is None or rec.msg is None:
        return None
    a = rec.msg.attr(name)
    if a is None or not hasattr(a, "address"):
        return None
    return str(a.address), int(a.port)


def relayed_payload(rec: Received) -> tuple[str, bytes, Address | None] | None:
    """What the server relayed to a client: ("channel", data, None) or ("data-indication", data, peer), else None."""
    data = rec.data
    if len(data) >= 4 and 0x40 <= data[0] <= 0x4F:
        _, length = struct.unpack_from("!HH", data)
        return ("channel", data[4 : 4 + length], None) if len(data) >= 4 + length else None
    if rec.is_type(DATA, INDICATION) and rec.index is not None:
        payload = rec.index.value("DATA")
        return ("data-indication", payload, xor_address(rec, "XOR-PEER-ADDRESS")) if payload is not None else None
    return None


@dataclass(frozen=True)
class TurnServerUnderTest:
    """A TURN server the IUT started for one case: where it listens, its realm and users."""

    server_id: str
    address: Address
    realm: str
    users: dict[str, str]


class TurnClient:
    """A harness TURN client on one UDP endpoint (RFC 8656 §7–§12 as the client), every field overridable."""

    def __init__(self, endpoint: Endpoint, server: Address, username: str, password: str) -> None:
        self.endpoint = endpoint
        self.server = server
        self.username = username
        self.password = password
        self.realm: bytes | None = None
        self.nonce: bytes | None = None
        self.relayed: Address | None = None
        self.mapped: Address | None = None
        self.lifetime: int | None = None
        self.last: Received | None = None

    @classmethod
    async def open(
        cls,
        h: Any,
        server: TurnServerUnderTest | Address,
        username: str = "alice",
        password: str | None = None,
        *,
        host: str = "127.0.0.1",
        label: str = "TURN client",
    ) -> TurnClient:
        """A client on a fresh harness endpoint; the password defaults to the user's configured one."""
        if isinstance(server, TurnServerUnderTest):
            address = server.address
            password = server.users.get(username, "") if password is None else password
        else:
            address = server
        ep = await h.endpoint(label, host)
        return cls(ep, address, username, password or "")

    @property
    def address(self) -> Address:
        """The client's transport address (its half of the 5-tuple)."""
        return self.endpoint.address

    @property
    def key(self) -> bytes:
        """MD5(username:realm:password) (RFC 8489 §9.2.2); a placeholder before the realm is known."""
        if not self.realm or not self.username or not self.password:
            return bytes(16)
        try:
            return long_term_key(self.username, self.realm.decode("utf-8", "replace"), self.password)
        except ValueError:  # a string OpaqueString refuses: a crafted case; any key will do
            return bytes(16)

    def build(
        self,
        method: int,
        cls: int = REQUEST,
        attributes: Iterable[Any] = (),
        *,
        auth: bool = True,
        integrity: bool = True,
        fingerprint: bool = True,
        username: str | None = None,
        realm: bytes | None = None,
        nonce: bytes | None = None,
        key: bytes | None = None,
        transaction_id: bytes | None = None,
        omit: Sequence[str] = (),
    ) -> STUN:
        """A TURN message; requests carry USERNAME, REALM, NONCE and MI once the realm is known (RFC 8489 §9.2.3)."""
        attrs: list[Any] = list(attributes)
        if auth and cls == REQUEST and self.nonce is not None:
            parts = {
                "USERNAME": attr.Username(username=(username or self.username).encode()),
                "REALM": attr.Realm(realm=realm if realm is not None else self.realm or b""),
                "NONCE": attr.Nonce(nonce=nonce if nonce is not None else self.nonce),
            }
            attrs += [a for name, a in parts.items() if name not in omit]
            if integrity:
                attrs.append(attr.MessageIntegrity())
        if fingerprint:
            attrs.append(attr.Fingerprint())
        kwargs: dict[str, Any] = {} if transaction_id is None else {"transaction_id": transaction_id}
        return STUN(type=message_type(method, cls), key=key or self.key, attributes=attrs, **kwargs)

    def send_raw(self, data: bytes, note: str = "crafted") -> None:
        """Send crafted bytes to the server."""
        self.endpoint.send(data, self.server, note)

    async def transact(self, message: STUN | bytes, timeout: float = 3.0, note: str = "") -> Received | None:
        """Send a request and retransmit it at 0.5 s doubling (RFC 8489 §6.2.1) until a response or ``timeout``."""
        data = bytes(message)
        txid = data[8:20]
        ep = self.endpoint
        since = ep.now()
        ep.send(data, self.server, note)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        rto = 0.5

        def answers(r: Received) -> bool:
            return r.src == self.server and r.is_stun and r.transaction_id == txid and r.index.msg_class >= SUCCESS  # type: ignore[union-attr]

        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            try:
                self.last = await ep.expect(answers, min(rto, remaining), since=since)
                return self.last
            except HarnessError:
                if loop.time() >= deadline:
                    return None
                ep.send(data, self.server, (note + " " if note else "") + "(retransmit)")
                rto *= 2

    def learn(self, rec: Received) -> None:
        """Take REALM and NONCE from a 401 or 438 (RFC 8489 §9.2.5)."""
        if rec.index is None:
            return
        realm = rec.index.value("REALM")
        nonce = rec.index.value("NONCE")
        if realm is not None:
            self.realm = realm
        if nonce is not None:
            self.nonce = nonce

    async def challenge(self, method: int = ALLOCATE, attributes: Iterable[Any] | None = None) -> Received | None:
        """Send the request without credentials and learn REALM and NONCE from the 401 (RFC 8489 §9.2.3.1)."""
        attrs = list(attributes) if attributes is not None else [attr.RequestedTransport()]
        rec = await self.transact(self.build(method, REQUEST, attrs, auth=False))
        if rec is not None and rec.error_code == 401:
            self.learn(rec)
        return rec

    async def request(
        self, method: int, attributes: Iterable[Any] = (), *, timeout: float = 3.0, **build: Any
    ) -> Received | None:
        """An authenticated request: challenged first when needed, and retried once on 438 (RFC 8489 §9.2.5)."""
        attrs = list(attributes)
        if self.nonce is None:
            first = await self.challenge(method, attrs)
            if first is None or first.error_code != 401 or self.nonce is None:
                return first
        rec = await self.transact(self.build(method, REQUEST, attrs, **build), timeout)
        if rec is not None and rec.error_code == 438:
            self.learn(rec)
            rec = await self.transact(self.build(method, REQUEST, attrs, **build), timeout)
        return rec

    async def allocate(
        self, *extra: Any, lifetime: int | None = None, transport: bool = True, timeout: float = 3.0, **build: Any
    ) -> Received | None:
        """Allocate a UDP relay (RFC 8656 §7.1); on success the relayed and mapped addresses are kept."""
        attrs: list[Any] = [attr.RequestedTransport()] if transport else []
        attrs += list(extra)
        if lifetime is not None:
            attrs.append(attr.Lifetime(lifetime=lifetime))
        rec = await self.request(ALLOCATE, attrs, timeout=timeout, **build)
        if rec is not None and rec.is_type(ALLOCATE, SUCCESS):
            self.relayed = xor_address(rec, "XOR-RELAYED-ADDRESS")
            self.mapped = xor_address(rec, "XOR-MAPPED-ADDRESS")
            lt = rec.index.value("LIFETIME") if rec.index is not None else None
            self.lifetime = struct.unpack("!I", lt)[0] if lt is not None and len(lt) == 4 else None
        return rec

    async def refresh(self, lifetime: int | None = None, **build: Any) -> Received | None:
        """Refresh (or delete, with 0) the allocation (RFC 8656 §8.1)."""
        attrs = [] if lifetime is None else [attr.Lifetime(lifetime=lifetime)]
        return await self.request(REFRESH, attrs, **build)

    async def create_permission(self, *peers: Address, **build: Any) -> Received | None:
        """Install permissions for the peers' IP addresses (RFC 8656 §10.1)."""
        attrs = [attr.XorPeerAddress(family=2 if ":" in p[0] else 1, address=p[0], port=p[1]) for p in peers]
        return await self.request(CREATE_PERMISSION, attrs, **build)

    async def channel_bind(self, number: int, peer: Address, **build: Any) -> Received | None:
        """Bind a channel number to a peer (RFC 8656 §12.1)."""
        attrs = [
            attr.ChannelNumber(channel=number),
            attr.XorPeerAddress(family=2 if ":" in peer[0] else 1, address=peer[0], port=peer[1]),
        ]
        return await self.request(CHANNEL_BIND, attrs, **build)

    def send_indication(self, peer: Address | None, data: bytes | None, *, fingerprint: bool = True) -> None:
        """A Send indication (RFC 8656 §11.1); ``None`` leaves an attribute out (for the malformed cases)."""
        attrs: list[Any] = []
        if peer is not None:
            attrs.append(attr.XorPeerAddress(family=2 if ":" in peer[0] else 1, address=peer[0], port=peer[1]))
        if data is not None:
            attrs.append(attr.Data(data=data))
        self.send_raw(bytes(self.build(SEND, INDICATION, attrs, fingerprint=fingerprint)), "Send indication")

    def channel_data(self, number: int, data: bytes, *, length: int | None = None) -> None:
        """A ChannelData message (RFC 8656 §12.4); ``length`` overrides the length field."""
        self.send_raw(bytes(ChannelData(channel=number, length=length, data=data)), "ChannelData")

    async def expect_relayed(
        self, payload: bytes, timeout: float, *, since: float | None = None, what: str = "relayed data", **kw: Any
    ) -> Received:
        """The Data indication or ChannelData carrying ``payload`` (raises like :meth:`Endpoint.expect`)."""

        def carries(r: Received) -> bool:
            got = relayed_payload(r)
            return got is not None and got[1] == payload

        return await self.endpoint.expect(carries, timeout, since=since, what=what, **kw)

    async def relayed_within(self, payload: bytes, window: float) -> Received | None:
        """The datagram relaying ``payload`` to this client within ``window`` s (or already received), else None."""
        for r in self.endpoint.history:
            got = relayed_payload(r)
            if got is not None and got[1] == payload:
                return r

        def carries(r: Received) -> bool:
            got = relayed_payload(r)
            return got is not None and got[1] == payload

        return await self.endpoint.expect_silence(carries, window)


# ---------------------------------------------------------------------------------------------------------------
# The harness as a TURN server (the IUT is the TURN client)
# ---------------------------------------------------------------------------------------------------------------
