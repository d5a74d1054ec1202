"""Capture records, pcap / pcapng export (read back by Scapy and tshark) and the SVG ladder diagram."""

from __future__ import annotations

import shutil
import subprocess
import threading
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.packet import Raw
from scapy.utils import rdpcap

from conformance.packets import STUN, ChannelData, ErrorCode, attr, check_fingerprint, check_integrity
from conformance.tester.capture import Capture, Datagram, format_address, tshark_decode_as, write_pcap
from conformance.tester.ladder import describe, render_ladder, render_messages

KEY = b"iut-password-0123456789"
T0 = 1_700_000_000.25
HARNESS = ("127.0.0.1", 40000)
IUT = ("127.0.0.2", 50000)
HARNESS6 = ("::1", 40006)
IUT6 = ("::1", 50006)
TURN_CLIENT = ("127.0.0.3", 41000)
TURN_SERVER = ("127.0.0.4", 52000)
SVG = "{http://www.w3.org/2000/svg}"


def _exchange() -> Capture:
    """A check with MI+FP, its success, a 487, ChannelData on a TURN pair, a crafted datagram and an IPv6 pair."""
    cap = Capture()
    cap.label(HARNESS, "harness peer")
    cap.label(IUT, "IUT host 1")
    request = STUN(
        type=0x0001,
        key=KEY,
        attributes=[
            attr.Username(username=b"iut:harness"),
            attr.Priority(priority=1853817087),
            attr.IceControlling(tiebreaker=0x1122334455667788),
            attr.UseCandidate(),
            attr.MessageIntegrity(),
            attr.Fingerprint(),
        ],
    )
    success = STUN(
        type=0x0101,
        key=KEY,
        transaction_id=request.transaction_id,
        attributes=[
            attr.XorMappedAddress(family=1, port=HARNESS[1], address=HARNESS[0]),
            attr.MessageIntegrity(),
            attr.Fingerprint(),
        ],
    )
    conflict = STUN(
        type=0x0111,
        key=KEY,
        attributes=[ErrorCode(487, "Role Conflict"), attr.MessageIntegrity(), attr.Fingerprint()],
    )
    bind = STUN(type=0x0009, attributes=[attr.ChannelNumber(channel=0x4001), attr.Fingerprint()])
    channel = ChannelData(channel=0x4001, data=b"hello relay")
    crafted = STUN(type=0x0001, key=KEY, attributes=[attr.MessageIntegrity(hmac=b"\x00" * 20), attr.Fingerprint()])
    ipv6 = STUN(type=0x0001, attributes=[attr.Fingerprint()])
    rows: list[tuple[tuple[str, int], tuple[str, int], bytes, str, str, str]] = [
        (HARNESS, IUT, bytes(request), "out", "", "peer"),
        (IUT, HARNESS, bytes(success), "in", "", "peer"),
        (IUT, HARNESS, bytes(conflict), "in", "", "peer"),
        (TURN_CLIENT, TURN_SERVER, bytes(bind), "in", "", "turn"),
        (TURN_CLIENT, TURN_SERVER, bytes(channel), "in", "", "turn"),
        (HARNESS, IUT, bytes(crafted), "out", "crafted: bad MI <&>", "peer"),
        (HARNESS6, IUT6, bytes(ipv6), "out", "", "peer6"),
        (IUT6, HARNESS6, bytes(success), "in", "", "peer6"),
    ]
    for i, (src, dst, data, direction, note, endpoint) in enumerate(rows):
        cap.record(src, dst, data, direction, note=note, endpoint=endpoint, time=T0 + i * 0.0125)  # type: ignore[arg-type]
    return cap


def test_capture_record_keeps_order_labels_and_since() -> None:
    cap = _exchange()
    assert len(cap) == 8
    assert [d.direction for d in cap.datagrams][:3] == ["out", "in", "in"]
    assert cap.labels[IUT] == "IUT host 1"
    assert len(cap.since(T0 + 0.05)) == 4
    first = cap.datagrams[0]
    assert isinstance(first, Datagram) and first.endpoint == "peer" and not first.crafted
    assert cap.datagrams[5].crafted


def test_capture_record_stamps_wall_clock_and_cuts_ipv6_socket_address() -> None:
    cap = Capture()
    d = cap.record(("::1", 5000, 0, 0), ("::1", 6000), b"x", "in")
    assert d.src == ("::1", 5000) and d.time > T0
    assert format_address(d.src) == "[::1]:5000"
    with pytest.raises(ValueError, match="direction"):
        cap.record(HARNESS, IUT, b"", "sideways")  # type: ignore[arg-type]


def test_capture_record_is_thread_safe() -> None:
    cap = Capture()
    threads_n, per_thread = 8, 500

    def worker(n: int) -> None:
        for i in range(per_thread):
            cap.record(("127.0.0.1", 1000 + n), IUT, i.to_bytes(2, "big"), "out")
            if i % 50 == 0:
                assert len(cap.datagrams) <= threads_n * per_thread

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(cap) == threads_n * per_thread
    for n in range(threads_n):
        mine = [d.data for d in cap.datagrams if d.src[1] == 1000 + n]
        assert mine == [i.to_bytes(2, "big") for i in range(per_thread)]


