"""Ladder (sequence) diagrams of a capture as self-contained SVG, and a decoded message listing for reports.

One vertical lane per address: the harness's addresses on the left, the IUT's on the right (told apart by the
datagrams' direction), each in order of first appearance. One arrow per datagram, top to bottom in time order, with
the offset from the first datagram on the left. Harness arrows and IUT arrows have two colours; a datagram with a
note (crafted or malformed) is dashed red and shows its note. Every arrow has a ``<title>`` tooltip with the full
Scapy summary. All text is escaped; the result parses as XML and renders inline in HTML or as an ``.svg`` file.
"""

from __future__ import annotations

import functools
import html
import logging
import re
from collections.abc import Iterable
from typing import TypedDict

from scapy.packet import Packet

from conformance.packets import STUN, ChannelData, classify, dissect
from conformance.tester.capture import Address, Capture, Datagram, format_address

__all__ = ["MAX_ARROWS", "MessageRow", "describe", "render_ladder", "render_messages"]

logger = logging.getLogger(__name__)

#: Arrows drawn at most; the rest are counted in a "+N more" line.
MAX_ARROWS = 400

_HARNESS = "#1f6feb"
_IUT = "#1a7f37"
_CRAFTED = "#cf222e"
_LANE = "#8c959f"
_TEXT = "#24292f"
_MUTED = "#57606a"

_LEFT = 90  # room for the time column
_TOP = 40  # room for the title
_HEADER = 46  # lane label boxes
_ROW = 38  # one arrow with its label
_ROW_NOTE = 12  # extra room under an arrow that carries a note
_CHAR = 6.7  # width of one 11px monospace character
_BOX_W = 150

# Characters XML 1.0 forbids even when escaped.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


class MessageRow(TypedDict):
    """One decoded datagram for a report page."""

    index: int
    time: float
    offset_ms: float
    direction: str
    endpoint: str
    src: str
    dst: str
    src_label: str
    dst_label: str
    kind: str
    length: int
    note: str
    label: str
    summary: str
    show: str
    hex: str


def _esc(text: str) -> str:
    """Escape for XML text and attribute values, dropping characters XML cannot carry."""
    return html.escape(_XML_INVALID.sub("\ufffd", text), quote=True)


def _datagrams(source: Capture | Iterable[Datagram]) -> list[Datagram]:
    items = source.datagrams if isinstance(source, Capture) else list(source)
    return sorted(items, key=lambda d: d.time)


def _labels(source: Capture | Iterable[Datagram]) -> dict[Address, str]:
    return dict(source.labels) if isinstance(source, Capture) else {}


@functools.lru_cache(maxsize=1024)
def _dissect(data: bytes) -> Packet:
    """One dissection per datagram for both the ladder and the message rows (the packet is only read)."""
    return dissect(data)


def _summary(pkt: Packet) -> str:
    try:
        return str(pkt.summary())
    except Exception:  # a hostile datagram must not break a report
        return f"{len(bytes(pkt.original or b''))} bytes (undecodable)"


def _show(pkt: Packet) -> str:
    try:
        return str(pkt.show(dump=True))
    except Exception:
        return _summary(pkt)


def _stun_label(msg: STUN) -> str:
    parts = [msg.type_name, bytes(msg.transaction_id or b"")[:4].hex()]
    code = msg.error_code
    if code is not None:
        parts.append(str(code))
    for name in msg.attribute_names():
        a = msg.attr(name)
        if name == "USE-CANDIDATE":
            parts.append("USE-CANDIDATE")
        elif name in ("ICE-CONTROLLING", "ICE-CONTROLLED"):
            parts.append(name)
        elif name == "PRIORITY" and a is not None:
            parts.append(f"PRIORITY={a.priority}")
        elif name == "CHANNEL-NUMBER" and a is not None:
            parts.append(f"CHANNEL-NUMBER=0x{a.channel:04x}")
        elif name == "LIFETIME" and a is not None:
            parts.append(f"LIFETIME={a.lifetime}")
    return " ".join(parts)


