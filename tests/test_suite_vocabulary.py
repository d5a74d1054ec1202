"""Self-tests of the suites' vocabulary: verifiers (conformance/tester/expect.py) and Harness.wait/observe/received."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from conformance.adapters.base import IutInfo
from conformance.packets import ALLOCATE, BINDING, ERROR, STUN, SUCCESS, attr, message_type
from conformance.tester.capture import Capture
from conformance.tester.endpoint import Received
from conformance.tester.expect import Expect
from conformance.tester.harness import Harness
from conformance.verdict import Findings, Verdict, Violation

TXID = b"\x01" * 12


def _received(*attributes: Any, method: int = BINDING, cls: int = ERROR) -> Received:
    data = bytes(STUN(type=message_type(method, cls), transaction_id=TXID, attributes=list(attributes)))
    return Received(data, ("127.0.0.1", 1), ("127.0.0.1", 2), 0.0)


def _harness() -> Harness:
    info = IutInfo("fake", "0", frozenset())
    return Harness(None, info, Findings(requirements=("STUN-AUTH-02",)), Capture(), "127.0.0.1")  # type: ignore[arg-type]


def test_expect_error_passes_on_the_expected_code() -> None:
    findings = Findings(requirements=("STUN-AUTH-02",))
    reply = _received(attr.ErrorCode(401))
    v = Expect(findings)(reply, clause="error_code").error(BINDING, 401).lacks("MESSAGE-INTEGRITY", "USERNAME")
    assert v.ok and not findings.items


def test_expect_error_writes_expected_and_got() -> None:
    findings = Findings(requirements=("STUN-AUTH-02",))
    reply = _received(attr.ErrorCode(400))
    with pytest.raises(Violation) as exc:
        Expect(findings)(reply, clause="error_code", what="bad-integrity check").error(BINDING, 401)
    message = exc.value.finding.message
    assert message.startswith("bad-integrity check: expected a Binding error response 401, got Binding error")
    assert "ERROR-CODE=400" in message and exc.value.finding.clause == "error_code"


def test_expect_lacks_names_the_attribute_present() -> None:
    findings = Findings(requirements=("STUN-AUTH-02",))
    reply = _received(attr.ErrorCode(401), attr.Username(username=b"a:b"))
    with pytest.raises(Violation, match=r"expected no MESSAGE-INTEGRITY, USERNAME, got USERNAME in"):
        Expect(findings)(reply, clause="no_integrity").lacks("MESSAGE-INTEGRITY", "USERNAME")


def test_expect_no_reply_is_no_response() -> None:
    findings = Findings(requirements=("TURN-ALLOC-02",))
    with pytest.raises(Violation, match="expected an Allocate error response 437, got no response"):
        Expect(findings)(None).error(ALLOCATE, 437)


def test_expect_should_level_goes_on_and_records() -> None:
    findings = Findings(requirements=("STUN-MSG-09",))
    reply = _received(method=BINDING, cls=SUCCESS)
    v = Expect(findings)(reply, clause="software").has("SOFTWARE")
    assert not v.ok and [f.verdict for f in findings.items] == [Verdict.NON_STRICT]


def test_expect_needs_the_requirement_when_the_case_names_several() -> None:
    findings = Findings(requirements=("STUN-MSG-08", "STUN-AUTH-03"))
    with pytest.raises(TypeError, match="pass the one"):
        Expect(findings)(None)
    with pytest.raises(Violation):
        Expect(findings)(None, "STUN-AUTH-03").arrived()


def test_expect_silence_holds_on_nothing_and_quotes_what_came() -> None:
    findings = Findings(requirements=("STUN-AUTH-02",))
    assert Expect(findings)(None).silence().ok and not findings.items
    with pytest.raises(Violation, match=r"expected nothing relayed, got Binding error"):
        Expect(findings)(_received(attr.ErrorCode(400))).silence("nothing relayed")


def test_expect_code_judges_the_error_code_only() -> None:
    findings = Findings(requirements=("TURN-ALLOC-02",))
    assert Expect(findings)(_received(attr.ErrorCode(437), method=ALLOCATE)).code(437, 486).ok
    with pytest.raises(Violation, match=r"expected ERROR-CODE 437, got Allocate error .*ERROR-CODE=400"):
        Expect(findings)(_received(attr.ErrorCode(400), method=ALLOCATE)).code(437)
    with pytest.raises(Violation, match="expected ERROR-CODE 437, got no response"):
        Expect(findings)(None).code(437)


def test_expect_sound_passes_on_no_problem_and_names_the_problem() -> None:
    findings = Findings(requirements=("STUN-AUTH-02",))
    reply = _received(attr.ErrorCode(401))
    assert Expect(findings)(reply).sound(None, "a valid FINGERPRINT").ok
    with pytest.raises(Violation, match=r"expected a valid FINGERPRINT, got CRC mismatch in Binding error"):
        Expect(findings)(reply).sound("CRC mismatch", "a valid FINGERPRINT")


def test_expect_role_reads_the_role_attribute() -> None:
    findings = Findings(requirements=("ICE-ROLE-02",))
    check = _received(attr.IceControlling(tiebreaker=7), method=BINDING, cls=0)
    assert Expect(findings)(check).role("controlling").ok
    with pytest.raises(Violation, match="expected a check claiming controlled, got Binding request"):
        Expect(findings)(check).role("controlled")


def test_harness_wait_ends_on_the_event_and_observe_holds_its_window() -> None:
    async def scenario() -> tuple[float, float, Received | None, Received | None, list[Received]]:
        h = _harness()
        a = await h.endpoint("a")
        b = await h.endpoint("b")
        loop = asyncio.get_running_loop()
        start = loop.time()
        loop.call_later(0.05, a.send, b"\x80one", b.address)
        got = await h.wait(lambda r: r.data == b"\x80one", 5.0)
        waited = loop.time() - start
        none = await h.wait(lambda r: r.data == b"never", 0.05)
        start = loop.time()
        await h.observe(0.2, "nothing must happen")
        held = loop.time() - start
        everything = h.received()
        await h.aclose()
        assert h.waited >= waited + held
        return waited, held, got, none, everything

    waited, held, got, none, everything = asyncio.run(scenario())
    assert got is not None and got.data == b"\x80one" and waited < 2.0
    assert none is None
    assert held >= 0.19
    assert [r.data for r in everything] == [b"\x80one"]


def test_harness_wait_counts_what_already_arrived_since() -> None:
    async def scenario() -> Received | None:
        h = _harness()
        a = await h.endpoint("a")
        b = await h.endpoint("b")
        a.send(b"\x80early", b.address)
        await b.expect(lambda r: True, 5.0)
        got = await h.wait(lambda r: r.data == b"\x80early", 0.01, since=0.0)
        await h.aclose()
        return got

    assert asyncio.run(scenario()) is not None
