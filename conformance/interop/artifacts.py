"""What an interop run leaves on disk: per cell its capture, ladder, logs and emulator counters; per run the
``summary.json`` the report reads (conformance.report.model)."""

from __future__ import annotations

import json
import logging
import shutil
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from conformance import __version__
from conformance.ids import slug
from conformance.tester.capture import write_pcap
from conformance.tester.ladder import render_ladder
from conformance.verdict import VERDICTS

if TYPE_CHECKING:
    from conformance.interop.cell import Cell
    from conformance.interop.model import CellResult

__all__ = ["write_artifacts", "write_summary"]

logger = logging.getLogger(__name__)


def write_artifacts(cell: Cell) -> None:
    """The cell's folder: capture.pcapng, ladder.svg, per-side logs, coturn.log, iut.log and netem.json."""
    r = cell.result
    folder = cell.folder
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rel = cell.options.out

    def put(kind: str, path: Path) -> None:
        r.artifacts[kind] = str(path.relative_to(rel))

    try:
        put("pcap", write_pcap(cell.capture, folder / "capture.pcapng"))
        title = f"{cell.spec.controlling} (A, controlling) vs {cell.spec.controlled} (B) on {cell.spec.topology}"
        (folder / "ladder.svg").write_text(render_ladder(cell.capture, title=title), encoding="utf-8")
        put("ladder", folder / "ladder.svg")
    except Exception as exc:  # an artifact must not cost the verdict
        logger.warning("%s: cannot write the capture: %s", cell.spec.cell_id, exc)
        r.notes.append(f"capture artifacts not written: {exc}")
    logs = []
    for s in (cell.a, cell.b):
        text = s.adapter.diagnostics() if s.adapter is not None else ""
        path = folder / f"{s.side}-{slug(s.iut)}.log"
        path.write_text(text, encoding="utf-8")
        put(f"stderr_{s.side}", path)
        logs.append(f"===== side {s.side}: {s.iut} ({s.role}) =====\n{text}")
    turn_log = cell.turn_log
    if turn_log:
        (folder / "coturn.log").write_text(turn_log, encoding="utf-8")
        put("turn_log", folder / "coturn.log")
        logs.append(f"===== TURN server (coturn) =====\n{turn_log}")
    (folder / "iut.log").write_text("\n".join(logs), encoding="utf-8")
    put("stderr", folder / "iut.log")
    (folder / "netem.json").write_text(json.dumps(r.netem, indent=2, default=str), encoding="utf-8")
    put("netem", folder / "netem.json")


def write_summary(results: list[CellResult], out: Path, started: float, finished: float) -> Path:
    """``summary.json`` in the run folder: one ``kind: "interop"`` record per cell (conformance.report.model)."""
    records = [r.record() for r in results]
    counts = Counter(r["verdict"] for r in records)
    summary = {
        "harness_version": __version__,
        "kind": "interop",
        "started": started,
        "finished": finished,
        "iut": ", ".join(sorted({x for r in results for x in (r.spec.controlling, r.spec.controlled)})),
        "counts": {v: counts.get(v, 0) for v in VERDICTS},
        "records": records,
    }
    path = out / "summary.json"
    path.write_text(json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")
    return path
