"""Attributes by RFC name: the one registry in packets/attributes.py behind StunIndex and Received (issue 14 §1)."""

from __future__ import annotations

import pytest

from conformance.packets import ATTRIBUTES, BINDING, ERROR, REQUEST, STUN, ErrorCode, attr, attribute_code
from conformance.packets.fast import index
from conformance.packets.stun import message_type
from conformance.tester.endpoint import Received

TXID = bytes(range(12))


def _received(*attributes: object, cls: int = REQUEST) -> Received:
    msg = STUN(type=message_type(BINDING, cls), transaction_id=TXID, attributes=list(attributes))
    return Received(bytes(msg), ("127.0.0.1", 1), ("127.0.0.1", 2), 0.0)


def test_attribute_code_takes_names_and_codes() -> None:
    for code, spec in ATTRIBUTES.items():
        assert attribute_code(spec.name) == code
        assert attribute_code(code) == code
    with pytest.raises(KeyError):
        attribute_code("NO-SUCH-ATTRIBUTE")


def test_index_accepts_names() -> None:
    raw = bytes(STUN(transaction_id=TXID, attributes=[attr.Priority(priority=7), attr.UseCandidate()]))
    i = index(raw)
    assert i is not None
    assert i.has("USE-CANDIDATE") and i.has(0x0025)
    assert not i.has("ICE-CONTROLLING")
    assert i.value("PRIORITY") == i.value(0x0024) == (7).to_bytes(4, "big")
    assert i.value("USERNAME") is None


def test_received_has_and_value() -> None:
    rec = _received(attr.UseCandidate(), attr.Priority(priority=9))
    assert rec.has("USE-CANDIDATE")
    assert not rec.has("ICE-CONTROLLED")
    assert rec.value("PRIORITY") == (9).to_bytes(4, "big")
    other = Received(b"\x80" * 12, ("127.0.0.1", 1), ("127.0.0.1", 2), 0.0)
    assert not other.has("USE-CANDIDATE")
    assert other.value("PRIORITY") is None
    assert other.error_code is None and other.role is None and other.tiebreaker is None


@pytest.mark.parametrize("code", [300, 400, 401, 420, 438, 487, 500, 699])
def test_received_error_code(code: int) -> None:
    assert _received(ErrorCode(code, "x"), cls=ERROR).error_code == code


def test_received_error_code_absent_or_short() -> None:
    assert _received(cls=ERROR).error_code is None
    short = attr.StunAttribute(type=0x0009, value=b"\x00\x00\x04")
    assert _received(short, cls=ERROR).error_code is None


def test_received_role_and_tiebreaker() -> None:
    controlling = _received(attr.IceControlling(tiebreaker=0x0102030405060708))
    assert controlling.role == "controlling"
    assert controlling.tiebreaker == 0x0102030405060708
    controlled = _received(attr.IceControlled(tiebreaker=5))
    assert (controlled.role, controlled.tiebreaker) == ("controlled", 5)
    assert _received(attr.Priority(priority=1)).role is None
    # A role attribute of the wrong length carries no role (RFC 8445 §16.1: 64-bit tiebreaker).
    assert _received(attr.StunAttribute(type=0x802A, value=b"\x00" * 4)).role is None
    # Both attributes (a protocol error): ICE-CONTROLLING is read first.
    both = _received(attr.IceControlled(tiebreaker=1), attr.IceControlling(tiebreaker=2))
    assert (both.role, both.tiebreaker) == ("controlling", 2)
