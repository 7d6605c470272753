"""pcapng: sections, interfaces, tsresol/tsoffset, block kinds, damage (capture/pcapng.py)."""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.utils import EDecimal, PcapNgWriter

from capture.pcapbuild import (
    Frame,
    as_rows,
    block,
    epb,
    ether_frame,
    idb,
    isb,
    nrb,
    pb,
    pcap_bytes,
    read_all,
    shb,
    spb,
    tshark_frames,
    write,
)
from monitor.capture import CaptureError

S = 1_000_000_000
# Explicit addresses: scapy would otherwise resolve (ARP) the destination MAC on the network.
ETH = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")


def test_sections_with_mixed_byte_orders_and_link_types(tmp_path: Path) -> None:
    f = [ether_frame(i, 50 + 10 * i) for i in range(6)]
    data = (
        shb()
        + idb(1)
        + idb(113, tsresol=9)
        + epb(0, 1_700_000_000_000_001, f[0])
        + epb(1, 1_700_000_000_000_000_002, f[1])
        # Second section, big-endian: interface numbering starts again.
        + shb(big=True)
        + idb(101, big=True, tsresol=3)
        + epb(0, 1_700_000_000_123, f[2], big=True)
        + idb(276, big=True)
        + epb(1, 1_700_000_000_000_004, f[3], big=True, wirelen=1000)
        # Third section, little-endian again.
        + shb()
        + idb(0)
        + epb(0, 5, f[4])
        + epb(0, 6, f[5])
    )
    path = write(tmp_path / "multi.pcapng", data)
    r = read_all(path)
    assert r.error is None
    assert r.frames == f
    assert r.linktypes == [1, 113, 101, 276, 0, 0]
    assert r.timestamps == [
        1_700_000_000 * S + 1000,
        1_700_000_000 * S + 2,
        1_700_000_000 * S + 123_000_000,
        1_700_000_000 * S + 4000,
        5000,
        6000,
    ]
    assert r.wirelens[3] == 1000
    rows, _ = tshark_frames(path)
    assert as_rows(r) == rows


@pytest.mark.parametrize("linktype", [0, 1, 12, 14, 101, 108, 113, 228, 229, 276])
def test_every_supported_link_type_on_an_interface_reads_like_tshark(
    tmp_path: Path, linktype: int
) -> None:
    frames = [ether_frame(i, 40 + 9 * i) for i in range(4)]
    data = shb(big=linktype % 2 == 0) + idb(linktype, big=linktype % 2 == 0)
    data += b"".join(epb(0, 1_000 + i, f, big=linktype % 2 == 0) for i, f in enumerate(frames))
    path = write(tmp_path / "lt.pcapng", data)
    r = read_all(path)
    assert r.error is None
    assert r.linktypes == [linktype] * 4
    assert r.frames == frames
    rows, _ = tshark_frames(path)
    assert as_rows(r) == rows


@pytest.mark.parametrize(
    ("tsresol", "units", "expected_ns"),
    [
        (None, 1_234_567_890_123_456, 1_234_567_890_123_456_000),  # default: microseconds
        (0, 1_700_000_000, 1_700_000_000 * S),  # seconds
        (3, 1_700_000_000_123, 1_700_000_000_123_000_000),  # milliseconds
        (6, 1_700_000_000_654_321, 1_700_000_000_654_321_000),
        (9, 1_700_000_000_987_654_321, 1_700_000_000_987_654_321),
        (0x80 | 10, (1_700_000_000 << 10) + 512, 1_700_000_000 * S + 500_000_000),  # 2^-10
        (0x80 | 20, (1_700_000_000 << 20) + 1, 1_700_000_000 * S + 953),  # floor(1e9/2^20)
        (0x80 | 30, (1_700_000_000 << 30) + (1 << 29), 1_700_000_000 * S + 500_000_000),
        (0x80 | 0, 1_700_000_000, 1_700_000_000 * S),  # 2^0: seconds
    ],
)
def test_timestamp_resolution_powers_of_10_and_2(
    tmp_path: Path, tsresol: int | None, units: int, expected_ns: int
) -> None:
    data = shb() + idb(1, tsresol=tsresol) + epb(0, units, ether_frame(0))
    path = write(tmp_path / "res.pcapng", data)
    r = read_all(path)
    assert r.error is None
    assert r.timestamps == [expected_ns]
    rows, _ = tshark_frames(path)
    assert as_rows(r) == rows


