"""coturn as a TURN-server IUT, driven in process: one ``turnserver`` process per ``start_server`` (RFC 8656)."""

from __future__ import annotations

from .adapter import CoturnAdapter, install_hint, turnserver_argv

__all__ = ["CoturnAdapter", "install_hint", "turnserver_argv"]
