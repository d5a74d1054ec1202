"""Several cases at once in one xdist worker, each in a child process forked from the worker.

Theory of operation: a conformance case mostly waits (on the IUT's timers, on silence windows), so a run needs many
cases in flight, but every xdist worker costs about a second of CPU to start and collect its cases. A fork of a
worker that has collected costs milliseconds. With ``slots`` K above 1, a worker hands each case xdist gives it to a
forked child and takes the next case while up to K earlier ones still run:

- the child runs the case's whole pytest protocol (setup, call, teardown), with its own event loop and its own IUT
  adapter, both set up and torn down in the child;
- what the worker would have sent the controller for the case (logstart, the reports, warnings, logfinish) the child
  records instead and hands back through a pipe; the worker forwards it unchanged, so the controller, its reports,
  ``summary.json``, JUnit and the baselines see what they see without slots;
- a child that ends without handing anything back (killed by a signal, or past its deadline) gives an ERROR report
  naming why: the harness lost the case, the IUT is not judged.

K comes from ``conformance.schedule.slots_for``: ``--ice-slots``, else the ``ice_slots`` ini setting, else, in a run
against an IUT, its ``slots`` in its ``iut.toml`` (``docs/adapter-contract.md`` §12), else 1.
Only IUTs whose adapter is cheap to start per case should declare slots: a shim process per case costs its
start-up, and each child starts its own. Serially (``-n 0``) there are no slots: the serial run is the reference
the parallel settings are compared with.

This drives pytest-xdist's worker loop (``WorkerInteractor``: ``run_one_test``, ``torun``, ``sendevent``, checked
against pytest-xdist 3.x); a worker without those falls back to one case at a time, with a warning.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import pickle
import select
import signal
import time
import types
import warnings
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any, Final

import pytest

from conformance.iut_handle import SPENT_BEFORE
from conformance.options import value
from conformance.schedule import run_iut, slots_for

__all__ = ["CHILD_MARGIN"]

logger = logging.getLogger(__name__)

#: Seconds a child may run beyond its case's budget (setup, clean-up and artifacts) before the worker kills it.
CHILD_MARGIN: Final = 60.0


@pytest.hookimpl(hookwrapper=True)
def pytest_runtestloop(session: pytest.Session) -> Generator[None, Any, None]:
    """In an xdist worker with slots: fork per case during xdist's loop, then wait for the last children."""
    config = session.config
    runner: _Slots | None = None
    if getattr(config, "workerinput", None) is not None and not config.option.collectonly:
        slots = slots_for(config)
        interactor = _interactor(config)
        if slots > 1 and interactor is None:
            warnings.warn(
                pytest.PytestWarning(f"{slots} slots asked, but this pytest-xdist has no worker loop to drive"),
                stacklevel=1,
            )
        elif slots > 1:
            runner = _Slots(config, interactor, slots)
            interactor.run_one_test = types.MethodType(runner.run_one_test, interactor)
    try:
        yield
    finally:
        if runner is not None:
            runner.drain()


def _interactor(config: pytest.Config) -> Any:
    for plugin in config.pluginmanager.get_plugins():
        if all(hasattr(plugin, name) for name in ("run_one_test", "torun", "sendevent", "session")):
            return plugin
    return None


@dataclass
class _Child:
    pid: int
    fd: int
    item: pytest.Item
    index: int
    deadline: float
    data: bytearray = field(default_factory=bytearray)


