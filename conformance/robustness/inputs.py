"""Hostile inputs for the robustness suite, built with the Scapy layers from one valid request and a fixed seed.

Each family is a list of :class:`HostileInput`, deterministic for a given valid request and seed, and bounded in
count (a few hundred datagrams at most, the Refresh storm aside). ``malformed`` marks the inputs that fail the basic
checks of RFC 8489 §6.3 (the header length does not match the datagram, an attribute up to MESSAGE-INTEGRITY runs
past the end, so what is authenticated cannot be parsed): a success response to one of them is a violation of
ROB-DISC-01 (suites/catalog.toml). The others (oversized values,
odd attribute orders, unknown methods) are judged on survival alone.
"""

from __future__ import annotations

import random
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from conformance.packets import (
    ALLOCATE,
    BINDING,
    ERROR,
    INDICATION,
    REFRESH,
    REQUEST,
    SEND,
    STUN,
    SUCCESS,
    ChannelData,
    attr,
    attribute_code,
    message_type,
)
from conformance.packets.attributes import StunAttribute

__all__ = [
    "ICE_FAMILIES",
    "TURN_FAMILIES",
    "HostileInput",
    "TurnBuilder",
    "family_inputs",
    "family_seed",
    "turn_family_inputs",
]

#: Builds an authenticated TURN message: (method, class, attributes) to bytes (MESSAGE-INTEGRITY, FINGERPRINT added).
TurnBuilder = Callable[[int, int, list[Any]], bytes]

#: Families sent to an ICE agent (and to a TURN server, built from an Allocate).
ICE_FAMILIES = (
    "truncation",
    "header-length",
    "attribute-length",
    "zero-length",
    "oversized",
    "address",
    "methods",
    "non-stun",
)
#: Families sent to a TURN server only; they need an allocation (suites/robustness/test_turn_server.py).
TURN_FAMILIES = ("channel-data", "send-without-permission", "refresh-storm")

_MAX_UDP = 65507
_TXIDS = random.Random(
    0
)  # reseeded by family_inputs: every input gets its own transaction ID  # the largest UDP payload over IPv4
_ADDRESS_TYPES = ("MAPPED-ADDRESS", "XOR-MAPPED-ADDRESS", "XOR-PEER-ADDRESS")
#: Attributes whose value may not be empty (the zero-length family empties each of them in turn).
_REQUIRED_VALUE = frozenset(
    attribute_code(name)
    for name in (
        "USERNAME",
        "PRIORITY",
        "ICE-CONTROLLED",
        "ICE-CONTROLLING",
        "MESSAGE-INTEGRITY",
        "FINGERPRINT",
        "REQUESTED-TRANSPORT",
        "LIFETIME",
        "REALM",
        "NONCE",
    )
)
_SUCCESS = message_type(BINDING, SUCCESS)
_ERROR = message_type(BINDING, ERROR)


@dataclass(frozen=True)
class HostileInput:
    """One datagram of a family: what it is, its bytes, and whether RFC 8489 §6.3 requires its discard."""

    family: str
    label: str
    data: bytes
    malformed: bool = False

    def describe(self) -> str:
        """``truncation/at 37 (37 bytes): 0001004c2112a442...`` (hex cut at 96 bytes)."""
        text = self.data[:96].hex()
        more = f"... ({len(self.data)} bytes)" if len(self.data) > 96 else f" ({len(self.data)} bytes)"
        return f"{self.family}/{self.label}: {text}{more}"


def family_seed(family: str, seed: int = 0) -> int:
    """The fixed seed of a family: its name's CRC-32 plus the run's seed."""
    return zlib.crc32(family.encode()) + seed


def _rebuilt(valid: STUN, attributes: list[StunAttribute], **fields: object) -> bytes:
    """The valid message with other attributes (MESSAGE-INTEGRITY and FINGERPRINT recomputed) or header fields."""
    fields.setdefault("transaction_id", _TXIDS.randbytes(12))
    return _rebuilt_as(valid, attributes, **fields)


def _rebuilt_as(valid: STUN, attributes: list[StunAttribute], **fields: object) -> bytes:
    """The valid message with other attributes (MESSAGE-INTEGRITY and FINGERPRINT recomputed) or header fields."""
    msg = valid.copy()
    msg.attributes = attributes
    msg.length = None
    for name, value in fields.items():
        setattr(msg, name, value)
    return bytes(msg)


def _renewed(valid: STUN, rng: random.Random) -> bytes:
    """The valid message under a new transaction ID (integrity and fingerprint recomputed), so that an answer
    names the one input it answers."""
    return _rebuilt(valid, _fresh(valid), transaction_id=rng.randbytes(12))


