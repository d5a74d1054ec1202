"""A case's exchange for its report page: datagrams read back from the capture, and the ladder SVG made safe to inline.

The plugin writes the capture as pcapng, which carries each datagram's direction (the packet flags), the harness's note
on a crafted datagram (the packet comment) and the harness endpoint (the interface name): :func:`load_datagrams` reads
them from there. The lane names of the IUT's addresses are taken from the ladder's lanes when there is one. A classic
pcap (runs before pcapng) has no direction: the first sender is then taken for the harness. :func:`decode_capture`
hands the result to :func:`conformance.tester.ladder.render_messages`.

The SVG comes from a run folder, i.e. from outside the report: :func:`sanitize_svg` keeps only the drawing
elements the ladder uses and drops scripts, event handlers and external references before it is inlined.
"""

from __future__ import annotations

import logging
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Literal

from conformance.tester.capture import Address, Capture, Datagram, format_address
from conformance.tester.ladder import MessageRow, render_ladder, render_messages

__all__ = [
    "MESSAGE_LIMIT",
    "LadderInfo",
    "decode_capture",
    "ladder_from_pcap",
    "load_datagrams",
    "message_rows",
    "parse_ladder",
    "sanitize_svg",
]

logger = logging.getLogger(__name__)

SVG_NS = "http://www.w3.org/2000/svg"
_HARNESS_COLOUR = "#1f6feb"
_IUT_COLOUR = "#1a7f37"
_ALLOWED_TAGS = {
    "svg", "g", "title", "desc", "defs", "marker", "path", "rect", "text", "tspan", "line", "polyline", "polygon",
    "circle", "ellipse",
}  # fmt: skip
_LOCAL_URL = re.compile(r"^url\(#[A-Za-z0-9_.-]+\)$")
_ADDRESS = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[0-9.]+):(\d+)$")

ET.register_namespace("", SVG_NS)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def sanitize_svg(text: str) -> str | None:
    """The SVG with only drawing elements and safe attributes, serialised for inlining; None if it does not parse."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        logger.info("ladder SVG does not parse: %s", exc)
        return None
    if _local(root.tag) != "svg":
        return None

    def clean(el: ET.Element) -> None:
        for child in list(el):
            if _local(child.tag) not in _ALLOWED_TAGS or not child.tag.startswith(f"{{{SVG_NS}}}"):
                el.remove(child)
                continue
            clean(child)
        for name in list(el.attrib):
            value = el.attrib[name]
            bare = _local(name).lower()
            unsafe = (
                bare.startswith("on")
                or bare in ("href", "style")
                or name.startswith("{")  # xlink:href and friends
                or ("url(" in value and not _LOCAL_URL.match(value.strip()))
                or "javascript:" in value.lower()
            )
            if unsafe:
                del el.attrib[name]

    clean(root)
    return ET.tostring(root, encoding="unicode")


class LadderInfo:
    """What the ladder SVG tells about a capture: each lane address's side and name."""

    def __init__(self) -> None:
        self.sides: dict[str, Literal["harness", "iut"]] = {}
        self.names: dict[str, str] = {}


def parse_ladder(text: str) -> LadderInfo:
    """The lanes of a ladder SVG written by :func:`conformance.tester.ladder.render_ladder`."""
    info = LadderInfo()
    try:
        root = ET.fromstring(text)
    except ET.ParseError:
        return info
    for g in root.iter(f"{{{SVG_NS}}}g"):
        classes = (g.get("class") or "").split()
        if "lane" in classes:
            rect = g.find(f"{{{SVG_NS}}}rect")
            texts = ["".join(t.itertext()) for t in g.findall(f"{{{SVG_NS}}}text")]
            addresses = [t for t in texts if _ADDRESS.match(t)]
            if rect is None or not addresses:
                continue
            address = addresses[-1]
            stroke = rect.get("stroke", "")
            if stroke == _HARNESS_COLOUR:
                info.sides[address] = "harness"
            elif stroke == _IUT_COLOUR:
                info.sides[address] = "iut"
            names = [t for t in texts if t != address]
            if names:
                info.names[address] = names[0]
    return info


