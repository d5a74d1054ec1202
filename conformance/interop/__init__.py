"""Interoperability runs: every ordered pair of IUTs over emulated networks, judged on the wire (RFC 8445 §2).

:mod:`conformance.interop.runner` runs the matrix, :mod:`conformance.interop.cell` one cell (pair x topology),
:mod:`conformance.interop.model` its spec and result, :mod:`conformance.interop.diagnosis` its verdict and cause,
:mod:`conformance.interop.artifacts` its files; :mod:`conformance.tester.monitor` holds the passive checks on the
captured traffic, :mod:`conformance.interop.commands` the ``interop`` subcommand.
"""

from __future__ import annotations

from conformance.interop.artifacts import write_summary
from conformance.interop.cell import run_cell
from conformance.interop.model import CellResult, CellSpec, RunOptions, cells_for
from conformance.interop.runner import run_matrix
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