def _fresh(valid: STUN) -> list[StunAttribute]:
    """The valid message's attributes with integrity and fingerprint values cleared (so they are recomputed)."""
    out: list[StunAttribute] = []
    for a in valid.attributes:
        b = a.copy()
        if isinstance(b, attr.MessageIntegrity):
            b.hmac = None
        elif isinstance(b, attr.Fingerprint):
            b.crc = None
        out.append(b)
    return out


def _split(valid: STUN) -> tuple[list[StunAttribute], list[StunAttribute]]:
    """(attributes before MESSAGE-INTEGRITY, MESSAGE-INTEGRITY and what follows)."""
    attrs = _fresh(valid)
    cut = next((i for i, a in enumerate(attrs) if a.attribute_name == "MESSAGE-INTEGRITY"), len(attrs))
    return attrs[:cut], attrs[cut:]


def _truncation(valid: STUN, rng: random.Random) -> list[HostileInput]:
    n = len(bytes(valid))
    return [HostileInput("truncation", f"at {i}", _renewed(valid, rng)[:i], malformed=i >= 20) for i in range(1, n)]


def _header_length(valid: STUN, rng: random.Random) -> list[HostileInput]:
    true = len(bytes(valid)) - 20
    out = []
    for delta in (4, 8, 400, -4, -8, 1, 2, 3, -1, -true):
        raw = _renewed(valid, rng)
        n = true + delta
        out.append(
            HostileInput("header-length", f"length {n} ({delta:+d})", raw[:2] + struct.pack("!H", n) + raw[4:], True)
        )
    raw = _renewed(valid, rng)
    out.append(HostileInput("header-length", "length 0xfffc", raw[:2] + b"\xff\xfc" + raw[4:], True))
    return out


def _attribute_length(valid: STUN, rng: random.Random) -> list[HostileInput]:
    raw = bytes(valid)
    out = []
    offset = 20
    index = 0
    while offset + 4 <= len(raw):
        code, length = struct.unpack_from("!HH", raw, offset)
        left = len(raw) - offset - 4
        for lie, name in ((left + 4, "just past the end"), (0xFFFF, "0xffff"), (left + 1, "one past the end")):
            renewed = _renewed(valid, rng)  # same layout as raw, its own transaction ID
            data = renewed[: offset + 2] + struct.pack("!H", lie) + renewed[offset + 4 :]
            # A lying FINGERPRINT only breaks an optional check (RFC 8489 §7): survival is judged, not the answer.
            label = f"attribute {index} (0x{code:04x}) length {name}"
            out.append(HostileInput("attribute-length", label, data, malformed=code != attribute_code("FINGERPRINT")))
        offset += 4 + length + (-length & 3)
        index += 1
    return out


def _zero_length(valid: STUN, rng: random.Random) -> list[HostileInput]:
    attrs = _fresh(valid)
    out = []
    for i, a in enumerate(attrs):
        if a.type not in _REQUIRED_VALUE:
            continue
        changed = [*attrs[:i], StunAttribute(type=a.type, value=b""), *attrs[i + 1 :]]
        out.append(HostileInput("zero-length", f"0x{a.type:04x} with length 0", _rebuilt(valid, changed)))
    return out


def _oversized(valid: STUN, rng: random.Random) -> list[HostileInput]:
    before, after = _split(valid)
    base = len(bytes(valid))
    user = [a for a in before if a.attribute_name != "USERNAME"]
    out = []
    for n in (513, 1024, 4000):
        name = bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(n))
        changed = [attr.Username(username=name), *user, *after]
        out.append(HostileInput("oversized", f"USERNAME of {n} bytes", _rebuilt(valid, changed)))
    filler = StunAttribute(type=0xC0DE, value=bytes(rng.getrandbits(8) for _ in range(_MAX_UDP - base - 4 - 8)))
    out.append(HostileInput("oversized", "a 64 KiB datagram", _rebuilt(valid, [*before, filler, *after])))
    many = [StunAttribute(type=0x8000 + (i % 0x2000), value=b"\x00\x00\x00\x00") for i in range(1000)]
    out.append(HostileInput("oversized", "1,000 attributes", _rebuilt(valid, [*before, *many, *after])))
    mi = [a for a in after if a.attribute_name == "MESSAGE-INTEGRITY"]
    fp = [a for a in after if a.attribute_name == "FINGERPRINT"]
    if mi:
        twice = [*before, mi[0], mi[0].copy(), *fp]
        out.append(HostileInput("oversized", "MESSAGE-INTEGRITY twice", _rebuilt(valid, twice)))
    if fp:
        software = attr.Software(software=b"after the fingerprint")
        out.append(HostileInput("oversized", "FINGERPRINT not last", _rebuilt(valid, [*before, fp[0], *mi])))
        trailing = _rebuilt(valid, [*before, *after, software])
        out.append(HostileInput("oversized", "an attribute after FINGERPRINT", trailing))
    return out


