"""TURN on the harness side, as the server of a TURN-client IUT: a small, scripted, correct TURN server (RFC 8656).

Theory of operation: :class:`TurnServer` runs on one harness endpoint. It keeps allocations, permissions and channels
with lazily checked expiry (no timers), relays Send indications and ChannelData to real peer sockets and peer datagrams
back as Data indications or ChannelData, remembers responses by transaction ID for retransmissions (RFC 8489 §6.3.1),
and records every request it received. Cases script it: :meth:`TurnServer.script` installs a rule that answers matching
requests differently (a 437, a 438 with a new nonce, a 300 with ALTERNATE-SERVER, an unauthenticated 400, silence ...).
It carries no faults: each decision a deliberate deviation could change sits in a small overridable method that does
what RFC 8656 says, and the reference TURN IUT's :class:`~conformance.reference.turn_server_faults.FaultyTurnServer`
overrides them to prove the suites can fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import secrets
import socket
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from conformance.packets import (
    ALLOCATE,
    BINDING,
    CHANNEL_BIND,
    CREATE_PERMISSION,
    DATA,
    ERROR,
    INDICATION,
    REFRESH,
    REQUEST,
    SEND,
    STUN,
    SUCCESS,
    ChannelData,
    ErrorCode,
    attr,
    attribute_code,
    check_integrity,
    message_type,
)
from conformance.protocol.keys import (
    PasswordAlgorithm,
    SecurityFeature,
    encode_nonce_cookie,
    features_for_both_readings,
    long_term_key,
    parse_nonce_features,
    userhash,
)
from conformance.tester.capture import Capture
from conformance.tester.endpoint import Address, Endpoint, Received
from conformance.tester.turn_client import (
    USERS,
    format_address,
    xor_address,
)
from conformance.verdict import HarnessError

__all__ = [
    "SOFTWARE",
    "Allocation",
    "Rule",
    "TurnServer",
]

logger = logging.getLogger(__name__)

SOFTWARE = b"ice-conformance TURN"
#: The comprehension-required attributes this server understands in a request (RFC 8489 §18.3, RFC 8656 §18);
#: others get a 420 (RFC 8489 §6.3.1). DONT-FRAGMENT is handled apart (RFC 8656 §7.2 step 4).
_UNDERSTOOD = frozenset(
    attribute_code(name)
    for name in (
        "USERNAME",
        "MESSAGE-INTEGRITY",
        "ERROR-CODE",
        "CHANNEL-NUMBER",
        "LIFETIME",
        "XOR-PEER-ADDRESS",
        "DATA",
        "REALM",
        "NONCE",
        "XOR-RELAYED-ADDRESS",
        "REQUESTED-ADDRESS-FAMILY",
        "EVEN-PORT",
        "REQUESTED-TRANSPORT",
        "MESSAGE-INTEGRITY-SHA256",
        "PASSWORD-ALGORITHM",
        "USERHASH",
        "XOR-MAPPED-ADDRESS",
        "RESERVATION-TOKEN",
    )
)


@dataclass
class Allocation:
    """One allocation on the scripted server (RFC 8656 §6)."""

    client: Address
    username: str
    key: bytes
    relay: Endpoint
    expires: float
    permissions: dict[str, float] = field(default_factory=dict)
    channels: dict[int, tuple[Address, float]] = field(default_factory=dict)
    reserved: Endpoint | None = None
    deleted: bool = False
    integrity_sha256: bool = False


@dataclass
class Rule:
    """A scripted answer: requests matching ``match`` get ``respond(request)`` (bytes; None = silence)."""

    match: Callable[[Received], bool]
    respond: Callable[[Received], bytes | None]
    times: int | None = 1
    hits: list[Received] = field(default_factory=list)


class TurnServer:
    """A scripted TURN server over UDP with long-term credentials (RFC 8656, RFC 8489 §9.2)."""

    def __init__(
        self,
        endpoint: Endpoint,
        capture: Capture,
        *,
        realm: str = "example.org",
        users: dict[str, str] | None = None,
        lifetime: int = 600,
        max_lifetime: int = 3600,
        permission_lifetime: float = 300.0,
        channel_lifetime: float = 600.0,
        nonce_lifetime: float | None = None,
        features: SecurityFeature = SecurityFeature.NONE,
        relay_host: str = "127.0.0.1",
        software: bool = True,
        fingerprint: bool = True,
        user_quota: int | None = None,
        prefer_data_indication: bool = False,
        mapping: Callable[[Address], Address] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.capture = capture
        self.realm = realm
        self.users = dict(USERS if users is None else users)
        self.default_lifetime = lifetime
        self.max_lifetime = max_lifetime
        self.permission_lifetime = permission_lifetime
        self.channel_lifetime = channel_lifetime
        self.nonce_lifetime = nonce_lifetime
        self.features = features
        self.relay_host = relay_host
        self.software = software
        self.fingerprint = fingerprint
        self.user_quota = user_quota
        self.prefer_data_indication = prefer_data_indication
        #: How long a response is remembered for a retransmission of its request (RFC 8489 §6.3.1: 40 s for UDP).
        self.retransmission_window = 40.0
        #: The mapped address reported for a client's source (a NAT in front of it, as
        #: :func:`conformance.tester.stun_server.nat_mapping`); None: the source itself.
        self.mapping = mapping
        #: Overrides the XOR-RELAYED-ADDRESS reported for an allocation (the relay socket still serves it).
        self.report_relayed: Callable[[Allocation], Address] | None = None
        #: Lifetime granted in the next Allocate/Refresh success (a case may set it to any value).
        self.grant_lifetime: int | None = None
        self.requests: list[Received] = []
        #: Send indications and ChannelData from clients that were not relayed, with the reason (RFC 8656 §11.2).
        self.dropped: list[tuple[Received, str]] = []
        #: Permissions installed: (time, client, peer IP, "CreatePermission" or "ChannelBind") (RFC 8656 §9).
        self.installed: list[tuple[float, Address, str, str]] = []
        self.rules: list[Rule] = []
        self.allocations: dict[Address, Allocation] = {}
        self.deleted: list[Allocation] = []
        self._nonces: dict[bytes, tuple[Address, float]] = {}
        self._responses: dict[bytes, tuple[float, bytes, bytes]] = {}  # txid: (time, response, request)
        self._in_progress: set[bytes] = set()
        self._tokens: dict[bytes, Endpoint] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop = asyncio.get_running_loop()
        self._unhook = endpoint.on_datagram(self._on_datagram)

    @classmethod
    async def open(
        cls, capture: Capture, host: str = "127.0.0.1", port: int = 0, label: str = "TURN server", **kw: Any
    ) -> TurnServer:
        """A scripted server on a new endpoint (its relays on ``relay_host``, default 127.0.0.1)."""
        ep = await Endpoint.open(capture, host, port, label)
        return cls(ep, capture, **kw)

    @property
    def address(self) -> Address:
        """Where the server listens."""
        return self.endpoint.address

    def uri(self) -> str:
        """The ``turn:`` URI (RFC 7065) of this server over UDP."""
        return f"turn:{format_address(self.address)}?transport=udp"

    def close(self) -> None:
        """Stop serving and close every relay socket."""
        self._unhook()
        for task in self._tasks:
            task.cancel()
        for a in list(self.allocations.values()) + self.deleted:
            a.relay.close()
            if a.reserved is not None:
                a.reserved.close()
        for ep in self._tokens.values():
            ep.close()
        self.endpoint.close()

    # -- scripting --------------------------------------------------------------------------------------------

    def script(
        self, match: Callable[[Received], bool], respond: Callable[[Received], bytes | None], times: int | None = 1
    ) -> Rule:
        """Answer the next ``times`` matching requests (None: all of them) with ``respond``; returns the rule."""
        rule = Rule(match, respond, times)
        self.rules.append(rule)
        return rule

    def requests_of(self, method: int, since: float = 0.0) -> list[Received]:
        """Every request of that method received since ``since``."""
        return [r for r in self.requests if r.time >= since and r.is_type(method, REQUEST)]

    async def expect_request(self, method: int, timeout: float, *, since: float | None = None, **kw: Any) -> Received:
        """The next request of ``method`` (see :meth:`Endpoint.expect` for the keyword arguments)."""
        what = kw.pop("what", None) or f"{_METHOD_NAMES.get(method, hex(method))} request"
        return await self.endpoint.expect(lambda r: r.is_type(method, REQUEST), timeout, since=since, what=what, **kw)

    def challenge_nonce(self, source: Address, features: SecurityFeature | None = None) -> bytes:
        """A fresh nonce for ``source`` (with the security-feature cookie when features are set, RFC 8489 §9.2)."""
        nonce = self._nonce_value(features)
        self._nonces[nonce] = (source, self._loop.time())
        return nonce

    def _nonce_value(self, features: SecurityFeature | None = None) -> bytes:
        """A new NONCE, with the security-feature cookie of RFC 8489 §9.2 (one per challenge, RFC 8489 §9.2.4)."""
        f = self.features if features is None else features
        # Either bit numbering of RFC 8489 §9.2 / Appendix B.1 sees the feature.
        prefix = encode_nonce_cookie(features_for_both_readings(f) if f else 0)
        return (prefix + secrets.token_hex(8)).encode()

    def error(
        self,
        request: Received,
        code: int,
        *,
        key: bytes | None = None,
        extra: Iterable[Any] = (),
        sha256: bool = False,
    ) -> bytes:
        """An error response; integrity-protected when ``key`` is given (RFC 8489 §6.3.1.1)."""
        method = request.index.method if request.index else ALLOCATE
        attrs: list[Any] = [ErrorCode(code), *extra]
        return self._finish(method, ERROR, request.transaction_id, attrs, key, sha256)

    def success(
        self, request: Received, attrs: Iterable[Any] = (), *, key: bytes | None = None, sha256: bool = False
    ) -> bytes:
        """A success response to ``request`` carrying ``attrs``; integrity-protected when ``key`` is given."""
        method = request.index.method if request.index else ALLOCATE
        return self._finish(method, SUCCESS, request.transaction_id, list(attrs), key, sha256)

    def challenge(self, request: Received, code: int = 401, *, nonce: bytes | None = None) -> bytes:
        """A 401 (or 438) with REALM, a fresh NONCE and PASSWORD-ALGORITHMS when that feature is on."""
        nonce = nonce or self.challenge_nonce(request.src)
        extra: list[Any] = [attr.Realm(realm=self.realm.encode()), attr.Nonce(nonce=nonce), *self._challenge_padding()]
        features = parse_nonce_features(nonce) or SecurityFeature.NONE
        if features & SecurityFeature.PASSWORD_ALGORITHMS:
            extra.append(self._algorithms_attribute())
        return self.error(request, code, extra=extra)

    def _challenge_padding(self) -> list[Any]:
        """Nothing beyond REALM, NONCE and PASSWORD-ALGORITHMS: an unauthenticated request gets a small answer
        (RFC 8656 §21.1.1, no amplification)."""
        return []

    @staticmethod
    def _algorithms_attribute() -> Any:
        return attr.PasswordAlgorithms(
            algorithms=[
                attr.AlgorithmEntry(algorithm=PasswordAlgorithm.SHA256),
                attr.AlgorithmEntry(algorithm=PasswordAlgorithm.MD5),
            ]
        )

    def _finish(
        self, method: int, cls: int, txid: bytes, attrs: list[Any], key: bytes | None, sha256: bool = False
    ) -> bytes:
        if self.software and method in (ALLOCATE, REFRESH):
            attrs.append(attr.Software(software=SOFTWARE))
        if key is not None:
            attrs.append(attr.MessageIntegritySha256() if sha256 else attr.MessageIntegrity())
        if self.fingerprint:
            attrs.append(attr.Fingerprint())
        msg = STUN(
            type=message_type(method, cls),
            transaction_id=txid,
            key=key,
            key_sha256=key if sha256 else None,
            attributes=attrs,
        )
        return bytes(msg)

    # -- receiving --------------------------------------------------------------------------------------------

    def _on_datagram(self, rec: Received) -> None:
        if rec.data[:1] and self._is_channel_data(rec.data[0]):
            self._channel_data(rec)
            return
        if rec.index is None:
            return
        cls = rec.index.msg_class
        if cls == INDICATION:
            if rec.index.method == SEND:
                self._send_indication(rec)
            return
        if cls != REQUEST:
            return
        self.requests.append(rec)
        txid = rec.transaction_id
        now = self._loop.time()
        cached = self._responses.get(txid)
        # A retransmission repeats the request byte for byte (RFC 8489 §6.2.1). A different request reusing the
        # transaction ID (some clients' retry after a 401) is processed afresh; STUN-AUTH-05 judges the reuse.
        retransmitted = cached is not None and cached[2] == rec.data
        if cached is not None and retransmitted and now - cached[0] < self.retransmission_window:
            self.endpoint.send(cached[1], rec.src, "cached response (retransmission)")
            return
        if txid in self._in_progress:
            return
        for rule in self.rules:
            if (rule.times is None or rule.times > 0) and rule.match(rec):
                if rule.times is not None:
                    rule.times -= 1
                rule.hits.append(rec)
                out = rule.respond(rec)
                if out is not None:
                    self.endpoint.send(out, rec.src, "scripted")
                return
        self._in_progress.add(txid)
        task = self._loop.create_task(self._handle(rec))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _is_channel_data(self, first: int) -> bool:
        """A first byte of 0x40-0x4F starts ChannelData (channels 0x4000-0x4FFF, RFC 8656 §12; RFC 7983 §7)."""
        return 0x40 <= first <= 0x4F

    async def _handle(self, rec: Received) -> None:
        try:
            out = await self._process(rec)
        except Exception:
            logger.exception("TURN server: processing %s failed", rec.describe())
            out = None
        finally:
            self._in_progress.discard(rec.transaction_id)
        if out is not None:
            self._responses[rec.transaction_id] = (self._loop.time(), out, rec.data)
            self.endpoint.send(out, rec.src)

    def _live(self, client: Address) -> Allocation | None:
        a = self.allocations.get(client)
        if a is not None and a.expires <= self._loop.time():
            self._delete(a)
            return None
        return a

    def _delete(self, a: Allocation) -> None:
        a.deleted = True
        self.allocations.pop(a.client, None)
        self.deleted.append(a)
        self._release(a)

    def _release(self, a: Allocation) -> None:
        """A deleted allocation gives its relayed transport address back (RFC 8656 §6)."""
        a.relay.close()

    # -- authentication (RFC 8489 §9.2.4) ----------------------------------------------------------------------

    def _authenticate(self, rec: Received) -> tuple[str, bytes, bool] | bytes | None:
        """(username, key, sha256) for a valid request, else the error response to send (None: silence)."""
        i = rec.index
        assert i is not None
        has_mi, has_sha = i.has("MESSAGE-INTEGRITY"), i.has("MESSAGE-INTEGRITY-SHA256")
        if not has_mi and not has_sha:
            return self._challenge_without_integrity(rec)
        username_raw, realm, nonce, uhash = i.value("USERNAME"), i.value("REALM"), i.value("NONCE"), i.value("USERHASH")
        if (username_raw is None and uhash is None) or realm is None or nonce is None:
            return self._missing_credentials(rec)
        if username_raw is not None and not self._answers_username(username_raw):
            return None
        if self._stale(nonce, rec.src):
            return self.challenge(rec, 438)
        features = parse_nonce_features(nonce) or SecurityFeature.NONE
        username = ""
        if username_raw is not None:
            username = username_raw.decode("utf-8", "replace")
        elif uhash is not None:
            username = next((u for u in self.users if userhash(u, self.realm) == uhash), "")
        algorithm = PasswordAlgorithm.MD5
        if features & SecurityFeature.PASSWORD_ALGORITHMS:
            chosen, offered = i.value("PASSWORD-ALGORITHM"), i.value("PASSWORD-ALGORITHMS")
            if chosen is not None or offered is not None:
                expected = bytes(self._algorithms_attribute())[4:]
                if chosen is None or offered != expected:
                    return self.error(rec, 400)
                value = struct.unpack("!H", chosen[:2])[0]
                if value not in (PasswordAlgorithm.MD5, PasswordAlgorithm.SHA256):
                    return self.error(rec, 400)
                algorithm = PasswordAlgorithm(value)
        password = self.users.get(username)
        if password is None:
            return self._unknown_user(rec)
        key = long_term_key(username, self.realm, password, algorithm)
        sha256 = has_sha and not has_mi
        if not self._integrity_ok(rec, key, sha256):
            return self.challenge(rec)
        return username, key, self._answer_with_sha256(sha256)

    def _challenge_without_integrity(self, rec: Received) -> bytes:
        """A request without MESSAGE-INTEGRITY(-SHA256) gets 401 with REALM and NONCE (RFC 8489 §9.2.4)."""
        return self.challenge(rec)

    def _missing_credentials(self, rec: Received) -> bytes:
        """USERNAME (or USERHASH), REALM or NONCE missing beside MESSAGE-INTEGRITY: 400 (RFC 8489 §9.2.4)."""
        return self.error(rec, 400)

    def _answers_username(self, username: bytes) -> bool:
        """Every USERNAME gets an answer, even one longer than the 513 bytes of RFC 8489 §14.3."""
        return True

    def _stale(self, nonce: bytes, source: Address) -> bool:
        """A NONCE this server did not give to ``source``, or one older than ``nonce_lifetime``, is stale: 438
        (RFC 8489 §9.2.4)."""
        issued = self._nonces.get(nonce)
        if issued is None or issued[0] != source:
            return True
        return self.nonce_lifetime is not None and self._loop.time() - issued[1] > self.nonce_lifetime

    def _unknown_user(self, rec: Received) -> bytes:
        """An unknown username gets 401, as a wrong password does (RFC 8489 §9.2.4)."""
        return self.challenge(rec)

    def _integrity_ok(self, rec: Received, key: bytes, sha256: bool) -> bool:
        """MESSAGE-INTEGRITY(-SHA256) checks with the user's key; otherwise 401 (RFC 8489 §9.2.4)."""
        return check_integrity(rec.data, key, "sha256" if sha256 else "sha1") is None

    def _answer_with_sha256(self, request_sha256: bool) -> bool:
        """Responses carry the integrity attribute the request used (RFC 8489 §9.2.4)."""
        return request_sha256

    # -- requests ---------------------------------------------------------------------------------------------

    async def _process(self, rec: Received) -> bytes | None:
        i = rec.index
        assert i is not None
        method = i.method
        if method == BINDING:
            host, port = self._reflexive(rec.src)
            return self._finish(BINDING, SUCCESS, rec.transaction_id, [_xma(host, port)], None)
        if method not in (ALLOCATE, REFRESH, CREATE_PERMISSION, CHANNEL_BIND):
            return self.error(rec, 400)
        unauthenticated = self._before_authentication(rec)
        if unauthenticated is not None:
            return unauthenticated
        auth = self._authenticate(rec)
        if not isinstance(auth, tuple):
            return auth
        username, key, sha256 = auth
        refused = self._dont_fragment_error(rec)
        if refused is not None:
            return self.error(rec, refused, key=key, sha256=sha256)
        unknown = self._unknown_attributes(rec)
        if unknown:
            return self.error(rec, 420, key=key, sha256=sha256, extra=[attr.UnknownAttributes(types=unknown)])
        if method == ALLOCATE:
            return await self._allocate(rec, username, key, sha256)
        a = self._allocation_for(rec, username)
        if a is None:
            return self._no_allocation(rec, key, sha256)
        if self._wrong_credentials(a, username):
            return self.error(rec, 441, key=key, sha256=sha256)
        if method == REFRESH:
            return self._refresh(rec, a, key, sha256)
        if method == CREATE_PERMISSION:
            bad = self._check_peers(rec)
            if bad is not None:
                return self.error(rec, bad, key=key, sha256=sha256)
            self._permit(a, rec)
            return self._finish(method, SUCCESS, rec.transaction_id, [], key, sha256)
        return self._channel_bind(rec, a, key, sha256)

    def _before_authentication(self, rec: Received) -> bytes | None:
        """The answer to a request before it is authenticated: none, every TURN request is (RFC 8656 §5)."""
        return None

    def _dont_fragment_error(self, rec: Received) -> int | None:
        """No error of its own for DONT-FRAGMENT: this server cannot set DF, so the attribute is in the 420
        (RFC 8656 §7.2 step 4)."""
        return None

    def _unknown_attributes(self, rec: Received) -> list[int]:
        """The comprehension-required attributes not understood, for a 420 (RFC 8489 §6.3.1); DONT-FRAGMENT in an
        Allocate among them, as this server cannot set DF (RFC 8656 §7.2 step 4)."""
        i = rec.index
        assert i is not None
        unknown = [t for t, _, _ in i.attributes if t < 0x8000 and t not in _UNDERSTOOD]
        if i.method == ALLOCATE and i.has("DONT-FRAGMENT"):
            unknown.append(attribute_code("DONT-FRAGMENT"))
        return unknown

    def _allocation_for(self, rec: Received, username: str) -> Allocation | None:
        """The allocation a request reaches is the one of its 5-tuple (RFC 8656 §5)."""
        return self._live(rec.src)

    def _no_allocation(self, rec: Received, key: bytes, sha256: bool) -> bytes:
        """A non-Allocate request from a 5-tuple without an allocation gets 437 (RFC 8656 §5)."""
        return self.error(rec, 437, key=key, sha256=sha256)

    def _wrong_credentials(self, a: Allocation, username: str) -> bool:
        """A request on an allocation authenticated as another username than the one that made it: 441
        (RFC 8656 §5)."""
        return a.username != username

    def _check_peers(self, rec: Received) -> int | None:
        """400 for a missing or malformed XOR-PEER-ADDRESS, 443 for a peer of another family than the relay
        (RFC 8656 §10.2, §12.2)."""
        assert rec.msg is not None
        peers = rec.msg.attrs("XOR-PEER-ADDRESS")
        if not peers or any(not hasattr(p, "address") for p in peers):
            return 400
        if any(not self._peer_family_matches(int(p.family)) for p in peers):
            return 443
        return None

    def _peer_family_matches(self, family: int) -> bool:
        """The relays are IPv4: an IPv6 peer is a family mismatch (RFC 8656 §10.2, 443 in §19)."""
        return family == 1

    def _permit(self, a: Allocation, rec: Received) -> None:
        assert rec.msg is not None
        expiry = self._loop.time() + self.permission_lifetime
        how = "ChannelBind" if rec.is_type(CHANNEL_BIND, REQUEST) else "CreatePermission"
        for p in rec.msg.attrs("XOR-PEER-ADDRESS"):
            if hasattr(p, "address"):
                a.permissions[self._permission_key((str(p.address), int(p.port)))] = expiry
                self.installed.append((self._loop.time(), a.client, str(p.address), how))

    def _permission_key(self, peer: Address) -> str:
        """A permission is for the peer's IP address alone, its port ignored (RFC 8656 §9)."""
        return peer[0]

    def _permitted(self, a: Allocation, peer: Address) -> bool:
        """A live permission of this allocation for the peer (RFC 8656 §9; 300 s, not shared between allocations)."""
        return a.permissions.get(self._permission_key(peer), 0.0) > self._loop.time()

    def _granted(self, requested: int | None) -> int:
        """max(default, min(requested, maximum)); the default without LIFETIME (RFC 8656 §7.2, §8.2)."""
        if self.grant_lifetime is not None:
            return self.grant_lifetime
        if requested is None:
            return self.default_lifetime
        computed = min(requested, self.max_lifetime)
        return computed if computed > self.default_lifetime else self.default_lifetime

    async def _allocate(self, rec: Received, username: str, key: bytes, sha256: bool) -> bytes | None:
        i, msg = rec.index, rec.msg
        assert i is not None and msg is not None
        existing = self._live(rec.src)
        if existing is not None and self._refuses_second_allocation():
            return self.error(rec, 437, key=key, sha256=sha256)
        bad_transport = self._transport_error(i.value("REQUESTED-TRANSPORT"))
        if bad_transport is not None:
            return self.error(rec, bad_transport, key=key, sha256=sha256)
        even = i.value("EVEN-PORT")
        if even is not None and not self._answers_even_port():
            return None
        raf, aaf, token = self._family_attributes(rec)
        if (raf is not None and aaf is not None) or (aaf is not None and aaf[:1] == b"\x01"):
            return self.error(rec, 400, key=key, sha256=sha256)
        if token is not None and (even is not None or raf is not None or aaf is not None):
            return self.error(rec, 400, key=key, sha256=sha256)
        if even is not None and even[:1] and even[0] & 0x80 and aaf is not None:
            return self.error(rec, 400, key=key, sha256=sha256)
        if (raf is not None and raf[:1] != b"\x01") or aaf is not None:
            return self.error(rec, 440, key=key, sha256=sha256)
        if self.user_quota is not None and len(self._quota_allocations(username, rec.src)) >= self.user_quota:
            return self.error(rec, 486, key=key, sha256=sha256)
        reserved: Endpoint | None = None
        token_out: bytes | None = None
        if token is not None:
            relay = self._tokens.pop(token, None)
            if relay is None:
                return self.error(rec, 508, key=key, sha256=sha256)
        elif even is not None:
            pair = await self._even_pair(bool(even[:1] and even[0] & 0x80))
            if pair is None:
                return self.error(rec, 508, key=key, sha256=sha256)
            relay, reserved = pair
            if reserved is not None:
                token_out = secrets.token_bytes(8)
                self._tokens[token_out] = reserved
        else:
            relay = await self._new_relay(raf)
        lt = i.value("LIFETIME")
        lifetime = self._granted(struct.unpack("!I", lt)[0] if lt is not None and len(lt) == 4 else None)
        a = Allocation(rec.src, username, key, relay, self._loop.time() + lifetime, integrity_sha256=sha256)
        if existing is not None:
            self._delete(existing)
        self.allocations[rec.src] = a
        relay.on_datagram(lambda r, a=a: self._from_peer(a, r))  # type: ignore[misc]
        rhost, rport = relay.address if self.report_relayed is None else self.report_relayed(a)
        mapped = self._allocate_mapped_address(rec.src)
        attrs: list[Any] = [
            attr.XorRelayedAddress(family=2 if ":" in rhost else 1, address=rhost, port=rport),
            attr.Lifetime(lifetime=lifetime),
        ]
        if token_out is not None:
            attrs.append(attr.ReservationToken(token=token_out))
        attrs.append(attr.XorMappedAddress(family=1, address=mapped[0], port=mapped[1]))
        return self._finish(ALLOCATE, SUCCESS, rec.transaction_id, attrs, key, sha256)

    def _refuses_second_allocation(self) -> bool:
        """An Allocate on a 5-tuple that already has an allocation gets 437 (RFC 8656 §7.2 step 2)."""
        return True

    def _transport_error(self, transport: bytes | None) -> int | None:
        """REQUESTED-TRANSPORT missing or malformed: 400; not UDP: 442 (RFC 8656 §7.2 step 3)."""
        if transport is None or len(transport) != 4:
            return 400
        return 442 if transport[0] != 17 else None

    def _answers_even_port(self) -> bool:
        """An Allocate with EVEN-PORT gets an even relayed port or 508 (RFC 8656 §7.2)."""
        return True

    def _family_attributes(self, rec: Received) -> tuple[bytes | None, bytes | None, bytes | None]:
        """REQUESTED-ADDRESS-FAMILY, ADDITIONAL-ADDRESS-FAMILY and RESERVATION-TOKEN, all checked (RFC 8656 §7.2)."""
        i = rec.index
        assert i is not None
        return i.value("REQUESTED-ADDRESS-FAMILY"), i.value("ADDITIONAL-ADDRESS-FAMILY"), i.value("RESERVATION-TOKEN")

    def _quota_allocations(self, username: str, source: Address) -> list[Allocation]:
        """The allocations the quota counts: the username's, from any 5-tuple (RFC 8656 §7.2: 486)."""
        return [a for a in self.allocations.values() if a.username == username]

    async def _new_relay(self, family: bytes | None) -> Endpoint:
        """An IPv4 relay: the default family when REQUESTED-ADDRESS-FAMILY is absent (RFC 8656 §7.2)."""
        return await self._relay_endpoint()

    def _allocate_mapped_address(self, source: Address) -> Address:
        """XOR-MAPPED-ADDRESS in an Allocate success: the client's reflexive address (RFC 8656 §7.2)."""
        return self._reflexive(source)

    def _reflexive(self, source: Address) -> Address:
        """The client's source as this server sees it, through ``mapping`` when there is one."""
        return self.mapping(source) if self.mapping is not None else source

    async def _relay_endpoint(self, port: int | None = None) -> Endpoint:
        """A relay socket from 49152-65535 (RFC 8656 §7.2)."""
        for _ in range(64):
            candidate = port if port is not None else random.randint(49152, 65535)
            with contextlib.suppress(OSError):
                return await Endpoint.open(self.capture, self.relay_host, candidate, "relay")
            if port is not None:
                break
        raise HarnessError("no free relay port in 49152-65535")

    async def _even_pair(self, reserve: bool) -> tuple[Endpoint, Endpoint | None] | None:
        for _ in range(64):
            base = random.randrange(49152, 65534, 2)
            try:
                relay = await Endpoint.open(self.capture, self.relay_host, base, "relay")
            except OSError:
                continue
            if not reserve:
                return relay, None
            try:
                nxt = await Endpoint.open(self.capture, self.relay_host, base + 1, "reserved relay")
            except OSError:
                relay.close()
                continue
            return relay, nxt
        return None

    def _refresh(self, rec: Received, a: Allocation, key: bytes | None, sha256: bool) -> bytes:
        i = rec.index
        assert i is not None
        lt = i.value("LIFETIME")
        requested = struct.unpack("!I", lt)[0] if lt is not None and len(lt) == 4 else None
        if requested == 0 and self._lifetime_zero_deletes():
            self._delete(a)
            return self._finish(REFRESH, SUCCESS, rec.transaction_id, [attr.Lifetime(lifetime=0)], key, sha256)
        lifetime = self._granted(requested if requested != 0 else None)
        a.expires = self._loop.time() + lifetime
        return self._finish(REFRESH, SUCCESS, rec.transaction_id, self._refresh_attributes(lifetime), key, sha256)

    def _lifetime_zero_deletes(self) -> bool:
        """A Refresh with LIFETIME 0 deletes the allocation (RFC 8656 §8.2)."""
        return True

    def _refresh_attributes(self, lifetime: int) -> list[Any]:
        """A Refresh success carries the granted LIFETIME (RFC 8656 §8.2)."""
        return [attr.Lifetime(lifetime=lifetime)]

    def _channel_bind(self, rec: Received, a: Allocation, key: bytes, sha256: bool) -> bytes:
        msg = rec.msg
        assert msg is not None
        number_attr = msg.attr("CHANNEL-NUMBER")
        bad = self._check_peers(rec)
        if number_attr is None or not hasattr(number_attr, "channel") or bad == 400:
            return self.error(rec, 400, key=key, sha256=sha256)
        if bad is not None:
            return self.error(rec, bad, key=key, sha256=sha256)
        number = int(number_attr.channel)
        p = msg.attr("XOR-PEER-ADDRESS")
        assert p is not None
        peer = (str(p.address), int(p.port))
        now = self._loop.time()
        live = {n: v for n, v in a.channels.items() if v[1] > now}
        if not self._channel_number_valid(number) or self._channel_conflict(live, number, peer):
            return self.error(rec, 400, key=key, sha256=sha256)
        a.channels[number] = (peer, now + self.channel_lifetime)
        self._permit(a, rec)
        return self._finish(CHANNEL_BIND, SUCCESS, rec.transaction_id, [], self._channel_bind_key(key), sha256)

    def _channel_number_valid(self, number: int) -> bool:
        """Channel numbers are 0x4000-0x4FFF (RFC 8656 §12.2)."""
        return 0x4000 <= number <= 0x4FFF

    def _channel_conflict(self, live: dict[int, tuple[Address, float]], number: int, peer: Address) -> bool:
        """A bound number stays with its peer and a bound peer with its number until the binding expires
        (RFC 8656 §12.2)."""
        return (number in live and live[number][0] != peer) or any(
            v[0] == peer and n != number for n, v in live.items()
        )

    def _channel_bind_key(self, key: bytes) -> bytes | None:
        """A ChannelBind success is integrity-protected with the request's key (RFC 8489 §9.2.4)."""
        return key

    # -- data (RFC 8656 §11, §12) ---------------------------------------------------------------------------

    def _send_indication(self, rec: Received) -> None:
        """A Send indication with XOR-PEER-ADDRESS and DATA is relayed to a permitted peer; others are dropped
        (RFC 8656 §11.2)."""
        a = self._live(rec.src)
        if a is None or rec.index is None:
            return
        peer = xor_address(rec, "XOR-PEER-ADDRESS")
        data = rec.index.value("DATA")
        if peer is None or data is None or ":" in peer[0]:
            self.dropped.append((rec, "malformed Send indication"))
            return
        self._relay_send(rec, a, peer, data)

    def _relay_send(self, rec: Received, a: Allocation, peer: Address, data: bytes) -> None:
        """The DATA of a Send indication to the peer, when it has a permission (RFC 8656 §11.2)."""
        if not self._permitted(a, peer):
            self.dropped.append((rec, f"Send indication to {format_address(peer)} without a permission"))
            return
        a.relay.send(data, peer, "relayed from Send indication")

    def _channel_data(self, rec: Received) -> None:
        """ChannelData on a live binding whose peer has a permission is relayed; others are dropped
        (RFC 8656 §12.6)."""
        a = self._live(rec.src)
        if a is None or len(rec.data) < 4:
            return
        number, length = struct.unpack_from("!HH", rec.data)
        bound = self._bound_channel(a, number)
        length = self._channel_data_length(length, len(rec.data) - 4)
        if bound is None or len(rec.data) < 4 + length:
            self.dropped.append((rec, f"ChannelData on unbound channel 0x{number:04x} or short"))
            return
        peer, expiry = bound
        now = self._loop.time()
        if expiry <= now or not self._permitted(a, peer):
            self.dropped.append((rec, f"ChannelData to {format_address(peer)} without a live binding or permission"))
            return
        self._relay_channel_data(a, peer, rec.data[4 : 4 + length], now)

    def _bound_channel(self, a: Allocation, number: int) -> tuple[Address, float] | None:
        """The peer and expiry bound to a channel number; ChannelData on an unbound one is dropped
        (RFC 8656 §12.6)."""
        return a.channels.get(number)

    def _channel_data_length(self, length: int, available: int) -> int:
        """The Length field as sent: a datagram shorter than it is dropped (RFC 8656 §12.6)."""
        return length

    def _relay_channel_data(self, a: Allocation, peer: Address, data: bytes, now: float) -> None:
        """ChannelData's data to the peer, an empty one as a 0-byte datagram; relaying refreshes neither the
        permission nor the allocation (RFC 8656 §12.6, §9, §6)."""
        if not data:
            _send_empty(a.relay, peer)
            return
        a.relay.send(data, peer, "relayed from ChannelData")

    def _relays_for(self, a: Allocation, now: float) -> bool:
        """Only a live allocation relays: a deleted or expired one (deleted now) drops peer data (RFC 8656 §6)."""
        if a.deleted:
            return False
        if a.expires <= now:
            self._delete(a)
            return False
        return True

    def _from_peer(self, a: Allocation, rec: Received) -> None:
        now = self._loop.time()
        if not self._relays_for(a, now) or not self._permitted(a, rec.src):
            return
        channel = next(
            (n for n, (p, exp) in a.channels.items() if p == rec.src and exp > now),
            None,
        )
        if channel is not None and not self.prefer_data_indication:
            self.endpoint.send(bytes(ChannelData(channel=channel, data=rec.data)), a.client, "ChannelData to client")
            return
        host, port = self._data_indication_peer(rec.src)
        attrs: list[Any] = [attr.XorPeerAddress(family=1, address=host, port=port), attr.Data(data=rec.data)]
        if self.fingerprint:
            attrs.append(attr.Fingerprint())
        msg = STUN(type=message_type(DATA, INDICATION), attributes=attrs)
        self.endpoint.send(bytes(msg), a.client, "Data indication")

    def _data_indication_peer(self, source: Address) -> Address:
        """A Data indication's XOR-PEER-ADDRESS is the peer's source transport address (RFC 8656 §11.3)."""
        return source

    def data_indication(self, client: Address, peer: Address | None, data: bytes | None) -> None:
        """Send a (possibly malformed) Data indication to a client (RFC 8656 §11.3)."""
        attrs: list[Any] = []
        if peer is not None:
            attrs.append(attr.XorPeerAddress(family=1, address=peer[0], port=peer[1]))
        if data is not None:
            attrs.append(attr.Data(data=data))
        attrs.append(attr.Fingerprint())
        self.endpoint.send(bytes(STUN(type=message_type(DATA, INDICATION), attributes=attrs)), client, "crafted")


_METHOD_NAMES = {
    BINDING: "Binding",
    ALLOCATE: "Allocate",
    REFRESH: "Refresh",
    CREATE_PERMISSION: "CreatePermission",
    CHANNEL_BIND: "ChannelBind",
}


def _send_empty(ep: Endpoint, to: Address) -> None:
    """Send a 0-byte datagram (asyncio's ``sendto`` drops empty data, RFC 8656 §12.6 needs it)."""
    transport = ep._transport  # the endpoint's own socket: Endpoint.send cannot send b""
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    with contextlib.suppress(OSError), socket.socket(sock.family, sock.type, fileno=os.dup(sock.fileno())) as dup:
        dup.sendto(b"", to)
        ep.capture.record(ep.address, to, b"", "out", note="empty datagram", endpoint=ep.label)


def _xma(host: str, port: int) -> Any:
    return attr.XorMappedAddress(family=2 if ":" in host else 1, address=host, port=port)
