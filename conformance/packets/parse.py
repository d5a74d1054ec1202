"""Demultiplexing, the strict parser and the verification helpers (RFC 8489 §6.3, §14.5–14.7; RFC 7983).

Every function here takes the bytes of one datagram. The strict parser :func:`parse` validates the structure
first, with plain slicing, and only then hands the bytes to Scapy, so malformed input of any shape raises
:class:`StunParseError` with the precise reason and nothing else.
"""

from __future__ import annotations

import hmac
import struct
from typing import Literal

from scapy.packet import Packet, Raw

from conformance.packets.attributes import ATTRIBUTE_NAMES
from conformance.packets.fields import MAGIC_COOKIE
from conformance.packets.stun import STUN, ChannelData, fingerprint_of, integrity_of

__all__ = [
    "StunParseError",
    "check_fingerprint",
    "check_header",
    "check_integrity",
    "classify",
    "dissect",
    "parse",
    "parse_channel_data",
]

_COOKIE = struct.pack("!I", MAGIC_COOKIE)
_INTEGRITY = {0x0008: ("MESSAGE-INTEGRITY", "sha1"), 0x001C: ("MESSAGE-INTEGRITY-SHA256", "sha256")}


class StunParseError(ValueError):
    """Malformed STUN or ChannelData bytes; ``reason`` says what is wrong."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def classify(data: bytes) -> Literal["stun", "channeldata", "zrtp", "dtls", "rtp", "empty", "reserved"]:
    """What a datagram is, by its first byte (RFC 7983 §7, RFC 8656 §12 table 3)."""
    if not data:
        return "empty"
    b = data[0]
    if b <= 3:
        return "stun"
    if 16 <= b <= 19:
        return "zrtp"
    if 20 <= b <= 63:
        return "dtls"
    if 64 <= b <= 79:
        return "channeldata"
    if 128 <= b <= 191:
        return "rtp"
    return "reserved"


def dissect(data: bytes) -> Packet:
    """Lenient dissection for display: STUN, ChannelData or Raw by the first byte (never raises)."""
    kind = classify(data)
    try:
        if kind == "stun" and len(data) >= 20:
            return STUN(data)
        if kind == "channeldata" and len(data) >= 4:
            return ChannelData(data)
    except Exception:  # Scapy on hostile bytes: show them raw
        pass
    return Raw(data)


def _walk(data: bytes) -> list[tuple[int, int, int]]:
    """(offset, type, value length) of each attribute; raises on overruns and missing padding."""
    out = []
    offset = 20
    while offset < len(data):
        if offset + 4 > len(data):
            raise StunParseError(f"truncated attribute header at offset {offset}")
        code, length = struct.unpack_from("!HH", data, offset)
        end = offset + 4 + length
        name = ATTRIBUTE_NAMES.get(code, f"0x{code:04x}")
        if end > len(data):
            raise StunParseError(
                f"attribute {name} at offset {offset} declares length {length}, overrunning the message by "
                f"{end - len(data)} bytes"
            )
        padded = end + (-length) % 4
        if padded > len(data):
            raise StunParseError(f"attribute {name} at offset {offset} is missing {padded - len(data)} padding bytes")
        out.append((offset, code, length))
        offset = padded
    return out


def check_header(data: bytes) -> str | None:
    """Header sanity (RFC 8489 §5, §6.3): None if sound, else the precise reason."""
    if len(data) < 20:
        return f"truncated header: {len(data)} bytes, a STUN header is 20"
    if data[0] & 0xC0:
        return f"top two bits are {data[0] >> 6:02b}, must be 00"
    if data[4:8] != _COOKIE:
        return f"magic cookie is 0x{data[4:8].hex()}, must be 0x2112a442"
    (length,) = struct.unpack_from("!H", data, 2)
    if length % 4:
        return f"length field {length} is not a multiple of 4"
    if length != len(data) - 20:
        return f"length field {length} does not match the {len(data) - 20} bytes after the header"
    return None


def parse(data: bytes) -> STUN:
    """Strictly parse one STUN message; raises :class:`StunParseError` (only) with the reason when malformed."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise StunParseError(f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    reason = check_header(data)
    if reason is not None:
        raise StunParseError(reason)
    _walk(data)
    try:
        msg = STUN(data)
    except Exception as exc:  # defensive: structure was validated above
        raise StunParseError(f"dissection failed: {exc}") from exc
    if bytes(msg.payload):
        raise StunParseError(f"{len(bytes(msg.payload))} bytes after the attributes")
    return msg


