"""The report's data model: run folders loaded, merged and arranged as counts, a matrix and case entries.

Theory of operation: ``summary.json`` of each run folder is the source of truth. Every record is normalised (its
case ID derived from the node ID, its artifacts found on disk), keyed by (IUT, case ID) and sorted, so the model of
several run folders (CI shards, one job per IUT) is the model of one run over the same cases: nothing in it depends
on the order or the number of folders except the list of runs itself. The matrix rows are catalog requirements
grouped by the catalog's groups; the columns are IUTs; a cell holds every case of that IUT naming the requirement.
Records of interoperability runs (``kind == "interop"``, with ``pair`` and ``topology``) are kept out of the
conformance matrix and arranged by :func:`interop_grid` into an IUT-by-IUT grid instead.
"""

from __future__ import annotations

import json
import logging
import re
import shlex
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conformance.baseline import Baseline, Expected
from conformance.catalog import Catalog, Requirement, load_catalog
from conformance.ids import case_id, slug
from conformance.verdict import VERDICTS, worst

__all__ = [
    "ARTIFACT_FILES",
    "CaseEntry",
    "InteropGrid",
    "MatrixGroup",
    "MatrixRow",
    "ReportError",
    "ReportModel",
    "RunInfo",
    "build_model",
    "interop_grid",
    "load_records",
    "load_summary",
    "merged_summary",
]

logger = logging.getLogger(__name__)


#: The artifact kinds and the file names the plugin writes under ``artifacts/<case>/`` (the first that exists; runs
#: before pcapng wrote ``capture.pcap``).
ARTIFACT_FILES: dict[str, tuple[str, ...]] = {
    "pcap": ("capture.pcapng", "capture.pcap"),
    "ladder": ("ladder.svg",),
    "stderr": ("iut.log",),
    "messages": ("messages.json",),
}


class ReportError(ValueError):
    """A run folder that cannot be reported; the message names the folder and what is wrong."""


@dataclass(frozen=True)
class RunInfo:
    """One run folder: where, which IUT, when, and its counts."""

    folder: Path
    iut: str
    iut_versions: tuple[str, ...]
    harness_version: str
    started: float | None
    finished: float | None
    counts: dict[str, int]
    #: How the run was started (``iut``, ``iut_cmd``, ``iut_name``, ``baseline``), as ``run`` records it.
    invocation: dict[str, str] = field(default_factory=dict)

    @property
    def duration(self) -> float | None:
        """Seconds from start to finish, when both are known."""
        if self.started is None or self.finished is None:
            return None
        return max(0.0, self.finished - self.started)