class _Slots:
    """The worker's children: started one per case, their records forwarded to the controller as they end."""

    def __init__(self, config: pytest.Config, interactor: Any, slots: int) -> None:
        self.config = config
        self.interactor = interactor
        self.slots = slots
        self.running: dict[int, _Child] = {}  # by the read end of the child's pipe
        self.spent = 0.0  # seconds of case calls the worker's children spent on the IUT
        from conformance.tester.endpoint import hold_kernel_stamps

        hold_kernel_stamps()  # once for all children: they inherit the socket that keeps stamping on
        factory = getattr(config, "_tmp_path_factory", None)  # pytest's: made on first use, which empties the folder
        if factory is not None:
            factory.getbasetemp()  # so made here, once, not by each child over its siblings' files
        _preload(config)
        gc.freeze()  # the children's collections leave the worker's objects alone (fewer pages copied per fork)

    def run_one_test(self, interactor: Any) -> None:
        """xdist's ``run_one_test`` with slots: start the case in a child, report it handed over, take the next."""
        index = interactor.item_index = interactor.nextitem_index
        item = interactor.session.items[index]
        self.collect(block=False)
        while len(self.running) >= self.slots:
            self.collect(block=True)
        self.start(item, index)
        interactor.sendevent("runtest_protocol_complete", item_index=index, duration=0.0)
        interactor.nextitem_index = interactor.torun.get()

    def start(self, item: pytest.Item, index: int) -> None:
        self.config.stash[SPENT_BEFORE] = self.spent  # the child's --ice-iut-budget counts the worker's cases
        marker = item.get_closest_marker("budget")
        budget = float(marker.args[0] if marker else value(self.config, "case_budget"))
        read, write = os.pipe()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # Python 3.12+: fork of a process with threads
            pid = os.fork()
        if pid == 0:  # the child: never returns
            os.close(read)
            _child(self.config, self.interactor, item, index, write)
        os.close(write)
        self.running[read] = _Child(pid, read, item, index, time.monotonic() + budget + CHILD_MARGIN)

    def collect(self, block: bool) -> None:
        """Forward the records of every child that ended; with ``block``, wait for at least one first."""
        while self.running:
            now = time.monotonic()
            timeout = max(0.0, min(c.deadline for c in self.running.values()) - now) if block else 0.0
            ready, _, _ = select.select(list(self.running), [], [], timeout)
            for fd in ready:
                child = self.running[fd]
                chunk = os.read(fd, 1 << 16)
                if chunk:
                    child.data += chunk
                else:
                    self._finish(self.running.pop(fd), None)
                    block = False
            for child in [c for c in self.running.values() if time.monotonic() >= c.deadline]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child.pid, signal.SIGKILL)
                self._finish(self.running.pop(child.fd), "did not end within its budget and margin")
                block = False
            if not block:
                return

    def drain(self) -> None:
        """Wait for every child still running (the worker's loop ended)."""
        while self.running:
            self.collect(block=True)

    def _finish(self, child: _Child, killed: str | None) -> None:
        os.close(child.fd)
        _, status = os.waitpid(child.pid, 0)
        events: list[tuple[str, dict[str, Any]]] = []
        if killed is None:
            with contextlib.suppress(Exception):
                events = pickle.loads(bytes(child.data))
        for name, kwargs in events:
            self.interactor.sendevent(name, **kwargs)
            data = kwargs.get("data")
            if name == "testreport" and isinstance(data, dict) and data.get("when") == "call":
                self.spent += float(data.get("duration") or 0.0)
        if any(name == "logfinish" for name, _ in events):
            return
        why = killed or _ended(status)
        self._lost(child, events, f"the case's process {why} before handing back its reports")

    def _lost(self, child: _Child, events: list[tuple[str, dict[str, Any]]], message: str) -> None:
        """An ERROR report for a case whose child ended without its reports (the harness lost it)."""
        from conformance.plugin import annotate
        from conformance.verdict import Verdict

        item = child.item
        if not any(name == "logstart" for name, _ in events):
            self.interactor.sendevent("logstart", nodeid=item.nodeid, location=item.location)
        report = pytest.TestReport(
            item.nodeid,
            item.location,
            dict.fromkeys(item.keywords, 1),
            "failed",
            f"ERROR: {message}",
            "call",
        )
        annotate(item, report, Verdict.ERROR, message, Verdict.ERROR)
        data = self.config.hook.pytest_report_to_serializable(config=self.config, report=report)
        data["item_index"] = child.index
        data["worker_id"] = self.interactor.workerid
        self.interactor.sendevent("testreport", data=data)
        self.interactor.sendevent("logfinish", nodeid=item.nodeid, location=item.location)


def _preload(config: pytest.Config) -> None:
    """Load, once in the worker, what every child would otherwise load for itself: the requirement catalog and the
    IUT's adapter module."""
    from conformance.catalog import load_catalog

    load_catalog()
    spec = run_iut(config)
    if spec is not None:
        with contextlib.suppress(ImportError):
            spec.preload()


def _ended(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"was killed by signal {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exited with status {os.waitstatus_to_exitcode(status)}"


def _child(config: pytest.Config, interactor: Any, item: pytest.Item, index: int, write: int) -> None:
    """Run one case's protocol, record what the worker would send, hand it back through ``write`` and exit."""
    code = 0
    try:
        events: list[tuple[str, dict[str, Any]]] = []
        interactor.sendevent = lambda name, **kwargs: events.append((name, kwargs))
        interactor.item_index = index
        _own_capture(config)
        config.hook.pytest_runtest_protocol(item=item, nextitem=None)  # None: session fixtures end with the case
        data = pickle.dumps(events)
        view = memoryview(data)
        while view:
            view = view[os.write(write, view) :]
    except BaseException:  # the child must exit, whatever happened; the worker reports the loss
        code = 70
    finally:
        os._exit(code)  # no atexit handlers, no flushing of buffers the worker owns


def _own_capture(config: pytest.Config) -> None:
    """Give the child its own capture files: the inherited ones are shared with the worker and its other children."""
    capman = config.pluginmanager.getplugin("capturemanager")
    if capman is None or not capman.is_capturing():
        return
    capman.stop_global_capturing()
    capman.start_global_capturing()
    capman.suspend_global_capture()
