"""The pytest plugin of ice-conformance (``pytest11`` entry point ``ice_conformance``).

Theory of operation: options pick the IUT (``--iut NAME`` from the registry, or ``--iut-cmd "CMD ARGS"`` for any stdio
shim). Each worker runs one asyncio loop; the IUT's adapter lives for the worker's session and is restarted when it
died. A case is an ``async def`` test taking the ``harness`` fixture; the plugin runs it on the loop within its time
budget and grades the outcome: findings recorded through ``harness.findings`` carry the catalog level (MUST → FAIL,
SHOULD → NON-STRICT), :class:`UnsupportedFeature` and the adapter's :class:`Unsupported` give UNSUPPORTED, and every
other exception (adapter failures, timeouts with no requirement, budgets) gives ERROR. The harness's passive monitor
(conformance/tester/monitor.py) judges every datagram the IUT sends: each requirement it finds broken becomes one
finding on that row (marked as the monitor's), a case whose every message breaks one MUST is ended at once with that
FAIL, and a case that would end in ERROR (a failed precondition) is a FAIL when the monitor saw the IUT break a MUST.
Verdicts map onto pytest outcomes (PASS passed; FAIL and ERROR failed; NON-STRICT, INFO and UNSUPPORTED skipped
with the verdict first in the reason) and travel in
``user_properties`` to JUnit, the controller's ``summary.json`` and allure.
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

from conformance.adapters.base import Adapter, AdapterError, IutCrashed, IutInfo, Unsupported, iut_death
from conformance.adapters.contract import ContractChecker
from conformance.catalog import SEVERITY, load_catalog
from conformance.hung import HungLog
from conformance.revisions import GRADED_ON_EVIDENCE, RevisionPolicy, implemented
from conformance.tester.capture import Capture
from conformance.tester.harness import Harness
from conformance.tester.monitor import Monitor, SystematicViolation
from conformance.verdict import (
    VERDICT_ORDER,
    CaseEnded,
    Finding,
    Findings,
    HarnessError,
    UnsupportedFeature,
    Verdict,
    Violation,
    verdict_for_level,
)

__all__ = ["IutHandle"]

logger = logging.getLogger(__name__)

DEFAULT_IUT = "aioice"
INIT_TIMEOUT = 15.0


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("ice-conformance", "ICE/STUN/TURN conformance")
    group.addoption("--iut", action="store", default=None, help="IUT name from the registry (default: aioice)")
    group.addoption("--iut-cmd", action="store", default=None, help='command of a stdio shim, e.g. "node shim.js"')
    group.addoption("--case-budget", action="store", type=float, default=None, help="seconds per case (default 60)")
    group.addoption("--slow", action="store_true", default=False, help="also run cases marked slow")
    group.addoption(
        "--iut-budget", action="store", type=float, default=None, help="seconds of case time per IUT (per worker)"
    )
    group.addoption("--run-budget", action="store", type=float, default=None, help="seconds for the whole run")
    group.addoption(
        "--iut-name", action="store", default=None, help="the run's IUT name (default: the registry or shim's name)"
    )
    group.addoption(
        "--req",
        action="append",
        default=[],
        metavar="ID",
        help="select the cases checking this requirement ID (glob patterns allowed; repeatable)",
    )
    group.addoption("--conformance-out", action="store", default=None, help="folder for summary.json and artifacts")
    group.addoption(
        "--require",
        action="append",
        type=int,
        default=[],
        choices=sorted(GRADED_ON_EVIDENCE),
        metavar="REVISION",
        help="the IUT claims RFC 8489 or 8656: grade that revision's rules as written (repeatable; "
        "by default they are UNSUPPORTED unless the IUT shows the mechanism)",
    )
    parser.addini("iut", "default IUT name", default=DEFAULT_IUT)
    parser.addini("case_budget", "default seconds per case", default="60")


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
    if config.getoption("iut") and config.getoption("iut_cmd"):
        raise pytest.UsageError("--iut and --iut-cmd are exclusive: name a registered IUT or give a shim command")
    for option in ("case_budget", "iut_budget", "run_budget"):
        value = config.getoption(option)
        if value is not None and value <= 0:
            raise pytest.UsageError(f"--{option.replace('_', '-')} must be positive, got {value}")
    config._conformance_started = time.monotonic()  # type: ignore[attr-defined]
    name = config.getoption("iut")
    if name:
        from conformance.adapters.registry import UnknownIut, get_iut

        try:
            get_iut(name)
        except UnknownIut as exc:
            raise pytest.UsageError(str(exc)) from exc
    config.pluginmanager.register(_Collector(config), "ice-conformance-collector")
    _open_hung_log(config)


_HUNG_KEY = "conformance_hung_log"


def _open_hung_log(config: pytest.Config) -> None:
    """The run's shared :class:`HungLog`: made by the controller, its path handed to every xdist worker."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        path = workerinput.get(_HUNG_KEY)
        config._conformance_hung = HungLog(Path(path)) if path else None  # type: ignore[attr-defined]
        return
    folder = Path(tempfile.mkdtemp(prefix="ice-conformance-"))
    config._conformance_hung_dir = folder  # type: ignore[attr-defined]
    config._conformance_hung = HungLog(folder / "hung.log")  # type: ignore[attr-defined]
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(_HungLogToWorkers(folder / "hung.log"), "ice-conformance-hung")


