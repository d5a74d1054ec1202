"""Property tests: build-parse-build is stable; the strict parser only ever raises StunParseError."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from conformance.packets import STUN, StunParseError, attr, parse
from conformance.packets.fast import index

_ADDRESSES = st.one_of(st.ip_addresses(v=4).map(str), st.ip_addresses(v=6).map(str))


def _xor(layer: type) -> st.SearchStrategy[attr.StunAttribute]:
    return st.builds(
        lambda a, p: layer(family=2 if ":" in a else 1, address=a, port=p), _ADDRESSES, st.integers(0, 65535)
    )


ATTRIBUTE = st.one_of(
    st.builds(lambda b: attr.Username(username=b), st.binary(max_size=80)),
    st.builds(lambda b: attr.Software(software=b), st.binary(max_size=40)),
    st.builds(lambda p: attr.Priority(priority=p), st.integers(0, 2**32 - 1)),
    st.builds(lambda t: attr.IceControlling(tiebreaker=t), st.integers(0, 2**64 - 1)),
    st.builds(lambda t: attr.IceControlled(tiebreaker=t), st.integers(0, 2**64 - 1)),
    st.just(attr.UseCandidate()),
    st.builds(
        lambda c, r: attr.ErrorCodeAttribute(error_class=c, number=r % 100, reason=b"x" * (r % 7)),
        st.integers(3, 6),
        st.integers(0, 255),
    ),
    st.builds(lambda n: attr.Lifetime(lifetime=n), st.integers(0, 2**32 - 1)),
    st.builds(lambda c: attr.ChannelNumber(channel=c), st.integers(0, 65535)),
    st.builds(lambda b: attr.Data(data=b), st.binary(max_size=64)),
    st.builds(lambda t, v: attr.StunAttribute(type=t, value=v), st.integers(0xC100, 0xFFFF), st.binary(max_size=30)),
    _xor(attr.XorMappedAddress),
    _xor(attr.XorPeerAddress),
    _xor(attr.XorRelayedAddress),
)


@settings(max_examples=200, deadline=None)
@given(
    method=st.sampled_from([1, 3, 4, 6, 7, 8, 9]),
    cls=st.integers(0, 3),
    attributes=st.lists(ATTRIBUTE, max_size=8),
    integrity=st.booleans(),
    fingerprint=st.booleans(),
)
def test_build_parse_build_is_stable(
    method: int, cls: int, attributes: list[attr.StunAttribute], integrity: bool, fingerprint: bool
) -> None:
    from conformance.packets import message_type

    tail: list[attr.StunAttribute] = [attr.MessageIntegrity()] if integrity else []
    tail += [attr.Fingerprint()] if fingerprint else []
    raw = bytes(STUN(type=message_type(method, cls), key=b"k", attributes=[*attributes, *tail]))
    again = parse(raw)
    assert bytes(again) == raw
    assert bytes(parse(bytes(again))) == raw
    idx = index(raw)
    assert idx is not None and len(idx.attributes) == len(again.attributes)


def _strict(data: bytes) -> None:
    try:
        msg = parse(data)
    except StunParseError as exc:
        assert exc.reason
        return
    assert bytes(msg) == data


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=120))
def test_strict_parser_random_bytes_only_raise_parse_error(data: bytes) -> None:
    _strict(data)


@settings(max_examples=500, deadline=None)
@given(
    attributes=st.lists(ATTRIBUTE, min_size=1, max_size=5),
    flips=st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), min_size=1, max_size=4),
    cut=st.integers(0, 400),
)
def test_strict_parser_mutated_messages_only_raise_parse_error(
    attributes: list[attr.StunAttribute], flips: list[tuple[int, int]], cut: int
) -> None:
    raw = bytearray(bytes(STUN(type=0x0001, key=b"k", attributes=[*attributes, attr.MessageIntegrity()])))
    for pos, value in flips:
        raw[pos % len(raw)] = value
    _strict(bytes(raw[: max(cut, 1)]))
    _strict(bytes(raw))


@settings(max_examples=300, deadline=None)
@given(body=st.binary(min_size=0, max_size=80), length=st.integers(0, 0xFFFF))
def test_strict_parser_wellformed_header_with_garbage_body(body: bytes, length: int) -> None:
    body = body[: len(body) - len(body) % 4]
    header = bytes.fromhex("0001") + len(body).to_bytes(2, "big") + bytes.fromhex("2112a442") + bytes(12)
    _strict(header + body)
    _strict(header[:2] + (length & 0xFFFC).to_bytes(2, "big") + header[4:] + body)