@pytest.mark.parametrize("suffix", [".pcap", ".pcapng"])
def test_write_pcap_reads_back_with_same_payloads_and_times(tmp_path: Path, suffix: str) -> None:
    cap = _exchange()
    path = write_pcap(cap, tmp_path / f"case{suffix}")
    packets = rdpcap(str(path))
    assert len(packets) == len(cap)
    for pkt, d in zip(packets, cap.datagrams, strict=True):
        assert bytes(pkt[Raw].load) == d.data
        assert abs(float(pkt.time) - d.time) < 1e-6
        assert (pkt[UDP].sport, pkt[UDP].dport) == (d.src[1], d.dst[1])
        net = pkt[IPv6] if ":" in d.src[0] else pkt[IP]
        assert (net.src, net.dst) == (d.src[0], d.dst[0])
    # The captured bytes are intact: integrity and fingerprint still verify.
    first = bytes(packets[0][Raw].load)
    assert check_integrity(first, KEY) is None and check_fingerprint(first) is None
    if suffix == ".pcapng":
        assert packets[5].comments == [b"crafted: bad MI <&>"]
        assert packets[0].direction == 2 and packets[1].direction == 1


def test_write_pcap_of_nothing_is_a_readable_file(tmp_path: Path) -> None:
    for name in ("empty.pcap", "empty.pcapng"):
        path = write_pcap([], tmp_path / name)
        assert path.stat().st_size > 0
        assert len(rdpcap(str(path))) == 0


def test_tshark_decode_as_only_for_channeldata_without_prior_stun() -> None:
    cap = _exchange()
    assert tshark_decode_as(cap) == []  # the ChannelBind came first on that pair
    lone = Capture()
    lone.record(HARNESS, ("127.0.0.9", 51234), bytes(ChannelData(channel=0x4000, data=b"x")), "out", time=T0)
    assert tshark_decode_as(lone) == ["-d", "udp.port==51234,stun"]


def _tshark(*args: str) -> list[list[str]]:
    tshark = shutil.which("tshark")
    assert tshark is not None
    out = subprocess.run([tshark, *args], capture_output=True, text=True, timeout=60, check=True).stdout
    return [line.split("\t") for line in out.splitlines()]


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
@pytest.mark.parametrize("suffix", [".pcap", ".pcapng"])
def test_write_pcap_decodes_as_stun_in_tshark_on_any_port(tmp_path: Path, suffix: str) -> None:
    path = write_pcap(_exchange(), tmp_path / f"case{suffix}")
    rows = _tshark(
        "-r", str(path), "-T", "fields", "-e", "frame.number", "-e", "stun.type", "-e", "stun.att.error",
        "-e", "stun.channel", "-e", "frame.protocols", "-e", "stun.att.error.class",
    )  # fmt: skip
    assert len(rows) == 8
    types = [r[1] for r in rows]
    assert types[:4] == ["0x0001", "0x0101", "0x0111", "0x0009"]
    assert types[5:] == ["0x0001", "0x0001", "0x0101"]
    assert (rows[2][5], rows[2][2]) == ("4", "87")  # ERROR-CODE 487 as class and number
    assert rows[4][3] == "0x4001" and ":stun" in rows[4][4]  # ChannelData decoded after the ChannelBind
    assert all(":stun" in r[4] for r in rows)
    assert rows[6][4].startswith("eth:ethertype:ipv6:udp")


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
def test_tshark_decode_as_makes_a_lone_channeldata_decode(tmp_path: Path) -> None:
    lone = Capture()
    lone.record(HARNESS, ("127.0.0.9", 51234), bytes(ChannelData(channel=0x4000, data=b"x")), "out", time=T0)
    path = write_pcap(lone, tmp_path / "lone.pcap")
    assert _tshark("-r", str(path), "-T", "fields", "-e", "stun.channel") == [[""]]
    assert _tshark("-r", str(path), *tshark_decode_as(lone), "-T", "fields", "-e", "stun.channel") == [["0x4000"]]


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
def test_write_pcapng_carries_note_direction_and_endpoint_to_tshark(tmp_path: Path) -> None:
    path = write_pcap(_exchange(), tmp_path / "case.pcapng")
    rows = _tshark(
        "-r", str(path), "-T", "fields", "-e", "frame.comment", "-e", "frame.packet_flags_direction",
        "-e", "frame.interface_name",
    )  # fmt: skip
    assert rows[5] == ["crafted: bad MI <&>", "0x00000002", "peer"]
    assert rows[1][1:] == ["0x00000001", "peer"]
    assert rows[3][2] == "turn"


