"""The harness STUN server's answers (conformance/tester/stun_server.py): RFC 5389 §12 compatibility, NAT mapping."""

from __future__ import annotations

import asyncio
import os
import struct

from conformance.packets import parse
from conformance.tester.capture import Capture
from conformance.tester.endpoint import Endpoint, Received
from conformance.tester.stun_server import COOKIE, StunServer, nat_mapping


def _mapped_address(data: bytes) -> tuple[str, int] | None:
    """The MAPPED-ADDRESS (0x0001) of a response, read from the TLVs (RFC 3489 §11.2.1)."""
    off = 20
    while off + 4 <= len(data):
        kind, length = struct.unpack_from("!HH", data, off)
        if kind == 0x0001:
            port = struct.unpack_from("!H", data, off + 6)[0]
            return ".".join(str(b) for b in data[off + 8 : off + 12]), port
        off += 4 + (length + 3) // 4 * 4
    return None


async def _exchange(request: bytes, **kw: object) -> tuple[Received, StunServer, Endpoint]:
    capture = Capture()
    server = await StunServer.open(capture, **kw)  # type: ignore[arg-type]
    client = await Endpoint.open(capture, "127.0.0.1", 0, "client")
    client.send(request, server.address)
    answer = await client.expect(lambda r: r.data[4:20] == request[4:20], 2.0, what="answer")
    server.close()
    client.close()
    return answer, server, client


def test_cookie_less_request_gets_mapped_address_with_the_16_bytes_echoed() -> None:
    """RFC 5389 §12.2: an RFC 3489 client (no magic cookie) is answered with MAPPED-ADDRESS, its ID echoed."""
    request = struct.pack("!HH", 0x0001, 0) + os.urandom(16)
    answer, server, client = asyncio.run(_exchange(request, mapping=nat_mapping("127.0.0.99", 7)))
    assert answer.data[:2] == b"\x01\x01" and answer.data[4:20] == request[4:20]
    expected = nat_mapping("127.0.0.99", 7)(client.address)
    assert _mapped_address(answer.data) == expected
    assert server.records[0].mapped == expected and server.records[0].transaction == request[4:20]


def test_rfc3489_mode_answers_a_5389_request_without_xor_mapped_address() -> None:
    """``rfc3489=True``: MAPPED-ADDRESS only, even to a request with the cookie (RFC 5389 §12.1's older server)."""
    request = struct.pack("!HH", 0x0001, 0) + COOKIE + os.urandom(12)
    answer, _, client = asyncio.run(_exchange(request, rfc3489=True))
    assert _mapped_address(answer.data) == client.address
    assert answer.index is not None
    assert not answer.index.has(0x0020) and not answer.index.has(0x8028)


def test_default_answer_reports_the_scripted_mapping_as_xor_mapped_address() -> None:
    """RFC 8489 §6.3.1.1 with a scripted NAT: XOR-MAPPED-ADDRESS carries the mapped address, not the source."""
    request = struct.pack("!HH", 0x0001, 0) + COOKIE + os.urandom(12)
    answer, _, client = asyncio.run(_exchange(request, mapping=nat_mapping()))
    msg = parse(answer.data)
    xma = msg.attr("XOR-MAPPED-ADDRESS")
    assert (str(xma.address), int(xma.port)) == nat_mapping()(client.address) != client.address
