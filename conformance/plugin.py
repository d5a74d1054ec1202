"""The pytest plugin of ice-conformance (``pytest11`` entry point ``ice_conformance``).

Theory of operation: options (conformance/options.py) pick the IUT (``--ice-iut NAME`` from the registry, or
``--ice-iut-cmd "CMD ARGS"`` for any stdio shim). Each worker runs one asyncio loop; the IUT's adapter lives for the
worker's session and is restarted when it died. A case is an ``async def`` test taking the ``harness`` fixture; the
plugin runs it on the loop within its time budget and grades the outcome: findings recorded through ``harness.findings``
carry the catalog level (MUST → FAIL, SHOULD → NON-STRICT), :class:`UnsupportedFeature` and the adapter's
:class:`Unsupported` give UNSUPPORTED, and every other exception (adapter failures, timeouts with no requirement,
budgets) gives ERROR. The harness's passive monitor (conformance/tester/monitor.py) judges every datagram the IUT sends:
each requirement it finds broken becomes one finding on that row (marked as the monitor's), a case whose every message
breaks one MUST is ended at once with that FAIL, and a case that would end in ERROR (a failed precondition) is a FAIL
when the monitor saw the IUT break a MUST. Verdicts map onto pytest outcomes (PASS passed; FAIL and ERROR failed;
NON-STRICT, INFO and UNSUPPORTED skipped with the verdict first in the reason) and travel in ``user_properties`` to
JUnit, the controller's ``summary.json`` (conformance/report/summary.py) and allure. The IUT's lifetime is
conformance/iut_handle.py, the grading conformance/verdict.py, the files a case leaves conformance/artifacts.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from conformance.adapters.base import AdapterError, IutInfo, iut_death
from conformance.adapters.contract import ContractChecker
from conformance.artifacts import allure_labels, allure_parameter, archive
from conformance.catalog import load_catalog
from conformance.hung import HungLog
from conformance.iut_handle import IutHandle
from conformance.options import HUNG_DIR, HUNG_LOG, STARTED, add_options, iut_label, value
from conformance.report.summary import SummaryCollector
from conformance.revisions import RevisionPolicy, implemented
from conformance.tester.capture import Capture
from conformance.tester.harness import Harness
from conformance.tester.monitor import Monitor, SystematicViolation
from conformance.verdict import (
    LETTERS,
    Finding,
    Findings,
    HarnessError,
    UnsupportedFeature,
    Verdict,
    grade,
    own_findings,
    verdict_for_level,
)

__all__ = [
    "ARTIFACTS",
    "CONTRACT_MARK",
    "FINDINGS",
    "HARNESS",
    "IUT_INFO",
    "MONITOR_MERGED",
    "STDERR_MARK",
    "annotate",
]

logger = logging.getLogger(__name__)

#: What the plugin keeps on each case's item (pytest's stash).
FINDINGS = pytest.StashKey[Findings]()
IUT_INFO = pytest.StashKey[IutInfo]()
HARNESS = pytest.StashKey[Harness]()
STDERR_MARK = pytest.StashKey[Any]()
CONTRACT_MARK = pytest.StashKey[int]()
MONITOR_MERGED = pytest.StashKey[bool]()
ARTIFACTS = pytest.StashKey[dict[str, str]]()


def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    from conformance import schedule, slots

    add_options(parser)
    pluginmanager.register(schedule, "ice-conformance-schedule")  # -n auto's worker count, longest cases first
    pluginmanager.register(slots, "ice-conformance-slots")  # several cases at once per worker, each in a child


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "requirement(*ids): catalog requirement IDs the case checks")
    config.addinivalue_line("markers", "needs(*capabilities): IUT capabilities the case needs (else UNSUPPORTED)")
    config.addinivalue_line("markers", "budget(seconds): time budget of the case")
    config.addinivalue_line("markers", "slow: needs a long protocol timer; runs only with --slow")
    config.addinivalue_line("markers", "node: needs Node.js")
    config.addinivalue_line(
        "markers",
        "selftest(fault=, variant=, verdict=, requirement=, message=, params=, require=, revision_gap=, record=): "
        "how the reference IUTs must grade the case, run by the harness's self-tests (tests/selftest.py)",
    )
    if value(config, "iut") and value(config, "iut_cmd"):
        raise pytest.UsageError("--iut and --iut-cmd are exclusive: name a registered IUT or give a shim command")
    for option in ("case_budget", "iut_budget", "run_budget"):
        given = value(config, option)
        if given is not None and given <= 0:
            raise pytest.UsageError(f"--{option.replace('_', '-')} must be positive, got {given}")
    config.stash[STARTED] = time.monotonic()
    name = value(config, "iut")
    if name:
        from conformance.adapters.registry import UnknownIut, get_iut

        try:
            get_iut(name)
        except UnknownIut as exc:
            raise pytest.UsageError(str(exc)) from exc
    config.pluginmanager.register(SummaryCollector(config), "ice-conformance-collector")
    _open_hung_log(config)


_HUNG_KEY = "conformance_hung_log"


def _open_hung_log(config: pytest.Config) -> None:
    """The run's shared :class:`HungLog`: made by the controller, its path handed to every xdist worker."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        path = workerinput.get(_HUNG_KEY)
        config.stash[HUNG_LOG] = HungLog(Path(path)) if path else None
        return
    folder = Path(tempfile.mkdtemp(prefix="ice-conformance-"))
    config.stash[HUNG_DIR] = folder
    config.stash[HUNG_LOG] = HungLog(folder / "hung.log")
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(_HungLogToWorkers(folder / "hung.log"), "ice-conformance-hung")