@dataclass
class CaseEntry:
    """One case of one IUT: its record, requirements, artifacts and where its page goes."""

    record: dict[str, Any]
    run: RunInfo
    requirements: list[Requirement]
    unknown_requirements: list[str]
    artifacts: dict[str, Path]
    expected: Expected | None = None
    #: The verdict the baseline compares (the case's own when it accepts every monitor finding of the case).
    compared: str = ""

    @property
    def iut(self) -> str:
        return str(self.record["iut"])

    @property
    def case_id(self) -> str:
        return str(self.record["case_id"])

    @property
    def verdict(self) -> str:
        return str(self.record["verdict"])

    @property
    def slug(self) -> str:
        """The case's file stem inside its IUT folder."""
        return slug(self.case_id)

    @property
    def page(self) -> str:
        """The case page, relative to the report's root."""
        return f"cases/{slug(self.iut)}/{self.slug}.html"

    @property
    def variant(self) -> str:
        """The parametrize ID (``controlling`` in ``test_x[controlling]``), or the empty string."""
        m = re.search(r"\[(.*)\]$", self.case_id)
        return m.group(1) if m else ""

    @property
    def function(self) -> str:
        """The test function's name without parameters."""
        return self.case_id.split("::")[-1].split("[")[0]

    @property
    def rfcs(self) -> list[str]:
        """RFC names of the case's requirements (``RFC 8445``), in catalog order, without repeats."""
        return list(dict.fromkeys(r.rfc_name for r in self.requirements)) or ["unknown"]

    @property
    def baseline_iut(self) -> str:
        """The IUT name baselines key on (a run kept apart by folder is labelled, its baseline name is not)."""
        return str(self.record.get("baseline_iut") or self.record["iut"])

    def reproduce(self, baseline_path: str = "") -> str:
        """The ``ice-conformance run`` line that re-runs this case alone, the same way."""
        how = self.run.invocation
        argv = ["ice-conformance", "run", str(self.record["nodeid"])]
        if how.get("iut_cmd"):
            argv += ["--iut-cmd", how["iut_cmd"]]
        else:
            argv += ["--iut", how.get("iut") or self.baseline_iut]
        if how.get("iut_name"):
            argv += ["--iut-name", how["iut_name"]]
        baseline = how.get("baseline") or (baseline_path if self.expected is not None else "")
        if baseline:
            argv += ["--baseline", baseline]
        return shlex.join(argv)

    @property
    def first_line(self) -> str:
        """The first line of the message (for tooltips and lists)."""
        msg = str(self.record.get("message") or "")
        return msg.splitlines()[0] if msg else ""

    @property
    def revision_gap(self) -> bool:
        """UNSUPPORTED because the IUT does not implement the newer revision (RFC 8489/8656), not a violation."""
        return bool(self.record.get("revision_gap"))

    @property
    def procedure(self) -> bool:
        """Whether a requirement of the case rests on RFC procedure text rather than a MUST/SHOULD sentence."""
        return any(r.basis == "procedure" for r in self.requirements)

    @property
    def baseline_status(self) -> str:
        """ "expected" (matches the baseline), "unexpected-pass", "differs" or "" (no baseline entry)."""
        if self.expected is None:
            return ""
        verdict = self.compared or self.verdict
        if self.expected.accepts(verdict):
            return "expected"
        return "unexpected-pass" if verdict == "PASS" else "differs"


@dataclass
class MatrixRow:
    """One requirement and, per IUT, the cases that check it."""

    req: Requirement
    cells: dict[str, list[CaseEntry]]

    def worst(self, iut: str) -> str:
        return worst((c.verdict for c in self.cells.get(iut, [])), default="")

    @property
    def tested(self) -> bool:
        return any(self.cells.values())


@dataclass
class MatrixGroup:
    """A catalog group (``1.7 Nomination and concluding ICE``) and its rows."""

    group: str
    title: str
    rows: list[MatrixRow]

    @property
    def tested_rows(self) -> int:
        return sum(1 for r in self.rows if r.tested)


@dataclass
class InteropGrid:
    """Interop cases arranged by pair: ``cells[(a, b)]`` holds the cases of ``a`` against ``b``.

    Rows are the first IUT of each pair (controlling or client), columns the second; :meth:`cell` picks the case
    of one topology, so the template can draw one IUT-by-IUT grid per topology (as quic-interop-runner does).
    """

    rows: list[str]
    columns: list[str]
    cells: dict[tuple[str, str], list[CaseEntry]]
    topologies: list[str]

    def worst(self, a: str, b: str) -> str:
        return worst((c.verdict for c in self.cells.get((a, b), [])), default="")

    def cell(self, a: str, b: str, topology: str) -> CaseEntry | None:
        """The case of ``a`` against ``b`` on ``topology`` (the last one when several), or None."""
        found = [c for c in self.cells.get((a, b), []) if str(c.record.get("topology") or "") == topology]
        return found[-1] if found else None

    def counts(self, topology: str | None = None) -> dict[str, int]:
        """Verdict counts over the grid, or over one topology."""
        out = dict.fromkeys(VERDICTS, 0)
        for cases in self.cells.values():
            for c in cases:
                if topology is None or str(c.record.get("topology") or "") == topology:
                    out[c.verdict] = out.get(c.verdict, 0) + 1
        return out

    def connected(self, topology: str) -> tuple[int, int]:
        """(cells that connected, cells) on one topology."""
        cases = [c for cs in self.cells.values() for c in cs if str(c.record.get("topology") or "") == topology]
        return sum(1 for c in cases if c.record.get("connected")), len(cases)


