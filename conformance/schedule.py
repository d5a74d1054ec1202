"""How many xdist workers a conformance run gets by default, and the order its cases are handed out in.

Theory of operation: a case mostly waits (on the IUT's timers, on silence windows), so a run is wait-bound, not
CPU-bound, and more workers than cores pay off. ``ice-conformance run`` passes ``-n auto``; this plugin answers
xdist's ``pytest_xdist_auto_num_workers`` hook for runs against an IUT: the ``ice_workers`` ini setting when
set, else the IUT's ``workers`` in its ``iut.toml``, else :data:`FALLBACK_WORKERS`. ``-n N`` on the
command line and xdist's ``PYTEST_XDIST_AUTO_NUM_WORKERS`` variable take precedence.

Under xdist the cases are handed out longest first (greedy longest-processing-time scheduling with ``--dist load``),
so the run is not left waiting on one long case started last. A case's expected length is its duration in the last
run against the same IUT (kept in the user's cache folder), else the shipped hint (``conformance/durations.json``:
one measured run of the default tier against aioice, for a fresh clone), else unknown: unknown cases go first, as
they may be long. The controller reads the figures once and
hands them to every worker, so all workers collect the same order, as xdist requires.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import pytest

from conformance.options import iut_label, value

if TYPE_CHECKING:
    from conformance.adapters.registry import IutSpec

__all__ = ["FALLBACK_WORKERS", "default_workers", "durations_file", "run_iut", "slots_for"]

#: Workers with ``-n auto`` for an IUT whose ``iut.toml`` sets no ``workers`` (measured on a 2-core machine:
#: benchmarks/suite.py, docs/reports.md).
FALLBACK_WORKERS: Final = 8

_INI = "ice_workers"
_SLOTS_INI = "ice_slots"
_WORKERINPUT_KEY = "conformance_durations"
_HINTS = Path(__file__).resolve().parent / "durations.json"


def default_workers(iut: str | None) -> int:
    """The default number of workers for ``iut`` (a registry name, or None for a shim command): its ``iut.toml``'s
    ``workers``, else :data:`FALLBACK_WORKERS`."""
    from conformance.adapters.registry import UnknownIut, get_iut

    try:
        spec = get_iut(iut) if iut else None
    except UnknownIut:
        spec = None
    return spec.workers if spec is not None and spec.workers else FALLBACK_WORKERS


def _cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ice-conformance" / "durations"


def durations_file(label: str) -> Path:
    """Where the last run's case durations against the IUT ``label`` are kept."""
    return _cache_dir() / (re.sub(r"[^A-Za-z0-9_.-]+", "_", label)[:80] + ".json")


def _read(path: Path) -> dict[str, float]:
    with contextlib.suppress(OSError, ValueError):
        data = json.loads(path.read_text())
        if isinstance(data, dict):
            return {str(k): float(v) for k, v in data.items() if isinstance(v, int | float)}
    return {}


def _durations(config: pytest.Config) -> dict[str, float]:
    figures: dict[str, float] = getattr(config, "_conformance_durations", {})
    return figures


def _against_iut(config: pytest.Config) -> bool:
    return bool(value(config, "iut") or value(config, "iut_cmd") or value(config, "conformance_out"))


def run_iut(config: pytest.Config) -> IutSpec | None:
    """The registered IUT a run against an IUT drives (``--iut``, else the default); None for a shim command, an
    unknown name, or a run not against an IUT."""
    from conformance.adapters.registry import DEFAULT_IUT, UnknownIut, get_iut

    if not _against_iut(config) or value(config, "iut_cmd"):
        return None
    try:
        return get_iut(str(value(config, "iut") or DEFAULT_IUT))
    except UnknownIut:
        return None


def _whole(config: pytest.Config, ini: str, what: str) -> int | None:
    """The ini setting ``ini`` as a whole number of ``what`` (1 or more), None when unset."""
    text = str(config.getini(ini) or "").strip()
    if not text:
        return None
    if not text.isdigit() or int(text) < 1:
        raise pytest.UsageError(f"ini setting {ini} must be a whole number of {what} (1 or more), not {text!r}")
    return int(text)


