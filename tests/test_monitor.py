"""Self-tests of the passive monitor (conformance/tester/monitor.py): each rule flags its violation and stays quiet
on conforming and legal-but-unusual traffic; the plugin grades its findings (FAIL on the row, FAIL instead of a
precondition ERROR, fail fast); seeded faults of the reference IUTs give FAIL naming the requirement, no ERROR.

The whole-suite runs against the faults and the fault-free references are ``slow`` (minutes each)."""

from __future__ import annotations

import json
import logging
import struct
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from conformance.packets import STUN, ChannelData, attr
from conformance.packets.attributes import ErrorCode
from conformance.protocol.candidate import parse_candidate
from conformance.protocol.keys import short_term_key
from conformance.tester.capture import Capture, Datagram
from conformance.tester.ice import IcePeer
from conformance.tester.monitor import SYSTEMATIC, Monitor, SystematicViolation
from conformance.verdict import Finding, Findings, HarnessError, Verdict, grade
from tests.selftest import ROOT, run_cases

IUT = ("127.0.0.1", 40000)
HARNESS = ("127.0.0.1", 50000)
TURN = ("127.0.0.1", 3478)
PRIO = (110 << 24) | (65535 << 8) | 255  # prflx type preference, local preference and component 1 of the host
HOST_PRIO = (126 << 24) | (65535 << 8) | 255


def _monitor(revisions: frozenset[int] = frozenset()) -> tuple[Monitor, IcePeer, Any]:
    m = Monitor(lambda: revisions)
    peer = IcePeer([], "hpeer", "harnesspassword0123456789", 7)
    session = SimpleNamespace(
        peer=peer,
        local=SimpleNamespace(ufrag="iutu", pwd="iutpassword0123456789012"),
        candidates=[parse_candidate(f"candidate:1 1 udp {HOST_PRIO} {IUT[0]} {IUT[1]} typ host")],
    )
    peer.remote_ufrag, peer.remote_pwd = "iutu", "iutpassword0123456789012"
    m.add_session(session)
    return m, peer, session


def _check(
    peer: IcePeer, *, tiebreaker: int = 1, txid: bytes | None = None, fp: bool = True, priority: int = PRIO
) -> bytes:
    msg = STUN(
        type=0x0001,
        key=short_term_key(peer.pwd),
        attributes=[
            attr.Username(username=f"{peer.ufrag}:iutu".encode()),
            attr.Priority(priority=priority),
            attr.IceControlling(tiebreaker=tiebreaker),
            attr.MessageIntegrity(),
            *([attr.Fingerprint()] if fp else []),
        ],
        **({"transaction_id": txid} if txid else {}),
    )
    return bytes(msg)


def _in(data: bytes, src: tuple[str, int] = IUT, dst: tuple[str, int] = HARNESS) -> Datagram:
    return Datagram(time.time(), src, dst, data, "in")


def _out(data: bytes, src: tuple[str, int] = HARNESS, dst: tuple[str, int] = IUT) -> Datagram:
    return Datagram(time.time(), src, dst, data, "out")


def _bad_fp(data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 1])


def _rows(m: Monitor) -> list[str]:
    m.finish()
    return [f.requirement + ("(info)" if f.info else "") for f in m.findings]


def test_conforming_checks_and_responses_give_no_finding() -> None:
    m, peer, _ = _monitor()
    for _ in range(3):
        m.observe(_in(_check(peer)))
    harness_check = STUN(
        type=0x0001,
        key=short_term_key("iutpassword0123456789012"),
        attributes=[attr.Username(username=b"iutu:hpeer"), attr.MessageIntegrity(), attr.Fingerprint()],
    )
    m.observe(_out(bytes(harness_check)))
    response = STUN(
        type=0x0101,
        transaction_id=harness_check.transaction_id,
        key=short_term_key("iutpassword0123456789012"),
        attributes=[
            attr.XorMappedAddress(family=1, address=HARNESS[0], port=HARNESS[1]),
            attr.MessageIntegrity(),
            attr.Fingerprint(),
        ],
    )
    m.observe(_in(bytes(response)))
    assert _rows(m) == []


