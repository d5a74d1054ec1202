"""Self-tests of the interop runner: aioice x aioice over emulated networks, the passive checks, selection, report."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conformance.interop.cell import run_cell
from conformance.interop.commands import main as interop_main
from conformance.interop.model import CellSpec, RunOptions, cells_for
from conformance.netns import available as netns_available
from conformance.packets import STUN, attr
from conformance.protocol.keys import short_term_key
from conformance.report.html import write_report
from conformance.tester.capture import Datagram
from conformance.tester.monitor import PeerSignalling, check_wire

A_UFRAG, A_PWD = "aufr", "a-password-of-22-chars"
B_UFRAG, B_PWD = "bufr", "b-password-of-22-chars"
A_ADDR, B_ADDR = ("127.10.1.1", 40000), ("127.100.1.2", 50000)
HOST_A = f"candidate:1 1 udp {(126 << 24) | (65535 << 8) | 255} 127.10.1.1 40000 typ host"
HOST_B = f"candidate:1 1 udp {(126 << 24) | (65535 << 8) | 255} 127.20.1.1 50000 typ host"
PRFLX_PRIORITY = (110 << 24) | (65535 << 8) | 255
TXID = bytes(range(12))


def _sides() -> tuple[PeerSignalling, PeerSignalling]:
    a = PeerSignalling("a", "iut-a", "controlling", A_UFRAG, A_PWD, (HOST_A,), "127.10.1.0/24")
    b = PeerSignalling("b", "iut-b", "controlled", B_UFRAG, B_PWD, (HOST_B,), "127.20.1.0/24")
    return a, b


def _check(**overrides: Any) -> bytes:
    """A valid check from a (controlling) to b, with one field changed when asked."""
    attrs: list[Any] = [
        attr.Username(username=overrides.get("username", f"{B_UFRAG}:{A_UFRAG}").encode()),
        attr.Priority(priority=overrides.get("priority", PRFLX_PRIORITY)),
        overrides.get("role", attr.IceControlling(tiebreaker=7)),
    ]
    if overrides.get("use_candidate"):
        attrs.append(attr.UseCandidate())
    attrs += [attr.MessageIntegrity(), attr.Fingerprint(crc=overrides.get("crc"))]
    key = short_term_key(overrides.get("pwd", B_PWD))
    return bytes(STUN(type=0x0001, transaction_id=TXID, attributes=attrs, key=key))


def _response(pwd: str = B_PWD, username: bool = False) -> bytes:
    attrs: list[Any] = [attr.XorMappedAddress(family=1, address=A_ADDR[0], port=A_ADDR[1])]
    if username:
        attrs.insert(0, attr.Username(username=f"{B_UFRAG}:{A_UFRAG}".encode()))
    attrs += [attr.MessageIntegrity(), attr.Fingerprint()]
    return bytes(STUN(type=0x0101, transaction_id=TXID, attributes=attrs, key=short_term_key(pwd)))


def _wire(request: bytes, response: bytes | None = None) -> list[Datagram]:
    out = [
        Datagram(0.0, A_ADDR, B_ADDR, request, "in", endpoint="netem:a"),
        Datagram(0.0, ("127.100.1.1", 40000), ("127.20.1.1", 50000), request, "out", endpoint="netem:b"),
    ]
    if response is not None:
        out.append(Datagram(0.1, ("127.20.1.1", 50000), ("127.100.1.1", 40000), response, "in", endpoint="netem:b"))
    return out


def _requirements(request: bytes, response: bytes | None = None) -> set[str]:
    a, b = _sides()
    return {v.requirement for v in check_wire(_wire(request, response), a, b).violations}


def test_interop_checks_pass_a_valid_exchange() -> None:
    a, b = _sides()
    report = check_wire(_wire(_check(), _response()), a, b)
    assert report.violations == []
    assert report.directions["a>b"].requests_sent == 1
    assert report.directions["a>b"].requests_forwarded == 1
    assert report.directions["b>a"].success_sent == 1


def test_interop_checks_flag_a_bad_fingerprint() -> None:
    assert _requirements(_check(crc=0x12345678)) == {"STUN-FP-01"}


def test_interop_checks_flag_integrity_with_the_wrong_key() -> None:
    assert _requirements(_check(pwd=A_PWD)) == {"STUN-MI-01", "STUN-AUTH-01"}


def test_interop_checks_flag_a_response_keyed_with_the_requester_password() -> None:
    assert _requirements(_check(), _response(pwd=A_PWD)) == {"STUN-MI-01", "STUN-AUTH-03"}


def test_interop_checks_flag_a_response_with_username() -> None:
    assert _requirements(_check(), _response(username=True)) == {"STUN-AUTH-03"}


def test_interop_checks_flag_an_out_of_range_priority_but_not_another_local_preference() -> None:
    assert _requirements(_check(priority=127 << 24)) == {"ICE-PRIO-04"}
    # A peer-reflexive candidate's local preference is the sender's choice (RFC 8445 §5.1.2.1).
    assert _requirements(_check(priority=(110 << 24) | (1234 << 8) | 255)) == set()


def test_interop_checks_flag_a_wrong_username() -> None:
    assert _requirements(_check(username=f"zzzz:{A_UFRAG}")) == {"STUN-AUTH-01"}


def test_interop_checks_flag_use_candidate_and_role_of_the_controlled_side() -> None:
    a, b = _sides()
    a = PeerSignalling("a", a.iut, "controlled", a.ufrag, a.pwd, a.candidates, a.network)
    b = PeerSignalling("b", b.iut, "controlling", b.ufrag, b.pwd, b.candidates, b.network)
    found = {v.requirement for v in check_wire(_wire(_check(use_candidate=True)), a, b).violations}
    assert found == {"ICE-NOM-01", "ICE-CHK-02"}


def test_interop_checks_flag_a_broken_header() -> None:
    data = bytearray(_check())
    data[4:8] = b"\x00\x00\x00\x00"  # no magic cookie
    assert _requirements(bytes(data)) == {"STUN-MSG-01"}


def test_interop_cells_must_include_selects_only_pairs_with_that_iut() -> None:
    cells = cells_for(["aioice", "libnice", "werift"], ["direct", "loss-delay"], ["libnice"])
    pairs = {(c.controlling, c.controlled) for c in cells}
    assert pairs == {
        ("aioice", "libnice"),
        ("libnice", "aioice"),
        ("libnice", "libnice"),
        ("libnice", "werift"),
        ("werift", "libnice"),
    }
    assert len(cells) == 10
    everything = cells_for(["aioice", "libnice"], ["direct"])
    assert {(c.controlling, c.controlled) for c in everything} == {
        ("aioice", "aioice"),
        ("aioice", "libnice"),
        ("libnice", "aioice"),
        ("libnice", "libnice"),
    }


@pytest.mark.parametrize(
    "argv",
    [
        ["interop", "--iut", "aioice", "--must-include", "libnice"],
        ["interop", "--iut", "no-such-iut"],
        ["interop", "--iut", "aioice", "--topology", "no-such-topology"],
    ],
)
def test_interop_command_usage_errors_exit_2(argv: list[str], tmp_path: Path) -> None:
    assert interop_main([*argv, "--out", str(tmp_path)]) == 2
    assert not (tmp_path / "summary.json").exists()


TOPOLOGIES = ["direct", "nat-eim-eif-both", "symmetric-both", "loss-delay"]


@pytest.fixture(scope="module")
def aioice_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, Path, str]:
    """aioice x aioice over four topologies with -n 2, through the command (in a namespace where possible)."""
    out = tmp_path_factory.mktemp("interop")
    topologies = list(TOPOLOGIES)
    if shutil.which("turnserver") is None:
        topologies.remove("symmetric-both")
    elif not netns_available():
        # aioice's TURN client binds no address; only the run's own namespace can route it from its side.
        topologies.remove("symmetric-both")
    argv = [sys.executable, "-m", "conformance.interop", "interop", "--iut", "aioice", "-n", "2", "--out", str(out)]
    for t in topologies:
        argv += ["--topology", t]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False, env=dict(os.environ))
    return proc.returncode, out, proc.stdout + proc.stderr


def _records(out: Path) -> dict[str, dict[str, Any]]:
    data = json.loads((out / "summary.json").read_text())
    return {r["topology"]: r for r in data["records"]}


def test_interop_aioice_pairs_connect_on_every_topology(aioice_run: tuple[int, Path, str]) -> None:
    code, out, log = aioice_run
    assert code == 0, log
    records = _records(out)
    for topology, r in records.items():
        assert r["kind"] == "interop" and r["pair"] == ["aioice", "aioice"], r
        assert r["connected"] and r["verdict"] == "PASS", (topology, r["message"])
        assert r["violations"] == []
        assert r["data"] == {"a>b": "ok", "b>a": "ok"} or r["data"]["a>b"].startswith("ok"), r["data"]
        assert r["checks"]["a>b"]["requests_forwarded"] >= 1 and r["checks"]["b>a"]["requests_forwarded"] >= 1
        assert all(t is not None and t < 20 for t in r["times"].values())
        for kind in ("pcap", "ladder", "stderr"):
            assert (out / r["artifacts"][kind]).is_file()
    assert records["direct"]["path"] == "direct" and records["nat-eim-eif-both"]["path"] == "direct"
    assert records["loss-delay"]["path"] == "direct"


def test_interop_symmetric_nats_connect_only_through_coturn(aioice_run: tuple[int, Path, str]) -> None:
    if shutil.which("turnserver") is None:
        pytest.skip("coturn is not installed (apt-get install coturn): no TURN server for symmetric-both")
    if not netns_available():
        pytest.skip("no loopback-only namespace (root and unshare -n): aioice's TURN socket cannot be routed")
    _, out, log = aioice_run
    r = _records(out)["symmetric-both"]
    assert r["connected"] and r["path"] == "relay" and r["expected"] == "relay", log
    assert "relay" in {r["selected"]["a"]["local"], r["selected"]["a"]["remote"]}


def test_interop_report_grid_renders_one_table_per_topology(aioice_run: tuple[int, Path, str]) -> None:
    _, out, _ = aioice_run
    index = write_report([out], out / "report-again")
    html = (index.parent / "matrix.html").read_text()
    assert "Interoperability per topology" in html
    for topology in _records(out):
        assert f'id="topo-{topology}"' in html
    assert "capture.pcapng" in html and "ladder.svg" in html
    page = next((index.parent / "cases" / "aioice").glob("interop_direct_aioice-vs-aioice*.html"))
    text = page.read_text()
    assert "Interop cell" in text and "from connect to a selected pair" in text


def test_interop_chromium_cell_outside_the_run_namespace_is_unsupported_with_the_reason(tmp_path: Path) -> None:
    r = asyncio.run(run_cell(CellSpec("chromium", "aioice", "direct"), RunOptions(out=tmp_path, netns=False), 9))
    assert r.verdict == "UNSUPPORTED" and not r.connected
    assert "skips loopback" in r.error and "own network namespace" in r.error, r.error


def _judged(nat_caps: frozenset[str], monkeypatch: pytest.MonkeyPatch, expected: str = "direct") -> Any:
    """An unconnected cell on nat-eim-adf-both whose side a has the capabilities ``nat_caps``, judged."""
    from types import SimpleNamespace

    from conformance.interop import diagnosis
    from conformance.interop.model import CellResult
    from conformance.netem.topology import TOPOLOGIES

    wire = SimpleNamespace(checks=dict, unattributed_checks=0, violations=[], suppressed={})
    monkeypatch.setattr(diagnosis, "wire_report", lambda cell: wire)
    monkeypatch.setattr(diagnosis, "cause", lambda cell, wire: "checks never reached B")
    side = {"connect_at": 0.0, "connected_at": None, "selected": None}
    spec = CellSpec("libre", "aioice", "nat-eim-adf-both")
    cell = SimpleNamespace(
        result=CellResult(spec, expected=expected),
        topology=TOPOLOGIES["nat-eim-adf-both"],
        a=SimpleNamespace(side="a", iut="libre", caps=nat_caps, **side),
        b=SimpleNamespace(side="b", iut="aioice", caps=frozenset({"stun_client"}), **side),
    )
    diagnosis.judge(cell)  # type: ignore[arg-type]
    return cell.result


def test_an_unconnected_cell_fails_unless_a_natted_side_cannot_gather_server_reflexive(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Not connecting is FAIL; where a side behind a NAT gathers no srflx candidate (no stun_client), it is INFO."""
    failed = _judged(frozenset({"controlling", "stun_client"}), monkeypatch)
    assert failed.verdict == "FAIL" and failed.cause
    blind = _judged(frozenset({"controlling"}), monkeypatch)
    assert blind.verdict == "INFO", blind
    assert any("A (libre)" in n and "stun_client" in n for n in blind.notes), blind.notes
    # Where the topology expects a relay pair, server-reflexive candidates are not the path: still FAIL.
    relay = _judged(frozenset({"controlling", "turn_client"}), monkeypatch, expected="relay")
    assert relay.verdict == "FAIL", relay


def test_an_unsupported_cell_says_unsupported_not_error() -> None:
    """A cell refused for a missing capability is UNSUPPORTED in its message too; a harness failure stays ERROR."""
    from conformance.interop.model import CellResult

    r = CellResult(CellSpec("libre", "aioice", "symmetric-both"), verdict="UNSUPPORTED", error="no turn_client")
    assert r.message().startswith("UNSUPPORTED: no turn_client"), r.message()
    r = CellResult(CellSpec("libre", "aioice", "direct"), verdict="ERROR", error="OSError: boom")
    assert r.message().startswith("ERROR (harness or adapter): OSError: boom"), r.message()