def slots_for(config: pytest.Config) -> int:
    """Cases in flight per xdist worker (conformance/slots.py): ``--ice-slots``, else the ``ice_slots`` ini setting,
    else the run's IUT's ``slots``, else 1."""
    given = config.getoption("ice_slots")
    if given is not None:
        if given < 1:
            raise pytest.UsageError(f"--ice-slots must be a whole number of cases (1 or more), not {given}")
        return int(given)
    spec = run_iut(config)
    return _whole(config, _SLOTS_INI, "cases") or (spec.slots if spec is not None and spec.slots else 1)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("ice-conformance").addoption(
        "--ice-workers-cap",
        "--workers-cap",
        dest="workers_cap",
        type=int,
        default=None,
        help="at most this many workers with -n auto (ice-conformance run passes the number of selected cases; "
        "1 runs serially)",
    )
    parser.addini(_INI, "xdist workers of `-n auto` in a run against an IUT (default: the IUT's measured default)")
    parser.getgroup("ice-conformance").addoption(
        "--ice-slots",
        "--slots",
        dest="ice_slots",
        type=int,
        default=None,
        help="cases in flight per xdist worker, each in a forked child (default: the ice_slots ini setting, else the "
        "IUT's measured default; 1 runs one case at a time)",
    )
    parser.addini(_SLOTS_INI, "cases in flight per xdist worker (default: the IUT's measured default, else 1)")


@pytest.hookimpl(tryfirst=True, optionalhook=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """``-n auto`` in a run against an IUT: the ini setting, else the IUT's measured default."""
    if not _against_iut(config) or os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None  # not a conformance run, or xdist's own variable decides
    spec = run_iut(config)
    workers = _whole(config, _INI, "workers") or default_workers(spec.name if spec is not None else None)
    cap = config.getoption("workers_cap")
    if cap is not None:
        workers = min(workers, max(cap, 1))
    return 0 if workers == 1 else workers  # one worker: serially, in this process


def pytest_configure(config: pytest.Config) -> None:
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        figures = dict(workerinput.get(_WORKERINPUT_KEY) or {})
    elif _against_iut(config):
        figures = {**_read(_HINTS), **_read(durations_file(iut_label(config)))}
    else:
        figures = {}
    config._conformance_durations = figures  # type: ignore[attr-defined]
    if workerinput is None:
        slots_for(config)  # a bad --ice-slots or ice_slots is a usage error here, not in every worker
    if workerinput is None and _against_iut(config) and getattr(config.option, "maxschedchunk", 0) is None:
        config.option.maxschedchunk = 1  # one case at a time per worker, after the first two (see below)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    node.workerinput[_WORKERINPUT_KEY] = _durations(node.config)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under xdist, longest first; serially (and on the controller, which runs no case) the files' order."""
    if getattr(config, "workerinput", None) is None or not _against_iut(config):
        return
    figures = _durations(config)
    items.sort(key=lambda item: figures.get(item.nodeid, float("inf")), reverse=True)  # stable for equal figures
    # xdist's load scheduler (with --maxschedchunk 1, set below) starts each worker on two consecutive cases, then
    # hands one case to whichever worker finishes one: pair the 2N longest so each worker starts with one long and
    # one shorter case (greedy longest-processing-time scheduling).
    # With slots (conformance/slots.py) a worker starts each case as it arrives: plain longest first is greedy.
    workers = int(config.workerinput.get("workercount", 1))  # type: ignore[attr-defined]
    pairs = 0 if slots_for(config) > 1 else min(workers, len(items) // 2)
    head = items[: 2 * pairs]
    items[: 2 * pairs] = [case for k in range(pairs) for case in (head[k], head[2 * pairs - 1 - k])]


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """The controller keeps this run's durations for the next run's order."""
    config = session.config
    collector = config.pluginmanager.get_plugin("ice-conformance-collector")
    if getattr(config, "workerinput", None) is not None or collector is None or not _against_iut(config):
        return
    records: list[dict[str, Any]] = getattr(collector, "records", [])
    if not records:
        return
    path = durations_file(iut_label(config))
    # An ERROR case did not run its course (a spent budget, a hung IUT): its duration says nothing of the next run's.
    ran = {str(r["nodeid"]): float(r["duration"]) for r in records if r.get("verdict") != "ERROR"}
    merged = {**_read(path), **ran}
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        with os.fdopen(fd, "w") as handle:
            json.dump(merged, handle, indent=0, sort_keys=True)
        os.replace(tmp, path)