def test_a_bad_fingerprint_on_every_message_is_systematic_and_stops_the_case() -> None:
    m, peer, _ = _monitor()
    stopped: list[bool] = []
    m.on_systematic(lambda: stopped.append(True))
    for i in range(SYSTEMATIC):
        assert not stopped, f"stopped after {i} messages"
        m.observe(_in(_bad_fp(_check(peer))))
    assert stopped and m.systematic is not None and m.systematic.requirement == "STUN-FP-01"
    assert _rows(m) == ["STUN-FP-01"] and m.counts["STUN-FP-01"] == SYSTEMATIC


def test_one_conforming_message_means_no_fail_fast() -> None:
    m, peer, _ = _monitor()
    m.observe(_in(_check(peer)))
    for _ in range(SYSTEMATIC + 2):
        m.observe(_in(_bad_fp(_check(peer))))
    assert m.systematic is None and _rows(m) == ["STUN-FP-01"]


def test_retransmission_is_not_a_reused_transaction_id() -> None:
    m, peer, _ = _monitor()
    data = _check(peer)
    m.observe(_in(data))
    m.observe(_in(data))
    assert _rows(m) == []
    m.observe(_in(_check(peer, txid=data[8:20]), dst=("127.0.0.1", 50001)))  # same ID, another destination
    assert "STUN-MSG-02" in _rows(m)


def test_tiebreaker_may_change_only_after_a_487() -> None:
    m, peer, _ = _monitor()
    m.observe(_in(_check(peer, tiebreaker=1)))
    first = _check(peer, tiebreaker=2)
    m.observe(_in(first))
    assert _rows(m) == ["ICE-CHK-02"]
    m2, peer2, _ = _monitor()
    request = _check(peer2, tiebreaker=1)
    m2.observe(_in(request))
    conflict = STUN(type=0x0111, transaction_id=request[8:20], attributes=[ErrorCode(487)])
    m2.observe(_out(bytes(conflict)))
    m2.observe(_in(_check(peer2, tiebreaker=2)))
    assert _rows(m2) == []


def test_nonzero_padding_is_info_unless_rfc_8489_is_required() -> None:
    data = bytearray(bytes(STUN(type=0x0001, attributes=[attr.Software(software=b"abc")])))
    data[27] = 0x20  # the padding byte after the 3-byte SOFTWARE value
    for revisions, expected in ((frozenset(), ["STUN-MSG-08(info)"]), (frozenset({8489}), ["STUN-MSG-08"])):
        m, _, _ = _monitor(revisions)
        m.observe(_in(bytes(data)))
        assert _rows(m) == expected


def test_header_length_and_rfc_3489_messages() -> None:
    m, _, _ = _monitor()
    good = bytes(STUN(type=0x0001, attributes=[attr.Software(software=b"abcd")]))
    m.observe(_in(good[:2] + struct.pack("!H", len(good) - 16) + good[4:]))
    assert _rows(m) == ["STUN-MSG-01"]
    m, _, _ = _monitor()
    m.observe(_in(good[:4] + b"\x01\x02\x03\x04" + good[8:]))  # no cookie: RFC 3489 form
    m.observe(_in(b"\x00\x01application data, not STUN"))
    assert _rows(m) == ["STUN-MSG-01(info)"]


def test_channel_data_rules() -> None:
    cases = [
        (struct.pack("!HH", 0x4000, 5) + b"abcde", []),
        (bytes(ChannelData(channel=0x4000, data=b"abcde")), []),  # padded to 4: allowed over UDP
        (bytes(ChannelData(channel=0x5000, data=b"abcde")), ["TURN-CHAN-06"]),
        (bytes(ChannelData(channel=0x4001, length=13, data=b"abcde")), ["TURN-CHAN-06"]),
        (bytes(ChannelData(channel=0x4001, data=b"abcde")) + b"\x00" * 8, ["TURN-CHAN-06"]),
    ]
    for data, expected in cases:
        m, _, _ = _monitor()
        m.add_turn_server(TURN, iut=False)
        m.observe(_in(data, dst=TURN))
        assert _rows(m) == expected, data.hex()


def test_send_indication_needs_peer_address_and_data() -> None:
    peer_attr = attr.XorPeerAddress(family=1, address="127.0.0.2", port=5000)
    for attributes, expected in (([peer_attr, attr.Data(data=b"x")], []), ([peer_attr], ["TURN-DATA-01"])):
        m, _, _ = _monitor()
        m.add_turn_server(TURN, iut=False)
        m.observe(_in(bytes(STUN(type=0x0016, attributes=attributes)), dst=TURN))
        assert _rows(m) == expected