def test_finer_than_nanosecond_resolution_truncates_to_nanoseconds(tmp_path: Path) -> None:
    # Picoseconds: 10^-12. Exact expected value, floor to the nanosecond.
    units = 10_000_000 * 10**12 + 123_456_789_999  # 64 bits of picoseconds: about 213 days
    data = shb() + idb(1, tsresol=12) + epb(0, units, ether_frame(0))
    r = read_all(write(tmp_path / "ps.pcapng", data))
    assert r.timestamps == [10_000_000 * S + 123_456_789]


@pytest.mark.parametrize("big", [False, True])
@pytest.mark.parametrize("offset", [0, 1_600_000_000, 86_400, -3600])
def test_tsoffset_adds_whole_seconds(tmp_path: Path, big: bool, offset: int) -> None:
    data = (
        shb(big=big)
        + idb(1, big=big, tsresol=9, tsoffset=offset)
        + epb(0, 100_000 * S + 7, ether_frame(0), big=big)
    )
    path = write(tmp_path / "off.pcapng", data)
    r = read_all(path)
    assert r.timestamps == [(100_000 + offset) * S + 7]
    rows, _ = tshark_frames(path)
    assert as_rows(r) == rows


def test_per_interface_resolution_and_offset_in_one_section(tmp_path: Path) -> None:
    data = (
        shb()
        + idb(1, tsresol=3, tsoffset=10)
        + idb(1, tsresol=0x80 | 16)
        + idb(1, tsresol=9, tsoffset=-10)
        + epb(0, 1500, ether_frame(0))
        + epb(1, (20 << 16) + (1 << 15), ether_frame(1))
        + epb(2, 30 * S + 3, ether_frame(2))
    )
    r = read_all(write(tmp_path / "ifs.pcapng", data))
    assert r.timestamps == [11_500_000_000, 20_500_000_000, 20 * S + 3]


def test_simple_and_obsolete_packet_blocks(tmp_path: Path) -> None:
    data = (
        shb()
        + idb(1, snaplen=98)
        + epb(0, 5_000_000, ether_frame(0))
        # SPB: no captured-length field; the data (padded to 100 bytes here) is cut to the
        # snaplen of interface 0 and to the original length.
        + spb(ether_frame(1, 150)[:98], wirelen=150)
        + spb(ether_frame(2, 61), wirelen=61)
        + pb(0, 7_000_000, ether_frame(3, 70), wirelen=80)
    )
    path = write(tmp_path / "spb.pcapng", data)
    r = read_all(path)
    assert r.error is None
    assert r.caplens == [60, 98, 61, 70]
    assert r.wirelens == [60, 150, 61, 80]
    assert r.frames[1] == ether_frame(1, 150)[:98]
    assert r.frames[2] == ether_frame(2, 61)
    assert r.frames[3] == ether_frame(3, 70)
    # SPBs carry no time: they keep the time of the packet before them.
    assert r.timestamps == [5 * S, 5 * S, 5 * S, 7 * S]
    rows, _ = tshark_frames(path)
    assert [(c, w) for _, c, w in rows] == list(zip(r.caplens, r.wirelens, strict=True))
    assert [rows[0][0], rows[3][0]] == [r.timestamps[0], r.timestamps[3]]
    assert rows[1][0] is None and rows[2][0] is None


def test_unknown_and_non_packet_blocks_are_skipped_by_length(tmp_path: Path) -> None:
    data = (
        shb()
        + nrb()
        + idb(1)
        + block(0x40000BAD, b"\x00\x00\x7e\x6b" + b"custom block, do not copy")
        + epb(0, 1, ether_frame(0))
        + block(0x12345678, b"\xff" * 37)
        + isb(0)
        + block(0x0000000A, struct.pack("<II", 0x544C534B, 5) + b"keys\n")  # decryption secrets
        + epb(0, 2, ether_frame(1))
        + block(0x80000001, b"")
    )
    path = write(tmp_path / "blocks.pcapng", data)
    r = read_all(path)
    assert r.error is None
    assert r.frames == [ether_frame(0), ether_frame(1)]
    rows, _ = tshark_frames(path)
    # Wireshark lists the custom block as a record without a time; it is not a frame.
    assert as_rows(r) == [row for row in rows if row[0] is not None]


