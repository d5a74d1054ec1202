"""node-turn 0.0.6 (npm) as a TURN-server IUT through a Node stdio shim (RFC 8656).

The shim folder follows :mod:`conformance.adapters.node`: ``shim.js``, a pinned ``package.json`` and its
``package-lock.json``, installed with ``npm ci`` into the per-user cache by :func:`conformance.adapters.node.launch`.
:func:`launch` adds the ``node-turn`` entry to :data:`conformance.adapters.node.SPECS` only when the shim starts,
so the ICE-agent shim tests that iterate that table do not pick up this server-only shim.
"""

from __future__ import annotations

from pathlib import Path

from conformance.adapters import node

__all__ = ["NAME", "SPEC", "launch"]

NAME = "node-turn"

SPEC = node.NodeShimSpec(
    name=NAME,
    package="node-turn",
    description="node-turn 0.0.6 (JavaScript TURN server), through its Node stdio shim",
    install_hint=(
        "node-turn shim needs Node.js >= 18 and npm on PATH (Debian: apt-get install nodejs npm); it installs "
        "node-turn@0.0.6 with npm ci into $XDG_CACHE_HOME/ice-conformance/node"
    ),
    capabilities_file=Path(__file__).resolve().parent / "capabilities.json",
)


def launch() -> tuple[list[str], dict[str, str]]:
    """``(argv, env)`` of the node-turn shim, installed with ``npm ci`` on first use (see :func:`node.launch`)."""
    node.SPECS.setdefault(NAME, SPEC)
    return node.launch(NAME)
