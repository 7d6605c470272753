"""bench/batch_cost.py: it runs and prints one row per batch size, smallest first, each rate
against the largest batch's; a capture too short to measure, or broken, is a one-line
error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from tests.support.packets import write_capture

REPO = Path(__file__).resolve().parents[2]


def _capture(path: Path, count: int) -> Path:
    packets = [
        Ether(src="00:09:fb:00:00:01", dst="00:50:56:00:00:02")
        / IP(src="10.1.0.5", dst=f"10.1.{i % 7}.9")
        / UDP(sport=40_000 + i % 50, dport=5000)
        for i in range(count)
    ]
    return write_capture(path, packets)


def _bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPO / "bench" / "batch_cost.py"), *args],
        capture_output=True, text=True, cwd=REPO,
    )  # fmt: skip


def test_batch_cost_bench_prints_a_row_per_size_against_the_largest(tmp_path: Path) -> None:
    capture = _capture(tmp_path / "small.pcap", 3000)
    done = _bench(str(capture), "--sizes", "256,16", "--warm", "200", "--packets", "2800",
                  "--repeat", "1", "--markdown")  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = [line.strip("| ").split(" | ") for line in done.stdout.splitlines()]
    sized = [row for row in rows if row[0].replace(",", "").isdigit()]
    assert [row[0] for row in sized] == ["16", "256"]
    assert sized[-1][3] == "1.00"
    assert all(float(row[1]) > 0 and float(row[2].replace(",", "")) > 0 for row in sized)
    assert "2,800 packets after 200" in done.stdout


def test_a_capture_too_short_to_measure_is_a_one_line_error(tmp_path: Path) -> None:
    capture = _capture(tmp_path / "short.pcap", 50)
    done = _bench(str(capture), "--sizes", "16", "--warm", "100", "--repeat", "1")
    assert done.returncode == 2
    assert done.stderr.strip() == f"bench: {capture}: no packets after the first 100"


def test_a_broken_capture_is_a_one_line_error_naming_it(tmp_path: Path) -> None:
    capture = tmp_path / "broken.pcap"
    capture.write_bytes(b"not a capture at all")
    done = _bench(str(capture), "--sizes", "16", "--repeat", "1")
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert done.stderr.startswith(f"bench: {capture}: at byte 0:")