def parse_channel_data(data: bytes, *, stream: bool = False) -> ChannelData:
    """Strictly parse a ChannelData message (RFC 8656 §12.4, §12.6); raises :class:`StunParseError`."""
    data = bytes(data)
    if len(data) < 4:
        raise StunParseError(f"truncated ChannelData header: {len(data)} bytes")
    channel, length = struct.unpack_from("!HH", data)
    if not 0x4000 <= channel <= 0x4FFF:
        raise StunParseError(f"channel number 0x{channel:04x} outside 0x4000-0x4FFF")
    if len(data) < 4 + length:
        raise StunParseError(f"ChannelData length {length} exceeds the {len(data) - 4} bytes present")
    padded = 4 + length + (-length) % 4
    if stream and len(data) != padded:
        raise StunParseError(f"ChannelData over a stream must be padded to {padded} bytes, got {len(data)}")
    if not stream and len(data) > padded:
        raise StunParseError(f"{len(data) - padded} bytes after the padded ChannelData")
    return ChannelData(data)


def check_fingerprint(data: bytes) -> str | None:
    """FINGERPRINT present, last and correct (RFC 8489 §14.7): None if so, else the reason."""
    try:
        attrs = _walk(data)
    except StunParseError as exc:
        return exc.reason
    for i, (offset, code, length) in enumerate(attrs):
        if code != 0x8028:
            continue
        if length != 4:
            return f"FINGERPRINT length is {length}, must be 4"
        if i != len(attrs) - 1:
            return f"FINGERPRINT is followed by {ATTRIBUTE_NAMES.get(attrs[i + 1][1], hex(attrs[i + 1][1]))}"
        expected = fingerprint_of(data[:offset], offset + 8 - 20)
        (got,) = struct.unpack_from("!I", data, offset + 4)
        if got != expected:
            return f"FINGERPRINT is 0x{got:08x}, expected 0x{expected:08x}"
        return None
    return "no FINGERPRINT attribute"


def check_integrity(data: bytes, key: bytes, which: Literal["sha1", "sha256", "any"] = "any") -> str | None:
    """MESSAGE-INTEGRITY(-SHA256) correct under ``key`` (RFC 8489 §14.5, §14.6): None if so, else the reason.

    With ``which="any"`` the first integrity attribute found is checked (as a receiver does).
    """
    try:
        attrs = _walk(data)
    except StunParseError as exc:
        return exc.reason
    for offset, code, length in attrs:
        if code not in _INTEGRITY:
            continue
        name, algorithm = _INTEGRITY[code]
        if which != "any" and which != algorithm:
            continue
        if algorithm == "sha1" and length != 20:
            return f"MESSAGE-INTEGRITY length is {length}, must be 20"
        if algorithm == "sha256" and (length < 16 or length > 32 or length % 4):
            return f"MESSAGE-INTEGRITY-SHA256 length is {length}, must be 16 to 32 and a multiple of 4"
        expected = integrity_of(data[:offset], offset + 4 + length - 20, key, algorithm)[:length]
        got = data[offset + 4 : offset + 4 + length]
        if not hmac.compare_digest(got, expected):
            return f"{name} is {got.hex()}, expected {expected.hex()} with the given key"
        return None
    return "no MESSAGE-INTEGRITY attribute" if which != "sha256" else "no MESSAGE-INTEGRITY-SHA256 attribute"
