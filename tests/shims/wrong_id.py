"""Answers ``initialize`` with an id that matches no request."""

from __future__ import annotations

from _common import INIT_RESULT, read, write

msg = read()
assert msg is not None
write({"jsonrpc": "2.0", "id": int(msg["id"]) + 1000, "result": INIT_RESULT})
read()
