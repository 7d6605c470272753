"""The AF_PACKET ring (monitor/capture/afpacket.py) on a veth pair into a private namespace.

A real capture (the bundled lab demo) is replayed with ``tcpreplay`` from the namespace end;
``PacketRing`` captures on the host end, where IPv6 is off on both ends so that only the
replayed frames cross the wire. The references are tcpreplay's own count, tcpdump capturing
the same interface at the same time, and the frames of the file itself.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from capture.pcapbuild import Frame, pcap_bytes, write
from monitor.capture import CaptureError, FrameBatch
from monitor.capture.afpacket import PacketRing
from monitor.capture.files import open_capture
from monitor.decode.headers import decode_headers
from monitor.flows import packet_flow_keys
from tests.netns_support import replay_veth

pytestmark = pytest.mark.netns

TAG = "slafp"
REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "tests" / "data" / "lab-demo" / "capture.pcap"
DEMO_FRAMES = 2492  # frames in DEMO


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


@pytest.fixture
def veth() -> Iterator[tuple[str, str, str]]:
    """``(host interface, namespace, namespace interface)``, removed afterwards."""
    with replay_veth(TAG) as ends:
        yield ends


def replay(ns: str, ns_if: str, path: Path, *options: str) -> int:
    """Replay ``path`` from the namespace; tcpreplay's own count of packets sent."""
    out = subprocess.run(
        ["ip", "netns", "exec", ns, "tcpreplay", *(options or ("--topspeed",)), "-i", ns_if, path],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    match = re.search(r"Actual: (\d+) packets", out)
    assert match is not None, out
    return int(match.group(1))


def drain(ring: PacketRing, want: int, seconds: float = 10.0) -> list[FrameBatch]:
    """Batches until ``want`` frames arrived (or time ran out), plus one more read that
    would show any frame beyond ``want``."""
    batches: list[FrameBatch] = []
    deadline = time.monotonic() + seconds
    while sum(len(b) for b in batches) < want and time.monotonic() < deadline:
        batch = ring.read_batch()
        if batch is not None:
            batches.append(batch)
    extra = ring.read_batch()
    if extra is not None:
        batches.append(extra)
    return batches


def frames_of(batches: list[FrameBatch]) -> list[bytes]:
    return [b.frame(i) for b in batches for i in range(len(b))]


def file_frames(path: Path) -> tuple[list[bytes], list[int]]:
    batches = list(open_capture(path))
    return frames_of(batches), [int(w) for b in batches for w in b.wirelens]


class Tcpdump:
    """tcpdump capturing the same interface, started before the replay."""

    def __init__(self, interface: str, out: Path) -> None:
        self.out = out
        self.process = subprocess.Popen(
            ["tcpdump", "-i", interface, "-n", "--immediate-mode", "-B", "65536", "-w", str(out)],
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.process.stderr is not None
        line = self.process.stderr.readline()
        assert "listening on" in line, line

    def count(self) -> int:
        time.sleep(1.0)
        self.process.terminate()
        _, stderr = self.process.communicate(timeout=10)
        assert "\n0 packets dropped by kernel" in stderr, stderr
        done = subprocess.run(
            ["tcpdump", "-nr", str(self.out)], capture_output=True, text=True, check=True
        )
        return len(done.stdout.splitlines())


def test_every_replayed_frame_arrives_once_and_intact(
    veth: tuple[str, str, str], tmp_path: Path
) -> None:
    host_if, ns, ns_if = veth
    expected, wirelens = file_frames(DEMO)
    with PacketRing(host_if) as ring:
        tcpdump = Tcpdump(host_if, tmp_path / "tcpdump.pcap")
        before = time.time_ns()
        sent = replay(ns, ns_if, DEMO, "--pps=20000")
        batches = drain(ring, sent)
        after = time.time_ns()
        received, dropped, _ = ring.stats()
    seen_by_tcpdump = tcpdump.count()
    assert sent == len(expected) == seen_by_tcpdump
    assert frames_of(batches) == expected
    assert [int(w) for b in batches for w in b.wirelens] == wirelens
    assert (received, dropped) == (sent, 0)
    stamps = np.concatenate([b.timestamps_ns for b in batches])
    assert np.all(np.diff(stamps) >= 0)
    assert before <= stamps[0] and stamps[-1] <= after
    assert all(b.source == host_if and set(b.linktypes.tolist()) == {1} for b in batches)


def test_small_snaplen_keeps_the_real_wire_length(
    veth: tuple[str, str, str], tmp_path: Path
) -> None:
    host_if, ns, ns_if = veth
    expected, wirelens = file_frames(DEMO)
    with PacketRing(host_if, snaplen=96) as ring:
        sent = replay(ns, ns_if, DEMO)
        batches = drain(ring, sent)
    assert frames_of(batches) == [f[:96] for f in expected]
    got_wire = [int(w) for b in batches for w in b.wirelens]
    assert got_wire == wirelens
    cut = [(int(c), int(w)) for b in batches for c, w in zip(b.caplens, b.wirelens, strict=True)]
    assert any(w > c for c, w in cut)
    assert all(c == min(w, 96) for c, w in cut)


def test_bpf_filter_keeps_what_tcpdump_keeps(veth: tuple[str, str, str], tmp_path: Path) -> None:
    host_if, ns, ns_if = veth
    expression = "tcp and not port 443"
    reference = subprocess.run(
        ["tcpdump", "-nr", str(DEMO), "-w", str(tmp_path / "filtered.pcap"), expression],
        capture_output=True,
        check=True,
    )
    assert reference.returncode == 0
    expected, _ = file_frames(tmp_path / "filtered.pcap")
    assert 0 < len(expected) < DEMO_FRAMES
    with PacketRing(host_if, bpf_filter=expression) as ring:
        replay(ns, ns_if, DEMO)
        batches = drain(ring, len(expected))
        received, _, _ = ring.stats()
    assert frames_of(batches) == expected
    assert received == len(expected)


def test_vlan_tags_taken_out_by_the_driver_are_put_back(
    veth: tuple[str, str, str], tmp_path: Path
) -> None:
    host_if, ns, ns_if = veth
    plain, _ = file_frames(DEMO)
    tagged = [
        f[:12] + bytes.fromhex("8100") + (0x2000 | (100 + i % 3)).to_bytes(2, "big") + f[12:]
        for i, f in enumerate(plain[:300])
    ]
    path = write(tmp_path / "vlan.pcap", pcap_bytes(Frame(i, f) for i, f in enumerate(tagged)))
    with PacketRing(host_if, snaplen=60) as ring:
        sent = replay(ns, ns_if, path)
        batches = drain(ring, sent)
    assert frames_of(batches) == [f[:60] for f in tagged]
    assert [int(w) for b in batches for w in b.wirelens] == [len(f) for f in tagged]


def flows_of(batch: FrameBatch) -> list[int]:
    table = decode_headers(batch)
    keys, _ = packet_flow_keys(table)
    return [int(k) for k in keys if k]


def test_fanout_gives_every_frame_to_one_socket_and_each_flow_to_one_only(
    veth: tuple[str, str, str],
) -> None:
    host_if, ns, ns_if = veth
    expected, _ = file_frames(DEMO)
    group = os.getpid() & 0xFFFF
    with (
        PacketRing(host_if, fanout_group=group, timeout_ms=50) as first,
        PacketRing(host_if, fanout_group=group, timeout_ms=50) as second,
    ):
        sent = replay(ns, ns_if, DEMO)
        got: dict[int, list[FrameBatch]] = {0: [], 1: []}
        deadline = time.monotonic() + 10
        while sum(len(b) for bs in got.values() for b in bs) < sent + 1:
            if time.monotonic() > deadline:
                break
            for side, ring in enumerate((first, second)):
                batch = ring.read_batch()
                if batch is not None:
                    got[side].append(batch)
        stats = [first.stats(), second.stats()]
    assert Counter(frames_of(got[0]) + frames_of(got[1])) == Counter(expected)
    assert all(len(got[side]) > 0 for side in (0, 1)), "the hash sent everything one way"
    flows = [{k for b in got[side] for k in flows_of(b)} for side in (0, 1)]
    assert flows[0] and flows[1]
    assert not flows[0] & flows[1]
    assert [s.received for s in stats] == [sum(len(b) for b in got[s]) for s in (0, 1)]
    assert [s.dropped for s in stats] == [0, 0]


def test_a_full_ring_counts_its_drops(veth: tuple[str, str, str], tmp_path: Path) -> None:
    host_if, ns, ns_if = veth
    frames, _ = file_frames(DEMO)
    loops = 8
    with PacketRing(host_if, buffer_bytes=256 << 10) as ring:
        # nobody reads while the demo is sent 8 times: a 256 KiB ring must overflow
        sent = replay(ns, ns_if, DEMO, "--topspeed", f"--loop={loops}")
        batches = drain(ring, sent, seconds=2)
        received, dropped, freezes = ring.stats()
    read = sum(len(b) for b in batches)
    assert sent == loops * len(frames)
    assert dropped > 0 and freezes > 0
    assert received == sent
    assert read + dropped == received


def _first_batch(ring: PacketRing, gather_seconds: float) -> tuple[FrameBatch, float]:
    """The first batch a read gives while frames trickle in, and the seconds it took from
    the first read that found a frame waiting."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        began = time.monotonic()
        batch = ring.read_batch(65536, gather_seconds)
        if batch is not None:
            return batch, time.monotonic() - began
    raise AssertionError("no frame arrived")


def _trickle(ns: str, ns_if: str, frames: int, rate: int) -> subprocess.Popen[bytes]:
    """``frames`` frames of the demo (looped as needed) at ``rate`` per second, sent in the
    background."""
    command = ["ip", "netns", "exec", ns, "tcpreplay", f"--pps={rate}", f"--limit={frames}"]
    loops = f"--loop={frames // DEMO_FRAMES + 1}"
    return subprocess.Popen(
        [*command, loops, "-i", ns_if, str(DEMO)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_gathering_makes_one_batch_of_blocks_handed_over_apart(
    veth: tuple[str, str, str],
) -> None:
    """30 frames over 1.5 s, a block handed over every 200 ms (8 of the ring's 64): read at
    once they come in several batches, gathered for up to 5 s in one."""
    host_if, ns, ns_if = veth
    for gather in (0.0, 5.0):
        with PacketRing(host_if, timeout_ms=200, buffer_bytes=64 << 20) as ring:
            sender = _trickle(ns, ns_if, 30, 20)
            batches = [_first_batch(ring, gather)[0]]
            while sum(len(b) for b in batches) < 30:
                batches.append(_first_batch(ring, gather)[0])
            assert sender.wait(timeout=30) == 0
            assert ring.stats().dropped == 0
        assert sum(len(b) for b in batches) == 30
        if gather:
            assert len(batches) == 1
        else:
            assert len(batches) >= 3


def test_gathering_stops_at_the_frames_wanted(
    veth: tuple[str, str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from monitor.capture import afpacket

    monkeypatch.setattr(afpacket, "GATHER_FRAMES", 10)
    host_if, ns, ns_if = veth
    with PacketRing(host_if, timeout_ms=50, buffer_bytes=64 << 20) as ring:
        sender = _trickle(ns, ns_if, 30, 50)  # 600 ms
        batch, _ = _first_batch(ring, 5.0)
        assert sender.wait(timeout=30) == 0
    assert 10 <= len(batch) < 30


def test_gathering_stops_when_a_quarter_of_the_ring_waits(veth: tuple[str, str, str]) -> None:
    """A ring of 8 blocks, one handed over every 20 ms: gathering stops with 2 waiting,
    long before its 30 s are up, so that it never fills the ring."""
    host_if, ns, ns_if = veth
    with PacketRing(host_if, timeout_ms=20, buffer_bytes=8 << 20) as ring:
        assert ring.block_count == 8
        sender = _trickle(ns, ns_if, 30, 20)  # 1.5 s
        batch, took = _first_batch(ring, 30.0)
        assert sender.wait(timeout=30) == 0
    assert len(batch) < 30 and took < 10


def test_a_busy_wire_is_read_at_once_however_long_gathering_may_wait(
    veth: tuple[str, str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """100,000 frames at 200,000 a second into a ring of 128 blocks, with gathering allowed
    30 s and any number of frames: past ``GATHER_MAX_RATE`` (here 20,000 frames/s) the
    first block or two are read at once."""
    from monitor.capture import afpacket

    monkeypatch.setattr(afpacket, "GATHER_FRAMES", 1 << 30)
    monkeypatch.setattr(afpacket, "GATHER_MAX_RATE", 20_000)
    host_if, ns, ns_if = veth
    with PacketRing(host_if, timeout_ms=100, buffer_bytes=128 << 20) as ring:
        sender = _trickle(ns, ns_if, 100_000, 200_000)
        batch, took = _first_batch(ring, 30.0)
        assert sender.wait(timeout=60) == 0
    assert len(batch) < 20_000 and took < 10


def test_missing_interface_is_one_line_with_the_reason() -> None:
    with pytest.raises(CaptureError) as info:
        PacketRing(f"{TAG}-absent0")
    assert str(info.value) == f"{TAG}-absent0: cannot capture: no such device"


def test_bad_filter_is_one_line_with_the_reason(veth: tuple[str, str, str]) -> None:
    host_if, _, _ = veth
    with pytest.raises(CaptureError) as info:
        PacketRing(host_if, bpf_filter="tcp port banana")
    assert "bad BPF filter" in info.value.reason and "\n" not in str(info.value)


def test_without_cap_net_raw_opening_is_refused_in_one_line(veth: tuple[str, str, str]) -> None:
    host_if, _, _ = veth
    code = (
        "from monitor.privileges import drop_privileges; drop_privileges()\n"
        "from monitor.capture import CaptureError\n"
        "from monitor.capture.afpacket import PacketRing\n"
        f"try:\n  PacketRing({host_if!r})\nexcept CaptureError as e:\n  print(e)"
    )
    out = subprocess.run(
        ["python3", "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert (
        out.stdout.strip()
        == f"{host_if}: cannot capture: permission denied (needs root or CAP_NET_RAW)"
    )


def test_interface_deleted_under_the_ring_is_a_capture_error(veth: tuple[str, str, str]) -> None:
    host_if, _, _ = veth
    with PacketRing(host_if, timeout_ms=50) as ring:
        assert ring.read_batch() is None
        _ip("link", "del", host_if)
        with pytest.raises(CaptureError) as info:
            for _ in range(20):
                ring.read_batch()
    assert info.value.reason == "capture failed: the interface went down"
