"""Reads requests and never answers (a hung IUT); writes one stderr line so diagnostics show it."""

from __future__ import annotations

import sys

sys.stderr.write("hang shim started\n")
sys.stderr.flush()
for _line in sys.stdin:
    pass