@dataclass
class ReportModel:
    """Everything the templates render."""

    catalog: Catalog
    runs: list[RunInfo]
    iuts: list[str]
    iut_versions: dict[str, list[str]]
    harness_versions: list[str]
    cases: list[CaseEntry]
    groups: list[MatrixGroup]
    counts: dict[str, dict[str, int]]
    rfc_counts: list[tuple[str, str, dict[str, dict[str, int]]]]
    coverage: list[tuple[str, int, int]]
    interop: InteropGrid | None
    baseline: Baseline | None = None
    duplicates: list[str] = field(default_factory=list)

    @property
    def rfc_names(self) -> list[str]:
        """RFCs that appear in at least one case, in numeric order."""
        names = {n for c in self.cases for n in c.rfcs}
        return sorted(names, key=lambda n: (not n.startswith("RFC "), int(n[4:]) if n[4:].isdigit() else 0, n))

    @property
    def started(self) -> float | None:
        values = [r.started for r in self.runs if r.started is not None]
        return min(values) if values else None

    @property
    def finished(self) -> float | None:
        values = [r.finished for r in self.runs if r.finished is not None]
        return max(values) if values else None

    @property
    def total(self) -> dict[str, int]:
        return {v: sum(self.counts[i][v] for i in self.iuts) for v in VERDICTS}


def load_summary(folder: Path) -> dict[str, Any]:
    """A run folder's ``summary.json``; ReportError when missing or malformed."""
    path = folder / "summary.json"
    if not folder.is_dir():
        raise ReportError(f"{folder} is not a folder")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReportError(f"{folder} has no summary.json (is it a run folder of `ice-conformance run`?)") from None
    except json.JSONDecodeError as exc:
        raise ReportError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("records"), list):
        raise ReportError(f"{path} has no list of records")
    for i, r in enumerate(data["records"]):
        missing = [k for k in ("verdict", "iut") if k not in r] + ([] if ("nodeid" in r or "case_id" in r) else ["id"])
        if missing:
            raise ReportError(f"{path}: record {i + 1} lacks {', '.join(missing)}")
    return data


def _normalise(record: dict[str, Any]) -> dict[str, Any]:
    r = dict(record)
    nodeid = str(r.get("nodeid") or r.get("case_id"))
    r["nodeid"] = nodeid
    r["case_id"] = case_id(nodeid) if "::" in nodeid else str(r.get("case_id") or nodeid)
    r["requirements"] = [str(x) for x in (r.get("requirements") or [])]
    r["message"] = str(r.get("message") or "")
    r["iut"] = str(r["iut"])
    r["iut_version"] = str(r.get("iut_version") or "")
    r["level"] = str(r.get("level") or "")
    r["duration"] = float(r.get("duration") or 0.0)
    r["artifacts"] = dict(r.get("artifacts") or {})
    r["options"] = [str(x) for x in (r.get("options") or [])]
    return r


def _artifacts(folder: Path, record: dict[str, Any]) -> dict[str, Path]:
    """The case's artifact files: as the record names them, else found under ``artifacts/<node ID>/``."""
    root = folder.resolve()
    found: dict[str, Path] = {}
    for kind, rel in record["artifacts"].items():
        path = (folder / str(rel)).resolve()
        if path.is_file() and path.is_relative_to(root):
            found[str(kind)] = path
    fallback = folder / "artifacts" / slug(record["nodeid"])
    for kind, names in ARTIFACT_FILES.items():
        for name in names:
            if kind not in found and (fallback / name).is_file():
                found[kind] = (fallback / name).resolve()
    return found


