"""The self-contained HTML conformance report, rendered with Jinja2 from one or more run folders.

Pages: ``index.html`` (summary: verdict counts per IUT and per RFC, runs, versions, coverage), ``matrix.html``
(requirements grouped by catalog group, one column per IUT, one coloured link per case, like the Autobahn index;
an IUT-by-IUT grid when interop records exist), ``cases.html`` (every case, filterable) and
``cases/<iut>/<case>.html`` (requirement, verdict, message, ladder diagram, decoded messages, pcap, IUT stderr).
Everything is inline (CSS, the small filter script, SVG) under a Content-Security-Policy that forbids any request,
so the folder opens from disk, from a CI artifact or from any static host.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import shutil
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from conformance.baseline import Baseline
from conformance.ids import slug
from conformance.report.model import (
    CaseEntry,
    ReportModel,
    build_model,
)
from conformance.verdict import VERDICTS

__all__ = ["CSP", "STDERR_TAIL", "load_runs", "render_model", "write_report"]

logger = logging.getLogger(__name__)

#: No request may leave the page: styles, scripts and images are inline or ``data:``.
CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:"
#: Characters of IUT stderr shown inline (the whole file is linked).
STDERR_TAIL = 20000

VERDICT_HELP = {
    "PASS": "the IUT did what the requirement asks",
    "NON-STRICT": "a SHOULD or RECOMMENDED was not met; still conformant",
    "FAIL": "a MUST or MUST NOT was violated",
    "INFO": "behaviour the RFC leaves open, recorded for the reader",
    "UNSUPPORTED": "the IUT declares no capability for it",
    "ERROR": "the harness, the adapter or the environment failed, not the IUT",
}


def load_runs(folders: list[Path]) -> list[dict[str, Any]]:
    """Every record of every run folder, normalised and merged (one per IUT and case)."""
    from conformance.report.model import load_records

    entries, _ = load_records(folders)
    return [{**r, "run": str(run.folder)} for r, run, _ in entries]


def _when(ts: float | None) -> str:
    if ts is None:
        return "—"
    return _dt.datetime.fromtimestamp(ts, tz=_dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _seconds(value: float | None) -> str:
    if value is None:
        return "—"
    if value < 60:
        return f"{value:.1f} s"
    minutes, secs = divmod(round(value), 60)
    return f"{minutes} min {secs:02d} s"


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("conformance.report", "templates"),
        autoescape=select_autoescape(["html", "j2"], default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["when"] = _when
    env.filters["seconds"] = _seconds
    env.filters["slug"] = slug
    env.globals.update(verdicts=VERDICTS, verdict_help=VERDICT_HELP, csp=CSP)
    return env


def _copy_artifacts(case: CaseEntry, out: Path) -> dict[str, str]:
    """Copy the case's files next to its page; their paths relative to the page."""
    folder = out / "cases" / slug(case.iut) / case.slug
    rel: dict[str, str] = {}
    for kind, src in sorted(case.artifacts.items()):
        if kind == "messages":
            continue  # rendered into the page, not linked
        dest = folder / src.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
        rel[kind] = f"{case.slug}/{src.name}"
    return rel


def _case_context(case: CaseEntry, files: dict[str, str], model: ReportModel) -> dict[str, Any]:
    from conformance.report.messages import decode_capture, ladder_from_pcap, sanitize_svg

    ladder_text = (
        case.artifacts["ladder"].read_text(encoding="utf-8", errors="replace") if "ladder" in case.artifacts else ""
    )
    ladder = sanitize_svg(ladder_text) if ladder_text else None
    messages: list[Any] = []
    hidden = 0
    decode_error = ""
    pcap = case.artifacts.get("pcap")
    if pcap is not None:
        try:
            if "messages" in case.artifacts:  # decoded by the case (conformance/artifacts.py)
                decoded = json.loads(case.artifacts["messages"].read_text(encoding="utf-8"))
                messages, hidden = list(decoded["rows"]), int(decoded["hidden"])
            else:
                messages, hidden = decode_capture(pcap, ladder_text or None)
            if ladder is None:
                ladder = sanitize_svg(ladder_from_pcap(pcap, case.record["nodeid"]))
        except Exception as exc:  # a damaged capture must not stop the report
            logger.warning("cannot decode %s: %s", pcap, exc)
            decode_error = f"{type(exc).__name__}: {exc}"
    stderr = ""
    stderr_cut = False
    if "stderr" in case.artifacts:
        text = case.artifacts["stderr"].read_text(encoding="utf-8", errors="replace")
        stderr_cut = len(text) > STDERR_TAIL
        stderr = text[-STDERR_TAIL:]
    others = [
        c for c in model.cases if c.case_id == case.case_id and c.iut != case.iut and c.record.get("kind") != "interop"
    ]
    return {
        "case": case,
        "r": case.record,
        "files": files,
        "ladder": ladder,
        "messages": messages,
        "hidden_messages": hidden,
        "decode_error": decode_error,
        "stderr": stderr,
        "stderr_cut": stderr_cut,
        "others": others,
    }


def render_model(model: ReportModel, out: Path) -> Path:
    """Write every page of the model into ``out``; return ``out / "index.html"``."""
    out.mkdir(parents=True, exist_ok=True)
    env = _environment()
    common: dict[str, Any] = {"model": model, "root": ""}
    pages = {
        "index.html": env.get_template("index.html.j2").render(**common, page="summary"),
        "matrix.html": env.get_template("matrix.html.j2").render(**common, page="matrix"),
        "cases.html": env.get_template("cases.html.j2").render(**common, page="cases"),
    }
    for name, text in pages.items():
        (out / name).write_text(text, encoding="utf-8")
    case_tpl = env.get_template("case.html.j2")
    for case in model.cases:
        files = _copy_artifacts(case, out)
        ctx = _case_context(case, files, model)
        page = out / case.page
        page.parent.mkdir(parents=True, exist_ok=True)
        page.write_text(case_tpl.render(model=model, root="../../", page="case", **ctx), encoding="utf-8")
    (out / "matrix.json").write_text(json.dumps(matrix_json(model), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return out / "index.html"


def matrix_json(model: ReportModel) -> dict[str, Any]:
    """The matrix as data (for tools and for comparing reports): requirement → IUT → [case, verdict, page]."""
    cells: dict[str, dict[str, list[dict[str, str]]]] = {}
    for group in model.groups:
        for row in group.rows:
            if row.tested:
                cells[row.req.id] = {
                    iut: [{"case": c.case_id, "verdict": c.verdict, "page": c.page} for c in cases]
                    for iut, cases in row.cells.items()
                    if cases
                }
    return {
        "iuts": model.iuts,
        "iut_versions": model.iut_versions,
        "counts": model.counts,
        "matrix": cells,
        "cases": [
            {"iut": c.iut, "case": c.case_id, "verdict": c.verdict, "requirements": c.record["requirements"]}
            for c in model.cases
        ],
    }


def write_report(folders: list[Path], out: Path, *, baseline: Baseline | None = None) -> Path:
    """Write the HTML report of the run folders (merged: CI shards, one folder per IUT) into ``out``; return the index.

    ``out`` is emptied of earlier report pages first, so a case that no longer exists leaves no stale page.
    """
    model = build_model([Path(f) for f in folders], baseline=baseline)
    if out.exists():
        for stale in ("cases", "index.html", "matrix.html", "cases.html", "matrix.json"):
            target = out / stale
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    index = render_model(model, out)
    logger.info("report of %d cases, %d IUTs: %s", len(model.cases), len(model.iuts), index)
    return index
