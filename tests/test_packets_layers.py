"""The Scapy layers: every method and class, every attribute, computed fields, verbatim fields, matching."""

from __future__ import annotations

import struct

import pytest

from conformance.packets import (
    ATTRIBUTES,
    CLASSES,
    METHODS,
    STUN,
    ChannelData,
    Deframer,
    ErrorCode,
    StunParseError,
    attr,
    check_fingerprint,
    check_header,
    check_integrity,
    classify,
    dissect,
    frame,
    message_type,
    parse,
    parse_channel_data,
    split_message_type,
    type_name,
)
from conformance.packets.fast import Template, index

KEY = b"harness-password-0123456789"


@pytest.mark.parametrize(
    ("method", "cls", "code"),
    [
        ("Binding", "request", 0x0001),
        ("Binding", "success response", 0x0101),
        ("Binding", "error response", 0x0111),
        ("Binding", "indication", 0x0011),
        ("Allocate", "request", 0x0003),
        ("Allocate", "error response", 0x0113),
        ("Refresh", "success response", 0x0104),
        ("CreatePermission", "request", 0x0008),
        ("ChannelBind", "error response", 0x0119),
        ("Send", "indication", 0x0016),
        ("Data", "indication", 0x0017),
    ],
)
def test_message_type_matches_rfc_table(method: str, cls: str, code: int) -> None:
    assert message_type(method, cls) == code
    assert split_message_type(code) == (message_type(method, "request") & 0x0F | _method(method), _cls(cls))
    assert type_name(code) == f"{method} {cls}"


def _method(name: str) -> int:
    return {v: k for k, v in METHODS.items()}[name] & ~0x0F


def _cls(name: str) -> int:
    return {v: k for k, v in CLASSES.items()}[name]


def test_every_method_and_class_round_trips() -> None:
    for m in METHODS:
        for c in CLASSES:
            t = message_type(m, c)
            assert split_message_type(t) == (m, c)
            msg = parse(bytes(STUN(type=t)))
            assert msg.method == m and msg.msg_class == c


@pytest.mark.parametrize("spec", [s for s in ATTRIBUTES.values() if s.layer is not None], ids=lambda s: s.name)
def test_every_attribute_layer_round_trips(spec: object) -> None:
    layer = spec.layer  # type: ignore[attr-defined]
    msg = STUN(type=0x0001, key=KEY, attributes=[layer()])
    raw = bytes(msg)
    assert check_header(raw) is None
    again = parse(raw)
    assert type(again.attributes[0]) is layer
    assert bytes(again) == raw


def test_unknown_attribute_is_kept_byte_exact() -> None:
    raw = bytes(
        STUN(
            type=0x0001,
            attributes=[attr.StunAttribute(type=0xC0DE, value=b"\x01\x02\x03\x04\x05", padding=b"xyz")],
        )
    )
    msg = parse(raw)
    a = msg.attributes[0]
    assert (a.type, a.length, a.value, a.padding) == (0xC0DE, 5, b"\x01\x02\x03\x04\x05", b"xyz")
    assert bytes(msg) == raw


def test_attribute_with_wrong_length_stays_generic_tlv() -> None:
    raw = bytes(STUN(type=0x0001, attributes=[attr.StunAttribute(type=0x0024, value=b"\x00\x00\x01")]))
    msg = parse(raw)
    assert type(msg.attributes[0]) is attr.StunAttribute
    assert bytes(msg) == raw


@pytest.mark.parametrize("address", ["192.0.2.1", "2001:db8::1", "127.0.0.1", "::1"])
@pytest.mark.parametrize("layer", [attr.XorMappedAddress, attr.XorPeerAddress, attr.XorRelayedAddress])
def test_xor_address_round_trips(layer: type, address: str) -> None:
    family = 2 if ":" in address else 1
    msg = STUN(type=0x0101, attributes=[layer(family=family, address=address, port=40000)])
    again = parse(bytes(msg))
    a = again.attributes[0]
    assert (a.family, a.address, a.port) == (family, address, 40000)
    raw = bytes(again)
    assert struct.unpack_from("!H", raw, 26)[0] == 40000 ^ 0x2112


def test_error_code_class_number_and_reason() -> None:
    msg = parse(bytes(STUN(type=0x0111, attributes=[ErrorCode(487, "Role Conflict")])))
    a = msg.attr("ERROR-CODE")
    assert (a.error_class, a.number, a.code, a.reason) == (4, 87, 487, b"Role Conflict")
    assert msg.error_code == 487


