"""aioice (Python, in process) as an IUT; ``python -m conformance.adapters.aioice`` is its stdio shim."""

from __future__ import annotations

from .adapter import AioiceAdapter, declared_capabilities

__all__ = ["AioiceAdapter", "declared_capabilities"]
