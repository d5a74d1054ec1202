"""The SDP candidate attribute: parse, format and check (RFC 8839 §5.1; tcptype from RFC 6544 §4.5).

Theory of operation: :func:`parse_candidate` is deliberately lenient. It raises :class:`CandidateError`
only when a line cannot be split into the fields of RFC 8839 §5.1 (too few fields, a non-numeric number, no
"typ", a dangling name without value); out-of-range numbers, bad foundations, unknown types and misplaced
related addresses still parse, so :func:`grammar_problems` can name each of them in a sentence. Transport and
type keep the spelling of the line (libnice sends "UDP", aioice "udp"), so :func:`format_candidate` reproduces
it; compare them with :attr:`Candidate.protocol` and :attr:`Candidate.kind`. ``tcptype`` is lifted out of the
extensions and formatted first among them, the order implementations emit.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Final

__all__ = [
    "CANDIDATE_TYPES",
    "TCP_TYPES",
    "Candidate",
    "CandidateError",
    "format_candidate",
    "grammar_problems",
    "is_fqdn",
    "is_ip_address",
    "parse_candidate",
]

CANDIDATE_TYPES: Final = ("host", "srflx", "prflx", "relay")
"""Candidate types defined by RFC 8839 §5.1."""

TCP_TYPES: Final = ("active", "passive", "so")
"""tcptype values of RFC 6544 §4.5."""

_ICE_CHARS: Final = re.compile(r"[A-Za-z0-9+/]+")
# token (RFC 3261 §25.1)
_TOKEN: Final = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
_VCHARS: Final = re.compile(r"[\x21-\x7e]*")
_DIGITS: Final = re.compile(r"[0-9]+")
_HOST_LABEL: Final = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
_RELATED_TYPES: Final = ("srflx", "prflx", "relay")
_PORT_MAX: Final = 65535
_PRIORITY_MAX: Final = 2**31 - 1
_COMPONENT_MAX: Final = 256


class CandidateError(ValueError):
    """A candidate line that cannot be split into the fields of RFC 8839 §5.1."""


@dataclass(frozen=True)
class Candidate:
    """One ICE candidate as carried in an SDP candidate attribute (RFC 8839 §5.1)."""

    foundation: str
    component: int
    transport: str
    priority: int
    address: str
    port: int
    type: str
    related_address: str | None = None
    related_port: int | None = None
    tcptype: str | None = None
    extensions: tuple[tuple[str, str], ...] = ()

    @property
    def protocol(self) -> str:
        """The transport in lower case ("udp", "tcp"); the attribute is case-insensitive (RFC 8839 §5.1)."""
        return self.transport.lower()

    @property
    def kind(self) -> str:
        """The candidate type in lower case ("host", "srflx", "prflx", "relay") (RFC 8839 §5.1)."""
        return self.type.lower()

    def extension(self, name: str) -> str | None:
        """Return the value of the first extension called ``name``, or None (RFC 8839 §5.1)."""
        for key, value in self.extensions:
            if key == name:
                return value
        return None


def _strip_prefix(text: str) -> str:
    value = text.strip()
    if value[:2].lower() == "a=":
        value = value[2:]
    if value[:10].lower() == "candidate:":
        value = value[10:]
    return value


def _integer(field: str, value: str) -> int:
    if not _DIGITS.fullmatch(value):
        raise CandidateError(f"{field} {value!r} is not a decimal number (RFC 8839 §5.1)")
    return int(value)


def parse_candidate(text: str) -> Candidate:
    """Parse "a=candidate:...", "candidate:..." or the bare attribute value (RFC 8839 §5.1)."""
    fields = _strip_prefix(text).split()
    if len(fields) < 8:
        raise CandidateError(
            f"candidate has {len(fields)} fields; foundation, component-id, transport, priority, "
            "connection-address, port, 'typ' and type are required (RFC 8839 §5.1)"
        )
    foundation, component, transport, priority, address, port, typ, cand_type = fields[:8]
    if typ.lower() != "typ":
        raise CandidateError(f"expected 'typ' after the port, found {typ!r} (RFC 8839 §5.1)")
    rest = fields[8:]
    related_address: str | None = None
    related_port: int | None = None
    if len(rest) >= 2 and rest[0].lower() == "raddr":
        related_address = rest[1]
        rest = rest[2:]
    if len(rest) >= 2 and rest[0].lower() == "rport":
        related_port = _integer("rport", rest[1])
        rest = rest[2:]
    if len(rest) % 2:
        raise CandidateError(f"extension {rest[-1]!r} has no value; extensions are name/value pairs (RFC 8839 §5.1)")
    tcptype: str | None = None
    extensions: list[tuple[str, str]] = []
    for name, value in zip(rest[::2], rest[1::2], strict=True):
        if tcptype is None and name.lower() == "tcptype":
            tcptype = value
        else:
            extensions.append((name, value))
    return Candidate(
        foundation=foundation,
        component=_integer("component-id", component),
        transport=transport,
        priority=_integer("priority", priority),
        address=address,
        port=_integer("port", port),
        type=cand_type,
        related_address=related_address,
        related_port=related_port,
        tcptype=tcptype,
        extensions=tuple(extensions),
    )


def format_candidate(candidate: Candidate) -> str:
    """Format as "candidate:<value>", the SDP attribute form used by trickle too (RFC 8839 §5.1)."""
    c = candidate
    parts = [
        f"candidate:{c.foundation}",
        str(c.component),
        c.transport,
        str(c.priority),
        c.address,
        str(c.port),
        "typ",
        c.type,
    ]
    if c.related_address is not None:
        parts += ["raddr", c.related_address]
    if c.related_port is not None:
        parts += ["rport", str(c.related_port)]
    if c.tcptype is not None:
        parts += ["tcptype", c.tcptype]
    for name, value in c.extensions:
        parts += [name, value]
    return " ".join(parts)


def is_ip_address(address: str) -> bool:
    """True for an IPv4 or IPv6 literal as SDP writes it (no brackets, no zone) (RFC 4566 §9)."""
    if "%" in address:
        return False
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False
    return True


def is_fqdn(address: str) -> bool:
    """True for a host name (LDH labels, last not all digits) that is not an IP literal (RFC 8839 §5.1)."""
    if is_ip_address(address):
        return False
    name = address[:-1] if address.endswith(".") else address
    if not name or len(name) > 253:
        return False
    labels = name.split(".")
    if not all(_HOST_LABEL.fullmatch(label) for label in labels):
        return False
    return not labels[-1].isdigit()


def _address_problem(field: str, address: str) -> str | None:
    if is_ip_address(address):
        return None
    if is_fqdn(address):
        return (
            f"{field} {address!r} is an FQDN; an agent MUST NOT use FQDN addresses for its local candidates "
            "and a receiver ignores such lines (RFC 8839 §5.1)"
        )
    return f"{field} {address!r} is neither an IPv4 address, an IPv6 address nor an FQDN (RFC 8839 §5.1)"


def _candidate_problems(c: Candidate) -> list[str]:
    problems: list[str] = []
    if not 1 <= len(c.foundation) <= 32:
        problems.append(
            f"foundation {c.foundation!r} has {len(c.foundation)} characters; it must have 1 to 32 "
            "ice-chars (RFC 8839 §5.1)"
        )
    if not _ICE_CHARS.fullmatch(c.foundation):
        bad = sorted({ch for ch in c.foundation if not _ICE_CHARS.fullmatch(ch)})
        problems.append(
            f"foundation {c.foundation!r} contains {''.join(bad)!r}; only ALPHA, DIGIT, '+' and '/' are "
            "ice-chars (RFC 8839 §5.1)"
        )
    if not 1 <= c.component <= _COMPONENT_MAX:
        problems.append(f"component-id {c.component} is outside 1..256 (RFC 8839 §5.1)")
    if not _TOKEN.fullmatch(c.transport):
        problems.append(f"transport {c.transport!r} is not a token (RFC 8839 §5.1)")
    elif c.protocol not in ("udp", "tcp"):
        problems.append(f"transport {c.transport!r} is neither UDP (RFC 8839 §5.1) nor TCP (RFC 6544 §4.5)")
    if not 1 <= c.priority <= _PRIORITY_MAX:
        problems.append(f"priority {c.priority} is outside 1..2^31-1 (RFC 8839 §5.1, RFC 8445 §5.1.2)")
    address_problem = _address_problem("connection-address", c.address)
    if address_problem:
        problems.append(address_problem)
    if not 0 <= c.port <= _PORT_MAX:
        problems.append(f"port {c.port} is outside 0..65535 (RFC 4566 §9)")
    if c.kind not in CANDIDATE_TYPES:
        problems.append(f"candidate type {c.type!r} is not host, srflx, prflx or relay (RFC 8839 §5.1)")
    elif c.kind in _RELATED_TYPES:
        if c.related_address is None:
            problems.append(f"raddr is missing; it MUST be present for a {c.kind} candidate (RFC 8839 §5.1)")
        if c.related_port is None:
            problems.append(f"rport is missing; it MUST be present for a {c.kind} candidate (RFC 8839 §5.1)")
    else:
        if c.related_address is not None:
            problems.append("raddr is present; it MUST be omitted for a host candidate (RFC 8839 §5.1)")
        if c.related_port is not None:
            problems.append("rport is present; it MUST be omitted for a host candidate (RFC 8839 §5.1)")
    if c.related_address is not None:
        related_problem = _address_problem("raddr", c.related_address)
        if related_problem:
            problems.append(related_problem)
    if c.related_port is not None and not 0 <= c.related_port <= _PORT_MAX:
        problems.append(f"rport {c.related_port} is outside 0..65535 (RFC 4566 §9)")
    if c.protocol == "tcp":
        if c.tcptype is None:
            problems.append("tcptype is missing; a TCP candidate MUST carry it (RFC 6544 §4.5)")
        elif c.tcptype.lower() not in TCP_TYPES:
            problems.append(f"tcptype {c.tcptype!r} is not active, passive or so (RFC 6544 §4.5)")
    elif c.tcptype is not None:
        problems.append(f"tcptype {c.tcptype!r} appears on a {c.transport} candidate (RFC 6544 §4.5)")
    for name, value in c.extensions:
        if name.lower() in ("raddr", "rport", "typ"):
            problems.append(
                f"{name} appears among the extensions; raddr and rport must follow the type directly (RFC 8839 §5.1)"
            )
        elif not _TOKEN.fullmatch(name):
            problems.append(f"extension name {name!r} is not a token (RFC 8839 §5.1)")
        if not _VCHARS.fullmatch(value):
            problems.append(f"extension {name} value {value!r} is not a string of VCHARs (RFC 8839 §5.1)")
    return problems


def grammar_problems(text: str) -> list[str]:
    """List every way a candidate line departs from RFC 8839 §5.1 (and RFC 6544 §4.5); empty means valid."""
    try:
        candidate = parse_candidate(text)
    except CandidateError as exc:
        return [str(exc)]
    problems = _candidate_problems(candidate)
    value = _strip_prefix(text)
    if "  " in value or "\t" in value:
        problems.append("fields are separated by more than one space; the grammar uses single SP (RFC 8839 §5.1)")
    return problems
