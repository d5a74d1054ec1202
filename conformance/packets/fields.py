"""Scapy fields shared by the STUN attributes: XOR-obfuscated addresses and tolerant padding."""

from __future__ import annotations

import ipaddress
import struct
from typing import Any

from scapy.fields import Field, StrLenField

__all__ = [
    "MAGIC_COOKIE",
    "AddressField",
    "DigestField",
    "PaddingField",
    "XorAddressField",
    "XorPortField",
    "xor_address",
    "xor_port",
]

MAGIC_COOKIE = 0x2112A442
_COOKIE_BYTES = struct.pack("!I", MAGIC_COOKIE)


def xor_port(port: int) -> int:
    """X-Port = port XOR the 16 most significant bits of the magic cookie (RFC 8489 §14.2)."""
    return port ^ (MAGIC_COOKIE >> 16)


def xor_address(raw: bytes, transaction_id: bytes) -> bytes:
    """X-Address: XOR with the cookie (IPv4) or with cookie||transaction ID (IPv6), RFC 8489 §14.2."""
    key = _COOKIE_BYTES if len(raw) == 4 else _COOKIE_BYTES + transaction_id
    return bytes(a ^ b for a, b in zip(raw, key, strict=True))


def _transaction_id(pkt: Any) -> bytes:
    """The transaction ID of the message that holds ``pkt`` (zeros when the attribute stands alone)."""
    parent = getattr(pkt, "parent", None)
    txid = getattr(parent, "transaction_id", None) if parent is not None else None
    if isinstance(txid, bytes) and len(txid) == 12:
        return txid
    return bytes(12)


class XorPortField(Field[int, int]):
    """A 16-bit port stored XOR-ed with the cookie; the internal value is the real port."""

    def __init__(self, name: str, default: int | None) -> None:
        super().__init__(name, default, "H")

    def i2m(self, pkt: Any, x: int | None) -> int:
        return xor_port(x or 0)

    def m2i(self, pkt: Any, x: int) -> int:
        return xor_port(x)


class XorAddressField(Field[str, bytes]):
    """An IPv4 or IPv6 address stored XOR-ed (RFC 8489 §14.2); its size follows the ``family`` field."""

    __slots__ = ["family_field"]

    def __init__(self, name: str, default: str | None, family_field: str = "family") -> None:
        super().__init__(name, default, "16s")
        self.family_field = family_field

    def _size(self, pkt: Any) -> int:
        return 16 if getattr(pkt, self.family_field, 1) == 2 else 4

    def i2m(self, pkt: Any, x: str | None) -> bytes:
        size = self._size(pkt)
        raw = ipaddress.ip_address(x).packed if x is not None else bytes(size)
        raw = raw[:size].ljust(size, b"\x00")
        return xor_address(raw, _transaction_id(pkt))

    def m2i(self, pkt: Any, x: bytes) -> str:
        raw = xor_address(x, _transaction_id(pkt))
        return str(ipaddress.ip_address(raw))

    def addfield(self, pkt: Any, s: bytes, val: str | None) -> bytes:
        return s + self.i2m(pkt, val)

    def getfield(self, pkt: Any, s: bytes) -> tuple[bytes, str]:
        size = self._size(pkt)
        return s[size:], self.m2i(pkt, s[:size])

    def i2len(self, pkt: Any, x: Any) -> int:
        return self._size(pkt)

    def randval(self) -> Any:
        from scapy.volatile import RandIP

        return RandIP()


class PaddingField(StrLenField):
    """The bytes padding a TLV value to 4 (RFC 8489 §14): kept verbatim on dissection, zeros when ``None``."""

    __slots__ = ["value_length"]

    def __init__(self, name: str = "padding", value_length: str = "length") -> None:
        super().__init__(name, None, length_from=lambda pkt: (-(getattr(pkt, value_length) or 0)) % 4)  # type: ignore[arg-type]
        self.value_length = value_length

    def i2m(self, pkt: Any, x: Any) -> bytes:
        if x is None:
            return b""  # filled in by the attribute's post_build once the value length is known
        return bytes(x)


class DigestField(StrLenField):
    """An HMAC value: zeros of the declared (or default) size when ``None``, filled in by the message's post_build."""

    __slots__ = ["size"]

    def __init__(self, name: str, size: int) -> None:
        super().__init__(name, None, length_from=lambda pkt: pkt.length if pkt.length is not None else size)  # type: ignore[arg-type]
        self.size = size

    def i2m(self, pkt: Any, x: Any) -> bytes:
        if x is None:
            length = getattr(pkt, "length", None)
            return bytes(length if length is not None else self.size)
        return bytes(x)

    def i2repr(self, pkt: Any, x: Any) -> str:
        return "<computed>" if x is None else bytes(x).hex()


class AddressField(XorAddressField):
    """A clear IPv4 or IPv6 address whose size follows the ``family`` field (MAPPED-ADDRESS, RFC 8489 §14.1)."""

    def i2m(self, pkt: Any, x: str | None) -> bytes:
        size = self._size(pkt)
        raw = ipaddress.ip_address(x).packed if x is not None else bytes(size)
        return raw[:size].ljust(size, b"\x00")

    def m2i(self, pkt: Any, x: bytes) -> str:
        return str(ipaddress.ip_address(x))
