"""monitor/workers.py: a capture worker keeps draining its ring while the daemon reads none of
its reports (as while it judges a window's close)."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from netns_support import replay_veth

from monitor import workers
from monitor.daemon import _preload
from monitor.merge import WorkerReport

pytestmark = pytest.mark.netns

DEMO = Path(__file__).resolve().parent / "data" / "lab-demo" / "capture.pcap"


@pytest.fixture
def veth() -> Iterator[tuple[str, str, str]]:
    """``(host interface, namespace, namespace interface)``, removed afterwards."""
    with replay_veth("slwk") as ends:
        yield ends


def test_a_worker_drains_its_ring_while_the_daemon_reads_no_report(
    veth: tuple[str, str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A report every 10 ms fills the pipe to the daemon within a second when the daemon
    reads none. Then the lab demo's 2,492 frames cross the wire, more than twice what the
    worker's 256 KiB ring holds, and only afterwards does the daemon read: every frame is
    counted and none dropped, because the reports waited in the worker. (Sent from the
    capture loop, the first report that did not fit stopped the reading until the daemon
    read, and the ring overflowed.)"""
    host_if, ns, ns_if = veth
    # set before the fork: the worker inherits them
    monkeypatch.setattr(workers, "REPORT_INTERVAL", 0.01)
    monkeypatch.setattr(workers, "REPORT_BACKLOG", 100_000)
    _preload()  # as the daemon does before it forks: the worker compiles nothing while frames come
    pool = workers.WorkerPool(host_if, 1, buffer_bytes=256 << 10)
    pool.start()
    reports: list[WorkerReport] = []
    try:
        time.sleep(1.5)  # idle reports fill the pipe: nobody reads them
        out = subprocess.run(
            ["ip", "netns", "exec", ns, "tcpreplay", "--pps=1000", "-i", ns_if, str(DEMO)],
            capture_output=True, text=True, check=True, timeout=60,
        ).stdout  # fmt: skip
        sent = int(re.search(r"Actual: (\d+) packets", out).group(1))  # type: ignore[union-attr]
        time.sleep(0.5)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            reports += pool.reports(0.2)
            if reports and reports[-1].stats.packets + reports[-1].stats.dropped >= sent:
                break
    finally:
        reports += pool.stop()
    last = reports[-1].stats
    assert sent == 2492
    assert (last.received, last.dropped, last.packets) == (sent, 0, sent), len(reports)
