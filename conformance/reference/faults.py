"""The reference peer's switchable faults, as data: each breaks named requirements of ``suites/catalog.toml``.

A fault changes the smallest possible piece of the agent's behaviour, so a conformance case that passes against
the conformant reference peer must fail against the matching fault (design.md, "tests").
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["FAULTS", "Fault", "UnknownFault", "check_faults"]


@dataclass(frozen=True)
class Fault:
    """One deliberate deviation: its name, the requirement IDs it breaks, what it changes."""

    name: str
    breaks: tuple[str, ...]
    description: str


class UnknownFault(ValueError):
    """A fault name that is not in :data:`FAULTS`; the message lists the known ones."""


_ALL = [
    # Candidates and priorities (RFC 8445 §5.1.2).
    Fault(
        "wrong-priority-formula",
        ("ICE-PRIO-01",),
        "host candidate priorities use local preference 1 and a low byte equal to the component ID instead of "
        "256 - component (RFC 8445 §5.1.2.1)",
    ),
    Fault(
        "duplicate-priorities",
        ("ICE-PRIO-01",),
        "every host candidate gets the priority of component 1 on the first interface, so candidates of other "
        "components or interfaces share it (observable with 2 components or 2 interfaces; RFC 8445 §5.1.2)",
    ),
    Fault(
        "type-pref-mismatch",
        ("ICE-PRIO-02",),
        "host candidates of components >= 2 use type preference 125, so one type has two type preferences "
        "(observable with 2 components; RFC 8445 §5.1.2.2)",
    ),
    Fault(
        "priority-attr-host-pref",
        ("ICE-PRIO-04",),
        "the PRIORITY attribute of checks uses the host type preference 126 instead of the prflx 110 (RFC 8445 §7.1.1)",
    ),
    # STUN message format (RFC 8489 §5, §6, §14).
    Fault("no-fingerprint", ("STUN-FP-01",), "no FINGERPRINT on any message it sends (RFC 8445 §7.2.2)"),
    Fault(
        "bad-fingerprint",
        ("STUN-FP-01",),
        "FINGERPRINT on every message it sends carries a wrong CRC (low bit flipped; RFC 8489 §14.7)",
    ),
    Fault(
        "accept-bad-fingerprint",
        ("STUN-FP-02",),
        "processes received messages whose FINGERPRINT is missing or wrong instead of dropping them (RFC 8489 §7.3)",
    ),
    Fault(
        "bad-header-length",
        ("STUN-MSG-01",),
        "the header length field of its own requests (checks, consent) is 4 more than the attribute bytes "
        "(RFC 8489 §5)",
    ),
    Fault(
        "constant-txid",
        ("STUN-MSG-02",),
        "every new transaction reuses one transaction ID chosen at agent creation (RFC 8489 §5)",
    ),
    Fault(
        "asymmetric-response",
        ("STUN-MSG-03",),
        "responses to checks leave from a second socket (another port) instead of the address the request was "
        "sent to (RFC 8489 §6.3.1.2)",
    ),
    Fault(
        "answer-indication",
        ("STUN-MSG-04",),
        "answers a Binding indication (keepalive) with a Binding success response (RFC 8489 §6.3.2)",
    ),
    Fault(
        "ignore-unknown-required",
        ("STUN-MSG-06",),
        "a check with an unknown comprehension-required attribute is answered with success, not 420 (RFC 8489 §6.3.1)",
    ),
    Fault(
        "reject-space-padding",
        ("STUN-MSG-08",),
        "drops received messages whose attribute padding is not all zero bytes (RFC 8489 §14)",
    ),
    # Short-term authentication (RFC 8489 §9.1, RFC 8445 §7.2.2, §7.3).
    Fault(
        "wrong-integrity-key",
        ("STUN-AUTH-01", "STUN-MI-01"),
        "MESSAGE-INTEGRITY of its checks is keyed with its own password instead of the peer's (RFC 8445 §7.2.2)",
    ),
    Fault(
        "swapped-username",
        ("STUN-AUTH-01",),
        "USERNAME of its checks is 'local_ufrag:remote_ufrag' instead of 'remote:local' (RFC 8445 §7.2.2)",
    ),
    Fault(
        "response-wrong-key",
        ("STUN-AUTH-03",),
        "success responses are keyed with the peer's password instead of its own (RFC 8489 §9.1.3)",
    ),
    Fault(
        "response-with-username",
        ("STUN-AUTH-03",),
        "success responses carry the request's USERNAME (RFC 8489 §9.1.3)",
    ),
    Fault(
        "error-with-integrity",
        ("STUN-AUTH-02",),
        "400 and 401 error responses carry MESSAGE-INTEGRITY keyed with its own password (RFC 8489 §9.1.3)",
    ),
    Fault(
        "accept-bad-integrity",
        ("STUN-AUTH-02",),
        "a check whose MESSAGE-INTEGRITY does not verify is answered with success instead of 401 (RFC 8489 §9.1.3)",
    ),
    Fault(
        "no-400-missing-mi",
        ("STUN-AUTH-02",),
        "a check without MESSAGE-INTEGRITY or USERNAME is answered with 401 instead of 400 (RFC 8489 §9.1.3)",
    ),
    Fault(
        "accept-unauthenticated-response",
        ("STUN-AUTH-04",),
        "responses to its checks are accepted without verifying MESSAGE-INTEGRITY (RFC 8445 §7.2.5.1)",
    ),
    # Retransmissions (RFC 8489 §6.2.1, RFC 8445 §14.3).
    Fault(
        "fast-retransmit",
        ("STUN-RTX-01", "STUN-RTX-06"),
        "checks retransmit from an RTO of 100 ms instead of 500 ms (RFC 8489 §6.2.1, RFC 8445 §14.3)",
    ),
    # Connectivity checks, roles, nomination (RFC 8445 §7, §8).
    Fault(
        "accept-asymmetric",
        ("ICE-CHK-04",),
        "a success response from an address other than the check's destination makes the pair Succeeded instead "
        "of Failed (RFC 8445 §7.2.5.2.1)",
    ),
    Fault(
        "no-triggered-check",
        ("ICE-TRIG-01", "ICE-PRFLX-01"),
        "a check received on a Waiting, Failed or unknown pair enqueues no triggered check; a pair learnt from a "
        "check stays Frozen (RFC 8445 §7.3.1.4)",
    ),
    Fault(
        "no-487",
        ("ICE-ROLE-02",),
        "a controlling agent that wins an ICE-CONTROLLING conflict answers success instead of 487 (RFC 8445 §7.3.1.1)",
    ),
    Fault(
        "no-role-switch",
        ("ICE-ROLE-03", "ICE-ROLE-04"),
        "an agent that loses a role conflict keeps its role instead of switching (RFC 8445 §7.3.1.1)",
    ),
    Fault(
        "ignore-487",
        ("ICE-ROLE-06",),
        "a 487 response to its check fails the pair; the role is not flipped (RFC 8445 §7.2.5.1)",
    ),
    Fault(
        "keep-tiebreaker",
        ("ICE-ROLE-06", "ICE-CHK-02"),
        "on a 487 response it flips role but keeps its old tie-breaker (RFC 8445 §7.2.5.1)",
    ),
    Fault("no-nomination", ("ICE-NOM-02",), "the controlling agent never sends USE-CANDIDATE (RFC 8445 §8.1.1)"),
    Fault(
        "controlled-nominates",
        ("ICE-NOM-01",),
        "the controlled agent adds USE-CANDIDATE to its checks (RFC 8445 §7.2.2)",
    ),
    Fault(
        "nominate-twice",
        ("ICE-NOM-03",),
        "after its first nomination the controlling agent keeps checking and nominates a second valid pair of the "
        "component (RFC 8445 §8.1.1)",
    ),
    # Consent freshness (RFC 7675).
    Fault(
        "data-before-consent",
        ("CONS-01", "ICE-CHK-09"),
        "send() with no valid pair sends the data from the first local candidate to the first remote candidate "
        "(RFC 7675 §5.1)",
    ),
    Fault("no-consent", ("CONS-02",), "never sends consent checks on the selected pair (RFC 7675 §5.1)"),
    Fault(
        "consent-no-expiry",
        ("CONS-03",),
        "keeps sending data after 30 s without an authenticated consent response (RFC 7675 §5.1)",
    ),
    Fault(
        "ignore-403",
        ("CONS-06",),
        "an authenticated 403 to a consent check does not revoke consent (RFC 7675 §5.2)",
    ),
]

#: Every fault, by name.
FAULTS: dict[str, Fault] = {f.name: f for f in _ALL}


def check_faults(names: Iterable[str]) -> frozenset[str]:
    """The names as a set; raises :class:`UnknownFault` listing the known ones when one is not in FAULTS."""
    wanted = frozenset(str(n) for n in names)
    unknown = sorted(wanted - FAULTS.keys())
    if unknown:
        raise UnknownFault(f"unknown fault(s) {', '.join(unknown)}; known faults: {', '.join(sorted(FAULTS))}")
    return wanted