def test_unknown_attributes_lists_types() -> None:
    msg = parse(
        bytes(STUN(type=0x0111, attributes=[ErrorCode(420), attr.UnknownAttributes(types=[0x7F01, 0x0042, 3])]))
    )
    assert msg.attr("UNKNOWN-ATTRIBUTES").types == [0x7F01, 0x0042, 3]


def test_password_algorithms_list() -> None:
    entries = [attr.AlgorithmEntry(algorithm=2), attr.AlgorithmEntry(algorithm=1)]
    msg = parse(bytes(STUN(type=0x0113, attributes=[attr.PasswordAlgorithms(algorithms=entries)])))
    assert [e.algorithm for e in msg.attr("PASSWORD-ALGORITHMS").algorithms] == [2, 1]


def test_integrity_and_fingerprint_computed_when_none() -> None:
    raw = bytes(
        STUN(
            type=0x0001,
            key=KEY,
            attributes=[attr.Username(username=b"a:b"), attr.MessageIntegrity(), attr.Fingerprint()],
        )
    )
    assert check_integrity(raw, KEY) is None
    assert check_fingerprint(raw) is None


def test_sha256_integrity_computed_and_truncatable() -> None:
    full = bytes(STUN(type=0x0001, key=KEY, attributes=[attr.MessageIntegritySha256()]))
    assert check_integrity(full, KEY, "sha256") is None
    short = bytes(STUN(type=0x0001, key=KEY, attributes=[attr.MessageIntegritySha256(length=16)]))
    assert len(short) == 20 + 4 + 16
    assert check_integrity(short, KEY, "sha256") is None


def test_explicit_values_go_on_the_wire_verbatim() -> None:
    raw = bytes(
        STUN(
            type=0x0001,
            length=400,
            key=KEY,
            attributes=[attr.MessageIntegrity(hmac=b"\xaa" * 20), attr.Fingerprint(crc=0xDEADBEEF)],
        )
    )
    assert raw[2:4] == (400).to_bytes(2, "big")
    assert raw[24:44] == b"\xaa" * 20
    assert raw[-4:] == bytes.fromhex("deadbeef")


def test_missing_key_raises_clear_error() -> None:
    with pytest.raises(ValueError, match="needs key="):
        bytes(STUN(type=0x0001, attributes=[attr.MessageIntegrity()]))


def test_verification_reasons_are_precise() -> None:
    good = bytes(STUN(type=0x0001, key=KEY, attributes=[attr.MessageIntegrity(), attr.Fingerprint()]))
    assert check_integrity(good, b"wrong").startswith("MESSAGE-INTEGRITY is ")  # type: ignore[union-attr]
    bad_fp = good[:-1] + bytes([good[-1] ^ 1])
    assert check_fingerprint(bad_fp).startswith("FINGERPRINT is 0x")  # type: ignore[union-attr]
    after = bytes(STUN(type=0x0001, key=KEY, attributes=[attr.Fingerprint(), attr.Priority(priority=1)]))
    assert check_fingerprint(after) == "FINGERPRINT is followed by PRIORITY"
    assert check_integrity(bytes(STUN(type=0x0001)), KEY) == "no MESSAGE-INTEGRITY attribute"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x00\x01\x00", "truncated header: 3 bytes, a STUN header is 20"),
        (bytes.fromhex("400100002112a442") + bytes(12), "top two bits are 01, must be 00"),
        (bytes.fromhex("0001000021120000") + bytes(12), "magic cookie is 0x21120000, must be 0x2112a442"),
        (
            bytes.fromhex("0001000221 12a442".replace(" ", "")) + bytes(12),
            "length field 2 is not a multiple of 4",
        ),
        (
            bytes.fromhex("0001000821 12a442".replace(" ", "")) + bytes(12),
            "length field 8 does not match the 0 bytes after the header",
        ),
    ],
)
def test_check_header_reasons(data: bytes, reason: str) -> None:
    assert check_header(data) == reason
    with pytest.raises(StunParseError, match=reason.split(":")[0]):
        parse(data)


