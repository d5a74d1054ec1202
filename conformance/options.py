"""The plugin's options: one group, one prefix (``--ice-``), an ini setting for each (``ice_`` prefix).

The names from before the prefix (``--iut``, ``--iut-cmd``, ``--case-budget``, …) stay as aliases: the CLI, the
docs and the tests use them. A command-line value wins over the ini setting; :func:`value` reads the pair.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from conformance.adapters.registry import DEFAULT_IUT
from conformance.hung import HungLog
from conformance.revisions import GRADED_ON_EVIDENCE

__all__ = ["HUNG_DIR", "HUNG_LOG", "STARTED", "add_options", "iut_label", "started", "value"]


#: What the plugin keeps on the config (pytest's stash): when the run started, the shared hung log and its folder.
STARTED = pytest.StashKey[float]()
HUNG_LOG = pytest.StashKey[HungLog | None]()
HUNG_DIR = pytest.StashKey[Any]()


def _floats(raw: Any) -> float | None:
    return float(raw) if str(raw).strip() else None


def _strings(raw: Any) -> str | None:
    return str(raw) if str(raw).strip() else None


#: dest → (ini type, how an ini value becomes the option's value).
_INI: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "iut": ("string", _strings),
    "iut_cmd": ("string", _strings),
    "iut_name": ("string", _strings),
    "case_budget": ("string", _floats),
    "iut_budget": ("string", _floats),
    "run_budget": ("string", _floats),
    "slow": ("bool", bool),
    "req": ("linelist", list),
    "conformance_out": ("string", _strings),
    "require": ("linelist", lambda xs: [int(x) for x in xs]),
}
_INI_DEFAULTS: dict[str, Any] = {"case_budget": "60"}


def add_options(parser: pytest.Parser) -> None:
    """The ``ice-conformance`` option group and its ini twins."""
    group = parser.getgroup("ice-conformance", "ICE/STUN/TURN conformance")
    group.addoption("--ice-iut", "--iut", dest="iut", default=None, help="IUT name from the registry (default: aioice)")
    group.addoption(
        "--ice-iut-cmd", "--iut-cmd", dest="iut_cmd", default=None, help='command of a stdio shim, e.g. "node shim.js"'
    )
    group.addoption(
        "--ice-case-budget",
        "--case-budget",
        dest="case_budget",
        type=float,
        default=None,
        help="seconds per case (default 60)",
    )
    group.addoption(
        "--ice-slow", "--slow", dest="slow", action="store_true", default=False, help="also run cases marked slow"
    )
    group.addoption(
        "--ice-iut-budget",
        "--iut-budget",
        dest="iut_budget",
        type=float,
        default=None,
        help="seconds of case time per IUT (per worker)",
    )
    group.addoption(
        "--ice-run-budget",
        "--run-budget",
        dest="run_budget",
        type=float,
        default=None,
        help="seconds for the whole run",
    )
    group.addoption(
        "--ice-iut-name",
        "--iut-name",
        dest="iut_name",
        default=None,
        help="the run's IUT name (default: the registry or shim's name)",
    )
    group.addoption(
        "--ice-req",
        "--req",
        dest="req",
        action="append",
        default=[],
        metavar="ID",
        help="select the cases checking this requirement ID (glob patterns allowed; repeatable)",
    )
    group.addoption(
        "--ice-out",
        "--conformance-out",
        dest="conformance_out",
        default=None,
        help="folder for summary.json and artifacts",
    )
    group.addoption(
        "--ice-require",
        "--require",
        dest="require",
        action="append",
        type=int,
        default=[],
        choices=sorted(GRADED_ON_EVIDENCE),
        metavar="REVISION",
        help="the IUT claims RFC 8489 or 8656: grade that revision's rules as written (repeatable; "
        "by default they are UNSUPPORTED unless the IUT shows the mechanism)",
    )
    for dest, (kind, _) in _INI.items():
        default = _INI_DEFAULTS.get(dest)
        parser.addini(f"ice_{dest}", f"default of --ice-{dest.replace('_', '-')}", type=kind, default=default)  # type: ignore[arg-type]


def value(config: pytest.Config, dest: str) -> Any:
    """The option's value: the command line's, else the ini setting's (``ice_<dest>``), else its default."""
    given = config.getoption(dest)
    if not (given is None or given is False or given == []):  # a given 0 is a value (and an error for budgets)
        return given
    _, convert = _INI[dest]
    raw = config.getini(f"ice_{dest}")
    return convert(raw) if raw is not None else given


def iut_label(config: pytest.Config) -> str:
    """The run's IUT as the header and the summary name it."""
    if value(config, "iut_name"):
        return str(value(config, "iut_name"))
    cmd = value(config, "iut_cmd")
    return f"command {cmd!r}" if cmd else str(value(config, "iut") or DEFAULT_IUT)


def started(config: pytest.Config) -> float:
    """When the run started (for --ice-run-budget)."""
    return config.stash.get(STARTED, time.monotonic())
