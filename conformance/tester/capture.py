"""Capture of every datagram the harness sends and receives, and its pcap / pcapng export.

Theory of operation: each tester endpoint calls :meth:`Capture.record` for every datagram it sends ("out") or
receives ("in"), with the wall-clock time. The capture is append-only and thread-safe; the report reads it through
:func:`write_pcap` and the ladder diagram (:mod:`conformance.tester.ladder`). ``observers`` are called with every
datagram as it is recorded (the passive monitor, :mod:`conformance.tester.monitor`); what they raise is logged.

The files hold ``Ether/IP/UDP`` (or ``Ether/IPv6/UDP``) frames with the datagram's time. Wireshark and tshark
(checked with 4.0) decode STUN messages on any UDP port without help: the ``stun_udp`` heuristic is enabled by
default and checks the magic cookie. A TURN ChannelData message has no cookie, so it is decoded only on port 3478
or on an address/port pair where a STUN message was seen earlier in the file (the STUN dissector claims the
conversation), which is where TURN sends it. For any other ChannelData, :func:`tshark_decode_as` gives the
``-d udp.port==N,stun`` options (Wireshark: *Analyze > Decode As... > UDP port N > STUN*).

A path ending in ``.pcapng`` gets pcapng, which also carries the note of a crafted datagram as the packet comment
(``frame.comment``), the direction as the packet flags (``frame.packet_flags_direction``: 1 in, 2 out) and the
endpoint label as the interface name (``frame.interface_name``).
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time as _time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from scapy.data import DLT_EN10MB
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Packet, Raw
from scapy.utils import PcapNgWriter, PcapWriter

from conformance.packets import classify

__all__ = [
    "Address",
    "Capture",
    "Datagram",
    "Direction",
    "format_address",
    "to_packets",
    "tshark_decode_as",
    "write_pcap",
]

logger = logging.getLogger(__name__)

#: An (ip, port) pair; IPv6 scope and flow info are dropped when recording.
Address = tuple[str, int]
Direction = Literal["in", "out"]

_MAC = "00:00:00:00:00:00"
_STUN_PORT = 3478


@dataclass(frozen=True)
class Datagram:
    """One UDP datagram seen by the harness; ``direction`` is "out" when the harness sent it, "in" when received."""

    time: float
    src: Address
    dst: Address
    data: bytes
    direction: Direction
    note: str = ""
    endpoint: str = ""

    @property
    def crafted(self) -> bool:
        """True when the harness marked the datagram (crafted, malformed, ...)."""
        return bool(self.note)


def _address(addr: tuple[Any, ...]) -> Address:
    """(ip, port) from a socket address; IPv6 (host, port, flowinfo, scope_id) is cut to its first two items."""
    return (str(addr[0]), int(addr[1]))


def format_address(addr: Address) -> str:
    """``127.0.0.1:5000`` or ``[::1]:5000``."""
    host, port = addr
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class Capture:
    """A thread-safe, append-only record of datagrams, with names for addresses (for diagrams and reports)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._datagrams: list[Datagram] = []
        self.labels: dict[Address, str] = {}
        #: Called with every datagram as it is recorded, in the recording thread.
        self.observers: list[Callable[[Datagram], None]] = []

    def record(
        self,
        src: tuple[Any, ...],
        dst: tuple[Any, ...],
        data: bytes,
        direction: Direction,
        *,
        note: str = "",
        endpoint: str = "",
        time: float | None = None,
    ) -> Datagram:
        """Append one datagram, stamped with ``time.time()`` unless ``time`` is given; returns it."""
        if direction not in ("in", "out"):
            raise ValueError(f"direction must be 'in' or 'out', not {direction!r}")
        datagram = Datagram(
            time=_time.time() if time is None else time,
            src=_address(src),
            dst=_address(dst),
            data=bytes(data),
            direction=direction,
            note=note,
            endpoint=endpoint,
        )
        self.add(datagram)
        return datagram

    def add(self, datagram: Datagram) -> None:
        """Append an already built datagram (observers see it)."""
        with self._lock:
            self._datagrams.append(datagram)
        for observer in list(self.observers):
            try:
                observer(datagram)
            except Exception:
                logger.exception("capture observer failed on %s -> %s", datagram.src, datagram.dst)

    def discard_before(self, time: float) -> int:
        """Forget datagrams stamped before ``time`` (long fuzzing campaigns keep only their last batch)."""
        with self._lock:
            kept = [d for d in self._datagrams if d.time >= time]
            dropped = len(self._datagrams) - len(kept)
            self._datagrams = kept
        return dropped

    def label(self, addr: tuple[Any, ...], name: str) -> None:
        """Name an address for diagrams, e.g. "IUT host 1" or "harness peer"."""
        with self._lock:
            self.labels[_address(addr)] = name

    @property
    def datagrams(self) -> list[Datagram]:
        """A snapshot of every datagram, in recording order."""
        with self._lock:
            return list(self._datagrams)

    def since(self, t: float) -> list[Datagram]:
        """The datagrams recorded at or after time ``t``."""
        return [d for d in self.datagrams if d.time >= t]

    def __len__(self) -> int:
        with self._lock:
            return len(self._datagrams)

    def __iter__(self) -> Iterator[Datagram]:
        return iter(self.datagrams)


