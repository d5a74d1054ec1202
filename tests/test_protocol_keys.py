"""Credentials, keys, USERHASH and nonce cookie against the RFC 5769 and RFC 8489 vectors (catalog §3)."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conformance.protocol.keys import (
    NONCE_COOKIE,
    SECURITY_FEATURE_BITS,
    PasswordAlgorithm,
    SecurityFeature,
    encode_nonce_cookie,
    long_term_key,
    no_prep,
    opaque_string,
    parse_nonce_features,
    saslprep,
    short_term_key,
    userhash,
)

MATRIX_USER = "\u30de\u30c8\u30ea\u30c3\u30af\u30b9"
RFC5769_PASSWORD = "VOkJxbRl1RmTxUk/WvJxBt"

# Catalog §3.1 (RFC 5769 §2.1), §3.4 (RFC 5769 §2.4), §3.5 (RFC 8489 B.1 with EID 6268).
SAMPLE_REQUEST = bytes.fromhex(
    "000100582112a442b7e7a701bc34d686fa87dfae802200105354554e207465737420636c69656e74002400046e0001ff"
    "80290008932ff9b151263b36000600096576746a3a68367659202020000800149aeaa70cbfd8cb56781ef2b5b2d3f249"
    "c1b571a280280004e57a3bcf"
)
LONG_TERM_REQUEST = bytes.fromhex(
    "000100602112a44278ad3433c6ad72c029da412e00060012e3839ee38388e383aae38383e382afe382b900000015001c"
    "662f2f3439396b39353464364f4c33346f4c394653547679363473410014000b6578616d706c652e6f72670000080014"
    "f67024656dd64a3e02b8e0712e85c9a28ca89666"
)
B1_REQUEST = bytes.fromhex(
    "000100902112a44278ad3433c6ad72c029da412e001e00204a3cf38fef6992bda952c6780417da0f24819415569e60b2"
    "05c46e41407f1704001500296f624d61744a6f733241414143662f2f3439396b39353464364f4c33346f4c3946535476"
    "79363473410000000014000b6578616d706c652e6f726700001d000400020000001c0020b5c7bf005b6c52a21c51c5e8"
    "92f81924136296cb927c43149309278cc6518e65"
)


def _integrity_input(message: bytes, mi_offset: int, mi_size: int) -> bytes:
    """Message up to the integrity attribute, length rewritten to end at it (RFC 8489 §14.5, §14.6)."""
    length = mi_offset - 20 + 4 + mi_size
    return message[:2] + length.to_bytes(2, "big") + message[4:mi_offset]


def test_long_term_key_md5_matches_user_realm_pass_vector() -> None:
    assert long_term_key("user", "realm", "pass").hex() == "8493fbc53ba582fb4c044c456bdc40eb"


def test_long_term_key_saslprep_matches_rfc5769_vector() -> None:
    key = long_term_key(MATRIX_USER, "example.org", "TheM\u00aatr\u2168", prep=saslprep)
    assert key.hex() == "e8ca7ad59d5eb0518e312911d2dab2a9"


def test_long_term_key_saslprep_validates_rfc5769_message_integrity() -> None:
    key = long_term_key(MATRIX_USER, "example.org", "TheM\u00aatr\u2168", prep=saslprep)
    digest = hmac.new(key, _integrity_input(LONG_TERM_REQUEST, 92, 20), hashlib.sha1).digest()
    assert digest == LONG_TERM_REQUEST[96:116]


def test_long_term_key_sha256_matches_b1_vector() -> None:
    key = long_term_key(MATRIX_USER, "example.org", "TheMatrIX", PasswordAlgorithm.SHA256)
    assert key.hex() == "dd295a613b9058c3c23d6dc7165bda072304d989c9d0af3a8c7e184b4f9bb4a1"


def test_long_term_key_sha256_validates_b1_message_integrity_sha256() -> None:
    key = long_term_key(MATRIX_USER, "example.org", "TheMatrIX", PasswordAlgorithm.SHA256)
    digest = hmac.new(key, _integrity_input(B1_REQUEST, 128, 32), hashlib.sha256).digest()
    assert digest == B1_REQUEST[132:164]


def test_long_term_key_md5_does_not_validate_b1_message_integrity_sha256() -> None:
    key = long_term_key(MATRIX_USER, "example.org", "TheMatrIX", PasswordAlgorithm.MD5)
    digest = hmac.new(key, _integrity_input(B1_REQUEST, 128, 32), hashlib.sha256).digest()
    assert digest != B1_REQUEST[132:164]


@pytest.mark.parametrize(("algorithm", "size"), [(PasswordAlgorithm.MD5, 16), (PasswordAlgorithm.SHA256, 32)])
def test_long_term_key_length_follows_algorithm(algorithm: PasswordAlgorithm, size: int) -> None:
    assert len(long_term_key("u", "r", "p", algorithm)) == size


def test_long_term_key_prepares_realm_and_password_with_opaque_string() -> None:
    nbsp = long_term_key("user", "my\u00a0realm", "pa\u2009ss")
    assert nbsp == long_term_key("user", "my realm", "pa ss")


def test_long_term_key_no_prep_keeps_string_as_given() -> None:
    assert long_term_key("user", "realm", "a\u00a0b", prep=no_prep) != long_term_key("user", "realm", "a\u00a0b")


def test_password_algorithm_values_match_registry() -> None:
    assert (PasswordAlgorithm.MD5, PasswordAlgorithm.SHA256) == (0x0001, 0x0002)


def test_short_term_key_validates_rfc5769_sample_request() -> None:
    key = short_term_key(RFC5769_PASSWORD)
    assert key == RFC5769_PASSWORD.encode()
    digest = hmac.new(key, _integrity_input(SAMPLE_REQUEST, 76, 20), hashlib.sha1).digest()
    assert digest == SAMPLE_REQUEST[80:100]


def test_userhash_matches_b1_vector() -> None:
    expected = "4a3cf38fef6992bda952c6780417da0f24819415569e60b205c46e41407f1704"
    assert userhash(MATRIX_USER, "example.org").hex() == expected
    assert userhash(MATRIX_USER, "example.org") == B1_REQUEST[24:56]


def test_saslprep_maps_rfc5769_password() -> None:
    assert saslprep("TheM\u00aatr\u2168") == "TheMatrIX"


def test_saslprep_maps_soft_hyphen_to_nothing() -> None:
    assert saslprep("The\u00adM\u00aatr\u2168") == "TheMatrIX"


def test_saslprep_maps_non_ascii_space_to_space() -> None:
    assert saslprep("a\u2003b") == "a b"


@pytest.mark.parametrize("text", ["a\u0007b", "a\ue000b", "a\ufffeb"])
def test_saslprep_rejects_prohibited_code_points(text: str) -> None:
    with pytest.raises(ValueError, match="prohibited"):
        saslprep(text)


def test_saslprep_rejects_mixed_bidi() -> None:
    with pytest.raises(ValueError, match="RandALCat"):
        saslprep("\u0627a")


def test_saslprep_rejects_unassigned_unless_allowed() -> None:
    with pytest.raises(ValueError, match="unassigned"):
        saslprep("a\u0378")
    assert saslprep("a\u0378", allow_unassigned=True) == "a\u0378"


def test_opaque_string_keeps_compatibility_characters() -> None:
    assert opaque_string("TheM\u00aatr\u2168") == "TheM\u00aatr\u2168"


def test_opaque_string_maps_non_ascii_spaces_to_space() -> None:
    assert opaque_string("a\u00a0b\u3000c") == "a b c"


def test_opaque_string_normalizes_to_nfc() -> None:
    assert opaque_string("e\u0301") == "\u00e9"


def test_opaque_string_keeps_japanese_username() -> None:
    assert opaque_string(MATRIX_USER) == MATRIX_USER


def test_opaque_string_rejects_empty() -> None:
    with pytest.raises(ValueError, match="empty"):
        opaque_string("")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("a\tb", "control"),
        ("The\u00adM\u00aatr\u2168", "default-ignorable"),
        ("a\u0378", "unassigned"),
        ("a\u2028b", "category Zl"),
        ("a\ue000", "category Co"),
        ("a\u0640", "exceptions"),
        ("a\u1100", "jamo"),
        ("a\u00b7b", "context"),
        ("a\u200db", "context"),
    ],
)
def test_opaque_string_rejects_disallowed_code_points(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        opaque_string(text)


def test_opaque_string_accepts_contextual_code_points_in_context() -> None:
    assert opaque_string("l\u00b7l") == "l\u00b7l"
    assert opaque_string("\u0915\u094d\u200d") == "\u0915\u094d\u200d"
    assert opaque_string("\u30ab\u30fb\u30ab") == "\u30ab\u30fb\u30ab"


def test_security_feature_members_come_from_bit_mapping() -> None:
    assert SecurityFeature.PASSWORD_ALGORITHMS == SECURITY_FEATURE_BITS["PASSWORD_ALGORITHMS"] == 0x000001
    assert SecurityFeature.USERNAME_ANONYMITY == SECURITY_FEATURE_BITS["USERNAME_ANONYMITY"] == 0x000002


@pytest.mark.parametrize(
    ("features", "cookie"),
    [
        (SecurityFeature.NONE, "obMatJos2AAAA"),
        (SecurityFeature.PASSWORD_ALGORITHMS, "obMatJos2AAAB"),
        (SecurityFeature.USERNAME_ANONYMITY, "obMatJos2AAAC"),
        (0x000001, "obMatJos2AAAB"),
        (0x800000, "obMatJos2gAAA"),
    ],
)
def test_encode_nonce_cookie_matches_catalog_vectors(features: SecurityFeature | int, cookie: str) -> None:
    assert encode_nonce_cookie(features) == cookie
    assert len(cookie) == 13


@pytest.mark.parametrize("features", [-1, 0x1000000])
def test_encode_nonce_cookie_rejects_values_outside_24_bits(features: int) -> None:
    with pytest.raises(ValueError, match="24 bits"):
        encode_nonce_cookie(features)


def test_parse_nonce_features_reads_b1_nonce() -> None:
    nonce = B1_REQUEST[60:101]
    assert nonce == b"obMatJos2AAACf//499k954d6OL34oL9FSTvy64sA"
    assert parse_nonce_features(nonce) == SecurityFeature.USERNAME_ANONYMITY
    assert parse_nonce_features(nonce.decode()) == SecurityFeature.USERNAME_ANONYMITY


@pytest.mark.parametrize("nonce", ["f//499k954d6OL34oL9FSTvy64sA", "", b"obMatJos", "OBMATJOS2AAAA"])
def test_parse_nonce_features_without_cookie_is_none(nonce: str | bytes) -> None:
    assert parse_nonce_features(nonce) is None


def test_parse_nonce_features_keeps_unknown_bits() -> None:
    features = parse_nonce_features("obMatJos2gAAB")
    assert features is not None
    assert int(features) == 0x800001
    assert SecurityFeature.PASSWORD_ALGORITHMS in features


@pytest.mark.parametrize(
    ("nonce", "reason"),
    [("obMatJos2AA", "truncated"), ("obMatJos2A*AA", "not base64"), ("obMatJos2AA==", "3 bytes")],
)
def test_parse_nonce_features_rejects_malformed_cookie(nonce: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_nonce_features(nonce)


@given(features=st.integers(min_value=0, max_value=0xFFFFFF), tail=st.text(alphabet="abcXYZ019+/", max_size=20))
def test_parse_nonce_features_inverts_encode_nonce_cookie(features: int, tail: str) -> None:
    cookie = encode_nonce_cookie(features)
    assert cookie.startswith(NONCE_COOKIE)
    assert parse_nonce_features(cookie + tail) == features
