"""The suites' shared vocabulary: the IUT's role, its TURN server and an allocation on it, and ``expect``.

A case asks for what it works with by name::

    async def test_second_allocate_gets_437(allocation: TurnClient, expect: Expect) -> None:
        expect(await allocation.allocate()).error(ALLOCATE, 437)

``role`` runs a case once per ICE role. ``turn_server`` and ``allocation`` are started when the case runs, inside
its budget and its passive monitor like the rest of the case (the plugin's ``pytest_pyfunc_call``): the fixture
gives a :class:`Deferred`, and the hook below awaits it just before the case's own code.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Generator
from typing import Any

import pytest

from conformance.tester.expect import Expect
from conformance.tester.harness import Harness
from conformance.tester.turn_client import TurnClient, TurnServerUnderTest
from conformance.tester.turn_steps import allocated, start_turn_server


class Deferred:
    """A fixture value made by a coroutine when the case runs (once, however many fixtures ask for it)."""

    def __init__(self, make: Callable[[], Awaitable[Any]]) -> None:
        self._make = make
        self._made = False
        self._value: Any = None

    async def resolve(self) -> Any:
        """The value, made on first use."""
        if not self._made:
            self._value = await self._make()
            self._made = True
        return self._value


@pytest.hookimpl(hookwrapper=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> Generator[None, Any, None]:
    """Resolve the case's :class:`Deferred` arguments inside the case's own run (budget, monitor, hung-shim log)."""
    original = pyfuncitem.obj
    deferred = {k: v for k, v in pyfuncitem.funcargs.items() if isinstance(v, Deferred)}
    if not deferred or not inspect.iscoroutinefunction(original):
        yield
        return

    @functools.wraps(original)
    async def case(**kwargs: Any) -> Any:
        for name in kwargs:
            if isinstance(kwargs[name], Deferred):
                kwargs[name] = await kwargs[name].resolve()
        return await original(**kwargs)

    pyfuncitem.obj = case
    try:
        yield
    finally:
        pyfuncitem.obj = original


@pytest.fixture(params=["controlling", "controlled"])
def role(request: pytest.FixtureRequest) -> str:
    """The IUT's ICE role: the case runs once controlling and once controlled."""
    return str(request.param)


@pytest.fixture
def expect(harness: Harness) -> Expect:
    """``expect(reply)``: verifiers graded against the case's requirement (conformance/tester/expect.py)."""
    return harness.expect


@pytest.fixture
def turn_server(harness: Harness) -> Deferred:
    """The IUT's TURN server on loopback with the default realm and users (RFC 8656), stopped when the case ends."""
    return Deferred(lambda: start_turn_server(harness))


@pytest.fixture
def allocation(harness: Harness, turn_server: Deferred) -> Deferred:
    """A harness client holding an allocation on the IUT's TURN server (RFC 8656 §7.2), or the case ends."""

    async def make() -> TurnClient:
        srv: TurnServerUnderTest = await turn_server.resolve()
        return await allocated(harness, srv)

    return Deferred(make)
