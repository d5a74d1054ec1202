"""The reference IUTs' switchable faults, as data: each breaks named requirements of ``suites/catalog.toml``.

A fault changes the smallest possible piece of the agent's behaviour, so a conformance case that passes against
the conformant reference peer must fail against the matching fault (design.md, "tests").
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "FAULTS",
    "TURN_CLIENT_FAULTS",
    "TURN_SERVER_FAULTS",
    "VARIANTS",
    "Fault",
    "UnknownFault",
    "Variant",
    "check_faults",
]


@dataclass(frozen=True)
class Fault:
    """One deliberate deviation: its name, the requirement IDs it breaks, what it changes."""

    name: str
    breaks: tuple[str, ...]
    description: str


@dataclass(frozen=True)
class Variant:
    """A legal but unusual design of the reference peer, as its agent options: no case may FAIL it."""

    name: str
    options: dict[str, object]
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
    Fault(
        "unpruned-redundant-pair",
        ("ICE-PAIR-02",),
        "every check runs twice at once, as if a redundant pair with the same base and remote had not been pruned: "
        "two transactions retransmitted side by side on one (base, remote) (RFC 8445 §6.1.2.4)",
    ),
    Fault(
        "recheck-not-retransmit",
        ("STUN-RTX-01",),
        "an unanswered check is never retransmitted: 150 ms later the pair is checked again as a new transaction, "
        "Rc times; only the SHOULD to retransmit is broken (RFC 8489 §6.2.1), the fresh IDs are right (RFC 8489 §5) "
        "and STUN-RTX-06 has no RTO to time (its cases' selftest marks expect no FAIL)",
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
    # STUN as an ICE agent uses it, connectivity checks, triggered checks, peer-reflexive, security (area A).
    # Robustness (the harness's own rows ROB-*, suites/robustness/).
    Fault(
        "crash-on-long-attribute",
        ("ROB-CRASH-01",),
        "an attribute whose declared length exceeds 512 bytes kills the process with SIGSEGV, as a parser copying it "
        "into a fixed buffer would (RFC 8489 §6.3 asks for a discard)",
    ),
    Fault(
        "crash-on-403",
        ("ROB-CRASH-01",),
        "a 403 error response to one of its checks kills the process with SIGSEGV, as libnice 0.1.21 does "
        "(RFC 8489 §6.3.4: a 4xx ends the transaction)",
    ),
    Fault(
        "deaf-after-non-stun",
        ("ROB-LIVE-01",),
        "after a non-STUN datagram from an address that is not a remote candidate it stops processing every datagram "
        "(RFC 7983 §7 demultiplexing)",
    ),
    Fault(
        "accept-truncated",
        ("ROB-DISC-01",),
        "a datagram shorter than its header length is repaired (length cut to the bytes present) and processed "
        "instead of discarded (RFC 8489 §6.3)",
    ),
    Fault(
        "hang-on-many-attributes",
        ("ROB-LIVE-01",),
        "a message of more than 500 attributes blocks its event loop for 30 s",
    ),
    Fault(
        "lenient-header",
        ("STUN-MSG-04",),
        "repairs and processes messages with non-zero top bits, a wrong magic cookie or a wrong length instead of "
        "discarding them (RFC 8489 §6.3)",
    ),
    Fault(
        "strict-attributes",
        ("STUN-MSG-05",),
        "answers 420 to a check carrying an unknown comprehension-optional attribute or a known attribute that has "
        "no use in a check (REALM, NONCE) instead of ignoring it (RFC 8489 §6.3)",
    ),
    Fault(
        "check-after-integrity",
        ("STUN-MSG-07",),
        "looks for unknown comprehension-required attributes after MESSAGE-INTEGRITY too, and answers 420 "
        "(RFC 8489 §9, §14.5)",
    ),
    Fault(
        "nonzero-padding",
        ("STUN-MSG-08",),
        "pads attribute values with 0x20 bytes instead of zeros in every message it sends (RFC 8489 §14)",
    ),
    Fault(
        "plain-mapped-address",
        ("STUN-MSG-09",),
        "XOR-MAPPED-ADDRESS in success responses carries the address and port without the XOR (RFC 8489 §14.2)",
    ),
    Fault("no-software", ("STUN-MSG-09",), "success responses carry no SOFTWARE attribute (RFC 8489 §6.3.1.1)"),
    Fault(
        "long-software",
        ("STUN-MSG-10",),
        "SOFTWARE in its requests and responses is 200 characters long, above the 128 limit (RFC 8489 §14.14)",
    ),
    Fault(
        "retry-errors",
        ("STUN-RTX-05",),
        "after a 4xx or 5xx error response to a check it checks the pair again 0.2 s later, without limit, instead "
        "of failing it (RFC 8489 §6.3.4)",
    ),
    Fault(
        "accept-unknown-required-response",
        ("STUN-RTX-05",),
        "a success response carrying an unknown comprehension-required attribute makes the pair Succeeded instead "
        "of failing the transaction (RFC 8489 §6.3.3)",
    ),
    Fault(
        "unordered-checks",
        ("ICE-PAIR-01",),
        "ordinary checks start with the lowest-priority Waiting pair instead of the highest (RFC 8445 §6.1.4.2)",
    ),
    Fault(
        "cross-component-pairs",
        ("ICE-PAIR-02",),
        "pairs local and remote candidates of different components (same IP family) (RFC 8445 §6.1.2.2)",
    ),
    Fault(
        "no-pacing",
        ("ICE-CHK-01",),
        "starts a new check every 1 ms instead of every Ta = 50 ms (RFC 8445 §14.2)",
    ),
    Fault(
        "tiebreaker-per-check",
        ("ICE-CHK-02",),
        "draws a new tie-breaker for every check instead of keeping one per session (RFC 8445 §7.1.3, §16.1)",
    ),
    Fault(
        "rfc3489-compat",
        ("ICE-CHK-03",),
        "answers a cookie-less (RFC 3489) Binding request with a success carrying MAPPED-ADDRESS (RFC 8445 §7.3)",
    ),
    Fault(
        "never-fail-pair",
        ("ICE-CHK-05",),
        "a check transaction that times out starts its retransmission schedule over instead of failing the pair "
        "(RFC 8445 §7.2.5.2.3)",
    ),
    Fault(
        "answer-first-candidate-only",
        ("ICE-CHK-06",),
        "drops checks that arrive on any local candidate but the first one (RFC 8445 §7.3)",
    ),
    Fault(
        "drop-early-checks",
        ("ICE-CHK-07",),
        "drops checks that arrive before the peer's credentials (the answer) are known (RFC 8445 §7.3)",
    ),
    Fault(
        "data-on-highest-pair",
        ("ICE-CHK-09",),
        "send() uses the highest-priority pair of the component whatever its state, not the selected pair "
        "(RFC 8445 §12.1)",
    ),
    Fault(
        "recheck-succeeded",
        ("ICE-TRIG-02",),
        "a check received on a Succeeded pair triggers a new check of it (RFC 8445 §7.3.1.4)",
    ),
    Fault(
        "no-cancel-in-progress",
        ("ICE-TRIG-03",),
        "a check received on an In-Progress pair enqueues a new check but leaves the old transaction "
        "retransmitting (RFC 8445 §7.3.1.4)",
    ),
    Fault(
        "reject-unknown-mapped",
        ("ICE-PRFLX-02",),
        "a success response whose XOR-MAPPED-ADDRESS matches no local candidate fails the pair instead of making a "
        "peer-reflexive local candidate (RFC 8445 §7.2.5.3.1)",
    ),
    Fault(
        "duplicate-prflx-pair",
        ("ICE-PRFLX-03",),
        "a trickled candidate equal to a known peer-reflexive one adds a second remote candidate and pair, which "
        "gets its own checks (RFC 8838 §11)",
    ),
    Fault(
        "no-pair-limit",
        ("SEC-01",),
        "keeps every candidate pair instead of discarding the lowest-priority ones beyond 100 (RFC 8445 §6.1.2.5)",
    ),
    Fault(
        "follow-alternate-server",
        ("SEC-03",),
        "while gathering, a 300 with ALTERNATE-SERVER from the STUN server makes it query the alternate "
        "(RFC 8445 §5.1.1.2)",
    ),
    # Gathering server-reflexive candidates (RFC 8445 §5.1.1.2, §5.1.1.3; RFC 8839 §5.1).
    Fault(
        "srflx-raddr-mapped",
        ("ICE-GATH-06",),
        "server-reflexive candidates carry the mapped address as raddr/rport instead of their base (RFC 8839 §5.1)",
    ),
    Fault(
        "srflx-host-priority",
        ("ICE-GATH-07",),
        "server-reflexive candidates are priced with the host type preference 126 (RFC 8445 §5.1.2.1)",
    ),
    Fault(
        "authenticated-stun-binding",
        ("ICE-GATH-02",),
        "Binding requests to the STUN server carry USERNAME and MESSAGE-INTEGRITY (RFC 8445 §5.1.1.2)",
    ),
    Fault(
        "no-mapped-address-fallback",
        ("ICE-GATH-03",),
        "a Binding success with MAPPED-ADDRESS but no XOR-MAPPED-ADDRESS yields no candidate (RFC 5389 §12.1)",
    ),
    Fault(
        "stun-from-side-socket",
        ("ICE-GATH-01",),
        "Binding requests to the STUN server leave from an extra socket, not from the host candidate (RFC 8445 "
        "§5.1.1.2)",
    ),
    Fault(
        "gathering-burst",
        ("ICE-GATH-04",),
        "every gathering transaction starts at once instead of one per Ta (RFC 8445 §5.1.1.2, §14)",
    ),
    Fault(
        "shared-srflx-foundation",
        ("ICE-GATH-11",),
        "server-reflexive candidates from two STUN servers on different IP addresses share one foundation "
        "(RFC 8445 §5.1.1.3)",
    ),
    Fault(
        "retransmit-indication",
        ("STUN-RTX-02",),
        "once a pair is selected it sends a Binding indication three times with one transaction ID (RFC 8489 §6.2.1)",
    ),
    # Area B: candidates and SDP, roles, nomination, keepalives and consent, restart, trickle.
    Fault(
        "site-local-candidate",
        ("ICE-CAND-01",),
        "also advertises a host candidate on the site-local IPv6 address fec0::1 (RFC 8445 §5.1.1.1)",
    ),
    Fault(
        "redundant-candidates",
        ("ICE-CAND-02",),
        "advertises every host candidate twice, the copy with priority - 1 and the same address and base "
        "(RFC 8445 §5.1.3)",
    ),
    Fault(
        "short-credentials",
        ("ICE-CAND-03",),
        "chooses a 3-character ufrag and a 16-character pwd (RFC 8445 §5.3: at least 4 and 22)",
    ),
    Fault(
        "truncate-remote-credentials",
        ("ICE-CAND-03",),
        "keeps only the first 32 characters of the peer's ufrag and pwd (RFC 8839 §5.4: up to 256 accepted)",
    ),
    Fault("bad-foundation", ("ICE-CAND-04",), "host candidates carry a 33-character foundation (RFC 8839 §5.1)"),
    Fault(
        "reject-unknown-extensions",
        ("ICE-CAND-05",),
        "drops remote candidate lines that carry extension attributes instead of ignoring the pairs (RFC 8839 §5.1)",
    ),
    Fault("no-ice2", ("ICE-CAND-06",), "its a=ice-options lack the ice2 token (RFC 8445 §10)"),
    Fault(
        "null-default-destination-fails",
        ("ICE-CAND-07",),
        "a peer description whose default destination is 0.0.0.0 port 9 makes ICE fail (RFC 8839 §4.2.5)",
    ),
    Fault(
        "swapped-initial-role",
        ("ICE-ROLE-01",),
        "starts in the opposite role to the one it was created with (RFC 8445 §6.1.1)",
    ),
    Fault(
        "ignore-lite-peer",
        ("ICE-ROLE-01",),
        "a full agent facing an ICE-lite peer keeps the controlled role (RFC 8445 §6.1.1)",
    ),
    Fault(
        "controlled-no-487",
        ("ICE-ROLE-05",),
        "a controlled agent that wins an ICE-CONTROLLED conflict answers success instead of 487 (RFC 8445 §7.3.1.1)",
    ),
    Fault(
        "aggressive-nomination",
        ("ICE-NOM-02",),
        "the controlling agent puts USE-CANDIDATE on every check (RFC 5245 aggressive nomination) although the peer "
        "signalled ice2 (RFC 8445 §8.1.1, §10)",
    ),
    Fault(
        "keep-failed-nomination",
        ("ICE-NOM-04",),
        "when its nominating check fails, it selects the pair anyway and sends data on it (RFC 8445 §7.2.5.3.4)",
    ),
    Fault(
        "select-best-valid-pair",
        ("ICE-NOM-05",),
        "the controlled agent selects its highest-priority valid pair instead of the nominated one (RFC 8445 §7.3.1.5)",
    ),
    Fault(
        "keep-first-nomination",
        ("ICE-NOM-06",),
        "the controlled agent keeps the first nominated pair when a higher-priority one is nominated (RFC 8445 §8.1.1)",
    ),
    Fault(
        "check-after-nomination",
        ("ICE-NOM-07",),
        "once a pair is selected, it checks the other pairs of the component again (RFC 8445 §8.1.2)",
    ),
    Fault(
        "ignore-checks-after-selection",
        ("ICE-NOM-07",),
        "once a pair is selected, checks from other remote addresses are dropped at once (RFC 8445 §8.3.1: 3 s)",
    ),
    Fault(
        "fast-keepalive",
        ("ICE-KA-01",),
        "sends a Binding indication every 2 s on selected pairs, whatever else it sent (RFC 8445 §11: Tr >= 15 s)",
    ),
    Fault(
        "keepalive-with-integrity",
        ("ICE-KA-02",),
        "sends Binding indications every 2 s on selected pairs with USERNAME and MESSAGE-INTEGRITY (RFC 8445 §11)",
    ),
    Fault(
        "late-response-restores-consent",
        ("CONS-04",),
        "consent transactions never time out and a response arriving after expiry restores consent (RFC 7675 §5.1)",
    ),
    Fault(
        "no-consent-during-restart",
        ("CONS-07",),
        "an ICE restart stops consent checks on the old selected pair until a new one is selected (RFC 7675 §5.1)",
    ),
    Fault("restart-keeps-pwd", ("ICE-RST-01",), "an ICE restart changes the ufrag but keeps the pwd (RFC 8445 §9)"),
    Fault("restart-flips-role", ("ICE-RST-02",), "an ICE restart switches its role (RFC 8445 §9)"),
    Fault(
        "drop-pair-on-restart",
        ("ICE-RST-04",),
        "an ICE restart forgets the selected pair: no data until a new pair is selected (RFC 8445 §9, §12.1)",
    ),
    Fault(
        "trickle-always",
        ("TRK-01",),
        "agents created without trickle also announce their candidates one by one (RFC 8838 §3)",
    ),
    Fault(
        "fail-without-candidates",
        ("TRK-02",),
        "connect with no remote candidate yet fails ICE at once and ignores later candidates (RFC 8838 §8)",
    ),
    Fault(
        "check-before-trickle",
        ("TRK-03",),
        "a trickle agent announces its candidates 3 s late, after checking from them (RFC 8838 §10)",
    ),
    Fault(
        "candidates-after-eoc",
        ("TRK-04",),
        "a trickle agent announces a candidate again after its end-of-candidates (RFC 8838 §13)",
    ),
    Fault(
        "accept-after-eoc",
        ("TRK-05",),
        "remote candidates trickled after the peer's end-of-candidates are paired and checked (RFC 8838 §14)",
    ),
    Fault(
        "remote-candidates-in-answer",
        ("SDP-01",),
        "a controlled agent's description carries a=remote-candidates (RFC 8839 §5.2)",
    ),
    Fault(
        "no-remote-candidates",
        ("SDP-01",),
        "a controlling agent's re-offer after completion lacks a=remote-candidates (RFC 8839 §5.2)",
    ),
    Fault(
        "ignore-early-use-candidate",
        ("ICE-NOM-05",),
        "USE-CANDIDATE on a pair that has not succeeded yet is forgotten: the triggered check does not nominate "
        "(RFC 8445 §7.3.1.5)",
    ),
    Fault(
        "select-latest-nomination",
        ("ICE-NOM-06",),
        "the controlled agent selects the latest nominated pair, not the highest-priority one (RFC 8445 §8.1.1)",
    ),
    Fault(
        "ignore-ice-mismatch",
        ("SDP-02",),
        "an answer with a=ice-mismatch makes it check the default destination (RFC 8839 §4.2.5)",
    ),
]

#: Every fault of the reference ICE peer, by name.
FAULTS: dict[str, Fault] = {f.name: f for f in _ALL}

#: The reference TURN server's faults (conformance/reference/turn_server_faults.py), in the same shape as the ICE ones.
_TURN_SERVER = [
    Fault(
        "relay-without-permission", ("TURN-PERM-02", "TURN-DATA-01"), "relays peer data and Sends without a permission"
    ),
    Fault("accept-wrong-key", ("STUN-AUTH-13",), "accepts a request whose MESSAGE-INTEGRITY is wrong"),
    Fault("ignore-lifetime-zero", ("TURN-LIFE-03",), "Refresh LIFETIME=0 does not delete the allocation"),
    Fault("no-437-on-second-allocate", ("TURN-ALLOC-02",), "a second Allocate on a 5-tuple replaces the allocation"),
    Fault("accept-bad-channel-number", ("TURN-CHAN-01",), "binds channel numbers outside 0x4000-0x4FFF"),
    Fault("no-integrity-on-channelbind", ("STUN-AUTH-16",), "ChannelBind success without MESSAGE-INTEGRITY"),
    Fault("shared-nonce", ("STUN-AUTH-12",), "one NONCE for every source"),
    Fault("no-441", ("TURN-ALLOC-13",), "accepts requests from another username on an allocation"),
    Fault("permissions-shared-across-allocations", ("TURN-PERM-02",), "a permission on one allocation opens all"),
    Fault("ignore-even-port", ("TURN-ALLOC-06",), "no answer to an Allocate with EVEN-PORT"),
    Fault("data-indication-despite-channel", ("TURN-CHAN-03",), "Data indications for a peer with a channel"),
    Fault("ignore-unknown-attributes", ("STUN-MSG-06", "TURN-ALLOC-07"), "no 420 for unknown comprehension-required"),
    Fault("short-lifetime-granted", ("TURN-LIFE-02",), "grants a requested lifetime below the default"),
    Fault("unauthenticated-permissions", ("SEC-05",), "CreatePermission without MESSAGE-INTEGRITY succeeds"),
    Fault("relay-on-unbound-channel", ("TURN-CHAN-04",), "ChannelData on an unbound channel is relayed"),
    Fault("no-requested-transport-check", ("TURN-ALLOC-01",), "Allocate without REQUESTED-TRANSPORT succeeds"),
    Fault("forget-retransmission", ("STUN-RTX-04",), "a retransmitted Allocate gets 437"),
    Fault("wrong-mapped-address", ("TURN-ALLOC-03",), "XOR-MAPPED-ADDRESS is not the client's address"),
    Fault("low-relay-ports", ("TURN-ALLOC-04",), "relayed ports from 20000-30000"),
    Fault("no-software", ("TURN-ALLOC-08",), "no SOFTWARE in Allocate and Refresh responses"),
    Fault("lifetime-missing-in-refresh", ("TURN-LIFE-02",), "Refresh success without LIFETIME"),
    Fault("no-400-on-missing-realm", ("STUN-AUTH-13",), "401 instead of 400 when REALM is missing"),
    Fault("no-realm-in-401", ("STUN-AUTH-11",), "the 401 lacks REALM"),
    Fault("permission-port-sensitive", ("TURN-PERM-02", "TURN-PERM-03"), "permissions compare ports too"),
    Fault("accept-ipv6-peer", ("TURN-PERM-04", "TURN-ERR-01"), "no 443 for an IPv6 peer on an IPv4 relay"),
    Fault("drop-empty-channeldata", ("TURN-CHAN-05",), "ChannelData of length 0 is not relayed"),
    Fault("crash-on-long-username", ("STUN-MSG-10",), "no answer to a 700-byte USERNAME"),
    Fault("drop-send-indications", ("TURN-DATA-02", "TURN-DATA-04"), "Send indications are never relayed"),
    Fault("quota-by-address", ("SEC-06",), "the allocation quota counts per client address, not per username"),
    Fault(
        "allocation-by-username", ("SEC-04", "TURN-ALLOC-14"), "requests from any 5-tuple reach the user's allocation"
    ),
    Fault("relay-after-delete", ("TURN-LIFE-03", "TURN-LIFE-04"), "keeps relaying after the allocation is gone"),
    Fault(
        "channeldata-refreshes-permission", ("TURN-PERM-06",), "ChannelData from the client refreshes the permission"
    ),
    Fault("data-refreshes-allocation", ("TURN-LIFE-04",), "ChannelData from the client refreshes the allocation"),
    Fault("stale-nonce-not-438", ("STUN-AUTH-14",), "an expired nonce is still accepted"),
    Fault("require-auth-for-binding", ("STUN-MSG-11",), "Binding requests need credentials"),
    Fault("skip-allocate-family-checks", ("TURN-ALLOC-05",), "no 400/440/508 for bad family or reservation attributes"),
    Fault("ipv6-relay-by-default", ("TURN-ALLOC-05",), "an IPv6 relay without REQUESTED-ADDRESS-FAMILY"),
    Fault("dont-fragment-400", ("TURN-ALLOC-07",), "400 (not 420 or success) for DONT-FRAGMENT"),
    Fault("no-437-without-allocation", ("TURN-ALLOC-14",), "a Refresh from a 5-tuple without an allocation succeeds"),
    Fault("unknown-user-gets-400", ("STUN-AUTH-13",), "400 instead of 401 for an unknown username"),
    Fault("md5-answered-with-sha256", ("STUN-AUTH-15",), "MD5 requests get MESSAGE-INTEGRITY-SHA256 responses"),
    Fault("accept-permission-without-peer", ("TURN-PERM-04",), "CreatePermission without XOR-PEER-ADDRESS succeeds"),
    Fault("permissions-never-expire", ("TURN-PERM-01",), "permissions outlive their 300 s lifetime"),
    Fault("allow-channel-rebinding", ("TURN-CHAN-01",), "rebinds a bound number or peer to something else"),
    Fault("relay-bad-channel-data", ("TURN-CHAN-04",), "relays ChannelData on 0x5000-0x7FFF and short ChannelData"),
    Fault(
        "lenient-send-indications", ("TURN-DATA-01",), "Send indications without DATA or with a bad peer are relayed"
    ),
    Fault("data-indication-wrong-peer", ("TURN-DATA-03",), "the Data indication's XOR-PEER-ADDRESS has the wrong port"),
    Fault("default-lifetime-300", ("TURN-LIFE-01",), "grants 300 s when no LIFETIME is requested"),
    Fault("unauthenticated-refresh", ("SEC-04",), "a Refresh without MESSAGE-INTEGRITY is honoured"),
    Fault("amplify-challenges", ("SEC-07",), "401 challenges carry a 500-byte SOFTWARE"),
    # A legal variant, not a fault: an RFC 5389/5766 server (no nonce cookie); a fault only under --require 8489.
    Fault("rfc5389-server", ("STUN-AUTH-11",), "an RFC 5389 server: NONCE without the RFC 8489 §9.2 cookie"),
]
#: The reference TURN client's faults (conformance/reference/turn.py).
_TURN_CLIENT = [
    Fault("credentials-first", ("STUN-AUTH-05",), "the first Allocate already carries USERNAME"),
    Fault("reuse-txid-after-401", ("STUN-AUTH-05",), "the retry after a 401 reuses the transaction ID"),
    Fault("ignore-password-algorithms", ("STUN-AUTH-06", "STUN-AUTH-07"), "ignores PASSWORD-ALGORITHMS, MD5 only"),
    Fault("retry-401-forever", ("STUN-AUTH-07",), "retries every 401 with a fresh nonce"),
    Fault("no-438-retry", ("STUN-AUTH-08",), "gives up on 438"),
    Fault("accept-unauthenticated-400", ("STUN-AUTH-09",), "a 400 without MI ends the transaction"),
    Fault("no-userhash", ("STUN-AUTH-10",), "sends USERNAME although the nonce asks for anonymity"),
    # A legal variant, not a fault: an RFC 5389 client; it breaks RFC 8489 rows only under --require 8489.
    Fault(
        "rfc5389-client",
        ("STUN-AUTH-06", "STUN-AUTH-07", "STUN-AUTH-10", "TURN-ALLOC-12"),
        "an RFC 5389 client: never reads the nonce cookie, follows a 300 without integrity (RFC 5389 §11)",
    ),
    Fault("no-software", ("TURN-ALLOC-08",), "no SOFTWARE in Allocate and Refresh"),
    Fault("tcp-transport", ("TURN-ALLOC-09",), "REQUESTED-TRANSPORT 6 (TCP)"),
    Fault("retry-437-forever", ("TURN-ALLOC-11",), "retries Allocate at once after 437, 440, 486 or 508"),
    Fault("keep-unusable-family", ("TURN-ALLOC-10",), "keeps an allocation whose relayed address is IPv6"),
    Fault("follow-unauthenticated-alternate", ("TURN-ALLOC-12",), "follows a 300 without MESSAGE-INTEGRITY"),
    Fault("ignore-alternate", ("TURN-ALLOC-12",), "gives up on an authenticated 300 instead of trying the alternate"),
    Fault("ignore-437", ("TURN-ALLOC-15",), "keeps using the relay after a 437 to Refresh"),
    Fault("no-refresh", ("TURN-LIFE-05", "ICE-GATH-12"), "never refreshes the allocation"),
    Fault(
        "relay-raddr-base", ("ICE-GATH-08",), "the relayed candidate's raddr is its host socket, not the mapped address"
    ),
    Fault("keep-host-identical-relay", ("ICE-GATH-09",), "offers a relayed candidate identical to its host address"),
    Fault("no-binding-after-486", ("ICE-GATH-10",), "after a 486/508 to Allocate, no Binding request for a srflx"),
    Fault("refresh-at-expiry", ("TURN-LIFE-05",), "refreshes only when the allocation's lifetime has run out"),
    Fault("no-delete", ("TURN-LIFE-06",), "does not delete the allocation on close"),
    Fault("data-before-permission", ("TURN-PERM-05",), "sends data to a peer before any permission"),
    Fault("check-before-permission", ("ICE-CHK-08",), "sends the first check through the relay before the permission"),
    Fault("channel-before-ice", ("ICE-CHK-08",), "binds a channel (no CreatePermission) before the checks"),
    Fault("channel-length-padded", ("TURN-CHAN-06",), "ChannelData length counts the padding"),
    Fault(
        "channel-out-of-range", ("TURN-CHAN-06",), "ChannelData carries channel number 0x5000 (outside 0x4000-0x4FFF)"
    ),
    Fault("channel-length-lies", ("TURN-CHAN-06",), "the ChannelData length field is 8 more than the data"),
    Fault("send-without-data", ("TURN-DATA-01",), "Send indications carry XOR-PEER-ADDRESS but no DATA"),
    Fault("no-restart-after-400", ("TURN-CHAN-08",), "keeps the allocation after a 400 to ChannelBind"),
    Fault("deliver-reserved", ("TURN-CHAN-09",), "delivers datagrams with a reserved first byte"),
    Fault("no-channel", ("TURN-CHAN-10",), "never binds a channel"),
    Fault("reject-data-indication", ("TURN-DATA-04",), "drops Data indications carrying application data"),
    Fault("deliver-malformed-data", ("TURN-DATA-05",), "delivers Data indications without XOR-PEER-ADDRESS or DATA"),
    Fault("accept-unpermitted-data", ("TURN-DATA-05",), "delivers Data indications from peers without a permission"),
    Fault("retry-5xx-forever", ("TURN-ERR-02",), "retries every error response to Allocate, up to 8 times"),
    Fault("permissions-all-at-once", ("STUN-RTX-03",), "asks for every peer's permission at once, with no limit"),
]

#: The reference TURN server's and client's faults, by name (one name may be in both, as ``no-software`` is).
TURN_SERVER_FAULTS: dict[str, Fault] = {f.name: f for f in _TURN_SERVER}
TURN_CLIENT_FAULTS: dict[str, Fault] = {f.name: f for f in _TURN_CLIENT}

#: The reference peer's legal variants (issue 12), by name: the self-tests expect no FAIL from them.
VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant(
            "pinging",
            {"ping_interval": 0.15},
            "libwebrtc's design: never retransmits, checks every pair again as a new transaction every 150 ms, "
            "USE-CANDIDATE on every check while controlling (RFC 8489 §6.2.1 makes retransmission a SHOULD)",
        ),
        Variant(
            "limiting",
            {"max_pairs": 20, "strict_pair_limit": True},
            "keeps 20 pairs, discarding the lowest-priority ones (RFC 8445 §6.1.2.5); a check on a discarded pair "
            "triggers nothing, as libjuice's fixed table does",
        ),
        Variant(
            "rfc5245",
            {"rfc5245": True},
            "an RFC 5245 agent: applies no set_remote option and nominates aggressively (RFC 8445 §8.1.1)",
        ),
    )
}


def check_faults(names: Iterable[str]) -> frozenset[str]:
    """The names as a set; raises :class:`UnknownFault` listing the known ones when one is not in FAULTS."""
    wanted = frozenset(str(n) for n in names)
    unknown = sorted(wanted - FAULTS.keys())
    if unknown:
        raise UnknownFault(f"unknown fault(s) {', '.join(unknown)}; known faults: {', '.join(sorted(FAULTS))}")
    return wanted
