"""The RFC test vectors shipped in ``vectors/``: load them and verify each one (RFC 5769, RFC 8489 Appendix B.1)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conformance.packets import StunParseError, check_fingerprint, check_integrity, parse
from conformance.protocol.keys import PasswordAlgorithm, long_term_key, saslprep, short_term_key

__all__ = ["Vector", "VectorResult", "load_vectors", "vectors_dir", "verify_vector"]


def vectors_dir() -> Path:
    """The ``vectors/`` folder of the repository."""
    return Path(__file__).resolve().parents[1] / "vectors"


@dataclass(frozen=True)
class Vector:
    """One message vector: its bytes and its sidecar of parameters."""

    name: str
    data: bytes
    meta: dict[str, Any]

    def key(self) -> bytes:
        """The integrity key the sidecar's credentials give (RFC 8489 §9.1.1, §9.2.2)."""
        meta = self.meta
        if meta["credential"] == "short-term":
            return short_term_key(str(meta["password"]))
        algorithm = PasswordAlgorithm.SHA256 if meta["algorithm"] == "SHA-256" else PasswordAlgorithm.MD5
        user, realm = str(meta["username"]), str(meta["realm"])
        if meta.get("prep") == "saslprep":
            return long_term_key(user, realm, str(meta["password"]), algorithm, prep=saslprep)
        return long_term_key(user, realm, str(meta["password_prepared"]), algorithm)


@dataclass(frozen=True)
class VectorResult:
    """The outcome of verifying one vector: ``ok`` when it behaved as its sidecar says."""

    name: str
    source: str
    ok: bool
    detail: str


def load_vectors(folder: Path | None = None) -> list[Vector]:
    """Every ``*.hex`` message vector with its ``*.json`` sidecar, sorted by name."""
    folder = folder or vectors_dir()
    out = []
    for hex_file in sorted(folder.glob("*.hex")):
        meta = json.loads(hex_file.with_suffix(".json").read_text())
        out.append(Vector(hex_file.stem, bytes.fromhex(hex_file.read_text().strip()), meta))
    return out


def verify_vector(vector: Vector) -> VectorResult:
    """Parse, rebuild and verify integrity and fingerprint; a negative vector must be rejected with its reason."""
    source = str(vector.meta.get("source", ""))
    try:
        msg = parse(vector.data)
    except StunParseError as exc:
        if vector.meta.get("valid", True):
            return VectorResult(vector.name, source, False, f"rejected: {exc.reason}")
        expected = vector.meta.get("expected_error")
        ok = expected is None or exc.reason == expected
        return VectorResult(vector.name, source, ok, f"rejected as expected: {exc.reason}")
    if not vector.meta.get("valid", True):
        return VectorResult(vector.name, source, False, "negative vector was accepted")
    problems = []
    if bytes(msg) != vector.data:
        problems.append("rebuild differs from the input")
    integrity = check_integrity(vector.data, vector.key())
    if integrity is not None:
        problems.append(integrity)
    has_fp = any(a.attribute_name == "FINGERPRINT" for a in msg.attributes)
    if has_fp and (reason := check_fingerprint(vector.data)) is not None:
        problems.append(reason)
    detail = "; ".join(problems) or (
        f"{msg.type_name}, {len(vector.data)} bytes: integrity ok" + (", fingerprint ok" if has_fp else "")
    )
    return VectorResult(vector.name, source, not problems, detail)
