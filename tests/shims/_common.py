"""What the test shims share: line I/O on stdin/stdout, with no import from the harness."""

from __future__ import annotations

import json
import sys
from typing import Any

__all__ = ["INIT_RESULT", "read", "reply", "write"]

INIT_RESULT = {"name": "testshim", "version": "0.0", "capabilities": ["controlling"], "contract": "1.0"}


def read() -> dict[str, Any] | None:
    """The next request, or None at EOF."""
    line = sys.stdin.readline()
    if not line:
        return None
    msg: dict[str, Any] = json.loads(line)
    return msg


def write(obj: Any) -> None:
    """One line on stdout (the protocol channel)."""
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def reply(msg: dict[str, Any], result: Any) -> None:
    write({"jsonrpc": "2.0", "id": msg["id"], "result": result})