def _run_info(folder: Path, summary: dict[str, Any], records: list[dict[str, Any]]) -> RunInfo:
    def num(key: str) -> float | None:
        value = summary.get(key)
        return float(value) if isinstance(value, int | float) else None

    iuts = sorted({r["iut"] for r in records}) or [str(summary.get("iut") or "?")]
    return RunInfo(
        folder=folder,
        iut=", ".join(iuts),
        iut_versions=tuple(sorted({r["iut_version"] for r in records if r["iut_version"]})),
        harness_version=str(summary.get("harness_version") or ""),
        started=num("started"),
        finished=num("finished"),
        counts={v: sum(1 for r in records if r["verdict"] == v) for v in VERDICTS},
        invocation={str(k): str(v) for k, v in dict(summary.get("invocation") or {}).items() if v},
    )


def load_records(folders: list[Path]) -> tuple[list[tuple[dict[str, Any], RunInfo, dict[str, Path]]], list[str]]:
    """Every record of every folder, normalised, one per (IUT, case ID), sorted; and the labels given.

    When two folders hold results of the same IUT for the same case (an ad hoc shim named like a registered IUT,
    or two runs to compare), they stay apart: the IUT of each such folder is labelled with the folder
    (``aioice (run-a)``), and ``baseline_iut`` keeps the name baselines key on.
    """
    loaded = []
    for folder in folders:
        summary = load_summary(folder)
        records = [_normalise(r) for r in summary["records"]]
        loaded.append((folder, summary, records))
    seen: dict[tuple[str, str], set[Path]] = defaultdict(set)
    for folder, _, records in loaded:
        for r in records:
            seen[(r["iut"], r["case_id"])].add(folder)
    clash = {iut for (iut, _), where in seen.items() if len(where) > 1}
    names = [f.name for f, _, _ in loaded]
    labelled: list[str] = []
    chosen: dict[tuple[str, str], tuple[dict[str, Any], RunInfo, dict[str, Path]]] = {}
    for folder, summary, records in loaded:
        label = folder.name if names.count(folder.name) == 1 else str(folder)
        for r in records:
            if r["iut"] in clash:
                r["baseline_iut"] = r["iut"]
                r["iut"] = f"{r['iut']} ({label})"
        if any(r["iut"] != r.get("baseline_iut", r["iut"]) for r in records):
            labelled.append(label)
        run = _run_info(folder, summary, records)
        for r in records:
            chosen[(r["iut"], r["case_id"])] = (r, run, _artifacts(folder, r))
    return [chosen[k] for k in sorted(chosen)], labelled


def merged_summary(folders: list[Path]) -> dict[str, Any]:
    """One ``summary.json``-shaped dict for several run folders (records merged as the report merges them)."""
    entries, _ = load_records(folders)
    runs = {str(run.folder): run for _, run, _ in entries}
    records = [r for r, _, _ in entries]
    starts = [r.started for r in runs.values() if r.started is not None]
    ends = [r.finished for r in runs.values() if r.finished is not None]
    return {
        "harness_version": ", ".join(sorted({r.harness_version for r in runs.values() if r.harness_version})),
        "started": min(starts) if starts else None,
        "finished": max(ends) if ends else None,
        "iut": ", ".join(sorted({r["iut"] for r in records})),
        "counts": {v: sum(1 for r in records if r["verdict"] == v) for v in VERDICTS},
        "records": records,
    }