class _HungLogToWorkers:
    def __init__(self, path: Path) -> None:
        self.path = path

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput[_HUNG_KEY] = str(self.path)


def pytest_unconfigure(config: pytest.Config) -> None:
    folder = getattr(config, "_conformance_hung_dir", None)
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)


def _hung_log(config: pytest.Config) -> HungLog | None:
    log: HungLog | None = getattr(config, "_conformance_hung", None)
    return log


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
    patterns: list[str] = config.getoption("req") or []
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
    if config.getoption("slow"):
        return
    slow = [item for item in items if item.get_closest_marker("slow") is not None]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if item.get_closest_marker("slow") is None]


def pytest_report_header(config: pytest.Config) -> str:
    return f"ice-conformance: IUT {_iut_label(config)}"


def _iut_label(config: pytest.Config) -> str:
    if config.getoption("iut_name"):
        return str(config.getoption("iut_name"))
    cmd = config.getoption("iut_cmd")
    return f"command {cmd!r}" if cmd else str(config.getoption("iut") or config.getini("iut"))


# -- the IUT for the worker's session ----------------------------------------------------------------------------


class IutHandle:
    """The worker's adapter: started on first use, restarted after it died, shut down at the end."""

    def __init__(self, config: pytest.Config, loop: asyncio.AbstractEventLoop) -> None:
        self.config = config
        self.loop = loop
        self.adapter: Adapter | None = None
        self.info: IutInfo | None = None
        self.failure: str | None = None
        #: Seconds of case time spent on this IUT by this worker (for --iut-budget).
        self.spent = 0.0

    def _make(self) -> Adapter:
        from conformance.adapters.registry import make_adapter

        cmd = self.config.getoption("iut_cmd")
        if cmd:
            return make_adapter(cmd=cmd)
        return make_adapter(str(self.config.getoption("iut") or self.config.getini("iut")))

    def _dead(self) -> bool:
        adapter = self.adapter
        returncode = getattr(adapter, "returncode", None)
        broken = getattr(adapter, "broken", None)
        return returncode is not None or bool(broken)

    def get(self) -> tuple[Adapter, IutInfo]:
        """A live, initialized adapter, or HarnessError naming why there is none."""
        self._check_budgets()
        if self.adapter is not None and self._dead():
            logger.warning("IUT adapter died; starting a new one")
            self.shutdown()
        if self.failure is not None:
            raise HarnessError(f"IUT {_iut_label(self.config)} is unusable: {self.failure}")
        if self.adapter is None:
            try:
                self.adapter = self._make()
                deadline = max(INIT_TIMEOUT, float(getattr(self.adapter, "start_timeout", 0.0)))  # browsers: 60 s
                self.info = self.loop.run_until_complete(asyncio.wait_for(self.adapter.initialize(), deadline))
            except (AdapterError, OSError, TimeoutError, ValueError) as exc:
                diagnostics = self.adapter.diagnostics() if self.adapter is not None else ""
                self.shutdown()
                reason = str(exc) or type(exc).__name__
                # A shim that cannot initialize will not on the next case either: fail the rest fast (ERROR).
                self.failure = f"initialize failed: {reason}"
                tail = "\n".join(diagnostics.splitlines()[-20:])
                raise HarnessError(f"IUT {_iut_label(self.config)} failed to initialize: {reason}\n{tail}") from exc
        assert self.info is not None
        return self.adapter, self.info

    def _check_budgets(self) -> None:
        run_budget = self.config.getoption("run_budget")
        started: float = getattr(self.config, "_conformance_started", time.monotonic())
        if run_budget is not None and time.monotonic() - started > run_budget:
            raise HarnessError(f"the run budget of {run_budget:g} s is spent; case not started")
        iut_budget = self.config.getoption("iut_budget")
        if iut_budget is not None and self.spent > iut_budget:
            raise HarnessError(f"the IUT budget of {iut_budget:g} s is spent ({self.spent:.1f} s); case not started")

    def shutdown(self) -> None:
        """Stop the adapter (never raises)."""
        adapter, self.adapter, self.info = self.adapter, None, None
        if adapter is not None:
            try:
                self.loop.run_until_complete(asyncio.wait_for(adapter.shutdown(), 10))
            except Exception as exc:
                logger.info("IUT shutdown: %s", exc)


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
    request.node._conformance_findings = f
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
    _allure_labels(findings)
    adapter, info = iut_handle.get()
    _allure_parameter("IUT", str(request.config.getoption("iut_name") or request.config.getoption("iut") or info.name))
    node._conformance_iut = info
    marker = node.get_closest_marker("needs")
    if marker is not None:
        missing = [c for c in marker.args if c not in info.capabilities]
        if missing:
            raise UnsupportedFeature(f"{info.name} does not declare {', '.join(missing)}")
    hung = _hung_log(request.config)
    hung_message = hung.verdict() if hung is not None else None
    if hung_message is not None:
        raise HarnessError(hung_message)
    capture = Capture()
    h = Harness(adapter, info, findings, capture, "127.0.0.1")
    claimed = frozenset(request.config.getoption("require") or ())
    h.required_revisions = claimed | implemented(request.config.getoption("iut"))
    findings.gate = RevisionPolicy(h.required_revisions, lambda: capture.datagrams).gap
    node._conformance_harness = h
    # Where this case's share of the shim's stderr and of its contract violations starts.
    mark = getattr(adapter, "stderr_mark", None)
    node._conformance_stderr_mark = mark() if callable(mark) else None
    node._conformance_violations = len(_violations(adapter))
    yield h
    try:
        conformance_loop.run_until_complete(asyncio.wait_for(h.aclose(), 15))
    except Exception as exc:
        logger.warning("clean-up of %s: %s", node.nodeid, exc)
    _archive(node, h)


