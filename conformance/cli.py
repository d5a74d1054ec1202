"""The ``ice-conformance`` command."""

from __future__ import annotations

import argparse
import sys

from conformance import __version__

__all__ = ["main"]


def _cmd_vectors(args: argparse.Namespace) -> int:
    from conformance.vectors import load_vectors, verify_vector

    results = [verify_vector(v) for v in load_vectors()]
    for r in results:
        sys.stdout.write(f"{'ok  ' if r.ok else 'FAIL'} {r.name:<32} {r.source}: {r.detail}\n")
    failed = sum(not r.ok for r in results)
    sys.stdout.write(f"{len(results) - failed} passed, {failed} failed\n")
    if not results:
        sys.stderr.write("error: no vectors found\n")
        return 2
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="ice-conformance", description="ICE, STUN and TURN conformance harness")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("vectors", help="verify the RFC test vectors with the codec")
    p.set_defaults(func=_cmd_vectors)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
