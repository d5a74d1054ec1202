"""A shim for contract 1.2's ``applied_options``: ``report`` names the set_remote options it was given that it
applies (only ``ice_options``), ``omit`` leaves the field out (a 1.1 shim), ``bad`` sends a malformed one."""

from __future__ import annotations

import sys

from _common import INIT_RESULT, read, reply, write

mode = sys.argv[1] if len(sys.argv) > 1 else "report"
while True:
    msg = read()
    if msg is None:
        sys.exit(0)
    method = msg["method"]
    params = msg.get("params", {})
    if method == "initialize":
        reply(msg, {**INIT_RESULT, "contract": "1.2" if mode == "report" else "1.1"})
    elif method == "set_remote":
        options = params.get("options", {})
        if mode == "report":
            reply(msg, {"applied_options": [k for k in options if k == "ice_options"]})
        elif mode == "bad":
            reply(msg, {"applied_options": "ice2"})
        else:
            reply(msg, {})
    elif method == "shutdown":
        reply(msg, {})
        sys.exit(0)
    else:
        write({"jsonrpc": "2.0", "id": msg["id"], "error": {"code": -32601, "message": f"no {method}"}})