def test_unsupported_interface_frames_are_left_out_and_reported_after_the_rest(
    tmp_path: Path,
) -> None:
    data = (
        shb()
        + idb(1)
        + idb(272)
        + epb(0, 1, ether_frame(0))
        + epb(1, 2, b"\x01ble")
        + epb(1, 3, b"\x02ble")
        + epb(0, 4, ether_frame(1))
        + shb(big=True)
        + idb(272, big=True)
        + idb(105, big=True)
        + idb(229, big=True)
        + epb(0, 5, b"\x03ble", big=True)
        + epb(1, 6, b"wifi", big=True)
        + epb(2, 7, ether_frame(2), big=True)
    )
    r = read_all(write(tmp_path / "mixed.pcapng", data), batch_frames=2)
    assert r.frames == [ether_frame(0), ether_frame(1), ether_frame(2)]
    assert r.linktypes == [1, 1, 229]
    assert isinstance(r.error, CaptureError)
    msg = str(r.error)
    assert "unsupported link type 105 (IEEE 802.11) (1 frames left out)" in msg
    assert "unsupported link type 272 (Nordic BLE) (3 frames left out)" in msg
    assert "ble" not in msg.replace("Nordic BLE", "")


def test_damage_after_unsupported_frames_reports_both(tmp_path: Path) -> None:
    good = shb() + idb(1) + idb(272) + epb(0, 1, ether_frame(0)) + epb(1, 2, b"\x01ble")
    r = read_all(write(tmp_path / "both.pcapng", good + epb(0, 3, ether_frame(1))[:-9]))
    assert r.frames == [ether_frame(0)]
    assert r.error is not None and r.error.offset == len(good)
    assert r.error.reason.startswith("truncated block")
    assert "unsupported link type 272 (Nordic BLE) (1 frames left out)" in r.error.reason


def test_all_frames_unsupported_gives_only_the_error(tmp_path: Path) -> None:
    data = shb() + idb(272) + epb(0, 1, b"\x01\x02") + epb(0, 2, b"\x03")
    r = read_all(write(tmp_path / "ble.pcapng", data))
    assert r.frames == []
    assert "unsupported link type 272 (Nordic BLE)" in str(r.error)


def _good_file() -> tuple[bytes, list[int], list[int], list[bytes]]:
    """A two-section file; the offsets where blocks start and where packet blocks end."""
    frames = [ether_frame(0, 45), ether_frame(1, 61), ether_frame(2, 47)]
    frames += [ether_frame(3, 50), ether_frame(4, 53)]
    parts = [
        (shb(), False),
        (idb(1, tsresol=9), False),
        (epb(0, 1, frames[0]), True),
        (nrb(), False),
        (epb(0, 2, frames[1]), True),
        (spb(frames[2]), True),
        (shb(big=True), False),
        (idb(113, big=True), False),
        (pb(0, 3, frames[3], big=True), True),
        (epb(0, 4, frames[4], big=True), True),
    ]
    starts, packet_ends, pos = [], [], 0
    for data, is_packet in parts:
        starts.append(pos)
        pos += len(data)
        if is_packet:
            packet_ends.append(pos)
    return b"".join(d for d, _ in parts), starts, packet_ends, frames


def test_truncation_at_every_byte_yields_good_frames_then_error_with_offset(
    tmp_path: Path,
) -> None:
    data, starts, packet_ends, frames = _good_file()
    path = tmp_path / "cut.pcapng"
    for cut in range(len(data)):
        path.write_bytes(data[:cut])
        r = read_all(path, batch_frames=2)
        complete = sum(1 for e in packet_ends if e <= cut)
        assert r.frames == frames[:complete], cut
        if cut in starts and cut > 0:
            assert r.error is None, cut
        else:
            assert isinstance(r.error, CaptureError), cut
            if cut >= 4:
                assert r.error.offset == max(s for s in starts if s <= cut), (cut, str(r.error))


def test_inconsistent_block_length_trailer_is_an_error_after_good_frames(tmp_path: Path) -> None:
    good = shb() + idb(1) + epb(0, 1, ether_frame(0))
    bad = bytearray(epb(0, 2, ether_frame(1)))
    bad[-4:] = struct.pack("<I", len(bad) + 4)
    r = read_all(write(tmp_path / "trailer.pcapng", good + bytes(bad) + epb(0, 3, b"x" * 60)))
    assert r.frames == [ether_frame(0)]
    assert isinstance(r.error, CaptureError)
    assert r.error.offset == len(good)