def _address(valid: STUN, rng: random.Random) -> list[HostileInput]:
    before, after = _split(valid)
    other_txid = bytes(rng.getrandbits(8) for _ in range(12))
    values: list[tuple[str, bytes]] = [
        ("family 0x00", b"\x00\x00\x12\x34\x7f\x00\x00\x01"),
        ("family 0x03", b"\x00\x03\x12\x34\x7f\x00\x00\x01"),
        ("family 0xff", b"\x00\xff\x12\x34\x7f\x00\x00\x01"),
        ("IPv6 length on IPv4", b"\x00\x01\x12\x34" + bytes(16)),
        ("IPv4 length on IPv6", b"\x00\x02\x12\x34\x7f\x00\x00\x01"),
        ("length 3", b"\x00\x01\x12"),
    ]
    out = []
    for name in _ADDRESS_TYPES:
        for label, value in values:
            changed = [*before, StunAttribute(type=name, value=value), *after]
            out.append(HostileInput("address", f"{name} {label} in a request", _rebuilt(valid, changed)))
    # An IPv6 address XORed with other_txid, sent under a fresh txid: it decodes to garbage (RFC 8489 §14.2).
    wrong = bytes(
        STUN(
            type=message_type(BINDING, SUCCESS),
            transaction_id=other_txid,
            attributes=[attr.XorMappedAddress(family=2, address="::1", port=9)],
        )
    )
    fresh = bytes(rng.getrandbits(8) for _ in range(12))
    label = "XOR-MAPPED-ADDRESS XORed with another transaction ID"
    out.append(HostileInput("address", label, wrong[:8] + fresh + wrong[20:]))
    for label, value in values:
        resp = STUN(
            type=message_type(BINDING, SUCCESS),
            transaction_id=bytes(rng.getrandbits(8) for _ in range(12)),
            attributes=[StunAttribute(type="XOR-MAPPED-ADDRESS", value=value), attr.Fingerprint()],
        )
        out.append(HostileInput("address", f"unsolicited success, XOR-MAPPED-ADDRESS {label}", bytes(resp)))
    return out


def _methods(valid: STUN, rng: random.Random) -> list[HostileInput]:
    attrs = _fresh(valid)
    out = [
        HostileInput("methods", "Binding indication", _rebuilt(valid, attrs, type=message_type(BINDING, INDICATION))),
        HostileInput("methods", "Allocate indication", _rebuilt(valid, attrs, type=message_type(ALLOCATE, INDICATION))),
        HostileInput(
            "methods",
            "request of the valid message's method, class success",
            _rebuilt(valid, attrs, type=message_type(valid.method, 2)),
        ),
    ]
    for method in sorted(rng.sample(range(0x00D, 0x1000), 6)):
        out.append(
            HostileInput(
                "methods",
                f"unknown method 0x{method:03x} request",
                _rebuilt(valid, attrs, type=message_type(method, 0)),
            )
        )
    never = bytes(rng.getrandbits(8) for _ in range(12))
    mapped = attr.XorMappedAddress(family=1, address="127.0.0.1", port=9)
    out.append(
        HostileInput(
            "methods",
            "Binding success for a transaction never sent",
            bytes(
                STUN(type=message_type(BINDING, SUCCESS), transaction_id=never, attributes=[mapped, attr.Fingerprint()])
            ),
        )
    )
    out.append(
        HostileInput(
            "methods",
            "Binding error for a transaction never sent",
            bytes(
                STUN(
                    type=message_type(BINDING, ERROR),
                    transaction_id=never,
                    attributes=[attr.ErrorCode(400), attr.Fingerprint()],
                )
            ),
        )
    )
    out.append(
        HostileInput(
            "methods",
            "error class bits carrying a success's attributes",
            bytes(
                STUN(type=message_type(BINDING, ERROR), transaction_id=never, attributes=[mapped, attr.Fingerprint()])
            ),
        )
    )
    out.append(
        HostileInput(
            "methods",
            "success class bits carrying an ERROR-CODE",
            bytes(
                STUN(
                    type=message_type(BINDING, SUCCESS),
                    transaction_id=never,
                    attributes=[attr.ErrorCode(500), attr.Fingerprint()],
                )
            ),
        )
    )
    out.append(HostileInput("methods", "type 0x3fff", _rebuilt(valid, attrs, type=0x3FFF)))
    return out