class _HungLogToWorkers:
    def __init__(self, path: Path) -> None:
        self.path = path

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput[_HUNG_KEY] = str(self.path)


def pytest_unconfigure(config: pytest.Config) -> None:
    folder = config.stash.get(HUNG_DIR, None)
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)


def _hung_log(config: pytest.Config) -> HungLog | None:
    return config.stash.get(HUNG_LOG, None)


def _stalled_in(exc: BaseException | None) -> str | None:
    """The adapter method a case's exception (or one it was raised from) stalled in: a timeout or a dead shim."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        method = getattr(exc, "stalled_in", None)
        if isinstance(exc, AdapterError) and method:
            return str(method)
        exc = exc.__cause__ or exc.__context__
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    patterns: list[str] = value(config, "req") or []
    if patterns:
        from fnmatch import fnmatchcase

        def wanted(item: pytest.Item) -> bool:
            marker = item.get_closest_marker("requirement")
            ids = marker.args if marker else ()
            return any(fnmatchcase(str(rid), p) for rid in ids for p in patterns)

        other = [item for item in items if not wanted(item)]
        if other:
            config.hook.pytest_deselected(items=other)
            items[:] = [item for item in items if wanted(item)]
    if value(config, "slow"):
        return
    slow = [item for item in items if item.get_closest_marker("slow") is not None]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if item.get_closest_marker("slow") is None]


def pytest_report_header(config: pytest.Config) -> str:
    return f"ice-conformance: IUT {iut_label(config)}"


# -- fixtures ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def conformance_loop() -> Iterator[asyncio.AbstractEventLoop]:
    """The worker's event loop: adapters and endpoints of every case live on it."""
    loop = asyncio.new_event_loop()
    yield loop
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.close()


@pytest.fixture(scope="session")
def iut_handle(pytestconfig: pytest.Config, conformance_loop: asyncio.AbstractEventLoop) -> Iterator[IutHandle]:
    """The worker's IUT adapter."""
    handle = IutHandle(pytestconfig, conformance_loop)
    yield handle
    handle.shutdown()


def _worker_index(config: pytest.Config) -> int:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    match = re.search(r"(\d+)$", worker)
    return int(match.group(1)) if match else 0


@pytest.fixture
def findings(request: pytest.FixtureRequest) -> Findings:
    """The case's findings, bound to the requirement IDs of its marker."""
    marker = request.node.get_closest_marker("requirement")
    ids = tuple(marker.args) if marker else ()
    catalog = load_catalog()
    for rid in ids:
        if rid not in catalog:
            raise pytest.UsageError(f"{request.node.nodeid}: unknown requirement {rid!r}")
    f = Findings(requirements=ids, catalog=catalog)
    request.node.stash[FINDINGS] = f
    return f


@pytest.fixture
def harness(
    request: pytest.FixtureRequest,
    iut_handle: IutHandle,
    findings: Findings,
    conformance_loop: asyncio.AbstractEventLoop,
) -> Iterator[Harness]:
    """The case's harness: IUT, capture, endpoints, sessions; closed and archived after the case."""
    node = request.node
    allure_labels(findings)
    hung = _hung_log(request.config)
    hung_message = hung.verdict() if hung is not None else None
    if hung_message is not None:
        raise HarnessError(hung_message)  # before starting a shim: once hung, no case needs one
    adapter, info = iut_handle.get()
    allure_parameter("IUT", str(value(request.config, "iut_name") or value(request.config, "iut") or info.name))
    node.stash[IUT_INFO] = info
    marker = node.get_closest_marker("needs")
    if marker is not None:
        missing = [c for c in marker.args if c not in info.capabilities]
        if missing:
            raise UnsupportedFeature(f"{info.name} does not declare {', '.join(missing)}")
    capture = Capture()
    h = Harness(adapter, info, findings, capture, "127.0.0.1")
    claimed = frozenset(value(request.config, "require") or ())
    h.required_revisions = claimed | implemented(value(request.config, "iut"))
    findings.gate = RevisionPolicy(h.required_revisions, lambda: capture.datagrams).gap
    node.stash[HARNESS] = h
    # Where this case's share of the shim's stderr and of its contract violations starts.
    mark = getattr(adapter, "stderr_mark", None)
    node.stash[STDERR_MARK] = mark() if callable(mark) else None
    node.stash[CONTRACT_MARK] = len(_violations(adapter))
    yield h
    try:
        conformance_loop.run_until_complete(asyncio.wait_for(h.aclose(), 15))
    except Exception as exc:
        logger.warning("clean-up of %s: %s", node.nodeid, exc)
    node.stash[ARTIFACTS] = archive(node.nodeid, value(request.config, "conformance_out"), h, node.stash[STDERR_MARK])


