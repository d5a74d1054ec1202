"""Answers ``initialize`` with a line that breaks the framing; MODE picks how (argv[1])."""

from __future__ import annotations

import sys

from _common import INIT_RESULT, read, reply, write

MODE = sys.argv[1]

msg = read()
assert msg is not None
if MODE == "notjson":
    sys.stdout.write("Segmentation fault? no, just garbage " + "x" * 400 + "\n")
    sys.stdout.flush()
elif MODE == "array":
    write([1, 2, 3])
elif MODE == "version":
    write({"jsonrpc": "1.0", "id": msg["id"], "result": INIT_RESULT})
elif MODE == "wrongtype":
    reply(msg, ["not", "an", "object"])
elif MODE == "unknowncap":
    reply(msg, {**INIT_RESULT, "capabilities": ["controlling", "telepathy"]})
elif MODE == "later":
    # A good initialize, then garbage in answer to the next request.
    reply(msg, INIT_RESULT)
    read()
    sys.stdout.write("{oops\n")
    sys.stdout.flush()
read()  # stay alive until the harness closes stdin
