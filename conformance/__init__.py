"""ice-conformance: a conformance and interoperability harness for ICE, STUN and TURN."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
