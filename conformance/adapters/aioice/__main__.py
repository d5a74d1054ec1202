"""The aioice stdio shim: the in-process adapter served over JSON-RPC lines (docs/adapter-contract.md)."""

from __future__ import annotations

from ..server import main_for
from .adapter import AioiceAdapter

__all__: list[str] = []

if __name__ == "__main__":
    main_for(AioiceAdapter)
