"""Build and parse throughput of a typical ICE check: Scapy layers, the fast path, and aioice's codec.

Run: ``python benchmarks/codec.py [--seconds S] [--json FILE]``. Prints messages per second for each codec in the
same run and the ratios; the fast path is the tester's hot path (RFC 8445 §7.2.2 check: USERNAME, PRIORITY,
ICE-CONTROLLING, USE-CANDIDATE, MESSAGE-INTEGRITY, FINGERPRINT).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from typing import Any

from aioice import stun as aioice_stun

from conformance.packets import STUN, attr, parse
from conformance.packets.fast import Template, index

KEY = b"remote-password-0123456789"
USERNAME = "remoteufrag:localufrag"


def _scapy_message(txid: bytes) -> STUN:
    return STUN(
        type=0x0001,
        transaction_id=txid,
        key=KEY,
        attributes=[
            attr.Username(username=USERNAME.encode()),
            attr.Priority(priority=1853824767),
            attr.IceControlling(tiebreaker=0x1234567890ABCDEF),
            attr.UseCandidate(),
            attr.MessageIntegrity(),
            attr.Fingerprint(),
        ],
    )


def _aioice_message(txid: bytes) -> aioice_stun.Message:
    msg = aioice_stun.Message(
        message_method=aioice_stun.Method.BINDING,
        message_class=aioice_stun.Class.REQUEST,
        transaction_id=txid,
    )
    msg.attributes["USERNAME"] = USERNAME
    msg.attributes["PRIORITY"] = 1853824767
    msg.attributes["ICE-CONTROLLING"] = 0x1234567890ABCDEF
    msg.attributes["USE-CANDIDATE"] = None
    msg.add_message_integrity(KEY)
    msg.add_fingerprint()
    return msg


def rate(fn: Callable[[int], Any], seconds: float) -> float:
    """Calls per second of ``fn(i)`` over about ``seconds``."""
    n, batch = 0, 64
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for i in range(batch):
            fn(n + i)
        n += batch
        now = time.perf_counter()
        if now >= deadline:
            return n / (now - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=1.0, help="time per measurement")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()

    txids = [os.urandom(12) for _ in range(1024)]
    wire = bytes(_scapy_message(txids[0]))
    assert bytes(_aioice_message(txids[0])) == wire, "the codecs must build the same bytes"
    template = Template(_scapy_message(txids[0]), KEY)
    assert template.render(txids[0]) == wire

    figures = {
        "scapy_build": rate(lambda i: bytes(_scapy_message(txids[i & 1023])), args.seconds),
        "scapy_parse": rate(lambda i: parse(wire), args.seconds),
        "aioice_build": rate(lambda i: bytes(_aioice_message(txids[i & 1023])), args.seconds),
        "aioice_parse": rate(lambda i: aioice_stun.parse_message(wire), args.seconds),
        "fast_build": rate(lambda i: template.render(txids[i & 1023]), args.seconds),
        "fast_parse": rate(lambda i: index(wire), args.seconds),
    }
    print(f"message: ICE check, {len(wire)} bytes (USERNAME, PRIORITY, ICE-CONTROLLING, USE-CANDIDATE, MI, FP)")
    print(f"{'codec':<10} {'build msg/s':>14} {'parse msg/s':>14}")
    for codec in ("scapy", "aioice", "fast"):
        print(f"{codec:<10} {figures[codec + '_build']:>14,.0f} {figures[codec + '_parse']:>14,.0f}")
    ratios = {
        "aioice_over_scapy_build": figures["aioice_build"] / figures["scapy_build"],
        "aioice_over_scapy_parse": figures["aioice_parse"] / figures["scapy_parse"],
        "fast_over_aioice_build": figures["fast_build"] / figures["aioice_build"],
        "fast_over_aioice_parse": figures["fast_parse"] / figures["aioice_parse"],
    }
    print(
        f"Scapy build is {ratios['aioice_over_scapy_build']:.1f}x slower than aioice; "
        f"parse {ratios['aioice_over_scapy_parse']:.1f}x"
    )
    print(
        f"fast path vs aioice: build {ratios['fast_over_aioice_build']:.2f}x, "
        f"parse {ratios['fast_over_aioice_parse']:.2f}x (>= 1 means no slower)"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"figures": figures, "ratios": ratios, "bytes": len(wire)}, f, indent=2)


if __name__ == "__main__":
    main()