def _non_stun(valid: STUN, rng: random.Random) -> list[HostileInput]:
    def noise(n: int) -> bytes:
        return bytes(rng.getrandbits(8) for _ in range(n))

    dtls = bytes([22, 0xFE, 0xFD]) + bytes(8) + struct.pack("!H", 60) + noise(60)  # a DTLS 1.2 handshake record
    rtp = bytes([0x80, 0x60]) + noise(2) + noise(8) + noise(100)  # RTP v2, RFC 7983 §7 range 128-191
    rtcp = bytes([0x80, 200]) + struct.pack("!H", 6) + noise(24)
    return [
        HostileInput("non-stun", "zero-length datagram", b""),
        HostileInput("non-stun", "DTLS-looking record", dtls),
        HostileInput("non-stun", "DTLS content type 63", bytes([63]) + noise(40)),
        HostileInput("non-stun", "RTP-looking packet", rtp),
        HostileInput("non-stun", "RTCP-looking packet", rtcp),
        HostileInput("non-stun", "ChannelData 0x4000", bytes(ChannelData(channel=0x4000, data=noise(32)))),
        HostileInput(
            "non-stun", "ChannelData with a lying length", bytes(ChannelData(channel=0x4001, length=400, data=noise(8)))
        ),
        HostileInput("non-stun", "ZRTP range byte 16", bytes([16]) + noise(60)),
        HostileInput("non-stun", "one byte 0x00", b"\x00"),
        HostileInput("non-stun", "byte 0xff run", b"\xff" * 200),
        HostileInput(
            "non-stun", "STUN header without the magic cookie", bytes(valid)[:4] + noise(4) + bytes(valid)[8:]
        ),
    ]


_FAMILIES: dict[str, Callable[[STUN, random.Random], list[HostileInput]]] = {
    "truncation": _truncation,
    "header-length": _header_length,
    "attribute-length": _attribute_length,
    "zero-length": _zero_length,
    "oversized": _oversized,
    "address": _address,
    "methods": _methods,
    "non-stun": _non_stun,
}


def family_inputs(family: str, valid: STUN, seed: int = 0) -> list[HostileInput]:
    """The inputs of one family built from ``valid`` (a request whose ``key`` is set), deterministic for ``seed``."""
    try:
        build = _FAMILIES[family]
    except KeyError:
        raise ValueError(f"unknown family {family!r}; known: {', '.join(_FAMILIES)}") from None
    _TXIDS.seed(family_seed(family, seed) + 1)
    return build(valid, random.Random(family_seed(family, seed)))


def turn_family_inputs(family: str, build: TurnBuilder, peer: tuple[str, int], seed: int = 0) -> list[HostileInput]:
    """A TURN-only family (:data:`TURN_FAMILIES`) from an allocated client's message builder and one peer address.

    ``channel-data`` expects channel 0x4000 bound to ``peer``; ``refresh-storm`` and ``send-without-permission``
    expect nothing else. Bounded: 500 Refresh requests, 60 Send indications, 14 ChannelData messages.
    """
    rng = random.Random(family_seed(family, seed))

    def noise(n: int) -> bytes:
        return bytes(rng.getrandbits(8) for _ in range(n))

    if family == "channel-data":
        lies = [
            ("bound channel, length 400 over 8 bytes", 0x4000, 400, noise(8)),
            ("bound channel, length 0xffff over 32 bytes", 0x4000, 0xFFFF, noise(32)),
            ("bound channel, length 0 with 16 bytes", 0x4000, 0, noise(16)),
            ("bound channel, length 3 with 2 bytes", 0x4000, 3, noise(2)),
            ("bound channel, header only", 0x4000, None, b""),
            ("bound channel, 60000 bytes", 0x4000, None, noise(60000)),
            ("unbound channel 0x4001", 0x4001, None, noise(16)),
            ("reserved channel 0x5000", 0x5000, None, noise(16)),
            ("reserved channel 0x7fff", 0x7FFF, None, noise(16)),
            ("channel 0x3fff", 0x3FFF, None, noise(16)),
            ("channel 0xffff", 0xFFFF, 8, noise(8)),
        ]
        out = [
            HostileInput(family, label, bytes(ChannelData(channel=ch, length=n, data=d)), malformed=False)
            for label, ch, n, d in lies
        ]
        out.append(HostileInput(family, "three bytes 0x40 0x00 0x00", b"\x40\x00\x00"))
        out.append(HostileInput(family, "two bytes 0x40 0x00", b"\x40\x00"))
        return out
    if family == "send-without-permission":
        out = []
        for port in sorted(rng.sample(range(1024, 65535), 56)):
            address = attr.XorPeerAddress(family=1, address=peer[0], port=port)
            message = build(SEND, INDICATION, [address, attr.Data(data=noise(64))])
            out.append(HostileInput(family, f"Send to {peer[0]}:{port}, no permission", message))
        out.append(
            HostileInput(family, "Send without XOR-PEER-ADDRESS", build(SEND, INDICATION, [attr.Data(data=noise(8))]))
        )
        no_data = [attr.XorPeerAddress(family=1, address=peer[0], port=peer[1])]
        out.append(HostileInput(family, "Send without DATA", build(SEND, INDICATION, no_data)))
        big = [*no_data, attr.Data(data=noise(60000))]
        out.append(
            HostileInput(family, "Send of 60000 bytes to a peer without permission", build(SEND, INDICATION, big))
        )
        v6 = [attr.XorPeerAddress(family=2, address="::1", port=peer[1]), attr.Data(data=noise(8))]
        out.append(HostileInput(family, "Send to an IPv6 peer from an IPv4 allocation", build(SEND, INDICATION, v6)))
        return out
    if family == "refresh-storm":
        return [
            HostileInput(family, f"Refresh {i + 1} of 500", build(REFRESH, REQUEST, [attr.Lifetime(lifetime=600)]))
            for i in range(500)
        ]
    raise ValueError(f"unknown TURN family {family!r}; known: {', '.join(TURN_FAMILIES)}")


