"""The run's ``summary.json``: one record per conformance case, collected on the controller (also under xdist) from
the ``user_properties`` each case's report carries (read by conformance.report.model)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from conformance import __version__
from conformance.ids import case_id
from conformance.options import iut_label, value
from conformance.revisions import implemented
from conformance.verdict import VERDICT_ORDER

__all__ = ["SummaryCollector"]


class SummaryCollector:
    """Collects one record per case (on the controller, also under xdist) and writes ``summary.json``."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.records: list[dict[str, Any]] = []
        self.started = time.time()

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        props = dict(report.user_properties)
        if report.when == "teardown":
            for record in self.records:
                if record["nodeid"] == report.nodeid and props.get("artifacts"):
                    record["artifacts"] = json.loads(str(props["artifacts"]))
            return
        if "verdict" not in props:
            return
        if any(r["nodeid"] == report.nodeid for r in self.records):
            return
        self.records.append(
            {
                "case_id": case_id(report.nodeid),
                "nodeid": report.nodeid,
                "requirements": str(props["requirements"]).split(),
                "level": props["level"],
                "verdict": props["verdict"],
                "case_verdict": props.get("case_verdict", props["verdict"]),
                "duration": round(report.duration, 3),
                "message": props["message"],
                "iut": props["iut"],
                "iut_version": props["iut_version"],
                "iut_reported": props.get("iut_reported", ""),
                "artifacts": json.loads(str(props.get("artifacts") or "{}")),
                "waited": float(str(props.get("waited") or 0)),
                "options": json.loads(str(props.get("options") or "[]")),
                "revision_gap": bool(props.get("revision_gap")),
                "procedure": str(props.get("procedure") or "").split(),
                "monitor": json.loads(str(props.get("monitor") or "[]")),
            }
        )

    @pytest.hookimpl
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if hasattr(self.config, "workerinput"):
            return  # a worker: the controller writes the summary
        out = value(self.config, "conformance_out")
        if not out:
            return
        Path(out).mkdir(parents=True, exist_ok=True)
        counts = {v.value: sum(r["verdict"] == v.value for r in self.records) for v in VERDICT_ORDER}
        summary = {
            "required_revisions": sorted(
                set(value(self.config, "require") or ()) | implemented(value(self.config, "iut"))
            ),
            "revision_gaps": sum(bool(r.get("revision_gap")) for r in self.records),
            "harness_version": __version__,
            "started": self.started,
            "finished": time.time(),
            "iut": iut_label(self.config),
            "counts": counts,
            "records": sorted(self.records, key=lambda r: r["nodeid"]),
        }
        (Path(out) / "summary.json").write_text(json.dumps(summary, indent=2))
