"""Live capture on a veth pair into a private network namespace (monitor/capture/live.py).

Frames are replayed with ``tcpreplay`` from the namespace end of the pair and captured with
``LiveSource`` on the other end. Nothing leaves the pair: the frames are addressed to
made-up MACs and documentation IPs, and the host end has no address.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from netns_support import host_veth

from capture.pcapbuild import Frame, pcap_bytes, write
from monitor.capture import CaptureError, FrameBatch
from monitor.capture.live import LiveSource

pytestmark = pytest.mark.netns

TAG = "sncap"


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@pytest.fixture
def veth() -> Iterator[tuple[str, str, str]]:
    """``(host interface, namespace, namespace interface)``, removed afterwards."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2 to create a network namespace")
    with host_veth(TAG) as ends:
        yield ends


def udp_frame(dport: int, seq: int, size: int = 100) -> bytes:
    """An Ethernet/IPv4/UDP frame of ``size`` bytes to 198.51.100.2:``dport``."""
    payload_len = size - 14 - 20 - 8
    ip = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + 8 + payload_len,
        seq & 0xFFFF,
        0,
        64,
        17,
        0,
        bytes([198, 51, 100, 1]),
        bytes([198, 51, 100, 2]),
    )
    udp = struct.pack("!HHHH", 40000, dport, 8 + payload_len, 0)
    payload = seq.to_bytes(4, "big") + bytes(payload_len - 4)
    eth = bytes.fromhex("0200000000020200000000010800")
    return eth + ip + udp + payload


def replay(tmp_path: Path, ns: str, ns_if: str, frames: list[bytes]) -> None:
    path = write(tmp_path / "replay.pcap", pcap_bytes(Frame(i, f) for i, f in enumerate(frames)))
    subprocess.run(
        ["ip", "netns", "exec", ns, "tcpreplay", "-q", "--topspeed", "-i", ns_if, str(path)],
        check=True,
        capture_output=True,
        timeout=60,
    )


def collect(src: LiveSource, want: int, seconds: float = 10.0) -> list[FrameBatch]:
    batches: list[FrameBatch] = []
    deadline = time.monotonic() + seconds
    while sum(len(b) for b in batches) < want and time.monotonic() < deadline:
        b = src.read_batch()
        if b is not None:
            batches.append(b)
    # Anything beyond what we want would be a failure: give it a chance to show up.
    extra = src.read_batch()
    if extra is not None:
        batches.append(extra)
    return batches


def test_bpf_filter_keeps_exactly_the_matching_frames(
    veth: tuple[str, str, str], tmp_path: Path
) -> None:
    host_if, ns, ns_if = veth
    wanted = [udp_frame(5555, i, 60 + i) for i in range(200)]
    others = [udp_frame(6666, 1000 + i) for i in range(100)]
    mixed = [f for pair in zip(wanted[:100], others, strict=True) for f in pair] + wanted[100:]
    before = time.time_ns()
    with LiveSource(host_if, bpf_filter="udp dst port 5555") as src:
        replay(tmp_path, ns, ns_if, mixed)
        batches = collect(src, len(wanted))
        received, dropped, _ = src.stats()
    after = time.time_ns()
    got = [b.frame(i) for b in batches for i in range(len(b))]
    assert got == wanted
    caplens = [int(c) for b in batches for c in b.caplens]
    assert caplens == [len(f) for f in wanted]
    assert all(b.source == host_if for b in batches)
    assert all(int(lt) == 1 for b in batches for lt in b.linktypes)
    stamps = [int(t) for b in batches for t in b.timestamps_ns]
    assert stamps == sorted(stamps)
    assert before - 1_000_000 <= stamps[0] and stamps[-1] <= after + 1_000_000
    assert received >= len(wanted)
    assert dropped == 0


def test_snaplen_cuts_frames_and_batches_respect_max_frames(
    veth: tuple[str, str, str], tmp_path: Path
) -> None:
    host_if, ns, ns_if = veth
    frames = [udp_frame(7777, i, 400) for i in range(50)]
    with LiveSource(host_if, bpf_filter="udp port 7777", snaplen=128) as src:
        replay(tmp_path, ns, ns_if, frames)
        time.sleep(0.3)
        first = src.read_batch(max_frames=20)
        rest = collect(src, 30)
    assert first is not None and len(first) == 20
    batches = [first, *rest]
    got = [b.frame(i) for b in batches for i in range(len(b))]
    assert got == [f[:128] for f in frames]


def test_kernel_drops_are_counted_when_the_ring_overflows(
    veth: tuple[str, str, str], tmp_path: Path
) -> None:
    host_if, ns, ns_if = veth
    frames = [udp_frame(8888, i, 1400) for i in range(20000)]
    with LiveSource(host_if, bpf_filter="udp port 8888", buffer_bytes=256 << 10) as src:
        # Nobody reads while 28 MB arrive: a 256 KiB ring must overflow.
        replay(tmp_path, ns, ns_if, frames)
        time.sleep(0.3)
        batches = collect(src, len(frames), seconds=3)
        received, dropped, _ = src.stats()
    read = sum(len(b) for b in batches)
    assert dropped > 0
    assert read < len(frames)
    # On Linux "received" counts every frame that passed the filter, dropped ones included.
    assert received == len(frames)
    assert read + dropped == received


def test_silent_wire_returns_none_within_the_timeout(veth: tuple[str, str, str]) -> None:
    host_if, _, _ = veth
    with LiveSource(host_if, bpf_filter="udp port 9", timeout_ms=200) as src:
        t = time.monotonic()
        assert src.read_batch() is None
        waited = time.monotonic() - t
    assert 0.15 <= waited < 1.0


def test_bad_bpf_filter_is_a_capture_error_with_the_reason(veth: tuple[str, str, str]) -> None:
    host_if, _, _ = veth
    with pytest.raises(CaptureError) as info:
        LiveSource(host_if, bpf_filter="udp port banana and")
    assert info.value.source == host_if
    assert "bad BPF filter" in info.value.reason


def test_missing_interface_is_a_capture_error_with_the_reason() -> None:
    with pytest.raises(CaptureError) as info:
        LiveSource(f"{TAG}-absent0")
    assert "no such device" in str(info.value)


def test_closed_source_refuses_reads(veth: tuple[str, str, str]) -> None:
    host_if, _, _ = veth
    src = LiveSource(host_if)
    src.close()
    src.close()
    with pytest.raises(CaptureError, match="closed"):
        src.read_batch()
    with pytest.raises(CaptureError, match="closed"):
        src.stats()


def test_interface_removed_under_the_capture_is_a_capture_error(
    veth: tuple[str, str, str],
) -> None:
    host_if, _, _ = veth
    with LiveSource(host_if, bpf_filter="udp port 9") as src:
        assert src.read_batch() is None
        _ip("link", "del", host_if)
        with pytest.raises(CaptureError) as info:
            for _ in range(20):
                src.read_batch()
    assert info.value.source == host_if
    assert "went down" in info.value.reason
