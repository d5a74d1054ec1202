"""Every RFC test vector: parse, check every field, verify integrity and fingerprint, rebuild byte for byte."""

from __future__ import annotations

import pytest

from conformance.packets import STUN, StunParseError, attr, check_fingerprint, check_integrity, parse
from conformance.protocol.keys import PasswordAlgorithm, long_term_key, saslprep, short_term_key, userhash
from tests.conftest import load_vector

SHORT_TERM = ["rfc5769-sample-request", "rfc5769-sample-ipv4-response", "rfc5769-sample-ipv6-response"]
ALL_VALID = [*SHORT_TERM, "rfc5769-long-term-request", "rfc8489-b1-errata6268"]


def _key(meta: dict[str, object]) -> bytes:
    if meta["credential"] == "short-term":
        return short_term_key(str(meta["password"]))
    algorithm = PasswordAlgorithm.SHA256 if meta["algorithm"] == "SHA-256" else PasswordAlgorithm.MD5
    prep = saslprep if meta.get("prep") == "saslprep" else None
    password = str(meta.get("password", meta["password_prepared"]))
    if prep is not None:
        return long_term_key(str(meta["username"]), str(meta["realm"]), password, algorithm, prep=prep)
    return long_term_key(str(meta["username"]), str(meta["realm"]), password, algorithm)


def _check_attribute(msg: STUN, expected: dict[str, object]) -> None:
    a = msg.attr(str(expected["name"]))
    assert a is not None, f"{expected['name']} missing"
    name = expected["name"]
    if name == "XOR-MAPPED-ADDRESS":
        assert (a.address, a.port) == (expected["address"], expected["port"])
        return
    value = expected["value"]
    field = {
        "SOFTWARE": "software",
        "USERNAME": "username",
        "NONCE": "nonce",
        "REALM": "realm",
        "PRIORITY": "priority",
        "ICE-CONTROLLED": "tiebreaker",
        "MESSAGE-INTEGRITY": "hmac",
        "MESSAGE-INTEGRITY-SHA256": "hmac",
        "FINGERPRINT": "crc",
        "USERHASH": "userhash",
        "PASSWORD-ALGORITHM": "algorithm",
    }[str(name)]
    got = getattr(a, field)
    if isinstance(got, bytes):
        if field in ("hmac", "userhash"):
            assert got.hex() == value
        else:
            assert got.decode() == value
    else:
        assert got == value
    if "padding_hex" in expected:
        assert a.padding.hex() == expected["padding_hex"]


@pytest.mark.parametrize("name", ALL_VALID)
def test_vector_parses_with_every_field(name: str) -> None:
    data, meta = load_vector(name)
    msg = parse(data)
    assert msg.type_name == meta["type"]
    assert msg.transaction_id.hex() == meta["transaction_id"]
    for expected in meta["attributes"]:
        _check_attribute(msg, expected)
    assert msg.attribute_names() == [a["name"] for a in meta["attributes"]]


@pytest.mark.parametrize("name", ALL_VALID)
def test_vector_integrity_verifies_with_its_credentials(name: str) -> None:
    data, meta = load_vector(name)
    key = _key(meta)
    if "key" in meta:
        assert key.hex() == meta["key"]
    assert check_integrity(data, key) is None


@pytest.mark.parametrize("name", SHORT_TERM)
def test_vector_fingerprint_verifies(name: str) -> None:
    data, _ = load_vector(name)
    assert check_fingerprint(data) is None


def test_vector_long_term_request_has_no_fingerprint() -> None:
    data, _ = load_vector("rfc5769-long-term-request")
    assert check_fingerprint(data) == "no FINGERPRINT attribute"


@pytest.mark.parametrize("name", ALL_VALID)
def test_vector_rebuilds_byte_identically(name: str) -> None:
    data, _ = load_vector(name)
    assert bytes(parse(data)) == data


@pytest.mark.parametrize("name", ALL_VALID)
def test_vector_recomputed_from_none_matches(name: str) -> None:
    """Clearing every MI, MI-SHA256 and FINGERPRINT value and the length, then building, gives the vector back."""
    data, meta = load_vector(name)
    msg = parse(data)
    msg.length = None
    for a in msg.attributes:
        if a.type in (0x0008, 0x001C):
            a.hmac = None
        if a.type == 0x8028:
            a.crc = None
    msg.key = _key(meta)
    assert bytes(msg) == data


def test_vector_b1_userhash_matches_username_and_realm() -> None:
    data, meta = load_vector("rfc8489-b1-errata6268")
    msg = parse(data)
    assert msg.attr("USERHASH").userhash == userhash(str(meta["username"]), str(meta["realm"]))
    assert userhash(str(meta["username"]), str(meta["realm"])).hex() == meta["userhash"]


def test_vector_b1_original_is_rejected_with_its_reason() -> None:
    data, meta = load_vector("rfc8489-b1-original")
    with pytest.raises(StunParseError) as info:
        parse(data)
    assert info.value.reason == meta["expected_error"]


@pytest.mark.parametrize("length", [0x9C, 0x88])
def test_vector_b1_original_integrity_fails_under_every_key(length: int) -> None:
    data, meta = load_vector("rfc8489-b1-original")
    data = data[:2] + length.to_bytes(2, "big") + data[4:]
    user, realm = str(meta["username"]), str(meta["realm"])
    keys = [
        long_term_key(user, realm, "TheMatrIX", PasswordAlgorithm.SHA256),
        long_term_key(user, realm, "TheMatrIX", PasswordAlgorithm.MD5),
        short_term_key("TheMatrIX"),
    ]
    for key in keys:
        reason = check_integrity(data, key, "sha256")
        assert reason is not None and reason.startswith("MESSAGE-INTEGRITY-SHA256 is e4686c8f")


def test_vector_sample_request_built_from_scratch() -> None:
    data, meta = load_vector("rfc5769-sample-request")
    msg = STUN(
        type=0x0001,
        transaction_id=bytes.fromhex(str(meta["transaction_id"])),
        key=short_term_key(str(meta["password"])),
        attributes=[
            attr.Software(software=b"STUN test client"),
            attr.Priority(priority=0x6E0001FF),
            attr.IceControlled(tiebreaker=0x932FF9B151263B36),
            attr.Username(username=b"evtj:h6vY", padding=b"   "),
            attr.MessageIntegrity(),
            attr.Fingerprint(),
        ],
    )
    assert bytes(msg) == data
