"""bench/live_capture.py: at a low rate one worker and two count every frame sent, and each
row says how much CPU the sender and Santinel used (what the machine had left to give)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.netns_support import netns_available

REPO = Path(__file__).resolve().parents[2]
ROW = re.compile(
    r"workers=(\d+) rate=\d+ achieved=\d+ sent=(\d+) counted=(\d+) kernel_drops=(\d+) .*"
    r"cpu_sender=([\d.]+)s cpu_santinel=([\d.]+)s"
)


def test_a_slow_replay_is_counted_whole_and_the_cpu_of_both_sides_is_reported() -> None:
    if not netns_available():
        pytest.skip("needs root and network namespaces")
    if shutil.which("tcpreplay") is None:
        pytest.skip("needs tcpreplay, which is not installed")
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "live_capture.py"), "--rates", "2000",
         "--workers", "1,2", "--duration", "2", "--markdown"],
        capture_output=True, text=True, timeout=300, cwd=REPO,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [ROW.search(line) for line in done.stdout.splitlines()]
    found = {int(m.group(1)): m for m in rows if m is not None}
    assert sorted(found) == [1, 2]
    for row in found.values():
        sent, counted, drops = int(row.group(2)), int(row.group(3)), int(row.group(4))
        assert sent >= 2000 and counted == sent and drops == 0
        # the sender slept between frames and Santinel waited for them: both used some CPU
        # (the sender a few milliseconds: at a tenth of a second it showed 0.0), and neither
        # a whole core for the whole run
        assert 0 < float(row.group(5)) < 10 and 0 < float(row.group(6)) < 30
    assert "| CPU s: sender | CPU s: Santinel |" in done.stdout