def test_xor_address_length_must_fit_the_family() -> None:
    m, _, _ = _monitor()
    raw = bytearray(bytes(STUN(type=0x0101, attributes=[attr.XorMappedAddress(family=1, address="1.2.3.4", port=9)])))
    raw[25] = 2  # family IPv6 with an 8-byte value
    m.observe(_in(bytes(raw)))
    assert _rows(m) == ["STUN-MSG-09"]


def test_harness_to_harness_traffic_is_not_judged() -> None:
    m, peer, _ = _monitor()
    relay = ("127.0.0.1", 60000)
    m.observe(_out(b"x", src=relay, dst=HARNESS))
    m.observe(_in(_bad_fp(_check(peer)), src=relay))
    assert _rows(m) == []


def test_capture_observers_see_every_datagram_and_their_errors_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    capture = Capture()
    seen: list[Datagram] = []

    def broken(d: Datagram) -> None:
        raise RuntimeError("observer bug")

    capture.observers += [broken, seen.append]
    with caplog.at_level(logging.ERROR):
        capture.record(IUT, HARNESS, b"abc", "in")
    assert len(seen) == 1 and len(capture) == 1 and "observer failed" in caplog.text


def _findings(source: str) -> Findings:
    f = Findings()
    f.add(Finding("STUN-FP-01", None, "MUST", Verdict.FAIL, "wrong FINGERPRINT", source=source))
    return f


def test_precondition_error_becomes_the_monitors_fail() -> None:
    exc = HarnessError("precondition: ICE through the relay did not complete within 15 s")
    verdict, message = grade(_findings("monitor"), pytest.ExceptionInfo.from_exc_info((type(exc), exc, None)))
    assert verdict is Verdict.FAIL and "STUN-FP-01" in message and "precondition" in message and "monitor" in message
    verdict, _ = grade(Findings(), pytest.ExceptionInfo.from_exc_info((type(exc), exc, None)))
    assert verdict is Verdict.ERROR
    m, peer, _ = _monitor()
    for _ in range(SYSTEMATIC):
        m.observe(_in(_bad_fp(_check(peer))))
    assert m.systematic is not None
    stop = SystematicViolation(m.systematic, SYSTEMATIC)
    verdict, message = grade(Findings(), pytest.ExceptionInfo.from_exc_info((type(stop), stop, None)))
    assert verdict is Verdict.FAIL and "STUN-FP-01" in message


# -- seeded faults of the reference IUTs, in subprocess runs ------------------------------------------------------

TURN_CMD = [sys.executable, "-m", "conformance.reference.turn_main"]
ICE_CMD = [sys.executable, "-m", "conformance.reference"]

#: (suite folder, IUT command, fault, the requirement the monitor must name)
FAULT_RUNS = [
    ("turn_client", TURN_CMD, "channel-out-of-range", "TURN-CHAN-06"),
    ("turn_client", TURN_CMD, "channel-length-lies", "TURN-CHAN-06"),
    ("turn_client", TURN_CMD, "send-without-data", "TURN-DATA-01"),
    ("ice", ICE_CMD, "bad-fingerprint", "STUN-FP-01"),
    ("ice", ICE_CMD, "tiebreaker-per-check", "ICE-CHK-02"),
]


def _fault_problems(records: dict[str, dict[str, Any]], requirement: str) -> list[str]:
    problems = [f"{c}: ERROR: {r['message'][:200]}" for c, r in records.items() if r["verdict"] == "ERROR"]
    flagged = [r for r in records.values() if r["monitor"]]
    if not flagged:
        problems.append("no case has a monitor finding")
    for r in flagged:
        if r["verdict"] != "FAIL" or requirement not in r["message"]:
            problems.append(f"{r['case_id']}: {r['verdict']} without {requirement}: {r['message'][:200]}")
    return problems


@pytest.mark.parametrize("fault", ["bad-fingerprint", "tiebreaker-per-check"])
def test_fast_ice_faults_fail_on_the_monitor(fault: str, tmp_path: Path) -> None:
    case = "ice/test_checks.py::test_new_checks_are_paced[controlling]"
    requirement = {"bad-fingerprint": "STUN-FP-01", "tiebreaker-per-check": "ICE-CHK-02"}[fault]
    records = run_cases([case], ["--iut-cmd", " ".join([*ICE_CMD, "--fault", fault])], tmp_path)
    r = records[case]
    assert r["verdict"] == "FAIL" and requirement in r["message"], r["message"][:300]
    assert [m["requirement"] for m in r["monitor"]] == [requirement]


