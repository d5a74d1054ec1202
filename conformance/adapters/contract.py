"""The adapter contract as data, and the rules that the harness enforces on a stdio shim (docs/adapter-contract.md).

Theory of operation: :data:`METHODS` is the one list of the contract's methods: each one's kind (every IUT's
lifecycle, an ICE agent's, or a STUN/TURN server's), its params and the fields its result must carry. The stdio
shim side (:mod:`conformance.adapters.server`) validates requests and dispatches with it, the harness side
(:mod:`conformance.adapters.stdio`) checks results with it, and :func:`complete` uses it to give an in-process
adapter of one kind the other kind's operations, each answering :class:`Unsupported`. :class:`ContractChecker`
sits in :class:`conformance.adapters.stdio.StdioAdapter` and sees
what the shim returns and notifies. A result that breaks a rule raises :class:`ContractViolation` at once (the
case's ERROR); a notification that breaks one is recorded in :attr:`ContractChecker.violations`, and the plugin
grades the case during which it arrived ERROR, naming the rule, instead of blaming the IUT for what the shim
reported wrongly. :func:`program_name` names a shim after its program before it has told its own name.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shlex
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

from .base import Adapter, AdapterError, IutAdapter, Unsupported

__all__ = [
    "METHODS",
    "RULE_CANDIDATE",
    "RULE_SELECTED_PAIR",
    "ContractChecker",
    "ContractViolation",
    "Method",
    "Param",
    "complete",
    "program_name",
]

_REQUIRED: Any = object()


@dataclass(frozen=True)
class Param:
    """One request param or result field: its name, JSON type, default (required when absent) and nullability."""

    name: str
    kind: type | tuple[type, ...]
    default: Any = _REQUIRED
    nullable: bool = False

    @property
    def required(self) -> bool:
        return self.default is _REQUIRED


MethodKind = Literal["lifecycle", "ice-agent", "turn-server"]


@dataclass(frozen=True)
class Method:
    """One method of the contract (docs/adapter-contract.md §3): what it takes and what its result must carry."""

    name: str
    kind: MethodKind
    params: tuple[Param, ...] = ()
    result: tuple[Param, ...] = ()


_AGENT = Param("agent", str)
_CREDENTIALS = (Param("ufrag", str), Param("pwd", str))

#: Every method of the contract, in the order of docs/adapter-contract.md §3. ``create_agent``'s params are
#: :class:`~conformance.adapters.base.AgentConfig`'s JSON form, parsed by ``AgentConfig.from_json``.
METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method(
            "initialize",
            "lifecycle",
            (Param("contract", object, None),),
            (Param("name", str), Param("version", str), Param("capabilities", list)),
        ),
        Method("create_agent", "ice-agent", (), (Param("agent", (str, int)),)),
        Method("gather", "ice-agent", (_AGENT,), (*_CREDENTIALS, Param("candidates", list))),
        Method(
            "set_remote",
            "ice-agent",
            (
                _AGENT,
                *_CREDENTIALS,
                Param("candidates", list, []),
                Param("lite", bool, False),
                Param("options", dict, {}),
            ),
        ),
        Method("add_remote_candidate", "ice-agent", (_AGENT, Param("candidate", str, nullable=True))),
        Method("connect", "ice-agent", (_AGENT,)),
        Method("send", "ice-agent", (_AGENT, Param("component", int, 1), Param("data", str))),
        Method("restart", "ice-agent", (_AGENT,), _CREDENTIALS),
        Method("close", "ice-agent", (_AGENT,)),
        Method(
            "start_server",
            "turn-server",
            (
                Param("kind", str),
                Param("listen", str),
                Param("realm", str, None, nullable=True),
                Param("users", dict, None, nullable=True),
                Param("options", dict, None, nullable=True),
            ),
            (Param("address", str),),
        ),
        Method("stop_server", "turn-server", (Param("server", str),)),
        Method("shutdown", "lifecycle"),
    )
}


def _unsupported(name: str, method: Method) -> Callable[..., Coroutine[Any, Any, Any]]:
    what = "an ICE agent" if method.kind == "ice-agent" else "a STUN or TURN server"

    async def call(*args: Any, **kwargs: Any) -> Any:
        raise Unsupported(f"{method.name}: {name} is not {what}")

    return call


class _Completed:
    """An in-process adapter of one kind, with the other kind's operations answering :class:`Unsupported`."""

    def __init__(self, adapter: IutAdapter) -> None:
        self._adapter = adapter
        name = str(getattr(adapter, "name", None) or type(adapter).__name__)
        for method in METHODS.values():
            if not hasattr(adapter, method.name):
                setattr(self, method.name, _unsupported(name, method))

    @property
    def adapter(self) -> IutAdapter:
        """The adapter completed."""
        return self._adapter

    def __getattr__(self, name: str) -> Any:
        if name == "_adapter":
            raise AttributeError(name)
        return getattr(self._adapter, name)


def complete(adapter: IutAdapter) -> Adapter:
    """``adapter`` with every operation of the contract: itself when it has them all (a stdio adapter), else a view
    whose missing operations (the other kind's) raise :class:`Unsupported`, as a stdio shim's -32601 does."""
    if all(hasattr(adapter, m) for m in METHODS):
        return cast(Adapter, adapter)
    return cast(Adapter, _Completed(adapter))


