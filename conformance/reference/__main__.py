"""``python -m conformance.reference [--fault NAME ...] [--list-faults]``: the reference peer as a stdio shim."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

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
    args = parser.parse_args(argv)
    if args.list_faults:
        sys.stdout.write(_catalogue())
        return 0
    try:
        faults = check_faults(args.fault)
    except ValueError as exc:
        parser.error(str(exc))
    main_for(lambda: ReferenceAdapter(faults))
    return 0


if __name__ == "__main__":
    sys.exit(main())
