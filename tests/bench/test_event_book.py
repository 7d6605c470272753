"""bench/event_book.py: it runs and prints one row per size, smallest first, with the ratio of
each size's per-event cost to the smallest's."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_event_book_bench_prints_a_row_per_size_with_the_ratio_to_the_smallest() -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "event_book.py"), "--devices", "200,50",
         "--windows", "2", "--markdown"],
        capture_output=True, text=True, check=True, cwd=REPO,
    )  # fmt: skip
    rows = [line.strip("| ").split(" | ") for line in done.stdout.splitlines()]
    sized = [row for row in rows if row[0].isdigit()]
    assert [row[0] for row in sized] == ["50", "200"]
    assert sized[0][3] == "1.00"
    assert all(float(row[1]) >= 0 and float(row[2]) > 0 for row in sized)
