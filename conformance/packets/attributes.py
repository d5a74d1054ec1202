"""STUN, TURN and ICE attributes as Scapy layers, one small ``Packet`` per attribute.

Theory of operation: :class:`StunAttribute` is the generic TLV (RFC 8489 §14). Its ``dispatch_hook`` looks the type
code up in :data:`ATTRIBUTES`, the one registry of code, RFC name and layer class, and picks the specific layer when
the declared length suits it; anything else (unknown codes, malformed lengths) stays a generic TLV, byte for byte.
Every layer ends with a :class:`~conformance.packets.fields.PaddingField` that keeps received padding verbatim and
emits zeros when left ``None``; ``length`` is computed in ``post_build`` when left ``None``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from scapy.config import conf
from scapy.fields import (
    BitField,
    ByteEnumField,
    ByteField,
    FieldListField,
    IntField,
    PacketListField,
    ShortField,
    StrLenField,
    XBitField,
    XIntField,
    XLongField,
    XShortEnumField,
    XShortField,
    XStrLenField,
)
from scapy.packet import Packet

from conformance.packets.fields import AddressField, DigestField, PaddingField, XorAddressField, XorPortField

__all__ = [
    "ATTRIBUTES",
    "ATTRIBUTE_NAMES",
    "AttributeSpec",
    "ErrorCode",
    "attribute_class",
    "attribute_code",
]

FAMILIES = {1: "IPv4", 2: "IPv6"}
PASSWORD_ALGORITHM_NAMES = {0x0001: "MD5", 0x0002: "SHA-256"}


class StunAttribute(Packet):
    """A STUN attribute as a generic TLV (RFC 8489 §14); unknown types stay this class, byte-exact."""

    name = "STUN attribute"
    #: Value lengths this layer can dissect, or None for any (checked before dispatching to it).
    valid_lengths: tuple[int, ...] | None = None
    fields_desc = [
        XShortEnumField("type", 0, {}),
        ShortField("length", None),
        XStrLenField("value", b"", length_from=lambda pkt: pkt.length),
        PaddingField(),
    ]

    @classmethod
    def dispatch_hook(cls, _pkt: bytes | None = None, *args: Any, **kargs: Any) -> type[Packet]:
        if _pkt and len(_pkt) >= 4:
            code, length = struct.unpack("!HH", _pkt[:4])
            spec = ATTRIBUTES.get(code)
            if spec is not None and spec.layer is not None and spec.layer.accepts(length, _pkt[4 : 4 + length]):
                return spec.layer
            return StunAttribute
        return cls

    @classmethod
    def accepts(cls, length: int, value: bytes) -> bool:
        """Whether a value of this declared length dissects as this layer."""
        return len(value) == length and (cls.valid_lengths is None or length in cls.valid_lengths)

    def post_build(self, pkt: bytes, pay: bytes) -> bytes:
        padding = self.getfieldval("padding")
        value_len = len(pkt) - 4 - (len(padding) if padding is not None else 0)
        if self.length is None:
            pkt = pkt[:2] + struct.pack("!H", value_len) + pkt[4:]
        if padding is None:
            pkt += b"\x00" * ((-value_len) % 4)
        return pkt + pay

    def extract_padding(self, s: bytes) -> tuple[bytes, bytes]:
        return b"", s

    def guess_payload_class(self, payload: bytes) -> type[Packet]:
        return conf.padding_layer

    def mysummary(self) -> str:
        spec = ATTRIBUTES.get(self.type)
        return spec.name if spec else f"0x{self.type:04x}"

    @property
    def attribute_name(self) -> str:
        """The RFC name of this attribute type, or its hex code."""
        return self.mysummary()


def _header(code: int) -> list[Any]:
    return [XShortEnumField("type", code, {}), ShortField("length", None)]


def _string_value(name: str) -> list[Any]:
    return [StrLenField(name, b"", length_from=lambda pkt: pkt.length), PaddingField()]


# --- STUN (RFC 8489 §14) -------------------------------------------------------------------------------------


class _AddressAttribute(StunAttribute):
    """Reserved(8) Family(8) Port(16) Address(32/128), RFC 8489 §14.1."""

    valid_lengths = (8, 20)

    @classmethod
    def accepts(cls, length: int, value: bytes) -> bool:
        if len(value) != length or length < 2:
            return False
        return (value[1], length) in ((1, 8), (2, 20))


class MappedAddress(_AddressAttribute):
    """MAPPED-ADDRESS (RFC 8489 §14.1)."""

    name = "MAPPED-ADDRESS"
    fields_desc = [
        *_header(0x0001),
        ByteField("reserved", 0),
        ByteEnumField("family", 1, FAMILIES),
        ShortField("port", 0),
        AddressField("address", "0.0.0.0"),
        PaddingField(),
    ]


class _XorAddressAttribute(_AddressAttribute):
    """Reserved(8) Family(8) X-Port(16) X-Address, RFC 8489 §14.2; fields hold the clear values."""

    fields_desc = [
        *_header(0),
        ByteField("reserved", 0),
        ByteEnumField("family", 1, FAMILIES),
        XorPortField("port", 0),
        XorAddressField("address", "0.0.0.0"),
        PaddingField(),
    ]


class XorMappedAddress(_XorAddressAttribute):
    """XOR-MAPPED-ADDRESS (RFC 8489 §14.2)."""

    name = "XOR-MAPPED-ADDRESS"
    fields_desc = [*_header(0x0020), *_XorAddressAttribute.fields_desc[2:]]


class XorPeerAddress(_XorAddressAttribute):
    """XOR-PEER-ADDRESS (RFC 8656 §18.3)."""

    name = "XOR-PEER-ADDRESS"
    fields_desc = [*_header(0x0012), *_XorAddressAttribute.fields_desc[2:]]


class XorRelayedAddress(_XorAddressAttribute):
    """XOR-RELAYED-ADDRESS (RFC 8656 §18.5)."""

    name = "XOR-RELAYED-ADDRESS"
    fields_desc = [*_header(0x0016), *_XorAddressAttribute.fields_desc[2:]]


class AlternateServer(MappedAddress):
    """ALTERNATE-SERVER (RFC 8489 §14.15), encoded as MAPPED-ADDRESS."""

    name = "ALTERNATE-SERVER"
    fields_desc = [*_header(0x8023), *MappedAddress.fields_desc[2:]]


class OtherAddress(MappedAddress):
    """OTHER-ADDRESS (RFC 5780 §7.4), encoded as MAPPED-ADDRESS."""

    name = "OTHER-ADDRESS"
    fields_desc = [*_header(0x802C), *MappedAddress.fields_desc[2:]]


class ResponseOrigin(MappedAddress):
    """RESPONSE-ORIGIN (RFC 5780 §7.3), encoded as MAPPED-ADDRESS."""

    name = "RESPONSE-ORIGIN"
    fields_desc = [*_header(0x802B), *MappedAddress.fields_desc[2:]]


class Username(StunAttribute):
    """USERNAME (RFC 8489 §14.3)."""

    name = "USERNAME"
    fields_desc = [*_header(0x0006), *_string_value("username")]


class Userhash(StunAttribute):
    """USERHASH (RFC 8489 §14.4): SHA-256(OpaqueString(username) ":" OpaqueString(realm))."""

    name = "USERHASH"
    valid_lengths = (32,)
    fields_desc = [
        *_header(0x001E),
        XStrLenField("userhash", bytes(32), length_from=lambda p: p.length),
        PaddingField(),
    ]


class MessageIntegrity(StunAttribute):
    """MESSAGE-INTEGRITY (RFC 8489 §14.5): HMAC-SHA1, computed at build when ``hmac`` is None."""

    name = "MESSAGE-INTEGRITY"
    fields_desc = [
        *_header(0x0008),
        DigestField("hmac", 20),
        PaddingField(),
    ]


class MessageIntegritySha256(StunAttribute):
    """MESSAGE-INTEGRITY-SHA256 (RFC 8489 §14.6): HMAC-SHA256 (16–32 bytes), computed when ``hmac`` is None."""

    name = "MESSAGE-INTEGRITY-SHA256"
    fields_desc = [
        *_header(0x001C),
        DigestField("hmac", 32),
        PaddingField(),
    ]


class Fingerprint(StunAttribute):
    """FINGERPRINT (RFC 8489 §14.7): CRC-32 XOR 0x5354554E, computed when ``crc`` is None."""

    name = "FINGERPRINT"
    valid_lengths = (4,)
    fields_desc = [*_header(0x8028), XIntField("crc", None), PaddingField()]


class ErrorCodeAttribute(StunAttribute):
    """ERROR-CODE (RFC 8489 §14.8): reserved(21) class(3) number(8) reason phrase."""

    name = "ERROR-CODE"

    @classmethod
    def accepts(cls, length: int, value: bytes) -> bool:
        return len(value) == length and length >= 4

    fields_desc = [
        *_header(0x0009),
        XBitField("reserved", 0, 21),
        BitField("error_class", 4, 3),
        ByteField("number", 0),
        StrLenField("reason", b"", length_from=lambda p: (p.length or 4) - 4),
        PaddingField(),
    ]

    @property
    def code(self) -> int:
        """The error code: class × 100 + number."""
        return int(self.error_class) * 100 + int(self.number)


def ErrorCode(code: int, reason: str | bytes = b"", **kwargs: Any) -> ErrorCodeAttribute:
    """An ERROR-CODE attribute for ``code`` (e.g. 487), RFC 8489 §14.8."""
    text = reason.encode() if isinstance(reason, str) else reason
    return ErrorCodeAttribute(error_class=code // 100, number=code % 100, reason=text, **kwargs)


class UnknownAttributes(StunAttribute):
    """UNKNOWN-ATTRIBUTES (RFC 8489 §14.9): a list of 16-bit types."""

    name = "UNKNOWN-ATTRIBUTES"

    @classmethod
    def accepts(cls, length: int, value: bytes) -> bool:
        return len(value) == length and length % 2 == 0

    fields_desc = [
        *_header(0x000A),
        FieldListField("types", [], XShortField("t", 0), count_from=lambda p: (p.length or 0) // 2),
        PaddingField(),
    ]


class Realm(StunAttribute):
    """REALM (RFC 8489 §14.9)."""

    name = "REALM"
    fields_desc = [*_header(0x0014), *_string_value("realm")]


class Nonce(StunAttribute):
    """NONCE (RFC 8489 §14.10)."""

    name = "NONCE"
    fields_desc = [*_header(0x0015), *_string_value("nonce")]


class PasswordAlgorithm(StunAttribute):
    """PASSWORD-ALGORITHM (RFC 8489 §14.11): algorithm(16) params length(16) params."""

    name = "PASSWORD-ALGORITHM"

    @classmethod
    def accepts(cls, length: int, value: bytes) -> bool:
        return len(value) == length and length >= 4 and 4 + struct.unpack("!H", value[2:4])[0] <= length

    fields_desc = [
        *_header(0x001D),
        XShortEnumField("algorithm", 0x0002, PASSWORD_ALGORITHM_NAMES),
        ShortField("params_length", None),
        XStrLenField("params", b"", length_from=lambda p: p.params_length or 0),
        PaddingField(),
    ]

    def post_build(self, pkt: bytes, pay: bytes) -> bytes:
        if self.params_length is None:
            pkt = pkt[:6] + struct.pack("!H", len(self.params or b"")) + pkt[8:]
        return super().post_build(pkt, pay)


class AlgorithmEntry(Packet):
    """One entry of PASSWORD-ALGORITHMS: algorithm(16) length(16) parameters, padded to 4."""

    name = "password algorithm"
    fields_desc = [
        XShortEnumField("algorithm", 0x0002, PASSWORD_ALGORITHM_NAMES),
        ShortField("params_length", None),
        XStrLenField("params", b"", length_from=lambda p: p.params_length or 0),
        PaddingField(value_length="params_length"),
    ]

    def post_build(self, pkt: bytes, pay: bytes) -> bytes:
        params = self.params or b""
        if self.params_length is None:
            pkt = pkt[:2] + struct.pack("!H", len(params)) + pkt[4:]
        if self.getfieldval("padding") is None:
            pkt += b"\x00" * ((-len(params)) % 4)
        return pkt + pay

    def extract_padding(self, s: bytes) -> tuple[bytes, bytes]:
        return b"", s


class PasswordAlgorithms(StunAttribute):
    """PASSWORD-ALGORITHMS (RFC 8489 §14.12): a list of algorithm entries."""

    name = "PASSWORD-ALGORITHMS"

    @classmethod
    def accepts(cls, length: int, value: bytes) -> bool:
        if len(value) != length:
            return False
        offset = 0
        while offset < length:
            if offset + 4 > length:
                return False
            plen = struct.unpack("!H", value[offset + 2 : offset + 4])[0]
            offset += 4 + plen + (-plen) % 4
        return offset == length

    fields_desc = [
        *_header(0x8002),
        PacketListField("algorithms", [], AlgorithmEntry, length_from=lambda p: p.length or 0),
        PaddingField(),
    ]


class Software(StunAttribute):
    """SOFTWARE (RFC 8489 §14.14)."""

    name = "SOFTWARE"
    fields_desc = [*_header(0x8022), *_string_value("software")]


class AlternateDomain(StunAttribute):
    """ALTERNATE-DOMAIN (RFC 8489 §14.16)."""

    name = "ALTERNATE-DOMAIN"
    fields_desc = [*_header(0x8003), *_string_value("domain")]


# --- ICE (RFC 8445 §16.1) ------------------------------------------------------------------------------------


class Priority(StunAttribute):
    """PRIORITY (RFC 8445 §16.1): the prflx-typed priority of the local candidate."""

    name = "PRIORITY"
    valid_lengths = (4,)
    fields_desc = [*_header(0x0024), IntField("priority", 0), PaddingField()]


class UseCandidate(StunAttribute):
    """USE-CANDIDATE (RFC 8445 §16.1): no value."""

    name = "USE-CANDIDATE"
    valid_lengths = (0,)
    fields_desc = [*_header(0x0025), PaddingField()]


class IceControlled(StunAttribute):
    """ICE-CONTROLLED (RFC 8445 §16.1): 64-bit tie-breaker."""

    name = "ICE-CONTROLLED"
    valid_lengths = (8,)
    fields_desc = [*_header(0x8029), XLongField("tiebreaker", 0), PaddingField()]


class IceControlling(StunAttribute):
    """ICE-CONTROLLING (RFC 8445 §16.1): 64-bit tie-breaker."""

    name = "ICE-CONTROLLING"
    valid_lengths = (8,)
    fields_desc = [*_header(0x802A), XLongField("tiebreaker", 0), PaddingField()]


# --- TURN (RFC 8656 §18) -------------------------------------------------------------------------------------


class ChannelNumber(StunAttribute):
    """CHANNEL-NUMBER (RFC 8656 §18.1): number(16) RFFU(16)."""

    name = "CHANNEL-NUMBER"
    valid_lengths = (4,)
    fields_desc = [*_header(0x000C), XShortField("channel", 0x4000), ShortField("rffu", 0), PaddingField()]


class Lifetime(StunAttribute):
    """LIFETIME (RFC 8656 §18.2): seconds."""

    name = "LIFETIME"
    valid_lengths = (4,)
    fields_desc = [*_header(0x000D), IntField("lifetime", 600), PaddingField()]


class Data(StunAttribute):
    """DATA (RFC 8656 §18.4)."""

    name = "DATA"
    fields_desc = [
        *_header(0x0013),
        XStrLenField("data", b"", length_from=lambda p: p.length),
        PaddingField(),
    ]


class RequestedAddressFamily(StunAttribute):
    """REQUESTED-ADDRESS-FAMILY (RFC 8656 §18.6): family(8) reserved(24)."""

    name = "REQUESTED-ADDRESS-FAMILY"
    valid_lengths = (4,)
    fields_desc = [
        *_header(0x0017),
        ByteEnumField("family", 1, FAMILIES),
        XBitField("reserved", 0, 24),
        PaddingField(),
    ]


class EvenPort(StunAttribute):
    """EVEN-PORT (RFC 8656 §18.7): R bit and 7 RFFU bits in one byte."""

    name = "EVEN-PORT"
    valid_lengths = (1,)
    fields_desc = [*_header(0x0018), BitField("reserve", 0, 1), XBitField("rffu", 0, 7), PaddingField()]


class RequestedTransport(StunAttribute):
    """REQUESTED-TRANSPORT (RFC 8656 §18.8): protocol(8) RFFU(24); 17 is UDP."""

    name = "REQUESTED-TRANSPORT"
    valid_lengths = (4,)
    fields_desc = [
        *_header(0x0019),
        ByteEnumField("protocol", 17, {17: "UDP", 6: "TCP"}),
        XBitField("rffu", 0, 24),
        PaddingField(),
    ]


class DontFragment(StunAttribute):
    """DONT-FRAGMENT (RFC 8656 §18.9): no value."""

    name = "DONT-FRAGMENT"
    valid_lengths = (0,)
    fields_desc = [*_header(0x001A), PaddingField()]


class ReservationToken(StunAttribute):
    """RESERVATION-TOKEN (RFC 8656 §18.10): 8 bytes."""

    name = "RESERVATION-TOKEN"
    valid_lengths = (8,)
    fields_desc = [
        *_header(0x0022),
        XStrLenField("token", b"\x00" * 8, length_from=lambda p: 8),
        PaddingField(),
    ]


class AdditionalAddressFamily(RequestedAddressFamily):
    """ADDITIONAL-ADDRESS-FAMILY (RFC 8656 §18.11): family(8) reserved(24)."""

    name = "ADDITIONAL-ADDRESS-FAMILY"
    fields_desc = [*_header(0x8000), *RequestedAddressFamily.fields_desc[2:]]


class AddressErrorCode(StunAttribute):
    """ADDRESS-ERROR-CODE (RFC 8656 §18.12): family(8) reserved(13) class(3) number(8) reason."""

    name = "ADDRESS-ERROR-CODE"

    @classmethod
    def accepts(cls, length: int, value: bytes) -> bool:
        return len(value) == length and length >= 4

    fields_desc = [
        *_header(0x8001),
        ByteEnumField("family", 1, FAMILIES),
        XBitField("reserved", 0, 13),
        BitField("error_class", 4, 3),
        ByteField("number", 0),
        StrLenField("reason", b"", length_from=lambda p: (p.length or 4) - 4),
        PaddingField(),
    ]


class Icmp(StunAttribute):
    """ICMP (RFC 8656 §18.13): reserved(16) type(7) code(9) error data(32)."""

    name = "ICMP"
    valid_lengths = (8,)
    fields_desc = [
        *_header(0x8004),
        XBitField("reserved", 0, 16),
        BitField("icmp_type", 0, 7),
        BitField("icmp_code", 0, 9),
        XIntField("error_data", 0),
        PaddingField(),
    ]


# --- seen in practice ----------------------------------------------------------------------------------------


class GoogNetworkInfo(StunAttribute):
    """GOOG-NETWORK-INFO (0xC057, libwebrtc): network id(16) network cost(16)."""

    name = "GOOG-NETWORK-INFO"
    valid_lengths = (4,)
    fields_desc = [
        *_header(0xC057),
        ShortField("network_id", 0),
        ShortField("network_cost", 0),
        PaddingField(),
    ]


@dataclass(frozen=True)
class AttributeSpec:
    """One registry row: code, RFC name, the layer (None: generic TLV), and where it is defined."""

    code: int
    name: str
    layer: type[StunAttribute] | None
    source: str


_SPECS = [
    AttributeSpec(0x0001, "MAPPED-ADDRESS", MappedAddress, "RFC 8489 §14.1"),
    AttributeSpec(0x0003, "CHANGE-REQUEST", None, "RFC 5780 §7.2"),
    AttributeSpec(0x0006, "USERNAME", Username, "RFC 8489 §14.3"),
    AttributeSpec(0x0008, "MESSAGE-INTEGRITY", MessageIntegrity, "RFC 8489 §14.5"),
    AttributeSpec(0x0009, "ERROR-CODE", ErrorCodeAttribute, "RFC 8489 §14.8"),
    AttributeSpec(0x000A, "UNKNOWN-ATTRIBUTES", UnknownAttributes, "RFC 8489 §14.13"),
    AttributeSpec(0x000C, "CHANNEL-NUMBER", ChannelNumber, "RFC 8656 §18.1"),
    AttributeSpec(0x000D, "LIFETIME", Lifetime, "RFC 8656 §18.2"),
    AttributeSpec(0x0012, "XOR-PEER-ADDRESS", XorPeerAddress, "RFC 8656 §18.3"),
    AttributeSpec(0x0013, "DATA", Data, "RFC 8656 §18.4"),
    AttributeSpec(0x0014, "REALM", Realm, "RFC 8489 §14.9"),
    AttributeSpec(0x0015, "NONCE", Nonce, "RFC 8489 §14.10"),
    AttributeSpec(0x0016, "XOR-RELAYED-ADDRESS", XorRelayedAddress, "RFC 8656 §18.5"),
    AttributeSpec(0x0017, "REQUESTED-ADDRESS-FAMILY", RequestedAddressFamily, "RFC 8656 §18.6"),
    AttributeSpec(0x0018, "EVEN-PORT", EvenPort, "RFC 8656 §18.7"),
    AttributeSpec(0x0019, "REQUESTED-TRANSPORT", RequestedTransport, "RFC 8656 §18.8"),
    AttributeSpec(0x001A, "DONT-FRAGMENT", DontFragment, "RFC 8656 §18.9"),
    AttributeSpec(0x001C, "MESSAGE-INTEGRITY-SHA256", MessageIntegritySha256, "RFC 8489 §14.6"),
    AttributeSpec(0x001D, "PASSWORD-ALGORITHM", PasswordAlgorithm, "RFC 8489 §14.11"),
    AttributeSpec(0x001E, "USERHASH", Userhash, "RFC 8489 §14.4"),
    AttributeSpec(0x0020, "XOR-MAPPED-ADDRESS", XorMappedAddress, "RFC 8489 §14.2"),
    AttributeSpec(0x0022, "RESERVATION-TOKEN", ReservationToken, "RFC 8656 §18.10"),
    AttributeSpec(0x0024, "PRIORITY", Priority, "RFC 8445 §16.1"),
    AttributeSpec(0x0025, "USE-CANDIDATE", UseCandidate, "RFC 8445 §16.1"),
    AttributeSpec(0x0026, "PADDING", None, "RFC 5780 §7.6"),
    AttributeSpec(0x0027, "RESPONSE-PORT", None, "RFC 5780 §7.5"),
    AttributeSpec(0x002A, "CONNECTION-ID", None, "RFC 6062 §6.2.1"),
    AttributeSpec(0x8000, "ADDITIONAL-ADDRESS-FAMILY", AdditionalAddressFamily, "RFC 8656 §18.11"),
    AttributeSpec(0x8001, "ADDRESS-ERROR-CODE", AddressErrorCode, "RFC 8656 §18.12"),
    AttributeSpec(0x8002, "PASSWORD-ALGORITHMS", PasswordAlgorithms, "RFC 8489 §14.12"),
    AttributeSpec(0x8003, "ALTERNATE-DOMAIN", AlternateDomain, "RFC 8489 §14.16"),
    AttributeSpec(0x8004, "ICMP", Icmp, "RFC 8656 §18.13"),
    AttributeSpec(0x8022, "SOFTWARE", Software, "RFC 8489 §14.14"),
    AttributeSpec(0x8023, "ALTERNATE-SERVER", AlternateServer, "RFC 8489 §14.15"),
    AttributeSpec(0x8025, "TRANSACTION-TRANSMIT-COUNTER", None, "RFC 7982 §3.1"),
    AttributeSpec(0x8027, "CACHE-TIMEOUT", None, "RFC 5780 §7.7"),
    AttributeSpec(0x8028, "FINGERPRINT", Fingerprint, "RFC 8489 §14.7"),
    AttributeSpec(0x8029, "ICE-CONTROLLED", IceControlled, "RFC 8445 §16.1"),
    AttributeSpec(0x802A, "ICE-CONTROLLING", IceControlling, "RFC 8445 §16.1"),
    AttributeSpec(0x802B, "RESPONSE-ORIGIN", ResponseOrigin, "RFC 5780 §7.3"),
    AttributeSpec(0x802C, "OTHER-ADDRESS", OtherAddress, "RFC 5780 §7.4"),
    AttributeSpec(0x802D, "ECN-CHECK", None, "RFC 6679 §7.2.2"),
    AttributeSpec(0xC057, "GOOG-NETWORK-INFO", GoogNetworkInfo, "libwebrtc"),
    AttributeSpec(0xC058, "GOOG-LAST-ICE-CHECK-RECEIVED", None, "libwebrtc"),
    AttributeSpec(0xC059, "GOOG-MISC-INFO", None, "libwebrtc"),
    AttributeSpec(0xC05A, "GOOG-OBSOLETE-1", None, "libwebrtc"),
    AttributeSpec(0xC05B, "GOOG-CONNECTION-ID", None, "libwebrtc"),
    AttributeSpec(0xC05C, "GOOG-DELTA", None, "libwebrtc"),
    AttributeSpec(0xC05D, "GOOG-DELTA-ACK", None, "libwebrtc"),
    AttributeSpec(0xC060, "GOOG-MESSAGE-INTEGRITY-32", None, "libwebrtc"),
]

#: The one registry: attribute code -> spec. Every other index derives from it.
ATTRIBUTES: dict[int, AttributeSpec] = {s.code: s for s in _SPECS}
#: Attribute code -> RFC name.
ATTRIBUTE_NAMES: dict[int, str] = {s.code: s.name for s in _SPECS}
_BY_NAME: dict[str, AttributeSpec] = {s.name: s for s in _SPECS}

_LAYERS: list[type[StunAttribute]] = [StunAttribute, *(s.layer for s in _SPECS if s.layer is not None)]
for _layer in _LAYERS:
    _type_field: Any = _layer.fields_desc[0]
    _type_field.i2s = ATTRIBUTE_NAMES
    _type_field.s2i = {v: k for k, v in ATTRIBUTE_NAMES.items()}


def attribute_class(name_or_code: str | int) -> type[StunAttribute]:
    """The layer for an attribute name or code (the generic TLV for value-less registry entries)."""
    spec = ATTRIBUTES.get(name_or_code) if isinstance(name_or_code, int) else _BY_NAME.get(name_or_code)
    if spec is None:
        raise KeyError(f"unknown STUN attribute {name_or_code!r}")
    return spec.layer or StunAttribute


def attribute_code(name_or_code: str | int) -> int:
    """The type code of an attribute given by its RFC name (``"USE-CANDIDATE"``) or by its code."""
    if isinstance(name_or_code, int):
        return name_or_code
    spec = _BY_NAME.get(name_or_code)
    if spec is None:
        raise KeyError(f"unknown STUN attribute {name_or_code!r}")
    return spec.code
