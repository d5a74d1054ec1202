"""The self-contained HTML conformance report, built with Jinja2 from run folders' ``summary.json``."""

from __future__ import annotations

import json
import shutil
from collections import defaultdict
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from conformance.catalog import load_catalog

__all__ = ["load_runs", "write_report"]

VERDICTS = ["PASS", "NON-STRICT", "FAIL", "INFO", "UNSUPPORTED", "ERROR"]


def load_runs(folders: list[Path]) -> list[dict[str, Any]]:
    """Every record of every run folder, with the folder it came from."""
    records = []
    for folder in folders:
        summary = json.loads((folder / "summary.json").read_text())
        for r in summary["records"]:
            records.append({**r, "run": str(folder)})
    return records


def write_report(folders: list[Path], out: Path) -> Path:
    """Write ``index.html`` (summary and requirement-by-IUT matrix) and one page per case; return the index."""
    catalog = load_catalog()
    records = load_runs(folders)
    out.mkdir(parents=True, exist_ok=True)
    env = Environment(loader=PackageLoader("conformance.report", "templates"), autoescape=select_autoescape())
    iuts = sorted({r["iut"] for r in records})
    counts = {
        iut: {v: sum(1 for r in records if r["iut"] == iut and r["verdict"] == v) for v in VERDICTS} for iut in iuts
    }
    matrix: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for i, r in enumerate(records):
        r["page"] = f"case-{i}.html"
        for rid in r["requirements"]:
            matrix[rid][r["iut"]].append(r)
        files = {}
        for kind, rel in r.get("artifacts", {}).items():
            src = Path(r["run"]) / rel
            if src.exists():
                dest = out / "files" / str(i) / src.name
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, dest)
                files[kind] = f"files/{i}/{src.name}"
        r["files"] = files
        r["ladder_svg"] = (out / files["ladder"]).read_text() if "ladder" in files else ""
        r["stderr_text"] = (out / files["stderr"]).read_text()[-20000:] if "stderr" in files else ""
    rows = []
    for req in catalog.values():
        if req.id in matrix:
            rows.append({"req": req, "cells": {iut: matrix[req.id].get(iut, []) for iut in iuts}})
    index = env.get_template("index.html.j2").render(
        iuts=iuts, counts=counts, rows=rows, verdicts=VERDICTS, records=records
    )
    (out / "index.html").write_text(index)
    case_tpl = env.get_template("case.html.j2")
    for r in records:
        reqs = [catalog[rid] for rid in r["requirements"] if rid in catalog]
        (out / r["page"]).write_text(case_tpl.render(r=r, reqs=reqs))
    return out / "index.html"