def _parse_address(text: str) -> Address | None:
    m = _ADDRESS.match(text)
    return (m.group(1).strip("[]"), int(m.group(2))) if m else None


def load_datagrams(pcap: Path, ladder_svg: str | None = None) -> tuple[list[Datagram], dict[Address, str]]:
    """The capture's datagrams in time order, with direction, endpoint and note as the pcapng carries them; and the
    lane names (from the ladder, when given)."""
    from scapy.layers.inet import UDP
    from scapy.utils import rdpcap

    packets = sorted(rdpcap(str(pcap)), key=lambda p: float(p.time))
    info = parse_ladder(ladder_svg) if ladder_svg else LadderInfo()
    labels: dict[Address, str] = {}
    for text, name in info.names.items():
        addr = _parse_address(text)
        if addr is not None:
            labels[addr] = name
    datagrams: list[Datagram] = []
    first_src: str | None = None
    for pkt in packets:
        if UDP not in pkt:
            continue
        ip = pkt[UDP].underlayer
        src_host, dst_host = str(ip.src), str(ip.dst)
        for prefix in ("::ffff:",):  # IPv4 written as IPv4-mapped IPv6 in a mixed-family capture
            if src_host.startswith(prefix) and "." in src_host:
                src_host = src_host.removeprefix(prefix)
            if dst_host.startswith(prefix) and "." in dst_host:
                dst_host = dst_host.removeprefix(prefix)
        src: Address = (src_host, int(pkt[UDP].sport))
        dst: Address = (dst_host, int(pkt[UDP].dport))
        direction: Literal["in", "out"]
        flag = getattr(pkt, "direction", None)
        if flag in (1, 2):
            direction = "in" if flag == 1 else "out"
        else:
            # A classic pcap has no flags: the harness speaks first in most cases.
            first_src = first_src or format_address(src)
            direction = "out" if format_address(src) == first_src else "in"
        comments = getattr(pkt, "comments", None)
        note = b" ".join(comments).decode("utf-8", "replace") if comments else ""
        mine = src if direction == "out" else dst
        endpoint = labels.get(mine, "")
        sniffed = getattr(pkt, "sniffed_on", None)
        if not endpoint and sniffed and sniffed != "harness":
            endpoint = str(sniffed)
        datagrams.append(
            Datagram(
                time=float(pkt.time),
                src=src,
                dst=dst,
                data=bytes(pkt[UDP].payload),
                direction=direction,
                note=note,
                endpoint=endpoint,
            )
        )
    return datagrams, labels


#: Datagrams decoded for a case's page; the rest are left to the pcap.
MESSAGE_LIMIT = 400


def message_rows(datagrams: list[Datagram], labels: dict[Address, str]) -> tuple[list[MessageRow], int]:
    """Decoded rows of at most :data:`MESSAGE_LIMIT` datagrams (see ``render_messages``), and how many were left
    out."""
    capture = Capture()
    for addr, name in labels.items():
        capture.label(addr, name)
    for d in datagrams[:MESSAGE_LIMIT]:
        capture.add(d)
    return render_messages(capture), max(0, len(datagrams) - MESSAGE_LIMIT)


def decode_capture(pcap: Path, ladder_svg: str | None = None) -> tuple[list[MessageRow], int]:
    """The rows of ``message_rows`` from a pcap (for runs without the ``messages.json`` the plugin now writes)."""
    return message_rows(*load_datagrams(pcap, ladder_svg))


def ladder_from_pcap(pcap: Path, title: str) -> str:
    """A ladder SVG drawn from the pcap alone (when the run folder has none, or it could not be used)."""
    datagrams, labels = load_datagrams(pcap, None)
    capture = Capture()
    for addr, name in labels.items():
        capture.label(addr, name)
    for d in datagrams:
        capture.add(d)
    return render_ladder(capture, title=title)
