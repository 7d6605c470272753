"""The daemon with ``capture.workers`` on a veth: fanout workers merged into one /metrics.

The bundled lab demo is replayed by tcpreplay from a private namespace into the host end of
a veth pair, where ``python -m monitor run`` captures (once with one worker, once with two).
The two runs must export the same device counters, and the two-worker run one drop series
per worker.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemon_support import DaemonProcess, eventually
from netns_support import replay_veth

pytestmark = pytest.mark.netns

TAG = "slwrk"
DEMO = Path(__file__).resolve().parent / "data" / "lab-demo" / "capture.pcap"
DEVICE_SERIES = (
    "santinel_device_transmit_packets",
    "santinel_device_receive_packets",
    "santinel_device_transmit_bytes",
    "santinel_device_receive_bytes",
)


@pytest.fixture
def veth() -> Iterator[tuple[str, str, str]]:
    """``(host interface, namespace, namespace interface)``, removed afterwards."""
    with replay_veth(TAG) as ends:
        yield ends


def start(tmp_path: Path, interface: str, workers: int) -> DaemonProcess:
    config = tmp_path / f"workers-{workers}.yml"
    config.write_text(
        f"capture:\n  workers: {workers}\n"
        "web:\n  listen_address: 127.0.0.1:0\n"
        f"state:\n  path: {tmp_path / f'state-{workers}.db'}\n"
    )
    daemon = DaemonProcess("--config.file", str(config), "--interface", interface)
    daemon.wait_listening(90)
    daemon.wait_for(r"msg=capturing", 30)
    return daemon


def replay(ns: str, ns_if: str) -> int:
    out = subprocess.run(
        ["ip", "netns", "exec", ns, "tcpreplay", "--pps=5000", "-i", ns_if, str(DEMO)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    match = re.search(r"Actual: (\d+) packets", out)
    assert match, out
    return int(match.group(1))


def device_counters(daemon: DaemonProcess) -> dict[tuple[str, str], float]:
    metrics = daemon.metrics()
    return {
        (name, labels["device"]): value
        for name in DEVICE_SERIES
        for labels, value in metrics.get(name, [])
        if "device" in labels
    }


def run_replay(
    tmp_path: Path, veth: tuple[str, str, str], workers: int
) -> tuple[dict[tuple[str, str], float], dict[str, list[tuple[dict[str, str], float]]], int]:
    host_if, ns, ns_if = veth
    daemon = start(tmp_path, host_if, workers)
    try:
        sent = replay(ns, ns_if)

        def all_counted() -> None:
            assert daemon.value("santinel_capture_packets", interface=host_if) == sent

        eventually(all_counted, timeout=30)
        time.sleep(1.5)  # one more report from every worker: devices settle
        counters = device_counters(daemon)
        metrics = daemon.metrics()
    finally:
        code = daemon.stop()
    assert code == 0
    return counters, metrics, sent


def test_two_workers_export_the_device_counters_of_one_and_drops_per_worker(
    tmp_path: Path, veth: tuple[str, str, str]
) -> None:
    host_if, _, _ = veth
    single, single_metrics, sent = run_replay(tmp_path, veth, 1)
    double, metrics, sent_again = run_replay(tmp_path, veth, 2)
    assert sent == sent_again == 2492
    assert len({device for _, device in single}) == 13
    assert set(double) == set(single)
    # transmit counters are exact; a receive is counted by a worker only once that worker
    # has seen the device send (docs/daemon.md, "Several workers"), so never more than one
    # pipeline counts, and at most the odd packet fewer
    transmit = {key for key in single if "_transmit_" in key[0]}
    assert {k: double[k] for k in transmit} == {k: single[k] for k in transmit}
    received = [key for key in single if key[0] == "santinel_device_receive_packets"]
    assert all(single[k] - 3 <= double[k] <= single[k] for k in received), {
        k: (single[k], double[k]) for k in received if double[k] != single[k]
    }
    assert "santinel_capture_worker_dropped_packets" not in single_metrics
    drops = {
        labels["worker"]: value
        for labels, value in metrics["santinel_capture_worker_dropped_packets"]
        if labels["interface"] == host_if
    }
    assert drops == {"0": 0.0, "1": 0.0}
    shares = {
        labels["worker"]: value
        for labels, value in metrics["santinel_capture_worker_packets"]
        if labels["interface"] == host_if
    }
    assert set(shares) == {"0", "1"} and all(v > 0 for v in shares.values())
    assert sum(shares.values()) == sent


def children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(p) for p in text.split()]


def test_a_worker_that_dies_stops_the_daemon_with_one_line_and_an_error_code(
    tmp_path: Path, veth: tuple[str, str, str]
) -> None:
    host_if, _, _ = veth
    daemon = start(tmp_path, host_if, 2)
    workers = children(daemon.process.pid)
    assert len(workers) == 2
    os.kill(workers[1], signal.SIGKILL)
    daemon.process.wait(30)
    log = daemon.log()
    code = daemon.stop()
    assert code != 0
    assert re.search(
        r"msg=\"capture stopped\" error=\"capture worker \d died \(exit code -9\)\"", log
    ), log
    for pid in workers:
        assert (
            not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
        )


def test_workers_hold_no_capability_and_sigterm_stops_them_all(
    tmp_path: Path, veth: tuple[str, str, str]
) -> None:
    host_if, _, _ = veth
    daemon = start(tmp_path, host_if, 2)
    workers = children(daemon.process.pid)
    assert len(workers) == 2
    for pid in workers:
        status = Path(f"/proc/{pid}/status").read_text()
        held = {
            k: int(v, 16) for k, v in re.findall(r"^(Cap(?:Eff|Prm|Amb)):\s+(\w+)", status, re.M)
        }
        assert held == {"CapPrm": 0, "CapEff": 0, "CapAmb": 0}
    assert daemon.stop() == 0
    assert all(not Path(f"/proc/{pid}").exists() for pid in workers)
