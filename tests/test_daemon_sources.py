"""Packet sources of the daemon: replay pacing of capture files, and the live source on a
veth (a silent wire never blocks, frames arrive complete, drops are reported)."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import pytest

from monitor.capture import CaptureError, FrameBatch
from monitor.daemon_sources import FileSource, LiveSource
from tests.daemon_support import tcpdump_count, write_capture
from tests.netns_support import _enter, netns_available, wire


def drain(source: FileSource, limit: float = 30.0) -> list[FrameBatch]:
    batches = []
    deadline = time.monotonic() + limit
    while not source.ended and time.monotonic() < deadline:
        batch = source.read(0.1)
        if batch is not None:
            batches.append(batch)
    return batches


@pytest.fixture
def one_second(tmp_path: Path) -> Path:
    path = tmp_path / "one-second.pcap"
    write_capture(path, devices=2, packets_each=50, spacing=0.01)  # 100 frames over 0.99 s
    drain(FileSource(path, 0))  # compile the reader now (a cold JIT cache), not while timing
    return path


@pytest.mark.parametrize(("speed", "low", "high"), [(1.0, 0.9, 3.0), (5.0, 0.15, 1.0)])
def test_replay_speed_paces_capture_time_against_the_wall_clock(
    one_second: Path, speed: float, low: float, high: float
) -> None:
    source = FileSource(one_second, speed)
    started = time.monotonic()
    batches = drain(source)
    elapsed = time.monotonic() - started
    assert low <= elapsed <= high
    assert len(batches) > 3  # handed out as the replay clock advances, not all at once
    assert sum(len(b) for b in batches) == tcpdump_count(one_second)
    stamps = [int(t) for b in batches for t in b.timestamps_ns]
    assert stamps == sorted(stamps)
    assert all(b.source == "one-second.pcap" for b in batches)


def test_replay_speed_0_is_as_fast_as_possible(one_second: Path) -> None:
    source = FileSource(one_second, 0)
    started = time.monotonic()
    batches = drain(source)
    assert time.monotonic() - started < 0.5
    assert sum(len(b) for b in batches) == 100
    assert batches[0].frame(0)[:12] == bytes.fromhex("0200000000fe020000000100")


def test_a_file_that_is_not_a_capture_raises_capture_error(tmp_path: Path) -> None:
    bogus = tmp_path / "notes.pcap"
    bogus.write_text("this is not a capture\n")
    with pytest.raises(CaptureError) as caught:
        drain(FileSource(bogus, 0))
    assert str(caught.value).startswith(str(bogus))


@pytest.mark.netns
@pytest.mark.skipif(not netns_available(), reason="needs root and ip netns")
def test_live_source_on_a_veth_returns_on_a_silent_wire_and_captures_every_frame(
    tmp_path: Path,
) -> None:
    pcap = tmp_path / "w.pcap"
    sent = write_capture(pcap, devices=3, packets_each=40)
    outcome: dict[str, object] = {}
    with wire() as w:

        def capture() -> None:
            _enter(w.netns)  # this thread only: the socket is bound inside the namespace
            source = LiveSource(w.receiver)
            started = time.monotonic()
            outcome["silent"] = source.read(0.3)
            outcome["silent_wait"] = time.monotonic() - started
            ready.set()
            frames = 0
            deadline = time.monotonic() + 30
            while frames < sent and time.monotonic() < deadline:
                batch = source.read(0.2)
                if batch is not None:
                    frames += len(batch)
                    outcome["linktype"] = int(batch.linktypes[0])
            outcome["frames"] = frames
            outcome["dropped"] = source.dropped()
            source.close()

        ready = threading.Event()
        thread = threading.Thread(target=capture)
        thread.start()
        assert ready.wait(30)
        subprocess.run(
            [
                "ip",
                "netns",
                "exec",
                w.netns,
                "tcpreplay",
                "-q",
                "-i",
                w.sender,
                "--pps",
                "2000",
                str(pcap),
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        thread.join(60)
    assert outcome["silent"] is None
    assert 0.25 <= float(outcome["silent_wait"]) < 2.0  # type: ignore[arg-type]
    assert outcome["frames"] == sent
    assert outcome["dropped"] == 0
    assert outcome["linktype"] == 1


@pytest.mark.netns
@pytest.mark.skipif(not netns_available(), reason="needs root and ip netns")
def test_a_live_read_takes_every_frame_the_ring_has_ready(tmp_path: Path) -> None:
    """Under load the ring fills between reads: one read takes all of it (up to 65,536), not
    8,192 at a time, so the work repeated per batch is shared by more packets."""
    pcap = tmp_path / "burst.pcap"
    sent = write_capture(pcap, devices=20, packets_each=1000)
    outcome: dict[str, object] = {}
    with wire() as w:

        def capture() -> None:
            _enter(w.netns)
            source = LiveSource(w.receiver)
            ready.set()
            assert replayed.wait(60)
            outcome["first"] = source.read(1.0)
            source.close()

        ready, replayed = threading.Event(), threading.Event()
        thread = threading.Thread(target=capture)
        thread.start()
        assert ready.wait(30)
        replay = ["ip", "netns", "exec", w.netns, "tcpreplay", "-q", "--topspeed"]
        subprocess.run(
            [*replay, "-i", w.sender, str(pcap)], check=True, capture_output=True, timeout=60
        )
        time.sleep(0.3)  # the kernel hands over the last ring block within its timeout
        replayed.set()
        thread.join(60)
    first = outcome["first"]
    assert isinstance(first, FrameBatch)
    assert len(first) == sent == 20_000
