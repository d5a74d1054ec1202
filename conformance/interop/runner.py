"""The interop runner: every ordered pair of IUTs on every emulated topology, one cell at a time or in parallel.

Each cell runs as :class:`conformance.interop.cell.Cell` on its own address slot of the emulator; the model is in
:mod:`conformance.interop.model`, the verdict and cause in :mod:`conformance.interop.diagnosis`, the files in
:mod:`conformance.interop.artifacts`.
"""

from __future__ import annotations

import asyncio
from collections import deque

from conformance.adapters.registry import get_iut
from conformance.interop.cell import GATHER_ON_INTERFACE_ADDRESSES, ip_addr, run_cell
from conformance.interop.model import CellResult, CellSpec, RunOptions
from conformance.netem import AddressPlan

__all__ = ["iut_needs_netns", "run_matrix"]


class _SlotPool:
    """Address slots of the emulator (one per running cell), reused least-recently first."""

    def __init__(self, count: int, offset: int = 0) -> None:
        self.free: deque[int] = deque(((offset + i) % 250) + 1 for i in range(count))
        self.ready = asyncio.Condition()

    async def take(self) -> int:
        async with self.ready:
            await self.ready.wait_for(lambda: bool(self.free))
            return self.free.popleft()

    async def give(self, slot: int) -> None:
        async with self.ready:
            self.free.append(slot)
            self.ready.notify()


async def run_matrix(cells: list[CellSpec], options: RunOptions) -> list[CellResult]:
    """Run the cells, ``options.parallel`` at a time, each on its own address slot; results in cell order."""
    pool = _SlotPool(max(1, options.parallel), options.slot_offset)
    if options.netns and any(x in GATHER_ON_INTERFACE_ADDRESSES for c in cells for x in (c.controlling, c.controlled)):
        # Added once for the whole run: a stack that watches the interfaces restarts gathering on every change.
        for slot in pool.free:
            for side in ("a", "b"):
                await ip_addr("add", AddressPlan(slot=slot).interface(side))
    limit = asyncio.Semaphore(max(1, options.parallel))

    async def one(spec: CellSpec) -> CellResult:
        async with limit:
            slot = await pool.take()
            try:
                result = await run_cell(spec, options, slot)
            finally:
                await pool.give(slot)
        if options.progress is not None:
            options.progress(result)
        return result

    return list(await asyncio.gather(*(one(c) for c in cells)))


def iut_needs_netns(name: str) -> bool:
    """Whether the registry says the IUT must run in a loopback-only namespace (``IutSpec.netns``)."""
    return get_iut(name).netns or name in GATHER_ON_INTERFACE_ADDRESSES
