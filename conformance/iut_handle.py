"""The worker's IUT for a conformance session: started on first use, restarted after it died, shut down at the end."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from conformance.adapters.base import Adapter, AdapterError, IutInfo
from conformance.adapters.registry import DEFAULT_IUT
from conformance.options import iut_label, started, value
from conformance.verdict import HarnessError

__all__ = ["INIT_TIMEOUT", "SPENT_BEFORE", "IutHandle"]

logger = logging.getLogger(__name__)

INIT_TIMEOUT = 15.0

#: Case time this worker spent on the IUT before this process's first case: set by a worker with slots before it
#: forks a child (conformance/slots.py), so ``--ice-iut-budget`` counts every case of the worker.
SPENT_BEFORE = pytest.StashKey[float]()


class IutHandle:
    """The worker's adapter: started on first use, restarted after it died, shut down at the end."""

    def __init__(self, config: pytest.Config, loop: asyncio.AbstractEventLoop) -> None:
        self.config = config
        self.loop = loop
        self.adapter: Adapter | None = None
        self.info: IutInfo | None = None
        self.failure: str | None = None
        #: Seconds of case time spent on this IUT by this worker (for --ice-iut-budget).
        self.spent = config.stash.get(SPENT_BEFORE, 0.0)

    def _make(self) -> Adapter:
        from conformance.adapters.registry import make_adapter

        cmd = value(self.config, "iut_cmd")
        if cmd:
            return make_adapter(cmd=cmd)
        return make_adapter(str(value(self.config, "iut") or DEFAULT_IUT))

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
            raise HarnessError(f"IUT {iut_label(self.config)} is unusable: {self.failure}")
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
                raise HarnessError(f"IUT {iut_label(self.config)} failed to initialize: {reason}\n{tail}") from exc
        assert self.info is not None
        return self.adapter, self.info

    def _check_budgets(self) -> None:
        run_budget = value(self.config, "run_budget")
        if run_budget is not None and time.monotonic() - started(self.config) > run_budget:
            raise HarnessError(f"the run budget of {run_budget:g} s is spent; case not started")
        iut_budget = value(self.config, "iut_budget")
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
