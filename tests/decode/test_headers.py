"""The batch header decoder: every link type and header variant, hostile frames, and a
differential check against tshark on every shared capture."""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_RR
from scapy.layers.inet6 import (
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
)
from scapy.layers.l2 import ARP, CookedLinux, Dot1AD, Dot1Q, Ether
from scapy.packet import Packet, Raw

from monitor.capture import CaptureError, FrameBatch
from monitor.decode.headers import STATUS_REASONS, PacketTable, decode_headers
from monitor.pipeline import format_ip
from tests.support.tshark import FlowTuple, tshark_flow_counts


def batch_of(frames: list[bytes], linktype: int = 1) -> FrameBatch:
    data = b"".join(frames)
    offsets = np.cumsum([0] + [len(f) for f in frames[:-1]]).astype(np.int64)
    n = len(frames)
    return FrameBatch(
        buffer=np.frombuffer(data, np.uint8) if data else np.zeros(0, np.uint8),
        offsets=offsets if n else np.zeros(0, np.int64),
        caplens=np.array([len(f) for f in frames], np.int32),
        wirelens=np.array([len(f) for f in frames], np.int32),
        timestamps_ns=np.arange(n, dtype=np.int64) * 1_000_000,
        linktypes=np.full(n, linktype, np.int32),
        source="test",
    )


def decode_one(packet: Packet | bytes, linktype: int = 1) -> tuple[PacketTable, int]:
    raw = bytes(packet)
    return decode_headers(batch_of([raw], linktype)), 0


def flow_of(table: PacketTable, i: int) -> FlowTuple:
    v = int(table.ip_version[i])
    return (
        format_ip(v, int(table.src_ip_hi[i]), int(table.src_ip_lo[i])),
        format_ip(v, int(table.dst_ip_hi[i]), int(table.dst_ip_lo[i])),
        int(table.protocol[i]),
        int(table.src_port[i]),
        int(table.dst_port[i]),
    )


TCP_PACKET = IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=40000, dport=2575, flags="PA") / b"MSH"


@pytest.mark.parametrize(
    ("frame", "linktype"),
    [
        (Ether(src="00:1b:63:00:00:01", dst="00:1b:63:00:00:02") / TCP_PACKET, 1),
        (Ether() / Dot1Q(vlan=12) / TCP_PACKET, 1),
        (Ether() / Dot1AD(vlan=100) / Dot1Q(vlan=12) / TCP_PACKET, 1),
        (CookedLinux(proto=0x0800) / TCP_PACKET, 113),
        (b"\x02\x00\x00\x00" + bytes(TCP_PACKET), 0),
        (b"\x00\x00\x00\x02" + bytes(TCP_PACKET), 108),
        (TCP_PACKET, 101),
        (TCP_PACKET, 228),
        (TCP_PACKET, 12),
    ],
    ids=["ethernet", "vlan", "qinq", "sll", "null", "loop", "raw", "ipv4", "raw-12"],
)
def test_every_link_type_yields_the_same_tcp_header(frame: Packet | bytes, linktype: int) -> None:
    table, i = decode_one(frame, linktype)
    assert table.status[i] == 0
    assert flow_of(table, i) == ("10.0.0.1", "10.0.0.2", 6, 40000, 2575)
    payload_start = int(table.payload_offset[i])
    assert bytes(batch_of([bytes(frame)]).buffer[payload_start : payload_start + 3]) == b"MSH"
    assert table.payload_length[i] == 3


def test_sll2_header_gives_the_source_mac_and_protocol() -> None:
    sll2 = (
        (0x0800).to_bytes(2, "big")
        + b"\x00\x00"
        + (3).to_bytes(4, "big")
        + (1).to_bytes(2, "big")
        + b"\x00\x06"
        + bytes.fromhex("001b63000001")
        + b"\x00\x00"
    )
    table, i = decode_one(sll2 + bytes(TCP_PACKET), 276)
    assert table.status[i] == 0
    assert table.src_mac[i] == 0x001B63000001
    assert flow_of(table, i)[2:] == (6, 40000, 2575)


def test_vlan_id_is_the_outer_tag() -> None:
    table, i = decode_one(Ether() / Dot1AD(vlan=100) / Dot1Q(vlan=12) / TCP_PACKET)
    assert table.vlan[i] == 100


def test_ipv4_options_are_skipped() -> None:
    packet = (
        Ether()
        / IP(src="10.0.0.1", dst="10.0.0.2", options=[IPOption_RR()])
        / UDP(sport=5000, dport=53)
        / b"x"
    )
    table, i = decode_one(packet)
    assert flow_of(table, i) == ("10.0.0.1", "10.0.0.2", 17, 5000, 53)
    assert table.payload_length[i] == 1


def test_ethernet_padding_is_not_payload() -> None:
    packet = Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(flags="A")
    padded = bytes(packet) + b"\x00" * 6  # short frames are padded to 60 bytes on the wire
    table, i = decode_one(padded)
    assert table.payload_length[i] == 0


def test_fragments_first_has_ports_later_ones_do_not() -> None:
    datagram = IP(src="10.0.0.1", dst="10.0.0.2", id=7) / UDP(sport=1, dport=2) / (b"a" * 3000)
    from scapy.layers.inet import fragment

    frames = [bytes(Ether() / f) for f in fragment(datagram, fragsize=1000)]
    table = decode_headers(batch_of(frames))
    assert list(table.fragment) == [1, 2, 2, 2][: len(frames)]
    assert (table.src_port[0], table.dst_port[0]) == (1, 2)
    assert all(table.src_port[1:] == 0)
    assert all(table.status == 0)