# -- running async cases ---------------------------------------------------------------------------------------


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    loop: asyncio.AbstractEventLoop = pyfuncitem._request.getfixturevalue("conformance_loop")
    marker = pyfuncitem.get_closest_marker("budget")
    budget = float(
        marker.args[0]
        if marker
        else pyfuncitem.config.getoption("case_budget") or float(pyfuncitem.config.getini("case_budget"))
    )
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
    h: Harness | None = getattr(item, "_conformance_harness", None)
    if h is None or findings is None or getattr(item, "_conformance_monitor_merged", False):
        return
    item._conformance_monitor_merged = True  # type: ignore[attr-defined]
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


# -- grading -------------------------------------------------------------------------------------------------------


#: The harness's own row for an IUT process killed by a signal (suites/catalog.toml, group "Robustness").
CRASH_REQUIREMENT = "ROB-CRASH-01"


def grade_crash(findings: Findings | None, death: IutCrashed, detail: str = "") -> tuple[Verdict, str]:
    """FAIL under ROB-CRASH-01 for an IUT killed by a fault signal, whatever else the case saw.

    docs/adapter-contract.md, "Crashes", says which deaths count.
    """
    catalog = findings.catalog if findings is not None else load_catalog()
    level = catalog.level_of(CRASH_REQUIREMENT)
    own = [f for f in findings.items if f.requirement == CRASH_REQUIREMENT] if findings is not None else []
    finding = (
        own[0]
        if own  # the case attributed the crash itself (suites/robustness/), naming the input
        else Finding(CRASH_REQUIREMENT, None, level, Verdict.FAIL, f"{death}; an agent must survive any datagram")
    )
    if findings is not None and finding not in findings.items:
        findings.items.append(finding)
    lines = [finding.describe()] + [f.describe() for f in (findings.items if findings else []) if f != finding]
    lines += findings.notes if findings is not None else []
    if detail:
        lines.append(f"the case itself ended with: {detail}")
    return Verdict.FAIL, "\n".join(lines)


