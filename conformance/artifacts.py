"""What a conformance case leaves behind: its capture (pcap), ladder diagram, decoded messages and IUT log on disk,
and its allure labels, parameters and attachments."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from conformance.catalog import SEVERITY
from conformance.ids import slug
from conformance.report.messages import message_rows
from conformance.tester.capture import write_pcap
from conformance.tester.harness import Harness
from conformance.tester.ladder import render_ladder
from conformance.verdict import Findings

__all__ = ["allure_labels", "allure_parameter", "archive"]

logger = logging.getLogger(__name__)


def allure_parameter(name: str, value: str) -> None:
    """A parameter in the allure test identity, so runs of several IUTs merge without collapsing."""
    try:
        import allure
    except ImportError:
        return
    dynamic: Any = allure.dynamic
    dynamic.parameter(name, value)


def allure_labels(findings: Findings) -> None:
    """The case's allure labels from its requirements: epic (RFC), feature (section), story (ID), link, severity."""
    try:
        import allure
    except ImportError:
        return
    dynamic: Any = allure.dynamic
    catalog = findings.catalog
    levels = []
    for rid in findings.requirements:
        req = catalog[rid]
        dynamic.epic(req.rfc_name)
        dynamic.feature(f"{req.rfc_name} §{req.section}" if req.section else req.rfc_name)
        dynamic.story(rid)
        if req.url:
            dynamic.link(req.url, name=f"{req.rfc_name} §{req.section}")
        levels.append(req.level)
    if levels:
        strongest = min(levels, key=["MUST", "SHOULD", "MAY", "INFO"].index)
        dynamic.severity(getattr(allure.severity_level, SEVERITY[strongest].upper()))


def archive(nodeid: str, out: str | None, h: Harness, mark: Any) -> dict[str, str]:
    """Write the case's capture (pcapng: direction and notes per datagram), ladder diagram and IUT diagnostics (since
    the stderr ``mark``) under ``out``; attach them to allure; return the files by kind, relative to ``out``."""
    root = Path(out) if out else None
    base = root / "artifacts" / slug(nodeid) if root is not None else None
    files: dict[str, str] = {}
    diagnostics = ""
    try:
        # Only what the shim wrote during this case (stdio shims keep a byte offset per case).
        diagnostics = h.iut.diagnostics(since=mark) if mark is not None else h.iut.diagnostics()  # type: ignore[call-arg]
    except Exception as exc:
        diagnostics = f"(no diagnostics: {exc})"
    svg = render_ladder(h.capture, title=nodeid) if len(h.capture) else ""
    if root is not None and base is not None:
        base.mkdir(parents=True, exist_ok=True)
        if len(h.capture):
            write_pcap(h.capture, base / "capture.pcapng")
            (base / "ladder.svg").write_text(svg)
            # Decoded here, while the case's process has the capture, not by the report after the run.
            rows, hidden = message_rows(h.capture.datagrams, dict(h.capture.labels))
            (base / "messages.json").write_text(json.dumps({"rows": rows, "hidden": hidden}))
            files["pcap"] = str((base / "capture.pcapng").relative_to(root))
            files["ladder"] = str((base / "ladder.svg").relative_to(root))
            files["messages"] = str((base / "messages.json").relative_to(root))
        (base / "iut.log").write_text(diagnostics)
        files["stderr"] = str((base / "iut.log").relative_to(root))
    try:
        import allure

        attach: Any = allure.attach
        if svg:
            attach(svg, name="ladder diagram", attachment_type=allure.attachment_type.SVG)
        if base is not None and "pcap" in files:
            attach.file(str(base / "capture.pcapng"), name="capture.pcapng", extension="pcapng")
        if diagnostics:
            attach(diagnostics, name="IUT stderr", attachment_type=allure.attachment_type.TEXT)
    except Exception as exc:
        logger.debug("allure attachments: %s", exc)
    return files
