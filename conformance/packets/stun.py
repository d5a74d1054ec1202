"""The STUN message layer (RFC 8489 §5, §6), its TURN methods (RFC 8656 §17) and ChannelData (RFC 8656 §12.4).

Theory of operation: :class:`STUN` is the 20-byte header followed by a list of attribute layers. In ``post_build``
the header length is filled in when left ``None``; then every MESSAGE-INTEGRITY, MESSAGE-INTEGRITY-SHA256 and
FINGERPRINT whose value was left ``None`` is computed in order over the bytes before it, with the header length
adjusted to end at that attribute (RFC 8489 §14.5–14.7). Values that were set go on the wire unchanged, so a broken
packet is one keyword away. The keys are not on the wire: pass ``key=`` (and ``key_sha256=`` when it differs).
"""

from __future__ import annotations

import hmac
import os
import struct
import zlib
from typing import Any

from scapy.config import conf
from scapy.fields import (
    BitEnumField,
    BitField,
    PacketListField,
    ShortField,
    XIntField,
    XShortField,
    XStrFixedLenField,
    XStrLenField,
)
from scapy.packet import Packet

from conformance.packets.attributes import (
    ATTRIBUTE_NAMES,
    ErrorCodeAttribute,
    Fingerprint,
    MessageIntegrity,
    MessageIntegritySha256,
    StunAttribute,
)
from conformance.packets.fields import MAGIC_COOKIE, PaddingField

__all__ = [
    "ALLOCATE",
    "BINDING",
    "CHANNEL_BIND",
    "CLASSES",
    "CREATE_PERMISSION",
    "DATA",
    "ERROR",
    "FINGERPRINT_XOR",
    "INDICATION",
    "MAGIC_COOKIE",
    "METHODS",
    "REFRESH",
    "REQUEST",
    "SEND",
    "STUN",
    "SUCCESS",
    "ChannelData",
    "message_type",
    "split_message_type",
    "type_name",
]

FINGERPRINT_XOR = 0x5354554E

#: STUN and TURN methods (RFC 8489 §18.2, RFC 8656 §17).
BINDING, ALLOCATE, REFRESH, SEND, DATA, CREATE_PERMISSION, CHANNEL_BIND = (
    0x001,
    0x003,
    0x004,
    0x006,
    0x007,
    0x008,
    0x009,
)
METHODS: dict[int, str] = {
    BINDING: "Binding",
    ALLOCATE: "Allocate",
    REFRESH: "Refresh",
    SEND: "Send",
    DATA: "Data",
    CREATE_PERMISSION: "CreatePermission",
    CHANNEL_BIND: "ChannelBind",
}
#: Message classes (RFC 8489 §5).
REQUEST, INDICATION, SUCCESS, ERROR = 0b00, 0b01, 0b10, 0b11
CLASSES: dict[int, str] = {
    REQUEST: "request",
    INDICATION: "indication",
    SUCCESS: "success response",
    ERROR: "error response",
}
_METHOD_CODES = {v: k for k, v in METHODS.items()}
_CLASS_CODES = {v: k for k, v in CLASSES.items()}


def message_type(method: int | str, cls: int | str) -> int:
    """The 14-bit message type for a method and class (RFC 8489 §5, figure 3)."""
    m = _METHOD_CODES[method] if isinstance(method, str) else method
    c = _CLASS_CODES[cls] if isinstance(cls, str) else cls
    return (m & 0x000F) | ((c & 0b01) << 4) | ((m & 0x0070) << 1) | ((c & 0b10) << 7) | ((m & 0x0F80) << 2)


def split_message_type(mtype: int) -> tuple[int, int]:
    """(method, class) of a message type (RFC 8489 §5)."""
    method = (mtype & 0x000F) | ((mtype & 0x00E0) >> 1) | ((mtype & 0x3E00) >> 2)
    cls = ((mtype & 0x0010) >> 4) | ((mtype & 0x0100) >> 7)
    return method, cls


def type_name(mtype: int) -> str:
    """A readable name such as ``Binding request`` or ``Allocate error response``."""
    method, cls = split_message_type(mtype)
    return f"{METHODS.get(method, f'method 0x{method:03x}')} {CLASSES[cls]}"


MESSAGE_TYPES: dict[int, str] = {message_type(m, c): f"{METHODS[m]} {CLASSES[c]}" for m in METHODS for c in CLASSES}


