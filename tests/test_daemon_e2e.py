"""End to end: tcpreplay into a veth inside a network namespace, ``santinel run`` capturing
on the other end, a real Prometheus scraping it with the scrape job of
``deploy/prometheus/prometheus.yml``; then SIGKILL and restart.

Checked through Prometheus's HTTP API: the expected devices appear, the packet counter plus
the kernel drops the daemon reports equal what tcpreplay sent, per-device counters equal the
capture's, and after the restart the counters behave as Prometheus counters (a reset is seen
by ``resets()``, or, with persisted state, the device counters simply continue).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.daemon_support import REPO, DaemonProcess, tcpdump_count, write_capture
from tests.netns_support import Forwarder, netns_available, wire

promstack = pytest.importorskip("tests.support.promstack")
prometheus_factory = promstack.prometheus_factory  # the pytest fixture
scrape_job = promstack.scrape_job
wait_until = promstack.wait_until

pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(not netns_available(), reason="needs root and ip netns"),
]

DEVICES = 5
PACKETS_EACH = 120
METRICS_PORT = 10575  # the default address, free inside the test's own namespace


def deploy_scrape_job(target: str) -> dict[str, Any]:
    """The santinel job of the shipped Prometheus config, pointed at ``target``."""
    config = yaml.safe_load((REPO / "deploy" / "prometheus" / "prometheus.yml").read_text())
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "santinel")
    labels = job["static_configs"][0].get("labels", {})
    extra = {k: v for k, v in job.items() if k not in ("job_name", "static_configs")}
    built: dict[str, Any] = scrape_job("santinel", [target], labels=labels, **extra)
    return built


def replay(netns: str, interface: str, pcap: Path) -> int:
    out = subprocess.run(
        ["ip", "netns", "exec", netns, "tcpreplay", "-i", interface, "--pps", "2000", str(pcap)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    match = re.search(r"Actual: (\d+) packets", out)
    assert match, out
    return int(match.group(1))


def value(prom: Any, expr: str) -> float | None:
    result = prom.query(expr)
    return float(result[0]["value"][1]) if result else None


def start_daemon(netns: str, interface: str, config: Path) -> DaemonProcess:
    daemon = DaemonProcess(
        "--config.file", str(config), "--interface", interface, "--log.level", "debug", netns=netns
    )
    daemon.port = int(daemon.wait_for(r"msg=listening .*port=(\d+)", 90).group(1))
    return daemon


@pytest.mark.timeout(300)
def test_replayed_traffic_reaches_prometheus_and_survives_a_sigkill_restart(
    tmp_path: Path, prometheus_factory: Callable[..., Any]
) -> None:
    pcap = tmp_path / "ward.pcap"
    written = write_capture(pcap, devices=DEVICES, packets_each=PACKETS_EACH)
    assert tcpdump_count(pcap) == written
    config = tmp_path / "santinel.yml"
    config.write_text(
        f"web:\n  listen_address: 127.0.0.1:{METRICS_PORT}\n"
        f"state:\n  path: {tmp_path / 'state.db'}\n  checkpoint_interval: 1s\n"
        "profiles:\n  window_seconds: 5s\n"
    )
    macs = {f"02:00:00:00:01:{d:02x}" for d in range(DEVICES)}
    with wire() as w:
        forwarder = Forwarder(w.netns, METRICS_PORT)
        daemon = start_daemon(w.netns, w.receiver, config)
        try:
            prom = prometheus_factory(
                promstack.prometheus_config([deploy_scrape_job(forwarder.address)])
            )
            prom.wait_for_targets_up(timeout=60)
            sent = replay(w.netns, w.sender, pcap)
            assert sent == written
            packets = f'santinel_capture_packets_total{{interface="{w.receiver}"}}'
            drops = f'santinel_capture_dropped_packets_total{{interface="{w.receiver}"}}'
            wait_until(
                lambda: value(prom, f"{packets} + {drops}") == sent,
                timeout=60,
                message="captured + dropped == sent",
            )
            seen = wait_until(
                lambda: {s["metric"]["mac"] for s in prom.query("santinel_device_info")} >= macs
                or None,
                timeout=30,
                message="devices in Prometheus",
            )
            assert seen
            if not value(prom, drops):  # exact per-device counts when nothing was dropped
                per_device = {
                    s["metric"]["device"]: float(s["value"][1])
                    for s in prom.query("santinel_device_transmit_packets_total")
                }
                assert {per_device[mac] for mac in macs} == {PACKETS_EACH}
            info = prom.query(f'santinel_device_info{{mac="{sorted(macs)[0]}"}}')
            assert info[0]["metric"]["sensor"] == "sensor-1"  # labels of the shipped job
            assert info[0]["metric"]["ip"] == "10.9.0.10"

            # kill -9 after a checkpoint covering the replay, and start again
            if _state_available():
                daemon.wait_for(r"checkpoint written")
            daemon.process.kill()
            daemon.process.wait(10)
            wait_until(
                lambda: value(prom, 'up{job="santinel"}') == 0,
                timeout=30,
                message="target down after SIGKILL",
            )
            daemon.stop()
            daemon = start_daemon(w.netns, w.receiver, config)
            wait_until(
                lambda: value(prom, 'up{job="santinel"}') == 1,
                timeout=60,
                message="target up again",
            )
            persisted = _state_available()
            if persisted:
                # the inventory came back from the checkpoint before any new traffic (the
                # failed scrapes marked the old series stale: these are new samples)
                wait_until(
                    lambda: {s["metric"]["mac"] for s in prom.query("santinel_device_info")} >= macs
                    or None,
                    timeout=30,
                    message="inventory restored after SIGKILL",
                )
            sent_again = replay(w.netns, w.sender, pcap)
            wait_until(
                lambda: value(prom, f"{packets} + {drops}") == sent_again,
                timeout=60,
                message="counter restarted and counts the second replay",
            )
            # Prometheus sees the restart as a counter reset and rate()/increase() handle it
            assert value(prom, f"resets({packets}[10m])") == 1
            total = value(prom, f"max_over_time({packets}[10m])")
            assert total is not None and total >= sent_again
            if persisted and not value(prom, drops):
                # device counters continue from the checkpoint: no reset at all
                wait_until(
                    lambda: _per_device(prom, macs) == {2 * PACKETS_EACH},
                    timeout=30,
                    message="device counters continue across the restart",
                )
                tx = 'santinel_device_transmit_packets_total{job="santinel"}'
                assert value(prom, f"max(resets({tx}[10m]))") == 0
        finally:
            daemon.stop()
            forwarder.close()


def _per_device(prom: Any, macs: set[str]) -> set[float]:
    samples = prom.query("santinel_device_transmit_packets_total")
    return {float(s["value"][1]) for s in samples if s["metric"]["device"] in macs}


def _state_available() -> bool:
    try:
        import monitor.state  # noqa: F401
    except ImportError:
        return False
    return True


LAB_DEMO = REPO / "tests" / "data" / "lab-demo"


@pytest.mark.timeout(300)
@pytest.mark.skipif(
    not (LAB_DEMO / "capture.pcap").is_file(), reason="needs the lab demo capture (tests/data)"
)
def test_lab_demo_replayed_live_gives_the_inventory_classes_and_counters_of_analyze(
    tmp_path: Path, prometheus_factory: Callable[..., Any]
) -> None:
    pcap = LAB_DEMO / "capture.pcap"
    offline = subprocess.run(
        [sys.executable, "-m", "monitor", "analyze", "--format", "json", str(pcap)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert offline.returncode in (0, 1), offline.stderr
    expected = {d["id"]: d for d in json.loads(offline.stdout)["devices"]}
    truth = json.loads((LAB_DEMO / "truth.json").read_text())
    lab_macs = {d["mac"] for d in truth["devices"] if d.get("mac")}
    assert lab_macs <= set(expected)  # the offline path itself finds the lab's devices
    config = tmp_path / "santinel.yml"
    config.write_text(
        f"web:\n  listen_address: 127.0.0.1:{METRICS_PORT}\n"
        f"state:\n  path: {tmp_path / 'state.db'}\n"
    )
    with wire() as w:
        forwarder = Forwarder(w.netns, METRICS_PORT)
        daemon = start_daemon(w.netns, w.receiver, config)
        try:
            prom = prometheus_factory(
                promstack.prometheus_config([deploy_scrape_job(forwarder.address)])
            )
            prom.wait_for_targets_up(timeout=60)
            sent = replay(w.netns, w.sender, pcap)
            assert sent == tcpdump_count(pcap)
            packets = f'santinel_capture_packets_total{{interface="{w.receiver}"}}'
            drops = f'santinel_capture_dropped_packets_total{{interface="{w.receiver}"}}'
            wait_until(
                lambda: value(prom, f"{packets} + {drops}") == sent,
                timeout=60,
                message="captured + dropped == sent",
            )
            dropped = value(prom, drops)
            info = wait_until(
                lambda: {
                    s["metric"]["device"]: s["metric"] for s in prom.query("santinel_device_info")
                }
                if len(prom.query("santinel_device_info")) >= len(expected)
                else None,
                timeout=60,
                message="every device in Prometheus",
            )
            transmitted = prom.values("santinel_device_transmit_packets_total")
        finally:
            daemon.stop()
            forwarder.close()
    assert set(info) == set(expected)
    for device_id, labels in info.items():
        assert labels["device_class"] == expected[device_id]["device_class"], device_id
        assert labels["vendor"] == (
            expected[device_id]["classified_vendor"] or expected[device_id]["vendor"] or ""
        )
    assert lab_macs <= {labels["mac"] for labels in info.values()}
    if not dropped:
        live = {dict(k)["device"]: v for k, v in transmitted.items()}
        assert live == {i: float(d["tx_packets"]) for i, d in expected.items()}
