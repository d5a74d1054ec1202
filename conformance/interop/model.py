"""The interop matrix's data: a cell's identity, the run's knobs and one cell's result (a ``summary.json`` record)."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conformance.netem import TOPOLOGIES
from conformance.tester.monitor import CHECKED_REQUIREMENTS

__all__ = [
    "CONNECT_DEADLINE",
    "LOSS_CONNECT_DEADLINE",
    "CellResult",
    "CellSpec",
    "RunOptions",
    "cells_for",
    "known_topologies",
]

#: Seconds from ``connect`` until both sides must report a selected pair (RFC 8445 §8).
CONNECT_DEADLINE = 20.0
#: The same under loss (a lossy access link slows checks by their retransmissions, RFC 8445 §14.3).
LOSS_CONNECT_DEADLINE = 40.0


@dataclass(frozen=True)
class CellSpec:
    """One cell of the matrix: ``controlling`` (side a) against ``controlled`` (side b) on ``topology``."""

    controlling: str
    controlled: str
    topology: str

    @property
    def cell_id(self) -> str:
        """``interop/<topology>/<controlling>-vs-<controlled>``: the case ID in the report."""
        return f"interop/{self.topology}/{self.controlling}-vs-{self.controlled}"

    @property
    def seed(self) -> int:
        """A seed derived from the cell alone, so loss schedules repeat from run to run."""
        return zlib.crc32(self.cell_id.encode())


@dataclass
class RunOptions:
    """Knobs of a run."""

    out: Path
    parallel: int = 1
    connect_deadline: float = CONNECT_DEADLINE
    loss_connect_deadline: float = LOSS_CONNECT_DEADLINE
    #: "relay": a TURN server only on topologies that need one; "always": on every topology; "never".
    turn: str = "relay"
    netns: bool = False
    slot_offset: int = 0
    progress: Callable[[CellResult], None] | None = None


@dataclass
class CellResult:
    """Everything recorded for one cell (one ``summary.json`` record)."""

    spec: CellSpec
    verdict: str = "ERROR"
    connected: bool = False
    expected: str = "direct"
    path: str | None = None
    times: dict[str, float | None] = field(default_factory=dict)
    selected: dict[str, dict[str, str]] = field(default_factory=dict)
    checks: dict[str, Any] = field(default_factory=dict)
    data: dict[str, str] = field(default_factory=dict)
    violations: list[dict[str, str]] = field(default_factory=list)
    suppressed: dict[str, int] = field(default_factory=dict)
    cause: str = ""
    notes: list[str] = field(default_factory=list)
    error: str = ""
    states: dict[str, list[str]] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    netem: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)
    started: float = 0.0
    duration: float = 0.0

    @property
    def met_expectation(self) -> bool:
        """Connected as the topology says (RFC 8445 §8) with no violation graded FAIL, and no harness ERROR."""
        return self.verdict not in ("FAIL", "ERROR")

    def outcome(self) -> dict[str, Any]:
        """The parts two runs must agree on (timings and counts vary; these must not)."""
        return {
            "verdict": self.verdict,
            "connected": self.connected,
            "path": self.path,
            "selected": {s: {k: v[k] for k in ("local", "remote")} for s, v in sorted(self.selected.items())},
            "violations": sorted({v["requirement"] + " by " + v["by"] for v in self.violations}),
            "data": dict(sorted(self.data.items())),
        }

    def message(self) -> str:
        """The report's message: outcome, cause, violations, notes."""
        lines: list[str] = []
        if self.error and self.verdict == "UNSUPPORTED":
            lines.append(f"UNSUPPORTED: {self.error}")
        elif self.error:
            lines.append(f"ERROR (harness or adapter): {self.error}")
        elif self.connected:
            t = ", ".join(f"{s}: {v:.3f} s" for s, v in sorted(self.times.items()) if v is not None)
            lines.append(f"connected ({self.path}; expected {self.expected}); connect-to-selected-pair {t}")
        else:
            lines.append(f"did not connect (expected a {self.expected} pair)")
        if self.cause:
            lines.append(f"cause on the wire: {self.cause}")
        for v in self.violations:
            lines.append(f"{v['requirement']} ({v['by']}): {v['message']}")
        for req, n in sorted(self.suppressed.items()):
            lines.append(f"{req}: {n} more violations not listed")
        if self.data:
            lines.append("data: " + "; ".join(f"{k}: {v}" for k, v in sorted(self.data.items())))
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    def record(self) -> dict[str, Any]:
        """The ``summary.json`` record (``kind: "interop"``, read by the report's interop grid)."""
        a, b = self.spec.controlling, self.spec.controlled
        return {
            "kind": "interop",
            "nodeid": self.spec.cell_id,
            "case_id": self.spec.cell_id,
            "iut": a,
            "iut_version": self.versions.get("a", ""),
            "pair": [a, b],
            "versions": dict(self.versions),
            "topology": self.spec.topology,
            "expected": self.expected,
            "connected": self.connected,
            "path": self.path,
            "times": dict(self.times),
            "selected": self.selected,
            "checks": self.checks,
            "data": dict(self.data),
            "violations": list(self.violations),
            "suppressed": dict(self.suppressed),
            "cause": self.cause,
            "notes": list(self.notes),
            "states": dict(self.states),
            "netem": self.netem,
            "verdict": self.verdict,
            "level": "",
            "requirements": list(CHECKED_REQUIREMENTS),
            "message": self.message(),
            "duration": round(self.duration, 3),
            "started": self.started,
            "artifacts": dict(self.artifacts),
        }


def cells_for(iuts: Iterable[str], topologies: Iterable[str], must_include: Iterable[str] = ()) -> list[CellSpec]:
    """Every ordered pair (self-pairs included) on every topology; with ``must_include``, only pairs involving one."""
    names = list(dict.fromkeys(iuts))
    wanted = set(must_include)
    out = []
    for topo in topologies:
        for a in names:
            for b in names:
                if wanted and a not in wanted and b not in wanted:
                    continue
                out.append(CellSpec(a, b, topo))
    return out


def known_topologies() -> list[str]:
    """The preset names (docs/netem.md)."""
    return list(TOPOLOGIES)