# -- running async cases ---------------------------------------------------------------------------------------


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    loop: asyncio.AbstractEventLoop = pyfuncitem._request.getfixturevalue("conformance_loop")
    marker = pyfuncitem.get_closest_marker("budget")
    budget = float(marker.args[0] if marker else value(pyfuncitem.config, "case_budget"))
    names = pyfuncitem._fixtureinfo.argnames
    kwargs = {name: pyfuncitem.funcargs[name] for name in names}
    handle: IutHandle | None = None
    case = pyfuncitem.obj(**kwargs)
    h = pyfuncitem.funcargs.get("harness")
    if isinstance(h, Harness):
        handle = pyfuncitem._request.getfixturevalue("iut_handle")
        case = _monitored(h.monitor, case)
    checker = getattr(handle.adapter, "contract", None) if handle is not None else None
    if isinstance(checker, ContractChecker):  # a shim breaking the contract ends the case at once (ERROR)
        case = checker.guard(case, str(getattr(handle.adapter if handle else None, "name", "the shim")))
    start = time.monotonic()
    stalled: str | None = None
    try:
        loop.run_until_complete(asyncio.wait_for(case, budget))
    except BaseException as exc:
        stalled = _stalled_in(exc)
        if isinstance(exc, TimeoutError) and time.monotonic() - start >= budget * 0.99:
            raise HarnessError(f"case exceeded its budget of {budget:g} s") from exc
        raise
    finally:
        if handle is not None:
            handle.spent += time.monotonic() - start
            hung = _hung_log(pyfuncitem.config)
            if hung is not None:
                hung.record(pyfuncitem.nodeid, stalled)
    return True


async def _monitored(monitor: Monitor, case: Any) -> Any:
    """Run the case until it ends or the monitor finds every message the IUT sent breaking one MUST (fail fast)."""
    loop = asyncio.get_running_loop()
    stopped = asyncio.Event()
    monitor.on_systematic(lambda: loop.call_soon_threadsafe(stopped.set))
    task = asyncio.ensure_future(case)
    stop = asyncio.ensure_future(stopped.wait())
    try:
        await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
    if not task.cancelled() or monitor.systematic is None:
        return task.result()
    raise SystematicViolation(monitor.systematic, monitor.counts[monitor.systematic.requirement])


def _merge_monitor(item: pytest.Item, findings: Findings | None) -> None:
    """The monitor's findings become findings of the case, once per requirement (and clause), marked as its."""
    h = item.stash.get(HARNESS, None)
    if h is None or findings is None or item.stash.get(MONITOR_MERGED, False):
        return
    item.stash[MONITOR_MERGED] = True
    h.monitor.finish()
    for f in h.monitor.findings:
        level = findings.catalog.level_of(f.requirement, f.clause)
        repeats = h.monitor.counts[f.requirement]
        more = f" [{repeats} violations in the case]" if repeats > 1 else ""
        if f.info:
            # Not graded here (an RFC 8489-only rule the run does not require, or an unsure one): a note with its
            # evidence, which leaves the case's verdict alone; the row's own case grades it.
            ref = f.requirement + (f"/{f.clause}" if f.clause else "")
            findings.info(f"{ref} ({level} as INFO, monitor, not graded): {f.message}{more}")
            continue
        findings.add(
            Finding(f.requirement, f.clause, level, verdict_for_level(level), f.message + more, source="monitor")
        )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    findings = item.stash.get(FINDINGS, None)
    marker = item.get_closest_marker("requirement")
    if marker is None:
        return  # a self-test of the harness, not a conformance case
    if report.when == "teardown":
        # The artifacts are written at teardown, after the call report: send them on the teardown report.
        artifacts = item.stash.get(ARTIFACTS, None)
        if artifacts:
            report.user_properties.append(("artifacts", json.dumps(artifacts)))
        return
    if report.when == "setup" and report.passed:
        return
    h = item.stash.get(HARNESS, None)
    death = iut_death(h.iut) if h is not None else None
    own = grade(own_findings(findings), call.excinfo, death)[0] if findings is not None else None
    if report.when == "call":
        _merge_monitor(item, findings)
    verdict, message = grade(findings, call.excinfo, death)
    if own is None or (call.excinfo is not None and isinstance(call.excinfo.value, SystematicViolation)):
        own = verdict  # cut short by the monitor: what the case would have found is unknown
    broken = _violations(h.iut)[item.stash.get(CONTRACT_MARK, 0) :] if h is not None else []
    if broken and verdict is not Verdict.ERROR and not (death is not None and death.is_crash):
        # The shim reported something the contract forbids: the adapter's fault, not the IUT's (a crash by a
        # fault signal stays the IUT's FAIL: docs/adapter-contract.md, "Crashes").
        shim = getattr(h.iut, "name", "the shim") if h is not None else "the shim"
        verdict, message = Verdict.ERROR, f"{shim}: adapter contract violation: " + "; ".join(broken)
        own = verdict
    annotate(item, report, verdict, message, own)
    if verdict is Verdict.PASS:
        report.outcome = "passed"
        report.longrepr = None
    elif verdict in (Verdict.FAIL, Verdict.ERROR):
        report.outcome = "failed"
        report.longrepr = f"{verdict.value}: {message}"
    else:
        report.outcome = "skipped"
        report.longrepr = (str(item.path), item.location[1] or 0, f"{verdict.value}: {message}")


