"""The reference peer's own STUN codec (RFC 8489 §5, §14), plain ``struct``, independent of conformance.packets.

The reference peer is an oracle for the harness's own codec, so it shares none of it. Attribute and method codes,
XOR address encoding, MESSAGE-INTEGRITY and FINGERPRINT checks, and the header repairs some faults need.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import ipaddress
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

__all__ = ["MAGIC_COOKIE", "Address", "StunMessage", "decode", "encode", "verify_integrity"]

Address = tuple[str, int]

MAGIC_COOKIE = 0x2112A442
COOKIE_BYTES = struct.pack("!I", MAGIC_COOKIE)
FINGERPRINT_XOR = 0x5354554E

BINDING_REQUEST = 0x0001
BINDING_INDICATION = 0x0011
BINDING_SUCCESS = 0x0101
BINDING_ERROR = 0x0111

MAPPED_ADDRESS = 0x0001
USERNAME = 0x0006
MESSAGE_INTEGRITY = 0x0008
ERROR_CODE = 0x0009
UNKNOWN_ATTRIBUTES = 0x000A
XOR_MAPPED_ADDRESS = 0x0020
PRIORITY = 0x0024
USE_CANDIDATE = 0x0025
SOFTWARE = 0x8022
FINGERPRINT = 0x8028
ICE_CONTROLLED_ATTR = 0x8029
ICE_CONTROLLING_ATTR = 0x802A

#: Comprehension-required attributes this agent understands (RFC 8489 §14, RFC 8445 §16.1).
KNOWN_REQUIRED = frozenset(
    {
        MAPPED_ADDRESS,
        USERNAME,
        MESSAGE_INTEGRITY,
        ERROR_CODE,
        UNKNOWN_ATTRIBUTES,
        0x0014,  # REALM
        0x0015,  # NONCE
        0x001C,  # MESSAGE-INTEGRITY-SHA256
        0x001D,  # PASSWORD-ALGORITHM
        0x001E,  # USERHASH
        XOR_MAPPED_ADDRESS,
        PRIORITY,
        USE_CANDIDATE,
    }
)

#: Comprehension-optional attributes this agent understands (RFC 8489 §14, RFC 8445 §16.1).
KNOWN_OPTIONAL = frozenset({SOFTWARE, FINGERPRINT, ICE_CONTROLLED_ATTR, ICE_CONTROLLING_ATTR, 0x8023, 0x8027})
#: Known attributes that have no business in a Binding request of ICE (the strict-attributes fault refuses them).
UNEXPECTED_IN_CHECK = frozenset({0x0014, 0x0015, 0x001D, 0x001E})
ALTERNATE_SERVER = 0x8023

REASONS = {
    300: "Try Alternate",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    420: "Unknown Attribute",
    487: "Role Conflict",
}


@dataclass(frozen=True)
class StunMessage:
    """One received STUN message: header fields and (code, value offset, value length) of each attribute."""

    data: bytes
    type: int
    txid: bytes
    attributes: tuple[tuple[int, int, int], ...]
    padding_zero: bool

    @property
    def msg_class(self) -> int:
        """0 request, 1 indication, 2 success, 3 error (RFC 8489 §5)."""
        return ((self.type & 0x0010) >> 4) | ((self.type & 0x0100) >> 7)

    @property
    def method(self) -> int:
        """The 12-bit method (RFC 8489 §5)."""
        t = self.type
        return (t & 0x000F) | ((t & 0x00E0) >> 1) | ((t & 0x3E00) >> 2)

    def visible(self) -> list[tuple[int, int, int]]:
        """Attributes up to MESSAGE-INTEGRITY, plus FINGERPRINT; later ones are ignored (RFC 8489 §14.5)."""
        out = []
        seen_mi = False
        for item in self.attributes:
            if seen_mi and item[0] != FINGERPRINT:
                continue
            out.append(item)
            seen_mi = seen_mi or item[0] == MESSAGE_INTEGRITY
        return out

    def get(self, code: int) -> bytes | None:
        """The value of the first visible attribute with that code, or None."""
        for c, off, length in self.visible():
            if c == code:
                return self.data[off : off + length]
        return None

    def has(self, code: int) -> bool:
        """Whether a visible attribute with that code is present."""
        return any(c == code for c, _, _ in self.visible())

    def error_code(self) -> int | None:
        """The ERROR-CODE value (class * 100 + number), or None (RFC 8489 §14.8)."""
        value = self.get(ERROR_CODE)
        if value is None or len(value) < 4:
            return None
        return (value[2] & 0x07) * 100 + value[3]


def decode(data: bytes) -> StunMessage | None:
    """Header and TLV walk (RFC 8489 §5, §6.3); None when the bytes fail the basic checks."""
    n = len(data)
    if n < 20 or data[0] & 0xC0 or data[4:8] != COOKIE_BYTES:
        return None
    mtype, length = struct.unpack_from("!HH", data)
    if length != n - 20 or length & 3:
        return None
    attrs: list[tuple[int, int, int]] = []
    padding_zero = True
    offset = 20
    while offset < n:
        if offset + 4 > n:
            return None
        code, alen = struct.unpack_from("!HH", data, offset)
        value = offset + 4
        end = value + alen + (-alen & 3)
        if end > n:
            return None
        if any(data[value + alen : end]):
            padding_zero = False
        attrs.append((code, value, alen))
        offset = end
    return StunMessage(data, mtype, data[8:20], tuple(attrs), padding_zero)


def tlv(code: int, value: bytes, pad: int = 0) -> bytes:
    return struct.pack("!HH", code, len(value)) + value + bytes([pad]) * (-len(value) & 3)


def encode(
    mtype: int,
    txid: bytes,
    attributes: Iterable[tuple[int, bytes]],
    *,
    key: bytes | None,
    fingerprint: Literal["ok", "none", "bad"] = "ok",
    length_delta: int = 0,
    pad: int = 0,
) -> bytes:
    """A STUN message, then MESSAGE-INTEGRITY under ``key`` and FINGERPRINT (RFC 8489 §5, §14.5, §14.7)."""
    body = b"".join(tlv(code, value, pad) for code, value in attributes)
    if key is not None:
        header = struct.pack("!HH", mtype, len(body) + 24) + COOKIE_BYTES + txid
        body += tlv(MESSAGE_INTEGRITY, hmac.new(key, header + body, hashlib.sha1).digest())
    if fingerprint != "none":
        header = struct.pack("!HH", mtype, len(body) + 8) + COOKIE_BYTES + txid
        crc = (binascii.crc32(header + body) & 0xFFFFFFFF) ^ FINGERPRINT_XOR
        if fingerprint == "bad":
            crc ^= 1
        body += tlv(FINGERPRINT, struct.pack("!I", crc))
    return struct.pack("!HH", mtype, len(body) + length_delta) + COOKIE_BYTES + txid + body


def verify_integrity(msg: StunMessage, key: bytes) -> bool:
    """MESSAGE-INTEGRITY present and correct under ``key`` (RFC 8489 §14.5)."""
    for code, off, length in msg.attributes:
        if code != MESSAGE_INTEGRITY:
            continue
        if length != 20:
            return False
        start = off - 4
        header = msg.data[:2] + struct.pack("!H", start + 24 - 20) + msg.data[4:20]
        expected = hmac.new(key, header + msg.data[20:start], hashlib.sha1).digest()
        return hmac.compare_digest(expected, msg.data[off : off + 20])
    return False


def fingerprint_ok(msg: StunMessage) -> bool:
    """FINGERPRINT present, last and correct (RFC 8489 §14.7)."""
    if not msg.attributes or msg.attributes[-1][0] != FINGERPRINT or msg.attributes[-1][2] != 4:
        return False
    off = msg.attributes[-1][1]
    crc = (binascii.crc32(msg.data[: off - 4]) & 0xFFFFFFFF) ^ FINGERPRINT_XOR
    (got,) = struct.unpack_from("!I", msg.data, off)
    return bool(got == crc)


def xor_address(host: str, port: int, txid: bytes) -> bytes:
    """XOR-MAPPED-ADDRESS value (RFC 8489 §14.2)."""
    ip = ipaddress.ip_address(host)
    xport = port ^ (MAGIC_COOKIE >> 16)
    mask = COOKIE_BYTES if ip.version == 4 else COOKIE_BYTES + txid
    raw = bytes(a ^ b for a, b in zip(ip.packed, mask, strict=True))
    return struct.pack("!BBH", 0, 1 if ip.version == 4 else 2, xport) + raw


def unxor_address(value: bytes, txid: bytes) -> Address | None:
    """Decode an XOR-MAPPED-ADDRESS value (RFC 8489 §14.2); None when malformed."""
    if len(value) not in (8, 20):
        return None
    family, xport = value[1], struct.unpack_from("!H", value, 2)[0]
    mask = COOKIE_BYTES if family == 1 else COOKIE_BYTES + txid
    raw = bytes(a ^ b for a, b in zip(value[4:], mask, strict=False))
    if (family == 1 and len(raw) != 4) or (family == 2 and len(raw) != 16):
        return None
    return str(ipaddress.ip_address(raw)), xport ^ (MAGIC_COOKIE >> 16)


def plain_address(value: bytes) -> Address | None:
    """Decode a MAPPED-ADDRESS or ALTERNATE-SERVER value (RFC 8489 §14.1)."""
    if len(value) not in (8, 20):
        return None
    port = struct.unpack_from("!H", value, 2)[0]
    return str(ipaddress.ip_address(value[4:])), port


def address_family(address: Address) -> int:
    return ipaddress.ip_address(address[0]).version


def declared_lengths(data: bytes) -> list[int]:
    """The declared value length of every attribute, walked as a careless parser would (lengths past the end too)."""
    lengths: list[int] = []
    offset = 20
    while offset + 4 <= len(data):
        length = struct.unpack_from("!H", data, offset + 2)[0]
        lengths.append(length)
        offset += 4 + length + (-length & 3)
    return lengths


def repair_header(data: bytes) -> bytes:
    """The lenient-header fault: top bits cleared, cookie and length restored (RFC 8489 §6.3 checks undone)."""
    return bytes([data[0] & 0x3F, data[1]]) + struct.pack("!H", len(data) - 20) + COOKIE_BYTES + data[8:]


def error_value(code: int) -> bytes:
    return struct.pack("!HBB", 0, code // 100, code % 100) + REASONS.get(code, "Error").encode()
