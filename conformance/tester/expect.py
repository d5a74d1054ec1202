"""Verifiers: "expect this reply to be that", graded against the case's requirement, with the message written here.

A case says what it expects of a message, and the verifier says what arrived when it is something else::

    expect(reply).error(BINDING, 401).lacks("MESSAGE-INTEGRITY", "USERNAME")

The requirement is the case's own (its ``requirement`` marker, through :class:`~conformance.verdict.Findings`);
a case that names several passes the one meant (``expect(reply, "STUN-AUTH-03")``). Each step records a violation
when it does not hold, with "expected X, got Y" and the message's fields; a MUST violation ends the case as
``Findings.violation`` does, a weaker one lets the chain go on (style point 7).
"""

from __future__ import annotations

from collections.abc import Iterable

from conformance.packets import CLASSES, ERROR, METHODS, SUCCESS
from conformance.tester.endpoint import Received
from conformance.verdict import Findings

__all__ = ["Expect", "Verifier"]


def _type(method: int, cls: int) -> str:
    """``a Binding error response``, ``an Allocate success response``."""
    name = f"{METHODS.get(method, f'method 0x{method:03x}')} {CLASSES[cls]}"
    return ("an " if name[0] in "AEIOU" else "a ") + name


class Verifier:
    """Checks on one received message (or on its absence, ``None``) for one requirement and clause."""

    def __init__(
        self, findings: Findings, reply: Received | None, requirement: str, clause: str | None, what: str
    ) -> None:
        self.findings = findings
        self.reply = reply
        self.requirement = requirement
        self.clause = clause
        self.what = what
        #: Whether every step so far held.
        self.ok = True

    @property
    def got(self) -> str:
        """What arrived, quoted for a failure message."""
        return self.reply.describe() if self.reply is not None else "no response"

    def _check(self, ok: bool, expected: str, got: str | None = None) -> Verifier:
        if not ok:
            self.ok = False
            prefix = f"{self.what}: " if self.what else ""
            self.findings.violation(
                self.requirement, f"{prefix}expected {expected}, got {got or self.got}", self.clause
            )
        return self

    def that(self, ok: bool, expected: str) -> Verifier:
        """Any other property of the reply: ``ok`` must hold; ``expected`` says what it means."""
        return self._check(ok, expected)

    def sound(self, problem: str | None, expected: str) -> Verifier:
        """A check that names its problem or returns None (``check_integrity``, ``check_fingerprint``) found none."""
        return self._check(problem is None, expected, f"{problem} in {self.got}")

    def arrived(self, expected: str = "a response") -> Verifier:
        """A reply arrived at all (``expected`` names it when it is not a response: ``"the peer's datagram"``)."""
        return self._check(self.reply is not None, expected)

    def silence(self, expected: str = "no response") -> Verifier:
        """Nothing arrived: the message was discarded (``expected`` names what should not have come)."""
        return self._check(self.reply is None, expected)

    def success(self, method: int) -> Verifier:
        """A success response to ``method``."""
        ok = self.reply is not None and self.reply.is_type(method, SUCCESS)
        return self._check(ok, _type(method, SUCCESS))

    def error(self, method: int, *codes: int) -> Verifier:
        """An error response to ``method`` with one of ``codes`` (any code when none is given)."""
        ok = self.reply is not None and self.reply.is_type(method, ERROR)
        ok = ok and (not codes or (self.reply is not None and self.reply.error_code in codes))
        wanted = " or ".join(str(c) for c in codes)
        return self._check(ok, _type(method, ERROR) + (f" {wanted}" if codes else ""))

    def code(self, *codes: int) -> Verifier:
        """An ERROR-CODE of one of ``codes``, whatever the message's type (RFC 8489 §14.8)."""
        ok = self.reply is not None and self.reply.error_code in codes
        return self._check(ok, "ERROR-CODE " + " or ".join(str(c) for c in codes))

    def role(self, role: str) -> Verifier:
        """A check claiming the ICE role ``role`` (its ICE-CONTROLLING or ICE-CONTROLLED, RFC 8445 §7.1.3)."""
        return self._check(self.reply is not None and self.reply.role == role, f"a check claiming {role}")

    def has(self, *attributes: str) -> Verifier:
        """Every named attribute is present (RFC names, e.g. ``"XOR-MAPPED-ADDRESS"``)."""
        missing = [a for a in attributes if self.reply is None or not self.reply.has(a)]
        return self._check(not missing, f"{', '.join(attributes)} in it", f"no {', '.join(missing)}: {self.got}")

    def lacks(self, *attributes: str) -> Verifier:
        """None of the named attributes is present."""
        present = [a for a in attributes if self.reply is not None and self.reply.has(a)]
        return self._check(not present, f"no {', '.join(attributes)}", f"{', '.join(present)} in {self.got}")


class Expect:
    """The ``expect`` of one case: ``expect(reply)`` gives a :class:`Verifier` bound to the case's requirement."""

    def __init__(self, findings: Findings) -> None:
        self.findings = findings

    def __call__(
        self, reply: Received | None, requirement: str | None = None, clause: str | None = None, what: str = ""
    ) -> Verifier:
        return Verifier(self.findings, reply, requirement or self.requirement, clause, what)

    @property
    def requirement(self) -> str:
        """The case's one requirement; a case that names several must say which it grades."""
        ids: Iterable[str] = self.findings.requirements
        ids = tuple(ids)
        if len(ids) != 1:
            raise TypeError(f"the case names {len(ids)} requirements {ids}: pass the one this check grades")
        return ids[0]
