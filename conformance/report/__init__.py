"""Reports built from run folders: the HTML conformance report, JUnit post-processing, Markdown, baselines, gate."""

from __future__ import annotations

from conformance.report.commands import add_commands
from conformance.report.gate import EXIT_ERROR, EXIT_FAIL, EXIT_OK, GateResult, gate
from conformance.report.html import write_report
from conformance.report.junit import rewrite_junit
from conformance.report.markdown import write_summary_md

__all__ = [
    "EXIT_ERROR",
    "EXIT_FAIL",
    "EXIT_OK",
    "GateResult",
    "add_commands",
    "gate",
    "rewrite_junit",
    "write_report",
    "write_summary_md",
]
