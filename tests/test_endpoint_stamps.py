"""Kernel arrival stamps: a harness with a blocked loop still measures the sender's timing (tester/endpoint.py)."""

from __future__ import annotations

import asyncio
import itertools
import socket
import time

from conformance.tester.capture import Capture
from conformance.tester.endpoint import Endpoint


def test_arrival_times_survive_a_blocked_loop() -> None:
    async def scenario() -> tuple[list[float], list[float]]:
        ep = await Endpoint.open(Capture(), "127.0.0.1", 0, "stamps")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            for i in range(3):
                sender.sendto(b"x%d" % i, ep.address)
                time.sleep(0.05)  # the loop is blocked: the datagrams wait in the kernel, 50 ms apart
            await ep.expect(lambda r: r.data == b"x2", 5)
        ep.close()
        read = [b.time - a.time for a, b in itertools.pairwise(ep.history)]
        arrived = [b.arrived - a.arrived for a, b in itertools.pairwise(ep.history)]
        return read, arrived

    read, arrived = asyncio.run(scenario())
    assert all(gap < 0.02 for gap in read), read  # read back to back once the loop runs again
    assert all(0.045 <= gap <= 0.5 for gap in arrived), arrived  # the sender's own 50 ms spacing