def _response(rec: Any, key: bytes, mtype: int, attributes: list[Any], integrity: bool = True) -> bytes:
    tail = [attr.MessageIntegrity()] if integrity else []
    return bytes(
        STUN(
            type=mtype, transaction_id=rec.transaction_id, key=key, attributes=[*attributes, *tail, attr.Fingerprint()]
        )
    )


def _error(code: int, reason: bytes = b"") -> StunAttribute:
    return attr.ErrorCode(code, reason)


#: Hostile answers to the IUT's own checks (RFC 8489 §6.3.3, §6.3.4; RFC 8445 §7.2.5): (label, build(request, key)).
#: Authenticated unless the label says otherwise; each answers one check of the IUT.
RESPONSE_VARIANTS: list[tuple[str, Callable[[Any, bytes], bytes]]] = [
    *[
        (f"authenticated {code} error", lambda rec, key, code=code: _response(rec, key, _ERROR, [_error(code)]))
        for code in (400, 401, 403, 420, 437, 438, 487, 500, 300)
    ],
    ("unauthenticated 403 error", lambda rec, key: _response(rec, key, _ERROR, [_error(403)], integrity=False)),
    ("error class 6 (code 699)", lambda rec, key: _response(rec, key, _ERROR, [_error(699)])),
    ("error code 0", lambda rec, key: _response(rec, key, _ERROR, [_error(0)])),
    ("error with a 763-byte reason", lambda rec, key: _response(rec, key, _ERROR, [_error(400, b"r" * 763)])),
    (
        "ERROR-CODE of length 2",
        lambda rec, key: _response(rec, key, _ERROR, [StunAttribute(type="ERROR-CODE", value=b"\x00\x04")]),
    ),
    ("error response without ERROR-CODE", lambda rec, key: _response(rec, key, _ERROR, [])),
    (
        "300 with an ALTERNATE-SERVER of family 0x03",
        lambda rec, key: _response(
            rec,
            key,
            _ERROR,
            [_error(300), StunAttribute(type="ALTERNATE-SERVER", value=b"\x00\x03\x00\x09\x7f\x00\x00\x01")],
        ),
    ),
    (
        "success with XOR-MAPPED-ADDRESS family 0x03",
        lambda rec, key: _response(
            rec, key, _SUCCESS, [StunAttribute(type="XOR-MAPPED-ADDRESS", value=b"\x00\x03\x00\x09\x7f\x00\x00\x01")]
        ),
    ),
    (
        "success with XOR-MAPPED-ADDRESS of length 3",
        lambda rec, key: _response(
            rec, key, _SUCCESS, [StunAttribute(type="XOR-MAPPED-ADDRESS", value=b"\x00\x01\x00")]
        ),
    ),
    (
        "success with an IPv6 XOR-MAPPED-ADDRESS cut to 8 bytes",
        lambda rec, key: _response(
            rec, key, _SUCCESS, [StunAttribute(type="XOR-MAPPED-ADDRESS", value=b"\x00\x02\x00\x09\x00\x00\x00\x00")]
        ),
    ),
    ("success without XOR-MAPPED-ADDRESS", lambda rec, key: _response(rec, key, _SUCCESS, [])),
]
