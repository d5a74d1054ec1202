"""``ice-conformance fuzz`` against the reference peer: a seeded crash is found, bisected to one datagram and
reproduced; the fault-free reference runs clean (exit 0); the mutations are deterministic for a seed."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from conformance.cli import main
from conformance.packets import STUN, attr
from conformance.robustness.fuzz import Campaign, Mutator, exit_code, run_campaign


def _valid() -> STUN:
    attributes = [attr.Username(username=b"a:b"), attr.MessageIntegrity()]
    return STUN(type=1, key=b"k" * 16, transaction_id=bytes(12), attributes=attributes)


def test_mutations_are_deterministic_for_a_seed() -> None:
    first = Mutator(7, [_valid()], [bytes(_valid())])
    again = Mutator(7, [_valid()], [bytes(_valid())])
    other = Mutator(8, [_valid()], [bytes(_valid())])
    a = [first() for _ in range(200)]
    assert a == [again() for _ in range(200)]
    assert a != [other() for _ in range(200)]
    assert any(n.startswith("scapy-fuzz") for n in first.counts) and any(n.startswith("bytes") for n in first.counts)


def test_a_crash_on_a_mutation_is_found_bisected_and_reproduced(tmp_path: Path) -> None:
    campaign = Campaign(
        iut="reference",
        seed=1,
        budget=30,
        probe_every=8,
        out=tmp_path,
        options={"faults": ["crash-on-long-attribute"]},
        progress=False,
    )
    result = asyncio.run(run_campaign(campaign))
    assert exit_code(result) == 1
    assert result.kind == "crash" and "SIGSEGV" in (result.found or "")
    assert result.reproduced is True and len(result.minimal) == 1
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["minimal"] == result.minimal
    for name in ("last-batch.pcap", "minimal.pcap", "minimal.hex", "report.html"):
        assert (tmp_path / name).stat().st_size > 0, name
    assert "Found:" in (tmp_path / "report.html").read_text()


def test_the_fault_free_reference_runs_clean_and_exits_0(tmp_path: Path, capsys: object) -> None:
    code = main(["fuzz", "--iut", "reference", "--seed", "3", "--budget", "3", "--quiet", "--out", str(tmp_path)])
    assert code == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["found"] is None and summary["inputs"] > 0 and summary["probes"] > 0
    assert "Clean" in (tmp_path / "report.html").read_text()


def test_usage_and_environment_errors_exit_2(tmp_path: Path) -> None:
    assert main(["fuzz", "--iut", "no-such-iut", "--out", str(tmp_path)]) == 2
    assert main(["fuzz", "--iut", "reference", "--budget", "0", "--out", str(tmp_path)]) == 2
    assert main(["fuzz", "--iut", "coturn", "--target", "ice", "--budget", "1", "--out", str(tmp_path)]) == 2
