"""Frames per second of pure capture-file reading (``monitor.capture.files.open_capture``).

Usage: ``python3 bench/capture_read.py [FILE ...]``. Without a file it generates two
1,000,000-frame pcaps in a temporary directory: frame sizes uniform in 60–1514 bytes (about
800 MB) and in 60–200 bytes (small IoT/telemetry packets). For each file it prints
the best of three runs of reading every batch (touching the arrays, not the bytes), next to
``tcpdump -r FILE -w /dev/null`` on the same file.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from monitor.capture.files import open_capture


def make_pcap(path: Path, frames: int, smallest: int = 60, largest: int = 1514) -> None:
    rng = np.random.default_rng(1)
    sizes = rng.integers(smallest, largest + 1, frames)
    out = bytearray(b"\xd4\xc3\xb2\xa1\x02\x00\x04\x00" + b"\0" * 8 + b"\xff\xff\0\0\x01\0\0\0")
    payload = bytes(range(256)) * 6
    t0 = 1_700_000_000
    for i, n in enumerate(sizes.tolist()):
        head = np.array([t0 + i // 1000, (i % 1000) * 1000, n, n], "<u4").tobytes()
        out += head + payload[:n]
    path.write_bytes(out)


def read_rate(path: Path) -> tuple[int, float]:
    best = float("inf")
    frames = 0
    for _ in range(3):
        t = time.perf_counter()
        frames = 0
        wire = 0
        for b in open_capture(path):
            frames += len(b)
            wire += int(b.wirelens.sum())
        best = min(best, time.perf_counter() - t)
    return frames, best


def tcpdump_seconds(path: Path) -> float:
    t = time.perf_counter()
    subprocess.run(["tcpdump", "-r", str(path), "-w", "/dev/null"], check=True, capture_output=True)
    return time.perf_counter() - t


def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        files = [Path(a) for a in sys.argv[1:]]
        if not files:
            files = [Path(d) / "1M-60-1514.pcap", Path(d) / "1M-60-200.pcap"]
            make_pcap(files[0], 1_000_000)
            make_pcap(files[1], 1_000_000, largest=200)
        # Warm the compiled kernels (numba cache load) outside the timing.
        for _ in open_capture(files[0]):
            pass
        for f in files:
            n, secs = read_rate(f)
            td = tcpdump_seconds(f)
            print(
                f"{f.name}: {n} frames, santinel read {n / secs:,.0f} frames/s ({secs:.3f} s); "
                f"tcpdump -r -w /dev/null {n / td:,.0f} frames/s ({td:.3f} s); "
                f"ratio {td / secs:.1f}x"
            )


if __name__ == "__main__":
    main()
