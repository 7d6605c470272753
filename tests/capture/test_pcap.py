"""Classic pcap: byte orders, µs/ns magic, link types, damage, batches (monitor/capture/pcap.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.utils import EDecimal, PcapWriter, wrpcap

from capture.pcapbuild import (
    Frame,
    as_rows,
    ether_frame,
    pcap_bytes,
    read_all,
    tshark_frames,
    write,
)
from monitor.capture import CaptureError
from monitor.capture.files import open_capture

# Explicit addresses: scapy would otherwise resolve (ARP) the destination MAC on the network.
ETH = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")

# Timestamps with every nanosecond digit set, so a lost digit shows.
FRAMES = [
    Frame(1_700_000_000_123_456_789, ether_frame(0, 60)),
    Frame(1_700_000_001_000_000_001, ether_frame(1, 1514)),
    Frame(1_700_000_002_999_999_999, ether_frame(2, 64), wirelen=9000),
    Frame(4_000_000_000_000_000_007, ether_frame(3, 42)),  # seconds past 2^31: unsigned field
]


def _truncate_us(ns: int) -> int:
    return ns // 1000 * 1000


@pytest.mark.parametrize("big", [False, True], ids=["little-endian", "big-endian"])
@pytest.mark.parametrize("nano", [False, True], ids=["usec", "nsec"])
def test_frames_lengths_and_timestamps_come_out_exactly(
    tmp_path: Path, big: bool, nano: bool
) -> None:
    path = write(tmp_path / "f.pcap", pcap_bytes(FRAMES, big=big, nano=nano))
    r = read_all(path)
    assert r.error is None
    assert r.frames == [f.data for f in FRAMES]
    assert r.caplens == [len(f.data) for f in FRAMES]
    assert r.wirelens == [f.wire for f in FRAMES]
    expected_ts = [f.ts_ns if nano else _truncate_us(f.ts_ns) for f in FRAMES]
    assert r.timestamps == expected_ts
    assert r.linktypes == [1] * len(FRAMES)
    # Wireshark reads the same file the same way.
    rows, _ = tshark_frames(path)
    assert as_rows(r) == rows


@pytest.mark.parametrize("linktype", [0, 1, 12, 14, 101, 108, 113, 228, 229, 276])
def test_every_supported_link_type_is_read_and_reported_per_frame(
    tmp_path: Path, linktype: int
) -> None:
    path = write(tmp_path / "f.pcap", pcap_bytes(FRAMES[:2], linktype))
    r = read_all(path)
    assert r.error is None
    assert r.linktypes == [linktype, linktype]
    assert r.frames == [f.data for f in FRAMES[:2]]


def test_fcs_bits_above_the_link_type_field_are_ignored(tmp_path: Path) -> None:
    # Bits 28-31 of the link-type field say "4-byte FCS present" (pcap spec, LinkType).
    path = write(tmp_path / "f.pcap", pcap_bytes(FRAMES[:1], 1 | 0x14000000))
    assert read_all(path).linktypes == [1]


@pytest.mark.parametrize(
    ("encap", "linktype"),
    [
        ("ether", 1),
        ("null", 0),
        ("loop", 108),
        ("linux-sll", 113),
        ("linux-sll2", 276),
        ("rawip", 101),
        ("rawip4", 228),
        ("rawip6", 229),
    ],
)
def test_editcap_written_link_types_are_recognised(
    tmp_path: Path, encap: str, linktype: int
) -> None:
    src = write(tmp_path / "src.pcap", pcap_bytes(FRAMES[:3]))
    dst = tmp_path / f"{encap}.pcap"
    subprocess.run(["editcap", "-T", encap, str(src), str(dst)], check=True, capture_output=True)
    r = read_all(dst)
    assert r.error is None
    assert r.linktypes == [linktype] * 3
    assert r.frames == [f.data for f in FRAMES[:3]]


def test_nanosecond_file_written_by_tcpdump_keeps_nanoseconds(tmp_path: Path) -> None:
    src = write(tmp_path / "src.pcap", pcap_bytes(FRAMES, nano=True))
    dst = tmp_path / "tcpdump-nano.pcap"
    subprocess.run(
        ["tcpdump", "-r", str(src), "--time-stamp-precision=nano", "-w", str(dst)],
        check=True,
        capture_output=True,
    )
    assert dst.read_bytes()[:4] == b"\x4d\x3c\xb2\xa1"
    assert read_all(dst).timestamps == [f.ts_ns for f in FRAMES]


def test_editcap_nsecpcap_conversion_keeps_nanoseconds(tmp_path: Path) -> None:
    frames = [Frame(1_600_000_000_000_000_123 + i, ether_frame(i)) for i in range(5)]
    src = write(tmp_path / "src.pcap", pcap_bytes(frames, nano=True, big=True))
    dst = tmp_path / "dst.pcap"
    subprocess.run(["editcap", "-F", "nsecpcap", str(src), str(dst)], check=True)
    r = read_all(dst)
    assert r.timestamps == [f.ts_ns for f in frames]
    assert r.frames == [f.data for f in frames]


@pytest.mark.parametrize("endianness", ["<", ">"])
@pytest.mark.parametrize("nano", [False, True])
def test_scapy_written_pcap_is_read(tmp_path: Path, endianness: str, nano: bool) -> None:
    pkts = []
    for i in range(10):
        p = ETH / IP(src="192.0.2.2", dst="192.0.2.1") / UDP(dport=1000 + i) / (b"x" * i)
        p.time = EDecimal("1700000000.123456789") + i
        pkts.append(p)
    path = tmp_path / "scapy.pcap"
    with PcapWriter(str(path), endianness=endianness, nano=nano) as w:
        for p in pkts:
            w.write(p)
    r = read_all(path)
    assert r.error is None
    assert r.frames == [bytes(p) for p in pkts]
    rows, _ = tshark_frames(path)
    assert as_rows(r) == rows
    # scapy rounds to the nearest microsecond when it writes a microsecond file.
    first = 1_700_000_000_123_456_789 if nano else 1_700_000_000_123_457_000
    assert r.timestamps[0] == first


def test_scapy_wrpcap_default_file_is_read(tmp_path: Path) -> None:
    pkts = [ETH / IP(src="192.0.2.2", dst="192.0.2.1") / UDP() for _ in range(3)]
    wrpcap(str(tmp_path / "w.pcap"), pkts)
    assert len(read_all(tmp_path / "w.pcap").frames) == 3


def test_unsupported_link_type_in_header_names_number_and_name(tmp_path: Path) -> None:
    path = write(tmp_path / "ble.pcap", pcap_bytes(FRAMES[:2], 272))
    r = read_all(path)
    assert r.frames == []
    assert isinstance(r.error, CaptureError)
    assert "unsupported link type 272 (Nordic BLE)" in str(r.error)
    assert str(r.error).startswith(str(path))


def test_unknown_unsupported_link_type_still_names_number(tmp_path: Path) -> None:
    path = write(tmp_path / "x.pcap", pcap_bytes(FRAMES[:1], 60000))
    assert "unsupported link type 60000 (unknown)" in str(read_all(path).error)


def _record_starts(frames: list[Frame]) -> list[int]:
    starts, pos = [], 24
    for f in frames:
        starts.append(pos)
        pos += 16 + len(f.data)
    return starts


@pytest.mark.parametrize("nano", [False, True])
def test_truncation_at_every_byte_yields_good_frames_then_error_with_offset(
    tmp_path: Path, nano: bool
) -> None:
    frames = [Frame(1_000_000_000 * i + i, ether_frame(i, 40 + i)) for i in range(6)]
    data = pcap_bytes(frames, nano=nano)
    starts = [*_record_starts(frames), len(data)]
    path = tmp_path / "cut.pcap"
    for cut in range(len(data)):
        path.write_bytes(data[:cut])
        r = read_all(path, batch_frames=4)
        if cut < 24:
            assert r.frames == []
            assert isinstance(r.error, CaptureError), cut
            continue
        complete = sum(1 for i, s in enumerate(starts[:-1]) if starts[i + 1] <= cut)
        assert r.frames == [f.data for f in frames[:complete]], cut
        if cut in starts:
            assert r.error is None, cut
        else:
            assert isinstance(r.error, CaptureError), cut
            assert r.error.offset == starts[complete], cut
            assert "truncated" in r.error.reason


def test_absurd_captured_length_is_an_error_at_its_offset(tmp_path: Path) -> None:
    frames = [Frame(0, ether_frame(0)), Frame(1, ether_frame(1)), Frame(2, ether_frame(2))]
    data = bytearray(pcap_bytes(frames))
    second = _record_starts(frames)[1]
    data[second + 8 : second + 12] = (1 << 20).to_bytes(4, "little")
    r = read_all(write(tmp_path / "bad.pcap", bytes(data)))
    assert r.frames == [frames[0].data]
    assert isinstance(r.error, CaptureError)
    assert r.error.offset == second
    assert "1048576" in r.error.reason


def test_small_batches_give_the_same_frames_as_one_batch(tmp_path: Path) -> None:
    frames = [Frame(i * 1000, ether_frame(i, 60 + i % 7)) for i in range(1000)]
    path = write(tmp_path / "many.pcap", pcap_bytes(frames))
    whole = read_all(path)
    split = read_all(path, batch_frames=7)
    assert split.batches == 143
    assert whole.batches == 1
    assert as_rows(split) == as_rows(whole)
    assert split.frames == whole.frames == [f.data for f in frames]


def test_batch_buffer_is_a_read_only_view_of_the_file_not_a_copy(tmp_path: Path) -> None:
    frames = [Frame(i, ether_frame(i)) for i in range(10)]
    path = write(tmp_path / "v.pcap", pcap_bytes(frames))
    batches = list(open_capture(path, batch_frames=3))
    first = batches[0].buffer
    assert first.shape[0] == path.stat().st_size
    assert not first.flags.writeable
    assert all(np.shares_memory(b.buffer, first) for b in batches)
    assert batches[0].offsets.tolist() == [40, 116, 192]
