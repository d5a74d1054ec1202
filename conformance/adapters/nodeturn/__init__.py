"""node-turn 0.0.6 (npm) as a TURN-server IUT through a Node stdio shim (RFC 8656).

The shim folder follows :mod:`conformance.adapters.node`: ``shim.js`` on ``_node/common.js`` and ``_node/serve.js``,
a pinned ``package.json`` and its ``package-lock.json``, and ``iut.toml`` (``kind = "turn-server"``), from which the
registry launches it like every other Node shim.
"""

from __future__ import annotations

__all__ = ["NAME"]

NAME = "node-turn"
