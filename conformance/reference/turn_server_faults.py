"""The reference TURN server with switchable faults: the harness's scripted :class:`TurnServer`, deviating on purpose.

Each fault of :data:`~conformance.reference.faults.TURN_SERVER_FAULTS` (names and descriptions live there) overrides
one of the server's decision methods, so a self-test can show that the case checking that requirement fails. Only the
reference TURN IUT (``conformance.reference.turn``) builds it; the harness's own server never deviates.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Iterable
from typing import Any

from conformance.packets import ALLOCATE, BINDING, CREATE_PERMISSION, REFRESH, REQUEST, SUCCESS, attr
from conformance.protocol.keys import SecurityFeature
from conformance.reference.faults import TURN_SERVER_FAULTS
from conformance.tester.capture import Capture
from conformance.tester.endpoint import Address, Endpoint, Received
from conformance.tester.turn_client import xor_address
from conformance.tester.turn_server import Allocation, TurnServer, _send_empty

__all__ = ["FaultyTurnServer"]


class FaultyTurnServer(TurnServer):
    """The scripted TURN server with the named faults of ``TURN_SERVER_FAULTS`` switched on."""

    def __init__(self, endpoint: Endpoint, capture: Capture, *, faults: Iterable[str] = (), **kw: Any) -> None:
        self.faults = frozenset(faults)
        unknown = sorted(self.faults - TURN_SERVER_FAULTS.keys())
        if unknown:
            raise ValueError(f"unknown TURN server faults: {', '.join(unknown)}")
        super().__init__(endpoint, capture, **kw)
        self._shared_nonce = self._own_nonce()
        self._last_permitted: dict[Address, Address] = {}
        if "no-software" in self.faults:
            self.software = False
        if "data-indication-despite-channel" in self.faults:
            self.prefer_data_indication = True
        if "forget-retransmission" in self.faults:
            self.retransmission_window = 0.0  # loop time never runs backwards: no response is resent
        if "require-auth-for-binding" in self.faults:
            self.script(lambda r: r.is_type(BINDING, REQUEST), self.challenge, times=None)

    # -- authentication --------------------------------------------------------------------------------------

    def _nonce_value(self, features: SecurityFeature | None = None) -> bytes:
        return self._shared_nonce if "shared-nonce" in self.faults else self._own_nonce(features)

    def _own_nonce(self, features: SecurityFeature | None = None) -> bytes:
        if "rfc5389-server" in self.faults:  # a legal variant: an RFC 5389 server's opaque nonce
            return secrets.token_hex(12).encode()
        return super()._nonce_value(features)

    def _stale(self, nonce: bytes, source: Address) -> bool:
        if "stale-nonce-not-438" in self.faults:
            return False
        issued = self._nonces.get(nonce)
        if "shared-nonce" in self.faults and issued is not None:
            source = issued[0]  # any source may use it
        return super()._stale(nonce, source)

    def _challenge_padding(self) -> list[Any]:
        if "amplify-challenges" in self.faults:
            return [attr.Software(software=b"x" * 500)]
        return super()._challenge_padding()

    def _challenge_without_integrity(self, rec: Received) -> bytes:
        if "no-realm-in-401" in self.faults:
            return self.error(rec, 401, extra=[attr.Nonce(nonce=self.challenge_nonce(rec.src))])
        return super()._challenge_without_integrity(rec)

    def _missing_credentials(self, rec: Received) -> bytes:
        if "no-400-on-missing-realm" in self.faults:
            return self.challenge(rec)
        return super()._missing_credentials(rec)

    def _answers_username(self, username: bytes) -> bool:
        return not ("crash-on-long-username" in self.faults and len(username) > 513)

    def _unknown_user(self, rec: Received) -> bytes:
        if "unknown-user-gets-400" in self.faults:
            return self.error(rec, 400)
        return super()._unknown_user(rec)

    def _integrity_ok(self, rec: Received, key: bytes, sha256: bool) -> bool:
        return "accept-wrong-key" in self.faults or super()._integrity_ok(rec, key, sha256)

    def _answer_with_sha256(self, request_sha256: bool) -> bool:
        return request_sha256 or "md5-answered-with-sha256" in self.faults

    # -- requests --------------------------------------------------------------------------------------------

    def _before_authentication(self, rec: Received) -> bytes | None:
        i = rec.index
        assert i is not None
        if i.has("MESSAGE-INTEGRITY"):
            return None
        if i.method == CREATE_PERMISSION and "unauthenticated-permissions" in self.faults:
            a = self._live(rec.src)
            if a is not None:
                self._permit(a, rec)
                return self._finish(CREATE_PERMISSION, SUCCESS, rec.transaction_id, [], None)
        if i.method == REFRESH and "unauthenticated-refresh" in self.faults:
            a = self._live(rec.src)
            if a is not None:
                return self._refresh(rec, a, None, False)
        return None

    def _dont_fragment_error(self, rec: Received) -> int | None:
        i = rec.index
        assert i is not None
        if "dont-fragment-400" in self.faults and i.method == ALLOCATE and i.has("DONT-FRAGMENT"):
            return 400
        return super()._dont_fragment_error(rec)

    def _unknown_attributes(self, rec: Received) -> list[int]:
        return [] if "ignore-unknown-attributes" in self.faults else super()._unknown_attributes(rec)

    def _allocation_for(self, rec: Received, username: str) -> Allocation | None:
        a = super()._allocation_for(rec, username)
        if a is None and "allocation-by-username" in self.faults:
            a = next((x for x in self.allocations.values() if x.username == username), None)
        return a

    def _no_allocation(self, rec: Received, key: bytes, sha256: bool) -> bytes:
        if rec.is_type(REFRESH, REQUEST) and "no-437-without-allocation" in self.faults:
            return self._finish(REFRESH, SUCCESS, rec.transaction_id, [attr.Lifetime(lifetime=600)], key, sha256)
        return super()._no_allocation(rec, key, sha256)

    def _wrong_credentials(self, a: Allocation, username: str) -> bool:
        return "no-441" not in self.faults and super()._wrong_credentials(a, username)

    def _check_peers(self, rec: Received) -> int | None:
        assert rec.msg is not None
        if (
            "accept-permission-without-peer" in self.faults
            and not rec.msg.attrs("XOR-PEER-ADDRESS")
            and rec.is_type(CREATE_PERMISSION, REQUEST)
        ):
            return None
        return super()._check_peers(rec)

    def _peer_family_matches(self, family: int) -> bool:
        return "accept-ipv6-peer" in self.faults or super()._peer_family_matches(family)

    # -- allocations, permissions, channels ---------------------------------------------------------------------

    def _refuses_second_allocation(self) -> bool:
        return "no-437-on-second-allocate" not in self.faults

    def _transport_error(self, transport: bytes | None) -> int | None:
        return None if "no-requested-transport-check" in self.faults else super()._transport_error(transport)

    def _answers_even_port(self) -> bool:
        return "ignore-even-port" not in self.faults

    def _family_attributes(self, rec: Received) -> tuple[bytes | None, bytes | None, bytes | None]:
        if "skip-allocate-family-checks" in self.faults:
            return None, None, None
        return super()._family_attributes(rec)

    def _quota_allocations(self, username: str, source: Address) -> list[Allocation]:
        mine = super()._quota_allocations(username, source)
        if "quota-by-address" in self.faults:
            mine = [a for a in mine if a.client[0] == source[0] and a.client[1] == source[1]]
        return mine

    async def _new_relay(self, family: bytes | None) -> Endpoint:
        if "ipv6-relay-by-default" in self.faults and family is None:
            return await Endpoint.open(self.capture, "::1", 0, "relay")
        return await super()._new_relay(family)

    async def _relay_endpoint(self, port: int | None = None) -> Endpoint:
        if "low-relay-ports" in self.faults:
            return await Endpoint.open(self.capture, self.relay_host, random.randint(20000, 30000), "relay")
        return await super()._relay_endpoint(port)

    def _allocate_mapped_address(self, source: Address) -> Address:
        host, port = super()._allocate_mapped_address(source)
        return (host, port ^ 1) if "wrong-mapped-address" in self.faults else (host, port)

    def _granted(self, requested: int | None) -> int:
        if self.grant_lifetime is None and requested is None and "default-lifetime-300" in self.faults:
            return 300
        if self.grant_lifetime is None and requested is not None and "short-lifetime-granted" in self.faults:
            return min(requested, self.max_lifetime)
        return super()._granted(requested)

    def _lifetime_zero_deletes(self) -> bool:
        return "ignore-lifetime-zero" not in self.faults

    def _refresh_attributes(self, lifetime: int) -> list[Any]:
        return [] if "lifetime-missing-in-refresh" in self.faults else super()._refresh_attributes(lifetime)

    def _release(self, a: Allocation) -> None:
        if "relay-after-delete" not in self.faults:
            super()._release(a)

    def _permit(self, a: Allocation, rec: Received) -> None:
        super()._permit(a, rec)
        assert rec.msg is not None
        for p in rec.msg.attrs("XOR-PEER-ADDRESS"):
            if hasattr(p, "address"):
                self._last_permitted[a.client] = (str(p.address), int(p.port))

    def _permission_key(self, peer: Address) -> str:
        if "permission-port-sensitive" in self.faults:
            return f"{peer[0]}:{peer[1]}"
        return super()._permission_key(peer)

    def _permitted(self, a: Allocation, peer: Address) -> bool:
        if "relay-without-permission" in self.faults:
            return True
        now = self._loop.time() if "permissions-never-expire" not in self.faults else float("-inf")
        pools = [a]
        if "permissions-shared-across-allocations" in self.faults:
            pools = list(self.allocations.values())
        key = self._permission_key(peer)
        return any(x.permissions.get(key, 0.0) > now for x in pools)

    def _channel_number_valid(self, number: int) -> bool:
        return "accept-bad-channel-number" in self.faults or super()._channel_number_valid(number)

    def _channel_conflict(self, live: dict[int, tuple[Address, float]], number: int, peer: Address) -> bool:
        return "allow-channel-rebinding" not in self.faults and super()._channel_conflict(live, number, peer)

    def _channel_bind_key(self, key: bytes) -> bytes | None:
        return None if "no-integrity-on-channelbind" in self.faults else super()._channel_bind_key(key)

    # -- data ------------------------------------------------------------------------------------------------

    def _is_channel_data(self, first: int) -> bool:
        if "relay-bad-channel-data" in self.faults:
            return 0x40 <= first <= 0x7F
        return super()._is_channel_data(first)

    def _send_indication(self, rec: Received) -> None:
        if "drop-send-indications" in self.faults:
            return
        if "lenient-send-indications" in self.faults and self._lenient_send(rec):
            return
        super()._send_indication(rec)

    def _lenient_send(self, rec: Received) -> bool:
        """Relay a Send indication without DATA (as an empty datagram) or with a missing or IPv6 peer (to the last
        permitted one); False: the usual handling."""
        a = self._live(rec.src)
        if a is None or rec.index is None:
            return False
        peer = xor_address(rec, "XOR-PEER-ADDRESS")
        data = rec.index.value("DATA")
        if peer is None or ":" in peer[0]:
            peer = self._last_permitted.get(a.client)
        if data is None and peer is not None:
            _send_empty(a.relay, peer)
            return True
        if peer is not None and data is not None:
            self._relay_send(rec, a, peer, data)
            return True
        return False

    def _bound_channel(self, a: Allocation, number: int) -> tuple[Address, float] | None:
        bound = super()._bound_channel(a, number)
        lenient = {"relay-on-unbound-channel", "relay-bad-channel-data"} & self.faults
        if lenient and bound is None and a.channels:
            bound = next(iter(a.channels.values()))
        return bound

    def _channel_data_length(self, length: int, available: int) -> int:
        if "relay-bad-channel-data" in self.faults:
            return min(length, available)
        return super()._channel_data_length(length, available)

    def _relay_channel_data(self, a: Allocation, peer: Address, data: bytes, now: float) -> None:
        if not data and "drop-empty-channeldata" in self.faults:
            return
        if "channeldata-refreshes-permission" in self.faults:
            a.permissions[peer[0]] = now + self.permission_lifetime
        if "data-refreshes-allocation" in self.faults:
            a.expires = now + self.default_lifetime
        super()._relay_channel_data(a, peer, data, now)

    def _relays_for(self, a: Allocation, now: float) -> bool:
        return "relay-after-delete" in self.faults or super()._relays_for(a, now)

    def _data_indication_peer(self, source: Address) -> Address:
        host, port = super()._data_indication_peer(source)
        return (host, port ^ 1) if "data-indication-wrong-peer" in self.faults else (host, port)
