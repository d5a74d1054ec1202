"""coturn as a TURN-server IUT, driven in process: one ``turnserver`` process per ``start_server`` (RFC 8656)."""

from __future__ import annotations

from .adapter import CAPABILITIES_FILE, INSTALL_HINT, CoturnAdapter, turnserver_argv

__all__ = ["CAPABILITIES_FILE", "INSTALL_HINT", "CoturnAdapter", "turnserver_argv"]
