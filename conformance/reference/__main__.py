"""``python -m conformance.reference [--fault NAME ...] [--list-faults]``: the reference peer as a stdio shim."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from typing import Any

from ..adapters.server import main_for
from .adapter import ReferenceAdapter
from .faults import FAULTS, check_faults

__all__ = ["main"]


def _catalogue() -> str:
    width = max(len(name) for name in FAULTS)
    lines = [f"{f.name:<{width}}  {', '.join(f.breaks):<26}  {f.description}" for f in FAULTS.values()]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the options, then list the faults or serve the adapter over stdin/stdout."""
    parser = argparse.ArgumentParser(
        prog="python -m conformance.reference",
        description="The in-repo reference ICE peer as a JSON-RPC stdio shim (docs/adapter-contract.md).",
    )
    parser.add_argument("--fault", action="append", default=[], metavar="NAME", help="enable a fault (repeatable)")
    parser.add_argument("--list-faults", action="store_true", help="print the fault catalogue and exit")
    parser.add_argument(
        "--hang", metavar="METHOD", default=None, help="never answer METHOD (e.g. gather): a hung shim for the harness"
    )
    args = parser.parse_args(argv)
    if args.list_faults:
        sys.stdout.write(_catalogue())
        return 0
    try:
        faults = check_faults(args.fault)
    except ValueError as exc:
        parser.error(str(exc))
    main_for(lambda: _hanging(ReferenceAdapter(faults), args.hang))
    return 0


def _hanging(adapter: ReferenceAdapter, method: str | None) -> ReferenceAdapter:
    """The adapter, with ``method`` replaced by one that never returns (for the harness's hung-IUT detection)."""
    if method is not None:

        async def never(*_args: Any, **_kwargs: Any) -> Any:
            await asyncio.Event().wait()

        setattr(adapter, method, never)
    return adapter


if __name__ == "__main__":
    sys.exit(main())
