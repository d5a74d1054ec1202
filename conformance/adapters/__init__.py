"""Adapters: how the harness reaches an IUT, in process or through a stdio JSON-RPC shim (design.md)."""

from __future__ import annotations

from .base import (
    CAPABILITIES,
    CONTRACT_VERSION,
    Adapter,
    AdapterError,
    AdapterTimeout,
    AgentConfig,
    Credentials,
    ErrorCode,
    IceAgentAdapter,
    IutAdapter,
    IutInfo,
    LocalDescription,
    Notification,
    RemoteError,
    TurnServer,
    TurnServerAdapter,
    Unsupported,
)
from .contract import METHODS, complete
from .registry import (
    DEFAULT_IUT,
    IutSpec,
    StdioCommand,
    UnknownIut,
    get_iut,
    known_iuts,
    make_adapter,
    register,
)
from .stdio import StdioAdapter

__all__ = [
    "CAPABILITIES",
    "CONTRACT_VERSION",
    "DEFAULT_IUT",
    "METHODS",
    "Adapter",
    "AdapterError",
    "AdapterTimeout",
    "AgentConfig",
    "Credentials",
    "ErrorCode",
    "IceAgentAdapter",
    "IutAdapter",
    "IutInfo",
    "IutSpec",
    "LocalDescription",
    "Notification",
    "RemoteError",
    "StdioAdapter",
    "StdioCommand",
    "TurnServer",
    "TurnServerAdapter",
    "UnknownIut",
    "Unsupported",
    "complete",
    "get_iut",
    "known_iuts",
    "make_adapter",
    "register",
]