def test_parse_rejects_attribute_overrun_and_bad_padding() -> None:
    over = (
        bytes.fromhex("0001000821 12a442".replace(" ", ""))
        + bytes(12)
        + bytes.fromhex("0006 0010 61626364".replace(" ", ""))
    )
    with pytest.raises(StunParseError, match="overrunning the message by 12 bytes"):
        parse(over)
    pad = (
        bytes.fromhex("0001000821 12a442".replace(" ", ""))
        + bytes(12)
        + bytes.fromhex("0006 0005 6162636465".replace(" ", ""))
    )
    pad = pad[:2] + b"\x00\x09" + pad[4:]
    with pytest.raises(StunParseError):
        parse(pad)


def test_answers_and_hashret_match_by_transaction_id() -> None:
    req = STUN(type=0x0001)
    ok = STUN(type=0x0101, transaction_id=req.transaction_id)
    err = STUN(type=0x0111, transaction_id=req.transaction_id, attributes=[ErrorCode(401)])
    other = STUN(type=0x0101)
    alloc = STUN(type=0x0103, transaction_id=req.transaction_id)
    assert ok.answers(req) and err.answers(req)
    assert not other.answers(req) and not alloc.answers(req) and not req.answers(ok)
    assert ok.hashret() == req.hashret()


def test_classify_by_first_byte() -> None:
    assert [classify(bytes([b])) for b in (0, 3, 17, 22, 64, 79, 128, 200)] == [
        "stun",
        "stun",
        "zrtp",
        "dtls",
        "channeldata",
        "channeldata",
        "rtp",
        "reserved",
    ]
    assert isinstance(dissect(bytes(ChannelData(channel=0x4001, data=b"x"))), ChannelData)
    assert isinstance(dissect(bytes(STUN())), STUN)


def test_channel_data_parse_and_limits() -> None:
    raw = bytes(ChannelData(channel=0x4001, data=b"hello"))
    assert raw[:4] == bytes.fromhex("40010005")
    assert parse_channel_data(raw).data == b"hello"
    assert bytes(parse_channel_data(raw + b"\x00\x00\x00")) == raw + b"\x00\x00\x00"
    with pytest.raises(StunParseError, match="exceeds"):
        parse_channel_data(raw[:-1])
    with pytest.raises(StunParseError, match="outside 0x4000-0x4FFF"):
        parse_channel_data(bytes.fromhex("50000000"))
    with pytest.raises(StunParseError, match="must be padded"):
        parse_channel_data(raw, stream=True)


def test_rfc4571_framing_byte_at_a_time() -> None:
    messages = [bytes(STUN()), bytes(ChannelData(channel=0x4000, data=b"abc", padding=b"\x00")), b""]
    stream = b"".join(frame(m) for m in messages)
    d = Deframer()
    out: list[bytes] = []
    for i in range(len(stream)):
        out += d.feed(stream[i : i + 1])
    assert out == messages and d.pending == 0


def test_fast_index_matches_scapy() -> None:
    raw = bytes(
        STUN(
            type=0x0001,
            key=KEY,
            attributes=[
                attr.Username(username=b"ab:cd"),
                attr.Priority(priority=7),
                attr.UseCandidate(),
                attr.MessageIntegrity(),
                attr.Fingerprint(),
            ],
        )
    )
    idx = index(raw)
    assert idx is not None
    assert (idx.method, idx.msg_class, idx.transaction_id) == (1, 0, raw[8:20])
    assert [c for c, _, _ in idx.attributes] == [0x0006, 0x0024, 0x0025, 0x0008, 0x8028]
    assert idx.value(0x0006) == b"ab:cd" and idx.has(0x0025)
    assert index(raw[:-1]) is None and index(b"\x80" + raw[1:]) is None


def test_fast_template_renders_valid_checks() -> None:
    msg = STUN(
        type=0x0001,
        attributes=[
            attr.Username(username=b"abcd:efgh"),
            attr.Priority(priority=0x6EFFFFFF),
            attr.IceControlling(tiebreaker=42),
            attr.MessageIntegrity(),
            attr.Fingerprint(),
        ],
    )
    tpl = Template(msg, KEY)
    for txid in (b"\x01" * 12, b"\x02" * 12):
        raw = tpl.render(txid)
        assert raw[8:20] == txid
        assert check_integrity(raw, KEY) is None and check_fingerprint(raw) is None
        expected = parse(raw)
        expected.key = KEY
        for a in expected.attributes:
            if a.type == 0x0008:
                a.hmac = None
            if a.type == 0x8028:
                a.crc = None
        assert bytes(expected) == raw
