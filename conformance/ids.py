"""Case IDs and the file-name-safe slugs made from them: one spelling for the plugin, the CLI and the report.

A case ID is a pytest node ID relative to ``suites/`` (``ice/test_checks.py::test_x[controlling]``): baselines,
summary records and ``$ICE_CONFORMANCE_CASE_OPTIONS`` keys all use it.
"""

from __future__ import annotations

import re

__all__ = ["case_id", "slug"]

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def case_id(nodeid: str) -> str:
    """The case ID of a pytest node ID: the path below ``suites/``, then ``::`` and the test's name."""
    return nodeid.removeprefix("suites/")


def slug(text: str) -> str:
    """A file-name-safe form of a case, node or IUT ID (the name of an artifact folder or report page)."""
    return _UNSAFE.sub("_", text).strip("_")[:150]
