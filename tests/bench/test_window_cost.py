"""bench/window_cost.py: it runs and prints the whole window's cost and each detector's, the
detectors together within the whole, with the volume detector among them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_window_cost_bench_prints_the_window_and_each_detector_within_it() -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "window_cost.py"), "--devices", "40",
         "--history", "140", "--windows", "2", "--markdown"],
        capture_output=True, text=True, check=True, cwd=REPO,
    )  # fmt: skip
    rows = [
        line.strip("| ").split(" | ") for line in done.stdout.splitlines() if line.startswith("|")
    ]
    parts = {r[0]: float(r[1]) for r in rows if len(r) == 3 and r[1].replace(".", "").isdigit()}
    whole = parts.pop("score and learn (`on_window`)")
    assert "detector `volume`" in parts and len(parts) >= 8
    # each figure is rounded to 0.1 ms: the parts may add up to 0.05 ms more each
    assert 0 < sum(parts.values()) <= whole + 0.05 * (len(parts) + 1)
