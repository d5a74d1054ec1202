"""The tester's ICE session signalling (conformance/tester/ice.py)."""

from __future__ import annotations

from typing import Any

from conformance.adapters.base import accepts_remote_options


def test_set_remote_options_reach_adapters_that_take_them() -> None:
    """Contract 1.1 ``options`` (the harness's ice2, RFC 8445 §10) go only to a set_remote that accepts them."""

    async def v10(agent: str, ufrag: str, pwd: str, candidates: list[str], lite: bool = False) -> None: ...

    async def v11(
        agent: str, ufrag: str, pwd: str, candidates: list[str], lite: bool = False, options: Any = None
    ) -> None: ...

    async def proxy(*args: Any, **kwargs: Any) -> None: ...

    assert not accepts_remote_options(v10)
    assert accepts_remote_options(v11)
    assert accepts_remote_options(proxy)