#: docs/adapter-contract.md §3: candidates are attribute values with the ``candidate:`` prefix.
RULE_CANDIDATE = "§3: a candidate is an RFC 8839 attribute value with the `candidate:` prefix"
#: docs/adapter-contract.md §4: ``selected_pair`` of every component before the ``connected`` it leads to.
RULE_SELECTED_PAIR = "§4: `selected_pair` for every component is sent before `state: connected`"

_WRAPPERS = {"env", "nice", "nohup", "setsid", "stdbuf", "timeout", "unshare", "nsenter", "exec", "sudo"}
_SHELLS = {"sh", "bash", "dash", "zsh"}
_INTERPRETERS = re.compile(r"^(python[0-9.]*|node|nodejs|ruby|perl|java|deno|bun)$")


class ContractViolation(AdapterError):
    """The shim broke a rule of the adapter contract: the harness's ERROR, never the IUT's FAIL."""


def program_name(argv: list[str]) -> str:
    """The program a shim command runs, skipping wrappers: ``env X=1 python3 -m pkg.shim`` → ``pkg.shim``.

    ``sh -c "CMD"`` is looked into; an interpreter is named by its script or module.
    """
    args = list(argv)
    while args:
        head = Path(args[0]).name
        if head in _WRAPPERS or "=" in args[0]:
            args = args[1:]
            while args and (args[0].startswith("-") or "=" in args[0] or re.fullmatch(r"[0-9.]+[smhd]?", args[0])):
                args = args[1:]
            continue
        if head in _SHELLS and len(args) > 2 and args[1] == "-c":
            try:
                inner = shlex.split(args[2])
            except ValueError:
                return head
            return program_name(inner) if inner else head
        if _INTERPRETERS.match(head):
            rest = args[1:]
            for i, a in enumerate(rest):
                if a == "-m" and i + 1 < len(rest):
                    return rest[i + 1]
                if not a.startswith("-"):
                    return Path(a).name
            return head
        return head
    return Path(argv[0]).name if argv else "shim"


class ContractChecker:
    """Tracks each agent's components and selected pairs, and checks the shim's strings against the contract."""

    def __init__(self) -> None:
        self.components: dict[str, int] = {}
        self.selected: dict[str, set[int]] = {}
        #: Every rule broken by a notification, in arrival order (``rule: detail``).
        self.violations: list[str] = []
        self._violated: asyncio.Event | None = None

    async def guard(self, case: Coroutine[Any, Any, Any], shim: str) -> Any:
        """Run a case, ending it at once with :class:`ContractViolation` when the shim breaks a rule meanwhile."""
        start = len(self.violations)
        self._violated = asyncio.Event()
        task = asyncio.ensure_future(case)
        waiter = asyncio.ensure_future(self._violated.wait())
        try:
            await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            if not task.done():
                task.cancel()  # a case may swallow one cancellation (asyncio.wait_for): do not wait long for it
                task.add_done_callback(lambda t: t.cancelled() or t.exception())  # retrieved, never logged
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.wait({task}, timeout=1.0)
        self._violated = None
        if task.done() and (not task.cancelled() or len(self.violations) == start):
            return task.result()
        broken = "; ".join(self.violations[start:])
        raise ContractViolation(f"{shim}: adapter contract violation: {broken}")

    def agent_created(self, agent: str, components: int) -> None:
        self.components[agent] = components
        self.selected[agent] = set()

    def check_candidates(self, shim: str, method: str, candidates: list[str]) -> None:
        """Raise :class:`ContractViolation` unless every string carries the ``candidate:`` prefix."""
        bad = [c for c in candidates if not c.startswith("candidate:")]
        if bad:
            raise ContractViolation(f"{shim}: contract violation ({RULE_CANDIDATE}): {method} returned {bad[0]!r}")

    def notification(self, method: str, params: dict[str, Any]) -> str | None:
        """The broken rule (recorded in :attr:`violations`) for one notification, or None."""
        agent = str(params.get("agent"))
        problem: str | None = None
        if method == "selected_pair":
            for key in ("local", "remote"):
                value = params.get(key)
                if not isinstance(value, str) or not value.startswith("candidate:"):
                    problem = f"{RULE_CANDIDATE}: selected_pair {key} is {value!r}"
                    break
            else:
                component = params.get("component", 1)
                self.selected.setdefault(agent, set()).add(int(component) if isinstance(component, int) else 1)
        elif method == "candidate":
            value = params.get("candidate")
            if value is not None and (not isinstance(value, str) or not value.startswith("candidate:")):
                problem = f"{RULE_CANDIDATE}: candidate notification carries {value!r}"
        elif method == "state" and params.get("state") == "connected":
            wanted = set(range(1, self.components.get(agent, 1) + 1))
            missing = sorted(wanted - self.selected.get(agent, set()))
            if missing:
                problem = (
                    f"{RULE_SELECTED_PAIR}: agent {agent} reported connected without a selected_pair for "
                    f"component {', '.join(map(str, missing))}"
                )
        if problem is not None:
            self.violations.append(problem)
            if self._violated is not None:
                self._violated.set()
        return problem
