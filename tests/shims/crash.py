"""Reads ``initialize``, complains on stderr and exits with code 3 without answering."""

from __future__ import annotations

import sys

from _common import INIT_RESULT, read, reply

if len(sys.argv) > 1 and sys.argv[1] == "after-init":
    msg = read()
    assert msg is not None
    reply(msg, INIT_RESULT)
read()
for i in range(300):
    sys.stderr.write(f"noise line {i}\n")
sys.stderr.write("fatal: the ICE agent exploded\n")
sys.stderr.flush()
sys.exit(3)