def grade(
    findings: Findings | None,
    excinfo: pytest.ExceptionInfo[BaseException] | None,
    death: IutCrashed | None = None,
) -> tuple[Verdict, str]:
    """The verdict and its message from a case's findings, the exception that ended it (if any), and how the IUT
    process died during the case (if it did): a death from a signal is the IUT's FAIL, never ERROR."""
    base = findings.worst() if findings is not None else Verdict.PASS
    message = findings.summary() if findings is not None else ""
    exc = excinfo.value if excinfo is not None else None
    if isinstance(exc, IutCrashed):
        death = exc
    if death is not None and death.is_crash:
        quiet = exc is None or exc is death or isinstance(exc, Violation)  # a Violation is already a finding
        return grade_crash(findings, death, "" if quiet else f"{type(exc).__name__}: {exc}")
    if excinfo is None:
        return base, message
    exc = excinfo.value
    if isinstance(exc, Violation):
        return Verdict.FAIL, findings.summary() if findings is not None else str(exc)
    if isinstance(exc, SystematicViolation):
        return Verdict.FAIL, (message + "\n" if message else "") + f"case ended early by the monitor: {exc}"
    if isinstance(exc, CaseEnded):
        return base, message
    if isinstance(exc, UnsupportedFeature | Unsupported):
        return Verdict.UNSUPPORTED, str(exc)
    if isinstance(exc, pytest.skip.Exception):
        text = str(exc.msg) if hasattr(exc, "msg") else str(exc)
        return Verdict.UNSUPPORTED, text
    kind = type(exc).__name__
    detail = f"{kind}: {exc}" if not isinstance(exc, HarnessError | AdapterError) else str(exc)
    if base is Verdict.FAIL and findings is not None and any(f.source == "monitor" for f in findings.items):
        # The IUT broke a MUST on the way to what the case waited for (a relay, a connection, a check): that is
        # the verdict, the failed precondition its consequence.
        return Verdict.FAIL, f"{message}\n(then: {detail})"
    return Verdict.ERROR, (message + "\n" if message else "") + detail


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    findings: Findings | None = getattr(item, "_conformance_findings", None)
    marker = item.get_closest_marker("requirement")
    if marker is None:
        return  # a self-test of the harness, not a conformance case
    if report.when == "teardown":
        # The artifacts are written at teardown, after the call report: send them on the teardown report.
        artifacts = getattr(item, "_conformance_artifacts", None)
        if artifacts:
            report.user_properties.append(("artifacts", json.dumps(artifacts)))
        return
    if report.when == "setup" and report.passed:
        return
    h: Harness | None = getattr(item, "_conformance_harness", None)
    death = iut_death(h.iut) if h is not None else None
    own = grade(_own(findings), call.excinfo, death)[0] if findings is not None else None
    if report.when == "call":
        _merge_monitor(item, findings)
    verdict, message = grade(findings, call.excinfo, death)
    if own is None or (call.excinfo is not None and isinstance(call.excinfo.value, SystematicViolation)):
        own = verdict  # cut short by the monitor: what the case would have found is unknown
    broken = _violations(h.iut)[getattr(item, "_conformance_violations", 0) :] if h is not None else []
    if broken and verdict is not Verdict.ERROR and not (death is not None and death.is_crash):
        # The shim reported something the contract forbids: the adapter's fault, not the IUT's (a crash by a
        # fault signal stays the IUT's FAIL: docs/adapter-contract.md, "Crashes").
        shim = getattr(h.iut, "name", "the shim") if h is not None else "the shim"
        verdict, message = Verdict.ERROR, f"{shim}: adapter contract violation: " + "; ".join(broken)
        own = verdict
    _annotate(item, report, verdict, message, own)
    if verdict is Verdict.PASS:
        report.outcome = "passed"
        report.longrepr = None
    elif verdict in (Verdict.FAIL, Verdict.ERROR):
        report.outcome = "failed"
        report.longrepr = f"{verdict.value}: {message}"
    else:
        report.outcome = "skipped"
        report.longrepr = (str(item.path), item.location[1] or 0, f"{verdict.value}: {message}")


def _own(findings: Findings) -> Findings:
    """The findings of the case's own checks (without the monitor's)."""
    items = [f for f in findings.items if f.source != "monitor"]
    return Findings(requirements=findings.requirements, catalog=findings.catalog, items=items, notes=findings.notes)


def _annotate(item: pytest.Item, report: pytest.TestReport, verdict: Verdict, message: str, own: Verdict) -> None:
    marker = item.get_closest_marker("requirement")
    ids = list(marker.args) if marker else []
    catalog = load_catalog()
    levels = [catalog[r].level for r in ids if r in catalog]
    level = min(levels, key=["MUST", "SHOULD", "MAY", "INFO"].index) if levels else ""
    info: IutInfo | None = getattr(item, "_conformance_iut", None)
    artifacts = getattr(item, "_conformance_artifacts", {})
    h: Harness | None = getattr(item, "_conformance_harness", None)
    findings: Findings | None = getattr(item, "_conformance_findings", None)
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
            item.config.getoption("iut_name")
            or item.config.getoption("iut")
            or (info.name if info else _iut_label(item.config))
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
    letter = {"PASS": ".", "FAIL": "F", "ERROR": "E", "NON-STRICT": "N", "INFO": "i", "UNSUPPORTED": "u"}[verdict]
    category = {"PASS": "passed", "FAIL": "failed", "ERROR": "error"}.get(verdict, verdict.lower())
    return category, letter, verdict


