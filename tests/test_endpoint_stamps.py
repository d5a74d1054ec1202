"""Kernel arrival stamps: a harness with a blocked loop still measures the sender's timing (tester/endpoint.py)."""

from __future__ import annotations

import asyncio
import itertools
import socket
import time

from conformance.tester.capture import Capture
from conformance.tester.endpoint import Endpoint
from conformance.tester.ice_steps import requests_from_iut


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


def test_requests_from_several_sockets_come_in_kernel_arrival_order() -> None:
    """A blocked loop then reads one datagram per ready socket per turn, so two queued on one socket come back out
    of order with a third socket's; requests_from_iut orders by kernel arrival."""

    def binding(n: int) -> bytes:
        return b"\x00\x01\x00\x00\x21\x12\xa4\x42" + bytes([n]) * 12

    async def scenario() -> tuple[list[int], list[int]]:
        eps = [await Endpoint.open(Capture(), "127.0.0.1", 0, f"ep{i}") for i in range(3)]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            for n, ep in enumerate([eps[0], eps[1], eps[0], eps[2]]):
                sender.sendto(binding(n), ep.address)
                time.sleep(0.02)  # the loop is blocked: the requests wait in the kernel, 20 ms apart
            await eps[0].expect(lambda r: r.transaction_id == bytes([2]) * 12, 5)
            await eps[2].expect(lambda r: r.is_stun, 5)
        for ep in eps:
            ep.close()
        read = sorted((r for ep in eps for r in ep.history), key=lambda r: r.time)
        return [r.transaction_id[0] for r in read], [r.transaction_id[0] for r in requests_from_iut(eps)]

    read, ordered = asyncio.run(scenario())
    assert ordered == [0, 1, 2, 3], (read, ordered)