class STUN(Packet):
    """A STUN message (RFC 8489 §5): header, then attributes; lengths, integrity and fingerprint computed."""

    name = "STUN"
    fields_desc = [
        BitField("zero", 0, 2),
        BitEnumField("type", 0x0001, 14, MESSAGE_TYPES),
        ShortField("length", None),
        XIntField("magic_cookie", MAGIC_COOKIE),
        XStrFixedLenField("transaction_id", None, 12),
        PacketListField("attributes", [], StunAttribute, length_from=lambda pkt: pkt._attributes_length()),
    ]

    def __init__(
        self,
        _pkt: bytes = b"",
        *args: Any,
        key: bytes | None = None,
        key_sha256: bytes | None = None,
        **kwargs: Any,
    ) -> None:
        if "transaction_id" not in kwargs and not _pkt:
            kwargs["transaction_id"] = os.urandom(12)
        super().__init__(_pkt, *args, **kwargs)
        self.key = key
        self.key_sha256 = key_sha256

    def _attributes_length(self) -> int:
        return int(self.length) if self.length is not None else 0

    def clone_with(self, payload: Any = None, **kargs: Any) -> Any:
        pkt = super().clone_with(payload=payload, **kargs)
        pkt.key, pkt.key_sha256 = self.key, self.key_sha256
        return pkt

    def copy(self) -> Any:
        pkt = super().copy()
        pkt.key, pkt.key_sha256 = self.key, self.key_sha256
        return pkt

    # -- views ------------------------------------------------------------------------------------------------

    @property
    def method(self) -> int:
        """The 12-bit method (RFC 8489 §5)."""
        return split_message_type(int(self.type))[0]

    @property
    def msg_class(self) -> int:
        """The class: 0 request, 1 indication, 2 success, 3 error (RFC 8489 §5)."""
        return split_message_type(int(self.type))[1]

    @property
    def type_name(self) -> str:
        """``Binding request``, ``Allocate error response``..."""
        return type_name(int(self.type))

    def attr(self, name_or_code: str | int) -> StunAttribute | None:
        """The first attribute of that RFC name or code, or None."""
        for a in self.attributes:
            if a.type == name_or_code or ATTRIBUTE_NAMES.get(a.type) == name_or_code:
                found: StunAttribute = a
                return found
        return None

    def attrs(self, name_or_code: str | int) -> list[StunAttribute]:
        """Every attribute of that RFC name or code, in order."""
        return [a for a in self.attributes if a.type == name_or_code or ATTRIBUTE_NAMES.get(a.type) == name_or_code]

    def attribute_names(self) -> list[str]:
        """The attribute names in wire order (hex codes for unregistered ones)."""
        return [ATTRIBUTE_NAMES.get(a.type, f"0x{a.type:04x}") for a in self.attributes]

    @property
    def error_code(self) -> int | None:
        """The ERROR-CODE value (e.g. 487), or None."""
        a = self.attr(0x0009)
        return a.code if isinstance(a, ErrorCodeAttribute) else None

    def mysummary(self) -> str:
        names = ",".join(self.attribute_names())
        return f"STUN {self.type_name} txid={bytes(self.transaction_id or b'').hex()} [{names}]"

    # -- Scapy hooks ------------------------------------------------------------------------------------------

    def hashret(self) -> bytes:
        return bytes(self.transaction_id or b"")

    def answers(self, other: Packet) -> bool:
        """A success or error response answers the request with the same method and transaction ID (§6.3.1)."""
        if not isinstance(other, STUN):
            return False
        return (
            self.msg_class in (0b10, 0b11)
            and other.msg_class == 0b00
            and self.method == other.method
            and bytes(self.transaction_id) == bytes(other.transaction_id)
        )

    def post_build(self, pkt: bytes, pay: bytes) -> bytes:
        buf = bytearray(pkt)
        if self.length is None:
            struct.pack_into("!H", buf, 2, len(buf) - 20)
        offset = 20
        for attribute in self.attributes:
            size = len(bytes(attribute))
            end = offset + size
            if isinstance(attribute, (MessageIntegrity, MessageIntegritySha256)) and attribute.hmac is None:
                value_len = (
                    attribute.length
                    if attribute.length is not None
                    else (20 if isinstance(attribute, MessageIntegrity) else 32)
                )
                digest = self._integrity(bytes(buf[:offset]), end - 20, isinstance(attribute, MessageIntegrity))
                buf[offset + 4 : offset + 4 + value_len] = digest[:value_len]
            elif isinstance(attribute, Fingerprint) and attribute.crc is None:
                struct.pack_into("!I", buf, offset + 4, fingerprint_of(bytes(buf[:offset]), end - 20))
            offset = end
        return bytes(buf) + pay

    def _integrity(self, before: bytes, adjusted_length: int, sha1: bool) -> bytes:
        key = self.key if sha1 or self.key_sha256 is None else self.key_sha256
        if key is None:
            raise ValueError("MESSAGE-INTEGRITY left None needs key= on the STUN message (RFC 8489 §14.5)")
        return integrity_of(before, adjusted_length, key, "sha1" if sha1 else "sha256")

    def guess_payload_class(self, payload: bytes) -> type[Packet]:
        return conf.raw_layer


def _with_length(before: bytes, adjusted_length: int) -> bytes:
    return before[:2] + struct.pack("!H", adjusted_length) + before[4:]


def integrity_of(before: bytes, adjusted_length: int, key: bytes, algorithm: str = "sha1") -> bytes:
    """HMAC over the message up to the integrity attribute, length adjusted to end at it (RFC 8489 §14.5, §14.6)."""
    return hmac.new(key, _with_length(before, adjusted_length), algorithm).digest()


def fingerprint_of(before: bytes, adjusted_length: int) -> int:
    """CRC-32 of the message up to FINGERPRINT, length counting it, XOR 0x5354554E (RFC 8489 §14.7)."""
    return (zlib.crc32(_with_length(before, adjusted_length)) & 0xFFFFFFFF) ^ FINGERPRINT_XOR


class ChannelData(Packet):
    """A ChannelData message (RFC 8656 §12.4): channel number, length of the data, data, optional padding."""

    name = "ChannelData"
    fields_desc = [
        XShortField("channel", 0x4000),
        ShortField("length", None),
        XStrLenField("data", b"", length_from=lambda pkt: pkt.length),
        PaddingField(),
    ]

    def post_build(self, pkt: bytes, pay: bytes) -> bytes:
        if self.length is None:
            padding = self.getfieldval("padding")
            value_len = len(pkt) - 4 - (len(padding) if padding is not None else 0)
            pkt = pkt[:2] + struct.pack("!H", value_len) + pkt[4:]
        return pkt + pay

    def mysummary(self) -> str:
        return f"ChannelData 0x{self.channel:04x} ({self.length} bytes)"

    def guess_payload_class(self, payload: bytes) -> type[Packet]:
        return conf.raw_layer
