"""STUN credentials: string preparation, short-term and long-term keys, USERHASH, nonce cookie (RFC 8489 §9).

Theory of operation: RFC 8489 prepares every user-typed string with the OpaqueString profile of PRECIS
(RFC 8265 §4.2, on the FreeformClass of RFC 8264 §4.3); the RFC 5769 vectors predate it and use SASLprep
(RFC 4013). Both are here, and every key function takes the preparation as a parameter so a test can reproduce
either, or none (:func:`no_prep`) to craft a deliberately wrong key.

The FreeformClass check below derives each code point's PRECIS property from :mod:`unicodedata` (the
Unicode version of this Python) plus the fixed tables of RFC 5892 §2.6 and RFC 8264 §9; the contextual rules
of RFC 5892 Appendix A are implemented with a script test based on code point names, and the ZERO WIDTH
NON-JOINER rule for its virama branch only (the joining-type branch needs data :mod:`unicodedata` lacks), so a
ZWNJ outside a virama context is rejected.

The nonce cookie (RFC 8489 §9.2) carries 24 bits of "STUN Security Features" (§18.1). Which numeric bit each
feature occupies is disputed between the RFC text and its errata, so the mapping lives in the single constant
:data:`SECURITY_FEATURE_BITS`; :class:`SecurityFeature` is built from it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import stringprep
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import IntEnum, IntFlag
from types import MappingProxyType
from typing import Final

__all__ = [
    "NONCE_COOKIE",
    "NONCE_COOKIE_LENGTH",
    "SECURITY_FEATURE_BITS",
    "SECURITY_FEATURE_BITS_RFC_TEXT",
    "NonceCookieReading",
    "PasswordAlgorithm",
    "Prep",
    "SecurityFeature",
    "encode_nonce_cookie",
    "features_for_both_readings",
    "long_term_key",
    "no_prep",
    "opaque_string",
    "parse_nonce_features",
    "read_nonce_cookie",
    "saslprep",
    "short_term_key",
    "userhash",
]

Prep = Callable[[str], str]
"""A string preparation: takes the string as given, returns the prepared string or raises ``ValueError``."""

NONCE_COOKIE: Final = "obMatJos2"
"""The nonce cookie prefix (RFC 8489 §9.2)."""

NONCE_COOKIE_LENGTH: Final = len(NONCE_COOKIE) + 4
"""Length of the cookie with its base64-encoded 24-bit feature set: 13 characters (RFC 8489 §9.2)."""

# The one place where the security-feature bit order is decided (catalog §2.8). Values are masks on the 24-bit
# feature set read as a big-endian integer. This mapping reads "Bit 0" as the least significant bit, as the
# RFC 8489 errata are reported to say (libjuice cites them) and as the B.1 vector (EID 6268) fits: its cookie
# "obMatJos2AAAC" = 0x000002 goes with USERHASH and no PASSWORD-ALGORITHMS. The RFC's original §18.1 prose
# assigns from the most significant side; that reading is kept in SECURITY_FEATURE_BITS_RFC_TEXT for tests.
SECURITY_FEATURE_BITS: Final[Mapping[str, int]] = MappingProxyType(
    {"PASSWORD_ALGORITHMS": 0x000001, "USERNAME_ANONYMITY": 0x000002}
)
SECURITY_FEATURE_BITS_RFC_TEXT: Final[Mapping[str, int]] = MappingProxyType(
    {"PASSWORD_ALGORITHMS": 0x800000, "USERNAME_ANONYMITY": 0x400000}
)

_FEATURE_MASK: Final = 0xFFFFFF


class SecurityFeature(IntFlag):
    """STUN Security Features of the nonce cookie, bits from SECURITY_FEATURE_BITS (RFC 8489 §9.2, §18.1)."""

    NONE = 0
    PASSWORD_ALGORITHMS = SECURITY_FEATURE_BITS["PASSWORD_ALGORITHMS"]
    USERNAME_ANONYMITY = SECURITY_FEATURE_BITS["USERNAME_ANONYMITY"]


class PasswordAlgorithm(IntEnum):
    """PASSWORD-ALGORITHM values and their key hash (RFC 8489 §18.5)."""

    MD5 = 0x0001
    SHA256 = 0x0002


# --- string preparation ---

# Default_Ignorable_Code_Point (Unicode DerivedCoreProperties), disallowed by PRECIS (RFC 8264 §9.13).
_DEFAULT_IGNORABLE: Final = (
    (0x00AD, 0x00AD), (0x034F, 0x034F), (0x061C, 0x061C), (0x115F, 0x1160), (0x17B4, 0x17B5),
    (0x180B, 0x180F), (0x200B, 0x200F), (0x202A, 0x202E), (0x2060, 0x206F), (0x3164, 0x3164),
    (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF), (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8), (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A), (0xE0000, 0xE0FFF),
)  # fmt: skip
# Conjoining Hangul jamo (Hangul_Syllable_Type L, V, T), disallowed by PRECIS (RFC 8264 §9.9, RFC 5892 §2.9).
_OLD_HANGUL_JAMO: Final = ((0x1100, 0x11FF), (0xA960, 0xA97F), (0xD7B0, 0xD7FF))
# RFC 5892 §2.6 exceptions, applied first (RFC 8264 §8).
_EXCEPTION_PVALID: Final = frozenset({0x00DF, 0x03C2, 0x06FD, 0x06FE, 0x0F0B, 0x3007})
_EXCEPTION_DISALLOWED: Final = frozenset(
    {0x0640, 0x07FA, 0x302E, 0x302F, 0x3031, 0x3032, 0x3033, 0x3034, 0x3035, 0x303B}
)
_CONTEXTO: Final = frozenset({0x00B7, 0x0375, 0x05F3, 0x05F4, 0x30FB, *range(0x0660, 0x066A), *range(0x06F0, 0x06FA)})
_CONTEXTJ: Final = frozenset({0x200C, 0x200D})
# General categories admitted by FreeformClass (RFC 8264 §4.3.1: LetterDigits, OtherLetterDigits, Spaces,
# Symbols, Punctuation).
_FREEFORM_CATEGORIES: Final = frozenset(
    {"Ll", "Lu", "Lo", "Lm", "Mn", "Mc", "Nd", "Lt", "Nl", "No", "Me", "Zs",
     "Sm", "Sc", "Sk", "So", "Pc", "Pd", "Ps", "Pe", "Pi", "Pf", "Po"}
)  # fmt: skip
_VIRAMA_CCC: Final = 9


def _in_ranges(cp: int, ranges: tuple[tuple[int, int], ...]) -> bool:
    return any(lo <= cp <= hi for lo, hi in ranges)


def _is_noncharacter(cp: int) -> bool:
    return 0xFDD0 <= cp <= 0xFDEF or (cp & 0xFFFE) == 0xFFFE


def _script_of(ch: str) -> str:
    name = unicodedata.name(ch, "")
    return name.split(" ", 1)[0]


def _context_ok(text: str, index: int) -> bool:
    """Apply the contextual rule of RFC 5892 Appendix A to the code point at ``index``."""
    cp = ord(text[index])
    before = text[index - 1] if index > 0 else ""
    after = text[index + 1] if index + 1 < len(text) else ""
    if cp in _CONTEXTJ:  # A.1 / A.2: virama branch only (see the module docstring)
        return bool(before) and unicodedata.combining(before) == _VIRAMA_CCC
    if cp == 0x00B7:  # A.3 MIDDLE DOT between two 'l'
        return before == "l" and after == "l"
    if cp == 0x0375:  # A.4 GREEK LOWER NUMERAL SIGN before a Greek character
        return bool(after) and _script_of(after) == "GREEK"
    if cp in (0x05F3, 0x05F4):  # A.5 / A.6 after a Hebrew character
        return bool(before) and _script_of(before) == "HEBREW"
    if cp == 0x30FB:  # A.7 KATAKANA MIDDLE DOT with some Hiragana, Katakana or Han in the string
        return any(_script_of(c) in ("HIRAGANA", "KATAKANA", "CJK") for c in text if c != "\u30fb")
    if 0x0660 <= cp <= 0x0669:  # A.8 no Extended Arabic-Indic digit in the string
        return not any(0x06F0 <= ord(c) <= 0x06F9 for c in text)
    if 0x06F0 <= cp <= 0x06F9:  # A.9 no Arabic-Indic digit in the string
        return not any(0x0660 <= ord(c) <= 0x0669 for c in text)
    return False


def _freeform_problem(text: str, index: int) -> str | None:
    """Return why the code point at ``index`` is not allowed by FreeformClass (RFC 8264 §8 order), or None."""
    ch = text[index]
    cp = ord(ch)
    if cp in _EXCEPTION_PVALID:
        return None
    if cp in _EXCEPTION_DISALLOWED:
        return "is DISALLOWED by the RFC 5892 §2.6 exceptions"
    if cp in _CONTEXTO or cp in _CONTEXTJ:
        return None if _context_ok(text, index) else "fails its RFC 5892 Appendix A context rule"
    category = unicodedata.category(ch)
    if category == "Cn":
        return "is unassigned"
    if 0x21 <= cp <= 0x7E:
        return None
    if _in_ranges(cp, _OLD_HANGUL_JAMO):
        return "is a conjoining Hangul jamo"
    if _in_ranges(cp, _DEFAULT_IGNORABLE) or _is_noncharacter(cp):
        return "is a default-ignorable or noncharacter code point"
    if category == "Cc":
        return "is a control character"
    if unicodedata.normalize("NFKC", ch) != ch:  # HasCompat: FREE_PVAL in FreeformClass
        return None
    if category in _FREEFORM_CATEGORIES:
        return None
    return f"has general category {category}, which FreeformClass does not admit"


def opaque_string(s: str) -> str:
    """Enforce the PRECIS OpaqueString profile: spaces to U+0020, NFC, FreeformClass check (RFC 8265 §4.2)."""
    mapped = "".join(" " if unicodedata.category(c) == "Zs" else c for c in s)
    normalized = unicodedata.normalize("NFC", mapped)
    if not normalized:
        raise ValueError("OpaqueString: the string is empty after preparation (RFC 8265 §4.2.2)")
    for index, ch in enumerate(normalized):
        problem = _freeform_problem(normalized, index)
        if problem is not None:
            raise ValueError(f"OpaqueString: U+{ord(ch):04X} at index {index} {problem} (RFC 8264 §4.3)")
    return normalized


def _saslprep_prohibited(ch: str) -> bool:
    return (
        stringprep.in_table_c12(ch)
        or stringprep.in_table_c21_c22(ch)
        or stringprep.in_table_c3(ch)
        or stringprep.in_table_c4(ch)
        or stringprep.in_table_c5(ch)
        or stringprep.in_table_c6(ch)
        or stringprep.in_table_c7(ch)
        or stringprep.in_table_c8(ch)
        or stringprep.in_table_c9(ch)
    )


def saslprep(s: str, *, allow_unassigned: bool = False) -> str:
    """Apply SASLprep: map, NFKC, prohibit, bidi check, unassigned check (RFC 4013 §2, RFC 3454)."""
    mapped = "".join(" " if stringprep.in_table_c12(c) else c for c in s if not stringprep.in_table_b1(c))
    normalized = unicodedata.normalize("NFKC", mapped)
    for index, ch in enumerate(normalized):
        if _saslprep_prohibited(ch):
            raise ValueError(f"SASLprep: U+{ord(ch):04X} at index {index} is prohibited (RFC 4013 §2.3)")
        if not allow_unassigned and stringprep.in_table_a1(ch):
            raise ValueError(f"SASLprep: U+{ord(ch):04X} at index {index} is unassigned (RFC 4013 §2.5)")
    if any(stringprep.in_table_d1(c) for c in normalized):
        if any(stringprep.in_table_d2(c) for c in normalized):
            raise ValueError("SASLprep: string mixes RandALCat and LCat characters (RFC 3454 §6)")
        if not (stringprep.in_table_d1(normalized[0]) and stringprep.in_table_d1(normalized[-1])):
            raise ValueError("SASLprep: RandALCat string must start and end with RandALCat (RFC 3454 §6)")
    return normalized


def no_prep(s: str) -> str:
    """Return the string unchanged: no preparation (for crafting keys a peer should reject)."""
    return s


# --- keys ---


def short_term_key(password: str, prep: Prep = opaque_string) -> bytes:
    """Short-term credential key: OpaqueString(password) in UTF-8 (RFC 8489 §9.1.1)."""
    return prep(password).encode("utf-8")


def long_term_key(
    username: str,
    realm: str,
    password: str,
    algorithm: PasswordAlgorithm = PasswordAlgorithm.MD5,
    prep: Prep = opaque_string,
) -> bytes:
    """Long-term credential key: H(username ":" realm ":" password), each prepared (RFC 8489 §9.2.2, §18.5.1).

    The username goes through ``prep`` as well: §14.3 requires USERNAME to have been processed with
    OpaqueString already, so this is idempotent for a conformant username.
    """
    material = f"{prep(username)}:{prep(realm)}:{prep(password)}".encode()
    if algorithm is PasswordAlgorithm.MD5:
        return hashlib.md5(material, usedforsecurity=False).digest()
    if algorithm is PasswordAlgorithm.SHA256:
        return hashlib.sha256(material).digest()
    raise ValueError(f"unknown password algorithm {algorithm!r} (RFC 8489 §18.5)")


def userhash(username: str, realm: str, prep: Prep = opaque_string) -> bytes:
    """USERHASH value: SHA-256(OpaqueString(username) ":" OpaqueString(realm)) (RFC 8489 §14.4)."""
    return hashlib.sha256(f"{prep(username)}:{prep(realm)}".encode()).digest()


# --- nonce cookie ---


def encode_nonce_cookie(features: SecurityFeature | int) -> str:
    """Return "obMatJos2" followed by the base64 of the 24-bit feature set, 13 characters (RFC 8489 §9.2)."""
    value = int(features)
    if not 0 <= value <= _FEATURE_MASK:
        raise ValueError(f"security features {value:#x} do not fit in 24 bits (RFC 8489 §9.2)")
    return NONCE_COOKIE + base64.b64encode(value.to_bytes(3, "big")).decode("ascii")


def parse_nonce_features(nonce: str | bytes) -> SecurityFeature | None:
    """Return the security features in a NONCE's cookie, or None if it has no cookie (RFC 8489 §9.2).

    Bits not named in :class:`SecurityFeature` are kept in the returned value. A NONCE that starts with the
    cookie but lacks four valid base64 characters after it raises ``ValueError``.
    """
    raw = nonce.encode("utf-8") if isinstance(nonce, str) else bytes(nonce)
    prefix = NONCE_COOKIE.encode("ascii")
    if not raw.startswith(prefix):
        return None
    encoded = raw[len(prefix) : NONCE_COOKIE_LENGTH]
    if len(encoded) != 4:
        raise ValueError(f"nonce cookie is truncated: {len(encoded)} of 4 base64 characters (RFC 8489 §9.2)")
    try:
        decoded = base64.b64decode(encoded, validate=True)
    except binascii.Error as exc:
        raise ValueError(f"nonce cookie features {encoded!r} are not base64 (RFC 8489 §9.2)") from exc
    if len(decoded) != 3:
        raise ValueError(f"nonce cookie features {encoded!r} do not decode to 3 bytes (RFC 8489 §9.2)")
    return SecurityFeature(int.from_bytes(decoded, "big"))


def features_for_both_readings(features: SecurityFeature | int) -> int:
    """The 24-bit value that signals ``features`` whichever way a reader numbers the bits (RFC 8489 §9.2, §18.1).

    The §18.1 text counts bit 0 from the most significant end, the Appendix B.1 vector from the least significant
    one; each named feature is set at both places, which the other reading sees only as an unassigned bit.
    """
    value = int(features)
    for name, mask in SECURITY_FEATURE_BITS.items():
        if value & mask:
            value |= SECURITY_FEATURE_BITS_RFC_TEXT[name]
    return value


@dataclass(frozen=True)
class NonceCookieReading:
    """The named features of a server's cookie under either bit numbering, and which numbering showed them."""

    features: SecurityFeature
    reading: str


def read_nonce_cookie(nonce: str | bytes) -> NonceCookieReading | None:
    """The cookie's features read both ways (RFC 8489 §9.2 text and Appendix B.1), or None without a cookie."""
    raw = parse_nonce_features(nonce)
    if raw is None:
        return None
    value = int(raw)
    lsb = SecurityFeature.NONE
    msb = SecurityFeature.NONE
    for name, mask in SECURITY_FEATURE_BITS.items():
        if value & mask:
            lsb |= SecurityFeature[name]
        if value & SECURITY_FEATURE_BITS_RFC_TEXT[name]:
            msb |= SecurityFeature[name]
    if lsb and msb:
        reading = "both bit numberings" if lsb == msb else "the two bit numberings disagree"
    elif lsb:
        reading = "bit 0 least significant (RFC 8489 Appendix B.1)"
    elif msb:
        reading = "bit 0 most significant (RFC 8489 §9.2/§18.1 text)"
    else:
        reading = "no feature bit under either numbering"
    return NonceCookieReading(lsb | msb, reading)
