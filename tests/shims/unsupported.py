"""A well-behaved shim that implements only ``initialize``, ``create_agent`` (as a RemoteError) and
``shutdown``, sends a notification, answers -32601 to everything else, and answers ``gather`` late: only when
the next request arrives."""

from __future__ import annotations

import sys

from _common import INIT_RESULT, read, reply, write

deferred = None
while True:
    msg = read()
    if msg is None:
        sys.exit(0)
    if deferred is not None:
        reply(deferred, {"ufrag": "late", "pwd": "l" * 22, "candidates": []})
        deferred = None
    method = msg["method"]
    if method == "gather":
        deferred = msg
    elif method == "initialize":
        reply(msg, INIT_RESULT)
        write({"jsonrpc": "2.0", "method": "state", "params": {"agent": "x", "state": "new"}})
    elif method == "create_agent":
        err = {"code": -32000, "message": "no agents today", "data": {"why": "test"}}
        write({"jsonrpc": "2.0", "id": msg["id"], "error": err})
    elif method == "shutdown":
        reply(msg, {})
        sys.exit(0)
    else:
        err = {"code": -32601, "message": f"method {method} not found"}
        write({"jsonrpc": "2.0", "id": msg["id"], "error": err})