def _datagrams(source: Capture | Iterable[Datagram]) -> list[Datagram]:
    return source.datagrams if isinstance(source, Capture) else list(source)


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        fallback = "127.0.0.1" if host == "localhost" else "0.0.0.0"
        logger.warning("capture: %r is not an IP address; written as %s", host, fallback)
        return ipaddress.ip_address(fallback)


def _network_layer(src: str, dst: str) -> Packet:
    s, d = _ip(src), _ip(dst)
    if s.version == d.version == 4:
        return IP(src=str(s), dst=str(d))
    # Mixed families cannot share a header: write IPv4 as IPv4-mapped IPv6.
    s6 = s if isinstance(s, ipaddress.IPv6Address) else ipaddress.IPv6Address(f"::ffff:{s}")
    d6 = d if isinstance(d, ipaddress.IPv6Address) else ipaddress.IPv6Address(f"::ffff:{d}")
    return IPv6(src=str(s6), dst=str(d6))


def to_packets(source: Capture | Iterable[Datagram]) -> list[Packet]:
    """The datagrams as Scapy ``Ether/IP/UDP/Raw`` frames (``IPv6`` for IPv6 addresses), with their times."""
    packets: list[Packet] = []
    for d in _datagrams(source):
        pkt = Ether(src=_MAC, dst=_MAC) / _network_layer(d.src[0], d.dst[0]) / UDP(sport=d.src[1], dport=d.dst[1])
        pkt = pkt / Raw(load=d.data)
        pkt.time = d.time
        pkt.comments = [d.note.encode()] if d.note else None
        pkt.direction = 1 if d.direction == "in" else 2
        pkt.sniffed_on = d.endpoint or "harness"
        packets.append(pkt)
    return packets


def write_pcap(
    source: Capture | Iterable[Datagram],
    path: str | Path,
    *,
    fmt: Literal["auto", "pcap", "pcapng"] = "auto",
) -> Path:
    """Write the datagrams to ``path``: pcapng for a ``.pcapng`` suffix (or ``fmt="pcapng"``), pcap otherwise."""
    target = Path(path)
    packets = to_packets(source)
    ng = fmt == "pcapng" or (fmt == "auto" and target.suffix.lower() == ".pcapng")
    target.parent.mkdir(parents=True, exist_ok=True)
    writer: PcapWriter | PcapNgWriter = PcapNgWriter(str(target)) if ng else PcapWriter(str(target))
    writer.linktype = DLT_EN10MB
    with writer:
        if packets:
            writer.write(packets)
        else:
            writer.write_header(None)  # an empty capture is still a readable file
    logger.debug("capture: wrote %d datagrams to %s", len(packets), target)
    return target


def tshark_decode_as(source: Capture | Iterable[Datagram]) -> list[str]:
    """``-d udp.port==N,stun`` options for ChannelData that tshark's STUN heuristic cannot see by itself.

    ChannelData is decoded out of the box on port 3478 and on a pair that carried a STUN message earlier.
    """
    seen: set[frozenset[Address]] = set()
    ports: list[int] = []
    for d in sorted(_datagrams(source), key=lambda d: d.time):
        pair = frozenset((d.src, d.dst))
        kind = classify(d.data)
        if kind == "stun" and len(d.data) >= 20:
            seen.add(pair)
        elif kind == "channeldata" and pair not in seen and _STUN_PORT not in (d.src[1], d.dst[1]):
            port = d.dst[1] if d.direction == "out" else d.src[1]  # the IUT's port
            if port not in ports:
                ports.append(port)
    return [arg for port in ports for arg in ("-d", f"udp.port=={port},stun")]
