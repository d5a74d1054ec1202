"""Interoperability runs: every ordered pair of IUTs over emulated networks, judged on the wire (RFC 8445 §2).

:mod:`conformance.interop.runner` runs the cells (pair x topology), :mod:`conformance.tester.monitor` holds the
passive checks on the captured traffic, :mod:`conformance.interop.commands` the ``interop`` subcommand.
"""

from __future__ import annotations

from conformance.interop.runner import CellResult, CellSpec, RunOptions, cells_for, run_cell, run_matrix, write_summary
from conformance.tester.monitor import CHECKED_REQUIREMENTS, PeerSignalling, Violation, WireReport, check_wire

__all__ = [
    "CHECKED_REQUIREMENTS",
    "CellResult",
    "CellSpec",
    "PeerSignalling",
    "RunOptions",
    "Violation",
    "WireReport",
    "cells_for",
    "check_wire",
    "run_cell",
    "run_matrix",
    "write_summary",
]
