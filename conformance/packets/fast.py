"""The tester's hot path: index a datagram without full dissection, and render checks from prebuilt templates.

Scapy dissection and building cost about half a millisecond per message; a connectivity-check exchange needs only
the header, a few attribute offsets and two digests. :func:`index` slices the header and the attribute TLVs
(RFC 8489 §5, §14); :class:`Template` holds a message built once with the Scapy layer and patches the transaction
ID, MESSAGE-INTEGRITY and FINGERPRINT in place (RFC 8489 §14.5, §14.7). Full dissection stays for reporting.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
import zlib
from dataclasses import dataclass

from conformance.packets.attributes import attribute_code
from conformance.packets.fields import MAGIC_COOKIE
from conformance.packets.stun import FINGERPRINT_XOR, STUN

__all__ = ["StunIndex", "Template", "index"]

_COOKIE = struct.pack("!I", MAGIC_COOKIE)
_ERROR_CODE = attribute_code("ERROR-CODE")


@dataclass(frozen=True, slots=True)
class StunIndex:
    """Header fields and attribute offsets of one STUN message: (type, value offset, value length)."""

    data: bytes
    type: int
    transaction_id: bytes
    attributes: tuple[tuple[int, int, int], ...]

    @property
    def method(self) -> int:
        """The 12-bit method (RFC 8489 §5)."""
        t = self.type
        return (t & 0x000F) | ((t & 0x00E0) >> 1) | ((t & 0x3E00) >> 2)

    @property
    def msg_class(self) -> int:
        """0 request, 1 indication, 2 success, 3 error (RFC 8489 §5)."""
        return ((self.type & 0x0010) >> 4) | ((self.type & 0x0100) >> 7)

    def value(self, attribute: str | int) -> bytes | None:
        """The value of the first attribute of that RFC name (``"PRIORITY"``) or code, or None."""
        code = attribute_code(attribute)
        for t, off, length in self.attributes:
            if t == code:
                return self.data[off : off + length]
        return None

    @property
    def error_code(self) -> int | None:
        """The ERROR-CODE as class × 100 + number (RFC 8489 §14.8), e.g. 487; None without a well-formed one."""
        raw = self.value(_ERROR_CODE)
        if raw is None or len(raw) < 4:
            return None
        return (raw[2] & 0x07) * 100 + raw[3]

    def has(self, attribute: str | int) -> bool:
        """Whether an attribute of that RFC name (``"USE-CANDIDATE"``) or code is present."""
        code = attribute_code(attribute)
        return any(t == code for t, _, _ in self.attributes)


def index(data: bytes) -> StunIndex | None:
    """Index a STUN message, or None when the bytes are not a well-formed STUN message (RFC 8489 §6.3)."""
    n = len(data)
    if n < 20 or data[0] & 0xC0 or data[4:8] != _COOKIE:
        return None
    mtype, length = struct.unpack_from("!HH", data)
    if length != n - 20 or length & 3:
        return None
    attrs = []
    offset = 20
    while offset < n:
        if offset + 4 > n:
            return None
        code, alen = struct.unpack_from("!HH", data, offset)
        value = offset + 4
        offset = value + alen + (-alen & 3)
        if offset > n:
            return None
        attrs.append((code, value, alen))
    return StunIndex(data, mtype, data[8:20], tuple(attrs))


class Template:
    """A message built once; :meth:`render` patches the transaction ID and recomputes integrity and fingerprint.

    The template must end with MESSAGE-INTEGRITY (left ``None``) optionally followed by FINGERPRINT, as ICE checks
    and their responses do (RFC 8445 §7.2.2).
    """

    def __init__(self, message: STUN, key: bytes) -> None:
        message.key = key
        raw = bytes(message)
        idx = index(raw)
        if idx is None:
            raise ValueError("template does not build into a well-formed STUN message")
        if not idx.has("MESSAGE-INTEGRITY"):
            raise ValueError("template needs MESSAGE-INTEGRITY")
        mi, fp = attribute_code("MESSAGE-INTEGRITY"), attribute_code("FINGERPRINT")
        self._raw = bytearray(raw)
        self._mi_value = next(off for c, off, _ in idx.attributes if c == mi)
        self._fp_value = next((off for c, off, _ in idx.attributes if c == fp), None)
        mi_end = self._mi_value + 20
        # The header length seen by the HMAC ends at MESSAGE-INTEGRITY (RFC 8489 §14.5).
        self._mi_header = raw[:2] + struct.pack("!H", mi_end - 20) + raw[4:8]
        self._body = bytes(raw[20 : self._mi_value - 4])
        self._hmac = hmac.new(key, self._mi_header, hashlib.sha1)

    def render(self, transaction_id: bytes) -> bytes:
        """The message with this transaction ID, its MESSAGE-INTEGRITY and FINGERPRINT recomputed."""
        buf = self._raw
        buf[8:20] = transaction_id
        h = self._hmac.copy()
        h.update(transaction_id)
        h.update(self._body)
        buf[self._mi_value : self._mi_value + 20] = h.digest()
        if self._fp_value is not None:
            crc = zlib.crc32(memoryview(buf)[: self._fp_value - 4]) ^ FINGERPRINT_XOR
            struct.pack_into("!I", buf, self._fp_value, crc & 0xFFFFFFFF)
        return bytes(buf)