def describe(data: bytes) -> str:
    """A one-line label: STUN type, short txid and key attributes; ChannelData channel and length; else the kind."""
    pkt = _dissect(data)
    try:
        if isinstance(pkt, STUN):
            return _stun_label(pkt)
        if isinstance(pkt, ChannelData):
            return f"ChannelData 0x{pkt.channel:04x} len={pkt.length}"
    except Exception:  # fields of a broken message: fall back to the kind
        logger.debug("ladder: cannot label %d bytes", len(data), exc_info=True)
    return f"{classify(data)} {len(data)} bytes"


def _lane_order(datagrams: list[Datagram], lanes: list[Address] | None) -> list[Address]:
    harness: list[Address] = []
    iut: list[Address] = []
    for d in datagrams:
        mine, theirs = (d.src, d.dst) if d.direction == "out" else (d.dst, d.src)
        if mine not in harness:
            harness.append(mine)
        if theirs not in iut:
            iut.append(theirs)
    order = list(lanes or [])
    order += [a for a in harness if a not in order]
    order += [a for a in iut if a not in order]
    return order


def _lane_names(datagrams: list[Datagram], labels: dict[Address, str]) -> dict[Address, str]:
    names = dict(labels)
    for d in datagrams:
        mine = d.src if d.direction == "out" else d.dst
        if d.endpoint and mine not in names:
            names[mine] = d.endpoint if d.endpoint.startswith("harness") else f"harness {d.endpoint}"
    return names


def _text(x: float, y: float, text: str, *, anchor: str = "middle", fill: str = _TEXT, extra: str = "") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" fill="{fill}"{extra}>{_esc(text)}</text>'