# -- allure and artifacts ----------------------------------------------------------------------------------------


def _allure_parameter(name: str, value: str) -> None:
    """A parameter in the allure test identity, so runs of several IUTs merge without collapsing."""
    try:
        import allure
    except ImportError:
        return
    dynamic: Any = allure.dynamic
    dynamic.parameter(name, value)


def _allure_labels(findings: Findings) -> None:
    try:
        import allure
    except ImportError:
        return
    dynamic: Any = allure.dynamic
    catalog = findings.catalog
    levels = []
    for rid in findings.requirements:
        req = catalog[rid]
        dynamic.epic(req.rfc_name)
        dynamic.feature(f"{req.rfc_name} §{req.section}" if req.section else req.rfc_name)
        dynamic.story(rid)
        if req.url:
            dynamic.link(req.url, name=f"{req.rfc_name} §{req.section}")
        levels.append(req.level)
    if levels:
        strongest = min(levels, key=["MUST", "SHOULD", "MAY", "INFO"].index)
        dynamic.severity(getattr(allure.severity_level, SEVERITY[strongest].upper()))


def _violations(adapter: Any) -> list[str]:
    """The contract violations a stdio adapter recorded so far (none for in-process adapters)."""
    checker = getattr(adapter, "contract", None)
    return list(getattr(checker, "violations", []))


def _safe(nodeid: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid).strip("_")[:150]


def _archive(node: Any, h: Harness) -> None:
    """Write the case's pcap, ladder diagram and IUT diagnostics; attach them to allure."""
    from conformance.tester.capture import write_pcap
    from conformance.tester.ladder import render_ladder

    out = node.config.getoption("conformance_out")
    base = Path(out) / "artifacts" / _safe(node.nodeid) if out else None
    files: dict[str, str] = {}
    diagnostics = ""
    try:
        mark = getattr(node, "_conformance_stderr_mark", None)
        # Only what the shim wrote during this case (stdio shims keep a byte offset per case).
        diagnostics = h.iut.diagnostics(since=mark) if mark is not None else h.iut.diagnostics()  # type: ignore[call-arg]
    except Exception as exc:
        diagnostics = f"(no diagnostics: {exc})"
    svg = render_ladder(h.capture, title=node.nodeid) if len(h.capture) else ""
    if base is not None:
        base.mkdir(parents=True, exist_ok=True)
        if len(h.capture):
            write_pcap(h.capture, base / "capture.pcap")
            (base / "ladder.svg").write_text(svg)
            files["pcap"] = str((base / "capture.pcap").relative_to(out))
            files["ladder"] = str((base / "ladder.svg").relative_to(out))
        (base / "iut.log").write_text(diagnostics)
        files["stderr"] = str((base / "iut.log").relative_to(out))
    node._conformance_artifacts = files
    try:
        import allure

        attach: Any = allure.attach
        if svg:
            attach(svg, name="ladder diagram", attachment_type=allure.attachment_type.SVG)
        if base is not None and "pcap" in files:
            attach.file(str(base / "capture.pcap"), name="capture.pcap", extension="pcap")
        if diagnostics:
            attach(diagnostics, name="IUT stderr", attachment_type=allure.attachment_type.TEXT)
    except Exception as exc:
        logger.debug("allure attachments: %s", exc)


# -- the controller's summary ----------------------------------------------------------------------------------------


class _Collector:
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
                "case_id": report.nodeid.split("::", 1)[-1],
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
        out = self.config.getoption("conformance_out")
        if not out:
            return
        Path(out).mkdir(parents=True, exist_ok=True)
        counts = {v.value: sum(r["verdict"] == v.value for r in self.records) for v in VERDICT_ORDER}
        summary = {
            "required_revisions": sorted(
                set(self.config.getoption("require") or ()) | implemented(self.config.getoption("iut"))
            ),
            "revision_gaps": sum(bool(r.get("revision_gap")) for r in self.records),
            "harness_version": _harness_version(),
            "started": self.started,
            "finished": time.time(),
            "iut": _iut_label(self.config),
            "counts": counts,
            "records": sorted(self.records, key=lambda r: r["nodeid"]),
        }
        (Path(out) / "summary.json").write_text(json.dumps(summary, indent=2))


def _harness_version() -> str:
    from conformance import __version__

    return __version__
