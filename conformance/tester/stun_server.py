"""A scripted STUN Binding server on a harness endpoint, for IUTs that gather through ``stun_servers`` (RFC 8489 §6.3).

By default it answers every Binding request with a success carrying XOR-MAPPED-ADDRESS (the request's source) and
FINGERPRINT, as a plain STUN server does (RFC 8489 §6.3.1.1), and a cookie-less request from an RFC 3489 client with
MAPPED-ADDRESS, as an RFC 5389 server should (RFC 5389 §12.2). :attr:`mapping` scripts the mapped address (a NAT in
front of the IUT: :func:`nat_mapping` gives another loopback address and port), and ``rfc3489=True`` answers every
request in the RFC 3489 style: MAPPED-ADDRESS with SOURCE-ADDRESS and CHANGED-ADDRESS, no XOR-MAPPED-ADDRESS and no
FINGERPRINT, the 16 bytes after the length echoed (RFC 5389 §12.1). A case replaces the answer with
:attr:`responder` (request -> bytes, or None for silence), e.g. a 300 Try Alternate with ALTERNATE-SERVER (RFC 8489
§10). Every request received is kept in :attr:`requests`, and :attr:`records` pairs each with the mapped address
reported (None when the answer reported none).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from conformance.packets import BINDING, ERROR, REQUEST, STUN, SUCCESS, ErrorCode, attr, attribute_code, message_type
from conformance.tester.capture import Capture
from conformance.tester.endpoint import Address, Endpoint, Received

__all__ = ["COOKIE", "NAT_HOST", "StunRecord", "StunServer", "nat_mapping"]

COOKIE = bytes.fromhex("2112a442")
#: The address a scripted NAT maps IUT sockets to: loopback, but never an address the IUT binds.
NAT_HOST = "127.0.0.99"


def nat_mapping(host: str = NAT_HOST, shift: int = 1111) -> Callable[[Address], Address]:
    """A scripted NAT: every source maps to ``host`` with its port shifted by ``shift`` (RFC 4787 §4.1)."""

    def mapped(src: Address) -> Address:
        return host, (src[1] - 1024 + shift) % 64511 + 1024

    return mapped


def _is_binding_request(data: bytes) -> bool:
    """A Binding request by its header alone, with or without the magic cookie (RFC 3489 §11.1, RFC 5389 §6)."""
    if len(data) < 20 or data[0] & 0xC0:
        return False
    mtype, length = struct.unpack("!HH", data[:4])
    return bool(mtype == message_type(BINDING, REQUEST) and length == len(data) - 20 and length % 4 == 0)


def _address_tlv(kind: int, address: Address) -> bytes:
    """An RFC 3489 §11.2.1 address attribute (IPv4; MAPPED-ADDRESS, SOURCE-ADDRESS, CHANGED-ADDRESS)."""
    host, port = address
    octets = bytes(int(x) for x in host.split("."))
    return struct.pack("!HHBBH", kind, 8, 0, 1, port) + octets


@dataclass
class StunRecord:
    """One Binding request and the mapped address the server reported in answer (None: no success sent)."""

    request: Received
    mapped: Address | None

    @property
    def transaction(self) -> bytes:
        """The 16 bytes after the length field: the RFC 3489 transaction ID, or cookie + RFC 5389 transaction ID."""
        return self.request.data[4:20]

    @property
    def attribute_types(self) -> list[int]:
        """The attribute types of the request, read from the TLVs (works without the magic cookie too)."""
        data, out, off = self.request.data, [], 20
        while off + 4 <= len(data):
            kind, length = struct.unpack_from("!HH", data, off)
            out.append(kind)
            off += 4 + (length + 3) // 4 * 4
        return out


class StunServer:
    """A Binding server on one endpoint; the answer is scriptable per request."""

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        mapping: Callable[[Address], Address] | None = None,
        rfc3489: bool = False,
    ) -> None:
        self.endpoint = endpoint
        self.requests: list[Received] = []
        self.records: list[StunRecord] = []
        #: Overrides the answer: a function (request) -> bytes to send, or None for silence.
        self.responder: Callable[[Received], bytes | None] | None = None
        #: The mapped address reported for a request's source (default: the source itself, no NAT).
        self.mapping = mapping
        self.rfc3489 = rfc3489
        self._unhook = endpoint.on_datagram(self._on_datagram)

    @classmethod
    async def open(cls, capture: Capture, host: str = "127.0.0.1", label: str = "STUN server", **kw: Any) -> StunServer:
        """A server on a new endpoint (``mapping`` and ``rfc3489`` as in the constructor)."""
        return cls(await Endpoint.open(capture, host, 0, label), **kw)

    def mapped(self, src: Address) -> Address:
        """The mapped address this server reports for ``src``."""
        return self.mapping(src) if self.mapping is not None else src

    @property
    def address(self) -> Address:
        """Where the server listens."""
        return self.endpoint.address

    @property
    def spec(self) -> str:
        """The ``host:port`` form of ``stun_servers`` (docs/adapter-contract.md)."""
        host, port = self.address
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    @staticmethod
    def success(request: Received, mapped: Address | None = None) -> bytes:
        """A Binding success with XOR-MAPPED-ADDRESS = ``mapped``, by default the source (RFC 8489 §6.3.1.1)."""
        host, port = mapped or request.src
        return bytes(
            STUN(
                type=message_type(BINDING, SUCCESS),
                transaction_id=request.transaction_id,
                attributes=[
                    attr.XorMappedAddress(family=2 if ":" in host else 1, address=host, port=port),
                    attr.Fingerprint(),
                ],
            )
        )

    @staticmethod
    def classic(data: bytes, mapped: Address, server: Address) -> bytes:
        """An RFC 3489 §11.2 Binding Response: MAPPED-ADDRESS, SOURCE-ADDRESS, CHANGED-ADDRESS; no cookie logic."""
        # SOURCE-ADDRESS (0x0004) and CHANGED-ADDRESS (0x0005) are RFC 3489 only: in no current registry.
        body = _address_tlv(attribute_code("MAPPED-ADDRESS"), mapped)
        body += _address_tlv(0x0004, server) + _address_tlv(0x0005, server)
        return struct.pack("!HH", message_type(BINDING, SUCCESS), len(body)) + data[4:20] + body

    @staticmethod
    def try_alternate(request: Received, alternate: Address) -> bytes:
        """A 300 Try Alternate error with ALTERNATE-SERVER (RFC 8489 §10, §14.15); to a cookie-less request, the
        same with its 16-byte transaction ID echoed and no FINGERPRINT (which covers the cookie)."""
        host, port = alternate
        classic = request.data[4:8] != COOKIE
        attributes: list[Any] = [
            ErrorCode(300),
            attr.AlternateServer(family=2 if ":" in host else 1, address=host, port=port),
        ]
        if not classic:
            attributes.append(attr.Fingerprint())
        out = bytes(STUN(type=message_type(BINDING, ERROR), transaction_id=request.data[8:20], attributes=attributes))
        return out[:4] + request.data[4:8] + out[8:] if classic else out

    def _on_datagram(self, rec: Received) -> None:
        if not (rec.is_type(BINDING, REQUEST) or _is_binding_request(rec.data)):
            return
        self.requests.append(rec)
        mapped: Address | None = self.mapped(rec.src)
        if self.responder is not None:
            answer = self.responder(rec)
            mapped = None
        elif self.rfc3489 or rec.data[4:8] != COOKIE:
            assert mapped is not None
            answer = self.classic(rec.data, mapped, self.address)
        else:
            answer = self.success(rec, mapped)
        self.records.append(StunRecord(rec, mapped if answer is not None else None))
        if answer is not None:
            classic = self.rfc3489 or rec.data[4:8] != COOKIE
            self.endpoint.send(answer, rec.src, "RFC 3489-style answer" if classic else "")

    def close(self) -> None:
        """Stop answering and close the endpoint."""
        self._unhook()
        self.endpoint.close()