@pytest.mark.parametrize("blen", [0, 8, 13, 1 << 30])
def test_impossible_block_lengths_are_errors(tmp_path: Path, blen: int) -> None:
    good = shb() + idb(1) + epb(0, 1, ether_frame(0))
    bad = bytearray(epb(0, 2, ether_frame(1)))
    bad[4:8] = struct.pack("<I", blen)
    r = read_all(write(tmp_path / "blen.pcapng", good + bytes(bad)))
    assert r.frames == [ether_frame(0)]
    assert isinstance(r.error, CaptureError)
    assert r.error.offset == len(good)


def test_absurd_captured_length_in_a_block_is_an_error(tmp_path: Path) -> None:
    good = shb() + idb(1) + epb(0, 1, ether_frame(0))
    bad = bytearray(epb(0, 2, ether_frame(1)))
    bad[20:24] = struct.pack("<I", 300_000)
    r = read_all(write(tmp_path / "cap.pcapng", good + bytes(bad)))
    assert r.frames == [ether_frame(0)]
    assert r.error is not None and "300000" in r.error.reason


def test_captured_length_beyond_its_block_is_an_error(tmp_path: Path) -> None:
    good = shb() + idb(1) + epb(0, 1, ether_frame(0))
    bad = bytearray(epb(0, 2, ether_frame(1)))
    bad[20:24] = struct.pack("<I", 200)
    r = read_all(write(tmp_path / "cap.pcapng", good + bytes(bad)))
    assert r.frames == [ether_frame(0)]
    assert r.error is not None and r.error.offset == len(good)


def test_packet_on_undescribed_interface_is_an_error(tmp_path: Path) -> None:
    good = shb() + idb(1) + epb(0, 1, ether_frame(0))
    r = read_all(write(tmp_path / "if.pcapng", good + epb(3, 2, ether_frame(1))))
    assert r.frames == [ether_frame(0)]
    assert r.error is not None and "interface" in r.error.reason
    assert r.error.offset == len(good)


def test_bad_byte_order_magic_in_a_later_section_is_an_error(tmp_path: Path) -> None:
    good = shb() + idb(1) + epb(0, 1, ether_frame(0))
    bad = bytearray(shb())
    bad[8:12] = b"\x00\x11\x22\x33"
    r = read_all(write(tmp_path / "bom.pcapng", good + bytes(bad) + idb(1)))
    assert r.frames == [ether_frame(0)]
    assert r.error is not None and r.error.offset == len(good)


def test_scapy_pcapng_writer_output_matches_tshark(tmp_path: Path) -> None:
    path = tmp_path / "scapy.pcapng"
    w = PcapNgWriter(str(path))
    sent = []
    for i in range(20):
        p = ETH / IP(src="192.0.2.2", dst="192.0.2.7") / UDP(sport=i + 1) / (b"p" * i)
        p.time = EDecimal("1700000000.000001") + EDecimal(i) / 7
        w.write(p)
        sent.append(bytes(p))
    w.close()
    r = read_all(path)
    assert r.error is None
    assert r.frames == sent
    rows, _ = tshark_frames(path)
    assert as_rows(r) == rows


@pytest.mark.parametrize("fmt", ["pcapng", "pcap", "nsecpcap"])
def test_editcap_format_conversions_keep_frames_and_times(tmp_path: Path, fmt: str) -> None:
    frames = [Frame(1_650_000_000 * S + 1_001 * i, ether_frame(i, 60 + i)) for i in range(50)]
    src = write(tmp_path / "src.pcap", pcap_bytes(frames, nano=True))
    dst = tmp_path / f"dst.{fmt}"
    subprocess.run(["editcap", "-F", fmt, str(src), str(dst)], check=True, capture_output=True)
    r = read_all(dst)
    assert r.error is None
    assert r.frames == [f.data for f in frames]
    keep_ns = fmt != "pcap"
    assert r.timestamps == [f.ts_ns if keep_ns else f.ts_ns // 1000 * 1000 for f in frames]
    rows, _ = tshark_frames(dst)
    assert as_rows(r) == rows
