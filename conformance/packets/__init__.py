"""Scapy layers for STUN, TURN and ICE (RFC 8489, RFC 8656, RFC 8445 §16.1), ChannelData and RFC 4571 framing."""

from __future__ import annotations

from conformance.packets import attributes as attr
from conformance.packets.attributes import (
    ATTRIBUTE_NAMES,
    ATTRIBUTES,
    AttributeSpec,
    ErrorCode,
    attribute_class,
)
from conformance.packets.framing import Deframer, frame
from conformance.packets.parse import (
    StunParseError,
    check_fingerprint,
    check_header,
    check_integrity,
    classify,
    dissect,
    parse,
    parse_channel_data,
)
from conformance.packets.stun import (
    CLASSES,
    FINGERPRINT_XOR,
    MAGIC_COOKIE,
    METHODS,
    STUN,
    ChannelData,
    message_type,
    split_message_type,
    type_name,
)

__all__ = [
    "ATTRIBUTES",
    "ATTRIBUTE_NAMES",
    "CLASSES",
    "FINGERPRINT_XOR",
    "MAGIC_COOKIE",
    "METHODS",
    "STUN",
    "AttributeSpec",
    "ChannelData",
    "Deframer",
    "ErrorCode",
    "StunParseError",
    "attr",
    "attribute_class",
    "check_fingerprint",
    "check_header",
    "check_integrity",
    "classify",
    "dissect",
    "frame",
    "message_type",
    "parse",
    "parse_channel_data",
    "split_message_type",
    "type_name",
]
