"""JUnit XML post-processing: verdicts as properties and as the element CI tools count (docs/reports.md).

pytest's junitxml writes a case's ``user_properties`` as ``<properties>`` only from its teardown report, and maps
the plugin's outcomes onto ``failure`` and ``skipped``. :func:`rewrite_junit` makes the file say what the harness
decided, whatever pytest wrote:

======================  =============================================================
verdict                 JUnit ``<testcase>`` child
======================  =============================================================
PASS                    none (a pass)
FAIL                    ``<failure type="FAIL" message="FAIL: ...">``
ERROR                   ``<error type="ERROR" message="ERROR: ...">``
NON-STRICT              ``<skipped type="NON-STRICT" message="NON-STRICT: ...">``
INFO                    ``<skipped type="INFO" message="INFO: ...">``
UNSUPPORTED             ``<skipped type="UNSUPPORTED" message="UNSUPPORTED: ...">``
======================  =============================================================

and every case gets the properties ``verdict``, ``requirements``, ``requirement`` (one per ID), ``level``,
``iut``, ``iut_version`` and ``case_id``, plus ``revision_gap`` (an UNSUPPORTED on a rule only RFC 8489/8656
imposes) and ``procedure`` (one per requirement resting on procedure text) when they apply. The
``tests``/``failures``/``errors``/``skipped`` counts of each ``<testsuite>`` are recomputed. The rewrite is idempotent.
"""

from __future__ import annotations

import logging
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from conformance.baseline import Baseline

__all__ = ["JUNIT_ELEMENT", "junit_key", "rewrite_junit"]

logger = logging.getLogger(__name__)

#: The ``<testcase>`` child each verdict becomes (None: no child, a pass).
JUNIT_ELEMENT: dict[str, str | None] = {
    "PASS": None,
    "FAIL": "failure",
    "ERROR": "error",
    "NON-STRICT": "skipped",
    "INFO": "skipped",
    "UNSUPPORTED": "skipped",
}
_OUTCOMES = ("failure", "error", "skipped")
_PROPERTY_NAMES = (
    "verdict",
    "requirements",
    "requirement",
    "level",
    "iut",
    "iut_version",
    "case_id",
    "revision_gap",
    "procedure",
)


def junit_key(nodeid: str) -> tuple[str, str]:
    """(classname, name) as pytest's junitxml writes them for a node ID (``a/b.py::C::t[x]``)."""
    parts = nodeid.split("::")
    parts[0] = re.sub(r"\.py$", "", parts[0].replace("/", "."))
    return ".".join(parts[:-1]), parts[-1]


def _message(record: dict[str, Any]) -> str:
    verdict = str(record["verdict"])
    msg = str(record.get("message") or "")
    return f"{verdict}: {msg}" if msg else verdict


def _iut_prefix(record: dict[str, Any]) -> str:
    """The IUT as the first part of a JUnit class name (dots would split it into packages)."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", str(record.get("iut") or "iut"))


def _rewrite_case(case: ET.Element, record: dict[str, Any], baseline: Baseline | None) -> None:
    verdict = str(record["verdict"])
    classname, _ = junit_key(str(record.get("nodeid") or record.get("case_id")))
    case.set("classname", f"{_iut_prefix(record)}.{classname}")
    # properties: replace ours, keep anything else a plugin recorded
    props = case.find("properties")
    if props is None:
        props = ET.Element("properties")
        case.insert(0, props)
    for p in list(props):
        if p.get("name") in _PROPERTY_NAMES:
            props.remove(p)
    reqs = [str(x) for x in record.get("requirements") or []]
    values: list[tuple[str, str]] = [
        ("verdict", verdict),
        ("requirements", " ".join(reqs)),
        *[("requirement", r) for r in reqs],
        ("level", str(record.get("level") or "")),
        ("iut", str(record.get("iut") or "")),
        ("iut_version", str(record.get("iut_version") or "")),
        ("case_id", str(record.get("case_id") or "")),
        # UNSUPPORTED for a rule only RFC 8489/8656 imposes, which the IUT does not implement: not a violation.
        *([("revision_gap", "true")] if record.get("revision_gap") else []),
        *[("procedure", r) for r in record.get("procedure") or []],
    ]
    for i, (name, value) in enumerate(values):
        props.insert(i, ET.Element("property", name=name, value=value))

    # the outcome element
    old = [el for el in case if el.tag in _OUTCOMES]
    detail = "\n".join(el.text or "" for el in old if el.text).strip()
    for el in old:
        case.remove(el)
    tag = JUNIT_ELEMENT.get(verdict)
    if tag is None:
        return
    expected = baseline.get(str(record.get("iut")), str(record.get("case_id"))) if baseline is not None else None
    if expected is not None and expected.accepts(verdict):
        reason = f"{verdict} expected by the baseline: {expected.reason}"
        el = ET.Element("skipped", type=f"expected-{verdict}", message=reason)
    else:
        el = ET.Element(tag, type=verdict, message=_message(record))
    el.text = detail or _message(record)
    # after <properties>, before system-out/system-err as the JUnit schema orders them
    index = next((i for i, child in enumerate(case) if child.tag in ("system-out", "system-err")), len(case))
    case.insert(index, el)


def _recount(suite: ET.Element) -> None:
    cases = suite.findall("testcase")
    suite.set("tests", str(len(cases)))
    for tag, attr in (("failure", "failures"), ("error", "errors"), ("skipped", "skipped")):
        suite.set(attr, str(sum(1 for c in cases if c.find(tag) is not None)))


def rewrite_junit(path: Path, records: list[dict[str, Any]], *, baseline: Baseline | None = None) -> None:
    """Rewrite ``path`` in place so each case's outcome and properties follow its verdict (see the module table)."""
    tree = ET.parse(path)
    root = tree.getroot()
    by_key: dict[tuple[str, str], dict[str, Any]] = {}
    for r in records:
        classname, name = junit_key(str(r.get("nodeid") or r.get("case_id")))
        by_key[(classname, name)] = r
        by_key[(f"{_iut_prefix(r)}.{classname}", name)] = r  # already rewritten
    matched = 0
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    for suite in suites:
        iuts: set[str] = set()
        for case in suite.findall("testcase"):
            record = by_key.get((case.get("classname", ""), case.get("name", "")))
            if record is None:
                continue
            _rewrite_case(case, record, baseline)
            iuts.add(str(record.get("iut") or ""))
            matched += 1
        if iuts:
            suite.set("name", f"ice-conformance {', '.join(sorted(iuts))}")
        _recount(suite)
    if matched < len(records):
        logger.warning("junit %s: %d of %d records have no <testcase>", path, len(records) - matched, len(records))
    ET.indent(tree, space="  ")
    tree.write(path, encoding="utf-8", xml_declaration=True)