def test_ipv6_extension_headers_are_walked_to_the_transport() -> None:
    packet = (
        Ether()
        / IPv6(src="fe80::1", dst="fe80::2")
        / IPv6ExtHdrHopByHop()
        / IPv6ExtHdrRouting()
        / IPv6ExtHdrDestOpt()
        / TCP(sport=1234, dport=443)
    )
    table, i = decode_one(packet)
    assert flow_of(table, i) == ("fe80::1", "fe80::2", 6, 1234, 443)


def test_ipv6_later_fragment_has_no_ports() -> None:
    packet = (
        Ether()
        / IPv6(src="fe80::1", dst="fe80::2")
        / IPv6ExtHdrFragment(offset=100, nh=17)
        / Raw(b"z" * 16)
    )
    table, i = decode_one(packet)
    assert table.fragment[i] == 2
    assert table.protocol[i] == 17
    assert table.src_port[i] == 0


def test_arp_gives_sender_and_target_addresses() -> None:
    packet = Ether(src="00:1b:63:00:00:01") / ARP(
        op=2, hwsrc="00:1b:63:00:00:01", psrc="10.0.0.7", pdst="10.0.0.1"
    )
    table, i = decode_one(packet)
    assert table.arp_opcode[i] == 2
    assert format_ip(4, 0, int(table.src_ip_lo[i])) == "10.0.0.7"
    assert format_ip(4, 0, int(table.dst_ip_lo[i])) == "10.0.0.1"


def test_icmp_has_a_type_and_no_ports() -> None:
    table, i = decode_one(Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / ICMP(type=8))
    assert table.icmp_type[i] == 8
    assert flow_of(table, i)[2:] == (1, 0, 0)


@pytest.mark.parametrize(
    ("cut", "reason"),
    [(10, "truncated_link_header"), (20, "truncated_ipv4"), (40, "truncated_tcp")],
)
def test_truncated_frames_keep_what_was_decoded_and_name_the_reason(cut: int, reason: str) -> None:
    frame = bytes(Ether() / TCP_PACKET)[:cut]
    table, i = decode_one(frame)
    assert STATUS_REASONS[table.status[i]] == reason


def test_unsupported_link_type_is_a_status_not_an_error() -> None:
    table, i = decode_one(bytes(TCP_PACKET), 272)
    assert STATUS_REASONS[table.status[i]] == "unsupported_linktype"


@settings(max_examples=300, deadline=None)
@given(
    frames=st.lists(st.binary(min_size=0, max_size=120), min_size=1, max_size=20),
    linktype=st.sampled_from([0, 1, 12, 101, 108, 113, 228, 229, 276, 9999]),
)
def test_random_frames_never_raise_and_stay_in_bounds(frames: list[bytes], linktype: int) -> None:
    batch = batch_of(frames, linktype)
    table = decode_headers(batch)
    ends = batch.offsets + batch.caplens
    has = table.payload_length > 0
    assert np.all(table.payload_offset[has] + table.payload_length[has] <= ends[has])
    assert np.all(table.status < len(STATUS_REASONS))


# ---------------------------------------------------------------- tshark differential
def santinel_flow_counts(capture: Path) -> Counter[FlowTuple]:
    from monitor.capture.files import open_capture

    counts: Counter[FlowTuple] = Counter()
    for batch in open_capture(capture):
        table = decode_headers(batch)
        for i in np.flatnonzero(table.ip_version > 0).tolist():
            key = flow_of(table, i)
            if key[2] in (1, 58):
                key = (*key[:3], 0, 0)
            counts[key] += 1
    return counts


def _manifest_captures() -> list[str]:
    manifest = Path(__file__).resolve().parents[2].parent / "shared/data/pcaps/MANIFEST.tsv"
    if not manifest.is_file():
        return ["<shared captures absent>"]
    with manifest.open() as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    return [r["path"] for r in rows if r["linktype"] != "Nordic BLE"]


@pytest.mark.shared
@pytest.mark.parametrize("relative", _manifest_captures())
def test_flow_counts_equal_tsharks_on_every_shared_capture(
    shared_pcaps: Path, relative: str
) -> None:
    capture = shared_pcaps / relative
    try:
        ours = santinel_flow_counts(capture)
    except CaptureError as error:
        pytest.fail(f"supported capture not read: {error}")
    reference = tshark_flow_counts(capture)
    differences = {
        key: (ours.get(key, 0), reference.get(key, 0))
        for key in set(ours) | set(reference)
        if ours.get(key, 0) != reference.get(key, 0)
    }
    assert not differences, f"(santinel, tshark) per flow differ: {list(differences.items())[:5]}"


def test_wire_payload_is_known_when_the_snaplen_cut_it_off() -> None:
    frame = bytes(Ether() / TCP_PACKET / (b"x" * 100))[:54]
    table, i = decode_one(frame)
    assert table.payload_length[i] == 0
    assert table.payload_wire_length[i] == 103
    assert table.tcp_flags[i] == 0x18


def test_the_rows_of_a_table_are_the_headers_of_those_frames_alone() -> None:
    """A batch cut in parts (a flow's long silence) keeps the headers decoded for it."""
    frames = [
        bytes(Ether() / IP(src="10.0.0.1", dst=f"10.0.0.{i}") / UDP(sport=i, dport=53) / (b"x" * i))
        for i in range(2, 9)
    ]
    batch = batch_of(frames)
    table = decode_headers(batch)
    for start, end in ((0, 3), (3, 7), (2, 2)):
        part = table.rows(start, end)
        alone = decode_headers(batch.frames(start, end))
        for column in fields(PacketTable):
            name = column.name
            assert np.array_equal(getattr(part, name), getattr(alone, name)), name
        assert len(part) == end - start