def interop_grid(cases: list[CaseEntry]) -> InteropGrid | None:
    """The IUT-by-IUT grid of interop cases (``kind == "interop"``, ``pair: [a, b]``), or None when there are none.

    The hook for interoperability runs: rows are the first IUT of each pair (the controlling or client side),
    columns the second; ``topology`` values are listed so the template can filter by them.
    """
    cells: dict[tuple[str, str], list[CaseEntry]] = defaultdict(list)
    topologies: set[str] = set()
    for c in cases:
        pair = c.record.get("pair")
        if c.record.get("kind") != "interop" or not isinstance(pair, list | tuple) or len(pair) != 2:
            continue
        cells[(str(pair[0]), str(pair[1]))].append(c)
        if c.record.get("topology"):
            topologies.add(str(c.record["topology"]))
    if not cells:
        return None
    order = [str(t) for t in dict.fromkeys(str(c.record.get("topology") or "") for c in cases) if t]
    return InteropGrid(
        rows=sorted({a for a, _ in cells}),
        columns=sorted({b for _, b in cells}),
        cells=dict(cells),
        topologies=[t for t in order if t in topologies],
    )


def build_model(
    folders: list[Path], *, baseline: Baseline | None = None, catalog: Catalog | None = None
) -> ReportModel:
    """Load and merge the run folders into the report's model."""
    if not folders:
        raise ReportError("no run folder given")
    cat = catalog if catalog is not None else load_catalog()
    loaded, duplicates = load_records(folders)
    runs: dict[str, RunInfo] = {}
    cases: list[CaseEntry] = []
    for record, run, artifacts in loaded:
        runs.setdefault(str(run.folder), run)
        reqs = [cat[i] for i in record["requirements"] if i in cat]
        unknown = [i for i in record["requirements"] if i not in cat]
        key = str(record.get("baseline_iut") or record["iut"])
        expected = baseline.get(key, record["case_id"]) if baseline is not None else None
        compared = baseline.verdict_of(record) if baseline is not None else ""
        cases.append(CaseEntry(record, run, reqs, unknown, artifacts, expected, compared))
    conformance_cases = [c for c in cases if c.record.get("kind", "conformance") != "interop"]
    iuts = sorted({c.iut for c in cases})
    versions = {i: sorted({c.record["iut_version"] for c in cases if c.iut == i} - {""}) for i in iuts}

    by_req: dict[str, dict[str, list[CaseEntry]]] = defaultdict(lambda: defaultdict(list))
    for c in conformance_cases:
        for req in c.requirements:
            by_req[req.id][c.iut].append(c)
    groups = []
    for group, title in cat.groups():
        rows = [MatrixRow(req, {i: list(by_req[req.id].get(i, [])) for i in iuts}) for req in cat.in_group(group)]
        groups.append(MatrixGroup(group, title, rows))

    counts = {i: {v: sum(1 for c in cases if c.iut == i and c.verdict == v) for v in VERDICTS} for i in iuts}
    rfc_table: dict[str, dict[str, dict[str, int]]] = defaultdict(lambda: {i: dict.fromkeys(VERDICTS, 0) for i in iuts})
    for c in conformance_cases:
        for name in c.rfcs:
            rfc_table[name][c.iut][c.verdict] += 1
    titles = {f"RFC {n}": info.title for n, info in cat.rfcs.items()}
    order = sorted(rfc_table, key=lambda n: (not n.startswith("RFC "), int(n[4:]) if n[4:].isdigit() else 0, n))
    rfc_counts = [(name, titles.get(name, ""), rfc_table[name]) for name in order]

    tested = {rid for rid, cells in by_req.items() if any(cells.values())}
    coverage = []
    for name in sorted({r.rfc_name for r in cat.values()}, key=lambda n: (not n.startswith("RFC "), n)):
        reqs = [r for r in cat.values() if r.rfc_name == name]
        coverage.append((name, sum(1 for r in reqs if r.id in tested), len(reqs)))

    return ReportModel(
        catalog=cat,
        runs=sorted(runs.values(), key=lambda r: (r.iut, r.started or 0.0, str(r.folder))),
        iuts=iuts,
        iut_versions=versions,
        harness_versions=sorted({r.harness_version for r in runs.values() if r.harness_version}),
        cases=cases,
        groups=groups,
        counts=counts,
        rfc_counts=rfc_counts,
        coverage=coverage,
        interop=interop_grid(cases),
        baseline=baseline,
        duplicates=duplicates,
    )