def render_ladder(
    capture_or_datagrams: Capture | Iterable[Datagram],
    *,
    title: str = "",
    lanes: list[tuple[str, int]] | None = None,
    max_arrows: int = MAX_ARROWS,
) -> str:
    """A self-contained SVG ladder diagram of the datagrams (one lane per address, one arrow per datagram)."""
    datagrams = _datagrams(capture_or_datagrams)
    names = _lane_names(datagrams, _labels(capture_or_datagrams))
    order = _lane_order(datagrams, [(str(h), int(p)) for h, p in lanes] if lanes else None)
    shown = datagrams[: max(0, max_arrows)]
    hidden = len(datagrams) - len(shown)

    rows = [(d, describe(d.data)) for d in shown]
    index = {addr: i for i, addr in enumerate(order)}
    # Wide enough that each label fits between the lanes its arrow joins.
    needed = [max(len(label), len(d.note)) * _CHAR / max(1, abs(index[d.dst] - index[d.src])) + 30 for d, label in rows]
    spacing = min(460.0, max([190.0, *needed]))
    n = max(1, len(order))
    x_of = {addr: _LEFT + _BOX_W / 2 + i * spacing for i, addr in enumerate(order)}
    width = _LEFT + _BOX_W + (n - 1) * spacing + 20
    # A self-arrow (src == dst lane) needs room on the right of the last lane.
    width += 60
    top = _TOP if title else 12
    lanes_top = top + _HEADER
    heights = [_ROW + (_ROW_NOTE if d.note else 0) for d in shown]
    body = sum(heights) + (24 if hidden else 0) + (24 if not datagrams else 0)
    height = lanes_top + 16 + body + 20

    out: list[str] = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="ui-monospace, Menlo, Consolas, monospace" '
        f'font-size="11">',
        f"<title>{_esc(title or 'ladder diagram')}</title>",
        "<defs>",
    ]
    for key, colour in (("h", _HARNESS), ("i", _IUT), ("c", _CRAFTED)):
        out.append(
            f'<marker id="arrow-{key}" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" '
            f'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="{colour}"/></marker>'
        )
    out.append("</defs>")
    out.append(f'<rect x="0" y="0" width="{width:.0f}" height="{height:.0f}" fill="#ffffff"/>')
    if title:
        out.append(_text(10, 24, title, anchor="start", extra=' font-size="14" font-weight="bold"'))

    # Lanes: a labelled box and a vertical line.
    harness_side = {d.src if d.direction == "out" else d.dst for d in datagrams}
    for addr in order:
        x = x_of[addr]
        colour = _HARNESS if addr in harness_side else _IUT
        name = names.get(addr, "")
        out.append(f'<g class="lane"><title>{_esc(name or format_address(addr))}</title>')
        out.append(
            f'<rect x="{x - _BOX_W / 2:.1f}" y="{top:.1f}" width="{_BOX_W}" height="{_HEADER - 8}" rx="4" '
            f'fill="#f6f8fa" stroke="{colour}"/>'
        )
        if name:
            out.append(_text(x, top + 15, name[:22], extra=' font-weight="bold"'))
            out.append(_text(x, top + 30, format_address(addr)[:24], fill=_MUTED))
        else:
            out.append(_text(x, top + 23, format_address(addr)[:24], extra=' font-weight="bold"'))
        out.append(
            f'<line x1="{x:.1f}" y1="{lanes_top - 8:.1f}" x2="{x:.1f}" y2="{height - 10:.1f}" '
            f'stroke="{_LANE}" stroke-dasharray="2,3"/>'
        )
        out.append("</g>")

    # Arrows.
    t0 = datagrams[0].time if datagrams else 0.0
    y = lanes_top + 16.0
    for (d, label), h in zip(rows, heights, strict=True):
        key, colour = ("c", _CRAFTED) if d.note else (("h", _HARNESS) if d.direction == "out" else ("i", _IUT))
        dash = ' stroke-dasharray="6,4"' if d.note else ""
        x1, x2 = x_of[d.src], x_of[d.dst]
        arrow_y = y + 20
        tooltip = f"{format_address(d.src)} → {format_address(d.dst)} [{d.direction}] {_summary(_dissect(d.data))}"
        if d.note:
            tooltip += f" — {d.note}"
        out.append(f'<g class="datagram {d.direction}{" crafted" if d.note else ""}"><title>{_esc(tooltip)}</title>')
        out.append(_text(_LEFT - 12, arrow_y + 4, f"{(d.time - t0) * 1000:.1f} ms", anchor="end", fill=_MUTED))
        if x1 == x2:
            out.append(
                f'<path d="M{x1:.1f},{arrow_y - 6:.1f} h40 v12 h-40" fill="none" stroke="{colour}" '
                f'stroke-width="1.5"{dash} marker-end="url(#arrow-{key})"/>'
            )
            lx, anchor = x1 + 46, "start"
        else:
            out.append(
                f'<line x1="{x1:.1f}" y1="{arrow_y:.1f}" x2="{x2:.1f}" y2="{arrow_y:.1f}" stroke="{colour}" '
                f'stroke-width="1.5"{dash} marker-end="url(#arrow-{key})"/>'
            )
            lx, anchor = (x1 + x2) / 2, "middle"
        out.append(_text(lx, arrow_y - 5, label, anchor=anchor, fill=colour if d.note else _TEXT))
        if d.note:
            out.append(_text(lx, arrow_y + 13, d.note, anchor=anchor, fill=_CRAFTED, extra=' font-style="italic"'))
        out.append("</g>")
        y += h
    if hidden:
        out.append(_text(_LEFT, y + 16, f"+{hidden} more datagrams not drawn", anchor="start", fill=_MUTED))
    if not datagrams:
        out.append(_text(_LEFT, y + 16, "no datagrams", anchor="start", fill=_MUTED))
    out.append("</svg>")
    return "\n".join(out)


def render_messages(capture_or_datagrams: Capture | Iterable[Datagram]) -> list[MessageRow]:
    """Every datagram decoded for a report page: time, direction, addresses, summary and Scapy's ``show()``."""
    datagrams = _datagrams(capture_or_datagrams)
    names = _lane_names(datagrams, _labels(capture_or_datagrams))
    t0 = datagrams[0].time if datagrams else 0.0
    rows: list[MessageRow] = []
    for i, d in enumerate(datagrams):
        pkt = _dissect(d.data)
        rows.append(
            MessageRow(
                index=i,
                time=d.time,
                offset_ms=(d.time - t0) * 1000,
                direction=d.direction,
                endpoint=d.endpoint,
                src=format_address(d.src),
                dst=format_address(d.dst),
                src_label=names.get(d.src, ""),
                dst_label=names.get(d.dst, ""),
                kind=classify(d.data),
                length=len(d.data),
                note=d.note,
                label=describe(d.data),
                summary=_summary(pkt),
                show=_show(pkt),
                hex=d.data.hex(),
            )
        )
    return rows
