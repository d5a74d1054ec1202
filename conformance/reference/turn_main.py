"""``python -m conformance.reference.turn_main [--fault NAME ...]``: the reference TURN IUT as a stdio shim."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..adapters.server import main_for
from .turn import CLIENT_FAULTS, SERVER_FAULTS, ReferenceTurnAdapter, check_turn_faults

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the options, then list the faults or serve the reference TURN adapter over stdin/stdout."""
    parser = argparse.ArgumentParser(prog="python -m conformance.reference.turn_main")
    parser.add_argument("--fault", action="append", default=[], metavar="NAME", help="enable a fault (repeatable)")
    parser.add_argument("--list-faults", action="store_true", help="print the fault catalogue and exit")
    args = parser.parse_args(argv)
    if args.list_faults:
        for side, table in (("server", SERVER_FAULTS), ("client", CLIENT_FAULTS)):
            for f in table.values():
                sys.stdout.write(f"{side:<7} {f.name:<40} {', '.join(f.breaks):<28} {f.description}\n")
        return 0
    try:
        faults = check_turn_faults(args.fault)
    except ValueError as exc:
        parser.error(str(exc))
    main_for(lambda: ReferenceTurnAdapter(faults))
    return 0


if __name__ == "__main__":
    sys.exit(main())
