"""bench/live_capture.py: at a low rate one worker and two count every frame sent, each row
says how much CPU the sender and Santinel used (what the machine had left to give), and each
closed window is judged as the daemon judges it."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from monitor.capture.files import open_capture
from monitor.pipeline import Analysis
from tests.netns_support import netns_available

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))

import harness  # noqa: E402
import live_capture  # noqa: E402

DEMO = REPO / "tests/data/lab-demo/capture.pcap"
ROW = re.compile(
    r"workers=(\d+) rate=\d+ achieved=\d+ sent=(\d+) counted=(\d+) kernel_drops=(\d+) .*"
    r"cpu_sender=([\d.]+)s cpu_santinel=([\d.]+)s"
)


@pytest.mark.netns
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


def test_each_closed_window_is_scored_and_learned_as_offline_analysis_does() -> None:
    """The benchmark measures the daemon's work, not the pipeline's alone: its loop gives
    each closed window to the detectors and the baselines. Fed the demo capture, its judge
    leaves the baselines that ``santinel analyze --state`` leaves (which learn only what
    the detectors did not find anomalous)."""
    judge = live_capture.Judge()
    analysis = Analysis(window_seconds=60.0, signatures=judge.library, on_window=judge)
    for batch in open_capture(DEMO):
        analysis.feed(batch)
    analysis.finish()
    _, suite, store = harness.end_to_end([DEMO])
    assert len(store.baselines) > 5
    assert {d: b.to_dict() for d, b in judge.store.baselines.items()} == {
        d: b.to_dict() for d, b in store.baselines.items()
    }
    assert judge.suite.book.anomaly_counts() == suite.book.anomaly_counts() != {}
    # and it keeps the longest judging, with its window's devices, for the benchmark's row
    assert judge.longest > 0 and 0 < judge.longest_devices <= len(analysis.devices)