def annotate(item: pytest.Item, report: pytest.TestReport, verdict: Verdict, message: str, own: Verdict) -> None:
    """Put the verdict and the case's record (what summary.json, JUnit and the reports read) on ``report``."""
    marker = item.get_closest_marker("requirement")
    ids = list(marker.args) if marker else []
    catalog = load_catalog()
    levels = [catalog[r].level for r in ids if r in catalog]
    level = min(levels, key=["MUST", "SHOULD", "MAY", "INFO"].index) if levels else ""
    info = item.stash.get(IUT_INFO, None)
    artifacts = item.stash.get(ARTIFACTS, {})
    h = item.stash.get(HARNESS, None)
    findings = item.stash.get(FINDINGS, None)
    gap = verdict is Verdict.UNSUPPORTED and findings is not None and findings.revision_gap
    procedure = [r for r in ids if r in catalog and catalog[r].basis == "procedure"]
    props = {
        "verdict": verdict.value,
        # The verdict of the case's own checks, without the monitor's findings (baselines may accept those).
        "case_verdict": own.value,
        "requirements": " ".join(ids),
        "level": level,
        "message": message,
        # The registry name when --iut is given (what baselines and matrices key on), else the shim's own name.
        "iut": str(
            value(item.config, "iut_name")
            or value(item.config, "iut")
            or (info.name if info else iut_label(item.config))
        ),
        "iut_reported": info.name if info else "",
        "iut_version": info.version if info else "",
        "artifacts": json.dumps(artifacts),
        "waited": f"{h.waited:.3f}" if h is not None else "0",
        # Contract 1.2: which signalled options reached the IUT (docs/verdict-trust.md, "Options delivery").
        "options": json.dumps(h.options_delivery() if h is not None else []),
        # "Does not implement the newer revision" (UNSUPPORTED), kept apart from violations of what it implements.
        "revision_gap": "1" if gap else "",
        "procedure": " ".join(procedure),
        "required_revisions": " ".join(str(r) for r in sorted(h.required_revisions)) if h is not None else "",
        "monitor": json.dumps([f.as_dict() for f in h.monitor.findings] if h is not None else []),
    }
    report.user_properties = [p for p in report.user_properties if p[0] not in props]
    report.user_properties.extend(props.items())
    # pytest's JUnit writer takes properties from the item (it writes them with the teardown report).
    item.user_properties = [p for p in item.user_properties if p[0] not in props]
    item.user_properties.extend((k, v) for k, v in props.items() if k not in ("artifacts", "message", "monitor"))


@pytest.hookimpl(tryfirst=True)
def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config) -> tuple[str, str, str] | None:
    props = {str(k): str(v) for k, v in getattr(report, "user_properties", ())}
    verdict = props.get("verdict")
    if verdict is None or report.when == "teardown":
        return None
    letter = LETTERS[verdict]
    category = {"PASS": "passed", "FAIL": "failed", "ERROR": "error"}.get(verdict, verdict.lower())
    return category, letter, verdict


def _violations(adapter: Any) -> list[str]:
    """The contract violations a stdio adapter recorded so far (none for in-process adapters)."""
    checker = getattr(adapter, "contract", None)
    return list(getattr(checker, "violations", []))