def test_describe_names_type_txid_and_key_attributes() -> None:
    cap = _exchange()
    data = [d.data for d in cap.datagrams]
    txid = data[0][8:12].hex()
    assert describe(data[0]) == f"Binding request {txid} PRIORITY=1853817087 ICE-CONTROLLING USE-CANDIDATE"
    assert describe(data[2]).startswith("Binding error response ") and describe(data[2]).endswith(" 487")
    assert describe(data[3]).endswith("CHANNEL-NUMBER=0x4001")
    assert describe(data[4]) == "ChannelData 0x4001 len=11"
    assert describe(b"\x80\x00garbage") == "rtp 9 bytes"
    assert describe(b"\x00\x01\x00") == "stun 3 bytes"


def _parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    return root


def test_render_ladder_is_valid_svg_with_lanes_arrows_and_labels() -> None:
    cap = _exchange()
    svg = render_ladder(cap, title="ICE-CHECK-1 <role conflict> & more")
    root = _parse(svg)
    texts = ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]
    assert "ICE-CHECK-1 <role conflict> & more" in texts
    lanes = root.findall(f".//{SVG}g[@class='lane']")
    lane_titles = [lane.findtext(f"{SVG}title") for lane in lanes]
    # Harness lanes first (order of appearance), then the IUT's.
    assert lane_titles == [
        "harness peer",
        "harness turn",
        "harness peer6",
        "IUT host 1",
        "127.0.0.3:41000",
        "[::1]:50006",
    ]
    # Two distinct lanes for ::1 on different ports.
    assert len(lanes) == 6
    arrows = [g for g in root.iter(f"{SVG}g") if (g.get("class") or "").startswith("datagram")]
    assert len(arrows) == len(cap)
    assert [g.get("class") for g in arrows][5] == "datagram out crafted"
    crafted_line = arrows[5].find(f"{SVG}line")
    assert crafted_line is not None and crafted_line.get("stroke-dasharray")
    assert "crafted: bad MI <&>" in texts
    assert any(t.startswith("Binding error response") and t.endswith("487") for t in texts)
    assert "0.0 ms" in texts and "12.5 ms" in texts
    colours = {g.find(f"{SVG}line").get("stroke") for g in arrows if g.find(f"{SVG}line") is not None}  # type: ignore[union-attr]
    assert len(colours) == 3  # harness, IUT, crafted
    tooltip = arrows[0].findtext(f"{SVG}title") or ""
    assert "STUN Binding request txid=" in tooltip and "USE-CANDIDATE" in tooltip


def test_render_ladder_caps_arrows_and_honours_given_lanes() -> None:
    cap = Capture()
    for i in range(450):
        cap.record(HARNESS, IUT, bytes(STUN(type=0x0001)), "out" if i % 2 else "in", time=T0 + i)
    root = _parse(render_ladder(cap, max_arrows=400, lanes=[IUT]))
    arrows = [g for g in root.iter(f"{SVG}g") if (g.get("class") or "").startswith("datagram")]
    assert len(arrows) == 400
    assert any("".join(t.itertext()) == "+50 more datagrams not drawn" for t in root.iter(f"{SVG}text"))
    lane_titles = [lane.findtext(f"{SVG}title") for lane in root.findall(f".//{SVG}g[@class='lane']")]
    assert lane_titles == ["127.0.0.2:50000", "127.0.0.1:40000"]


def test_render_ladder_survives_empty_hostile_and_self_addressed_input() -> None:
    _parse(render_ladder([]))
    cap = Capture()
    cap.label(HARNESS, "peer \x00 <script>alert(1)</script>")
    cap.record(HARNESS, HARNESS, b"\x00\x01\x00\x08" + b"\x21\x12\xa4\x42" + b"\xff" * 20, "out", note="bad\x07len")
    cap.record(HARNESS, IUT, b"\xff" * 30, "out", note="]]> --> <!--")
    cap.record(IUT, HARNESS, b"", "in")
    svg = render_ladder(cap, title="\x01<t>")
    root = _parse(svg)
    assert "<script>" not in svg
    assert len([g for g in root.iter(f"{SVG}g") if (g.get("class") or "").startswith("datagram")]) == 3


def test_render_messages_lists_decoded_datagrams() -> None:
    rows = render_messages(_exchange())
    assert len(rows) == 8
    first = rows[0]
    assert first["direction"] == "out" and first["src"] == "127.0.0.1:40000" and first["dst_label"] == "IUT host 1"
    assert first["summary"].startswith("STUN Binding request txid=")
    assert "USE-CANDIDATE" in first["show"] and "MESSAGE-INTEGRITY" in first["show"]
    assert rows[1]["offset_ms"] == pytest.approx(12.5, abs=1e-3)
    assert rows[4]["kind"] == "channeldata" and rows[4]["label"] == "ChannelData 0x4001 len=11"
    assert rows[5]["note"] == "crafted: bad MI <&>"
    assert rows[6]["src"] == "[::1]:40006" and rows[6]["src_label"] == "harness peer6"
