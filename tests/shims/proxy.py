"""The aioice shim behind a filter that breaks one rule of the adapter contract, for the harness's self-tests.

Usage: ``proxy.py MODE``. Modes: ``no-selected-pair`` (drops every ``selected_pair`` notification), ``no-prefix``
(strips ``candidate:`` from gathered candidates), ``log`` (faithful; writes one stderr line per request),
``name=NAME`` (faithful; reports NAME from ``initialize``) and ``drop=CAP`` (faithful; leaves capability CAP out of
``initialize``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading

mode = sys.argv[1] if len(sys.argv) > 1 else "log"
inner = subprocess.Popen(
    [sys.executable, "-m", "conformance.adapters.aioice"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
)
assert inner.stdin is not None and inner.stdout is not None


def downstream() -> None:
    assert inner.stdout is not None
    for line in inner.stdout:
        msg = json.loads(line)
        if mode == "no-selected-pair" and msg.get("method") == "selected_pair":
            continue
        result = msg.get("result")
        if mode == "no-prefix" and isinstance(result, dict) and "candidates" in result:
            result["candidates"] = [c.removeprefix("candidate:") for c in result["candidates"]]
        if mode.startswith("name=") and isinstance(result, dict) and "capabilities" in result:
            result["name"] = mode.removeprefix("name=")
        if mode.startswith("drop=") and isinstance(result, dict) and "capabilities" in result:
            result["capabilities"] = [c for c in result["capabilities"] if c != mode.removeprefix("drop=")]
        sys.stdout.write(json.dumps(msg) + "\n")
        sys.stdout.flush()


threading.Thread(target=downstream, daemon=True).start()
for line in sys.stdin:
    request = json.loads(line)
    sys.stderr.write(f"proxy: request {request.get('id')} {request.get('method')}\n")
    sys.stderr.flush()
    inner.stdin.write(line)
    inner.stdin.flush()
inner.stdin.close()
sys.exit(inner.wait())
