"""Which RFC revision a requirement comes from, and whether the IUT shows it implements the newer one.

RFC 8489 obsoletes RFC 5389 and RFC 8656 obsoletes RFC 5766 while keeping backward compatibility on purpose
(RFC 8489 §9.2.1 makes the new security features optional; §9.2.4 treats a request without algorithm attributes
as MD5). A catalog row (or clause) records the revision that introduced it (``revision`` in ``suites/catalog.toml``).
A row that only the newer revision imposes is graded as written when the run says the IUT claims that revision
(``--require 8489`` / ``--require 8656``) or when the case's own capture shows the IUT implementing part of the
mechanism; otherwise a violation of it is UNSUPPORTED, "RFC 8489 mechanism not implemented", and the report counts it
as a revision gap, apart from violations of the revision the IUT implements. An ICE agent is judged by the STUN
revision RFC 8445 cites (RFC 5389) unless it shows or claims more.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from conformance.packets import attribute_code
from conformance.packets.fast import index
from conformance.protocol.keys import NONCE_COOKIE
from conformance.tester.capture import Datagram

__all__ = [
    "GRADED_ON_EVIDENCE",
    "MECHANISMS",
    "OLDER",
    "SHOWN_ELSEWHERE",
    "Mechanism",
    "RevisionPolicy",
    "gap_reason",
    "implemented",
    "signs_of",
]

#: Each newer revision and the revision it obsoletes.
OLDER: dict[int, int] = {8489: 5389, 8656: 5766, 8445: 5245}

#: Newer revisions whose rows are graded only when claimed (``--require``) or shown. RFC 8445 is the ICE revision
#: under test (every IUT is an RFC 8445 agent by declaration), so its rows are always graded as written.
GRADED_ON_EVIDENCE = frozenset({8489, 8656})

_XOR_RELAYED = attribute_code("XOR-RELAYED-ADDRESS")


@dataclass(frozen=True)
class Mechanism:
    """One newer-revision mechanism and the attributes whose presence in IUT output shows it is implemented."""

    revision: int
    name: str
    attributes: tuple[str, ...]
    #: Also a sign: the IUT, as a server, issues a NONCE starting with the RFC 8489 §9.2 cookie.
    nonce_cookie: bool = False


MECHANISMS: tuple[Mechanism, ...] = (
    Mechanism(
        8489,
        "password algorithms, username anonymity and the nonce cookie (RFC 8489 §9.2, §14.4-14.6, §14.11-14.12)",
        ("MESSAGE-INTEGRITY-SHA256", "PASSWORD-ALGORITHM", "USERHASH", "PASSWORD-ALGORITHMS"),
        nonce_cookie=True,
    ),
    Mechanism(
        8656,
        "dual-stack allocations and ICMP relaying (RFC 8656 §7, §11.5, §18.11-18.13); a success response with two "
        "XOR-RELAYED-ADDRESS (a dual allocation) is also a sign",
        ("ADDITIONAL-ADDRESS-FAMILY", "ADDRESS-ERROR-CODE", "ICMP"),
    ),
)


#: Registered IUTs shown, in other cases of a run, to implement part of a newer revision: their rules are graded as
#: written in every case (signs are looked for per case, so a partial implementation could otherwise escape).
SHOWN_ELSEWHERE: dict[str, dict[int, str]] = {
    "libjuice": {
        8489: "sends USERHASH when the nonce cookie sets username anonymity (STUN-AUTH-10 PASS) and does not retry "
        "after a 401 whose algorithms bit comes without PASSWORD-ALGORITHMS (STUN-AUTH-07 PASS), run of 2026-12-06",
    },
}


def implemented(iut: str | None) -> frozenset[int]:
    """Newer revisions a registered IUT is known to implement in part (:data:`SHOWN_ELSEWHERE`)."""
    return frozenset(SHOWN_ELSEWHERE.get(iut or "", {}))


def signs_of(revision: int, datagrams: Iterable[Datagram]) -> list[str]:
    """Evidence, one line per kind, that the IUT implements part of ``revision``: from what the harness received."""
    mechanisms = [m for m in MECHANISMS if m.revision == revision]
    found: dict[str, str] = {}
    cookie = NONCE_COOKIE.encode("ascii")
    for d in datagrams:
        if d.direction != "in":
            continue
        i = index(d.data)
        if i is None:
            continue
        for m in mechanisms:
            for name in m.attributes:
                if name not in found and i.has(name):
                    found[name] = f"{name} in a message from {d.src[0]}:{d.src[1]}"
            # Only a NONCE the IUT issues (in a response) counts: a client copies the server's NONCE back.
            nonce = i.value("NONCE") if i.msg_class in (2, 3) else None
            if m.nonce_cookie and nonce is not None and nonce.startswith(cookie) and "cookie" not in found:
                found["cookie"] = f"a NONCE with the '{NONCE_COOKIE}' cookie from {d.src[0]}:{d.src[1]}"
            relayed = [c for c, _, _ in i.attributes if c == _XOR_RELAYED]
            if m.revision == 8656 and len(relayed) > 1 and "dual" not in found:
                found["dual"] = f"two XOR-RELAYED-ADDRESS (a dual allocation) from {d.src[0]}:{d.src[1]}"
    return list(found.values())


def gap_reason(revision: int) -> str:
    """The verdict reason for a newer-revision row the IUT does not implement."""
    return f"RFC {revision} mechanism not implemented"


class RevisionPolicy:
    """Decides per finding whether a newer-revision rule applies to this IUT (see the module docstring)."""

    def __init__(self, required: frozenset[int], datagrams: Callable[[], Iterable[Datagram]]) -> None:
        self.required = required
        self._datagrams = datagrams

    def gap(self, revision: int | None) -> str | None:
        """None when a rule of ``revision`` is graded as written, else the UNSUPPORTED reason with its evidence."""
        if revision is None or revision not in GRADED_ON_EVIDENCE or revision in self.required:
            return None
        if signs_of(revision, self._datagrams()):
            return None
        names = ", ".join(name for m in MECHANISMS if m.revision == revision for name in m.attributes)
        cookie = " nor a nonce cookie" if any(m.nonce_cookie for m in MECHANISMS if m.revision == revision) else ""
        return (
            f"{gap_reason(revision)} (the rule is new in RFC {revision}; RFC {OLDER[revision]} does not impose it; "
            f"the IUT sent none of {names}{cookie} in this case; --require {revision} grades it as written)"
        )