def _run_suite(folder: str, cmd: list[str], out: Path, timeout: float = 1500) -> tuple[dict[str, Any], float]:
    started = time.monotonic()
    subprocess.run(
        [
            *(sys.executable, "-m", "pytest", f"suites/{folder}", "-q", "-p", "no:cacheprovider", "-n", "2"),
            *("--iut-cmd", " ".join(cmd), "--conformance-out", str(out)),
        ],
        cwd=ROOT,
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    records = json.loads((out / "summary.json").read_text())["records"]
    return {r["nodeid"].removeprefix("suites/"): r for r in records}, time.monotonic() - started


@pytest.mark.slow
@pytest.mark.parametrize(("folder", "cmd", "fault", "requirement"), FAULT_RUNS, ids=[f[2] for f in FAULT_RUNS])
def test_whole_suite_against_a_seeded_fault(
    folder: str, cmd: list[str], fault: str, requirement: str, tmp_path: Path
) -> None:
    records, _ = _run_suite(folder, [*cmd, "--fault", fault], tmp_path)
    assert _fault_problems(records, requirement) == []


@pytest.mark.slow
@pytest.mark.parametrize("cmd", [ICE_CMD, TURN_CMD], ids=["reference", "reference-turn"])
def test_fault_free_references_give_no_monitor_finding(cmd: list[str], tmp_path: Path) -> None:
    records, _ = _run_suite("", cmd, tmp_path)
    assert {c: r["monitor"] for c, r in records.items() if r["monitor"]} == {}


def test_baseline_monitor_entries_accept_a_finding_once_for_every_case(tmp_path: Path) -> None:
    from conformance.baseline import compare, load_baseline, update_baseline

    path = tmp_path / "b.toml"
    path.write_text(
        '[[monitor]]\niut = "x"\nrequirement = "STUN-AUTH-03"\nreason = "USERNAME in responses, RFC 5389 §10.1.2"\n'
    )
    baseline = load_baseline(path)
    finding = {"requirement": "STUN-AUTH-03", "info": False}
    accepted = {"iut": "x", "case_id": "c1", "verdict": "FAIL", "case_verdict": "PASS", "monitor": [finding]}
    other = {**accepted, "case_id": "c2", "monitor": [finding, {"requirement": "STUN-FP-01", "info": False}]}
    assert baseline.verdict_of(accepted) == "PASS" and baseline.verdict_of(other) == "FAIL"
    result = compare([accepted, other], baseline)
    assert [r["case_id"] for r in result.new_failures] == ["c2"]
    update = update_baseline([accepted], path)
    assert "[[monitor]]" in update.text and not update.added


def test_priority_with_another_local_preference_is_a_note() -> None:
    m, peer, session = _monitor()
    m.observe(_in(_check(peer, priority=PRIO - (5 << 8))))
    assert _rows(m) == ["ICE-PRIO-04(info)"]
    m, peer, session = _monitor()
    m.observe(_in(_check(peer, priority=127 << 24)))
    assert _rows(m) == ["ICE-PRIO-04"]
    m, peer, session = _monitor()
    session.candidates = [parse_candidate(f"candidate:1 1 udp {(126 << 24) | (1 << 8) | 1} {IUT[0]} {IUT[1]} typ host")]
    m.observe(_in(_check(peer)))
    assert _rows(m) == ["ICE-PRIO-04(info)"]


def test_txid_reuse_after_an_answer_is_judged_by_the_row_that_owns_the_retry() -> None:
    first = bytes(STUN(type=0x0003, attributes=[attr.Software(software=b"x")]))
    retry = bytes(STUN(type=0x0003, transaction_id=first[8:20], attributes=[attr.Software(software=b"yy")]))
    for code, expected in ((401, ["STUN-AUTH-05"]), (438, ["STUN-MSG-02(info)"]), (None, ["STUN-MSG-02"])):
        m, _, _ = _monitor()
        m.observe(_in(first))
        if code is not None:
            m.observe(_out(bytes(STUN(type=0x0113, transaction_id=first[8:20], attributes=[ErrorCode(code)]))))
        m.observe(_in(retry))
        assert _rows(m) == expected, code
