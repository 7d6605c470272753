"""The shipped deploy files against the real daemon: ``santinel run --pcap`` on a capture made
here, scraped by a real Prometheus (shipped labels, recording rules, alert rules without
``for:``), alerts through a real Alertmanager (shipped routing) to a webhook receiver.

The capture (scapy, written to a temporary directory): a B. Braun infusion pump reports to its
server every 10 s for 2 minutes and then stops; a Philips monitor keeps reporting every 10 s for
4 minutes and gets answers; one truncated IPv4 packet. So the pump is silent for 120 s against a
10 s cadence at the end of the capture, and the monitor is benign.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Packet, Raw

from tests.deploy.conftest import PROMETHEUS_DIR, RECORDING_RULES
from tests.deploy.contract import recorded_metrics_in, santinel_metrics_in
from tests.deploy.dashboards_support import dashboard_files, load, queries, substitute
from tests.deploy.stacks import fast_alert_rules, fast_alertmanager_config, santinel_run
from tests.support.packets import write_capture
from tests.support.promstack import (
    Alertmanager,
    Prometheus,
    WebhookReceiver,
    prometheus_binary,
    prometheus_config,
    scrape_job,
    wait_until,
)

START = 1_700_000_000.0
PUMP, MONITOR, SERVER = "00:12:21:aa:bb:01", "00:09:fb:aa:bb:02", "00:14:22:aa:bb:03"
PUMP_STOPS, END = 120, 240


def stopped_reporting_capture(path: Path) -> Path:
    timed: list[tuple[float, Packet]] = []

    ip = {PUMP: "10.0.0.10", MONITOR: "10.0.0.11", SERVER: "10.0.0.20"}

    def udp(src: str, dst: str, sport: int, dport: int, data: bytes) -> Packet:
        return (
            Ether(src=src, dst=dst)
            / IP(src=ip[src], dst=ip[dst])
            / UDP(sport=sport, dport=dport)
            / Raw(data)
        )

    for t in range(0, END + 1, 10):
        if t <= PUMP_STOPS:
            timed.append((t, udp(PUMP, SERVER, 40000, 5000, b"status")))
        timed.append((t + 0.5, udp(MONITOR, SERVER, 40001, 5001, b"vitals")))
        timed.append((t + 0.6, udp(SERVER, MONITOR, 5001, 40001, b"ack")))
    whole = bytes(Ether(src=MONITOR, dst=SERVER) / IP(src="10.0.0.11", dst="10.0.0.20") / UDP())
    timed.append((200.7, Ether(whole[:24])))  # IPv4 header cut short
    timed.sort(key=lambda tp: tp[0])
    return write_capture(path, [p for _, p in timed], start=START, times=[t for t, _ in timed])


@dataclass
class Stack:
    prometheus: Prometheus
    alertmanager: Alertmanager
    receiver: WebhookReceiver
    address: str
    target_labels: dict[str, str]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if prometheus_binary() is None:
        pytest.skip("needs the prometheus binary (Debian package prometheus)")
    workdir = tmp_path_factory.mktemp("daemon-path")
    capture = stopped_reporting_capture(workdir / "capture.pcap")
    shipped = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())["scrape_configs"][0]
    labels = shipped["static_configs"][0]["labels"]
    config = {
        "profiles": {"window_seconds": 5},
        "baseline": {"min_duration": "20s", "min_windows": 2},
    }
    with (
        WebhookReceiver() as receiver,
        santinel_run(capture, workdir, replay_speed="20", config=config) as address,
        Alertmanager(fast_alertmanager_config(receiver.url("/")), workdir / "am") as am,
        Prometheus(
            prometheus_config(
                [scrape_job("santinel", [address], labels=labels)],
                rule_files=[RECORDING_RULES, fast_alert_rules(workdir / "alerts.yml")],
                alertmanagers=[am.address],
            ),
            workdir / "prometheus",
        ) as prom,
    ):
        wait_until(
            lambda: any(
                float(s["value"][1]) >= START + END
                for s in prom.query("santinel_capture_last_packet_timestamp_seconds")
            ),
            timeout=90,
            interval=0.5,
            message="replay finished and scraped",
        )
        # A few more scrapes so that rates have two samples after the replay.
        wait_until(
            lambda: len(prom.query_range("up", start=_now() - 10, end=_now(), step=1)[0]["values"])
            >= 5,
            timeout=20,
        )
        yield Stack(prom, am, receiver, address, labels)


def _now() -> float:
    return time.time()


def exported_metrics(prom: Prometheus) -> set[str]:
    names: list[str] = prom.api("label/__name__/values", **{"match[]": '{job="santinel"}'})
    return set(names)


def test_the_daemon_exports_the_inventory_the_alerts_join_on(stack: Stack) -> None:
    info = {s["metric"]["mac"]: s["metric"] for s in stack.prometheus.query("santinel_device_info")}
    assert set(info) == {PUMP, MONITOR, SERVER}
    for labels in info.values():
        assert labels["sensor"] == stack.target_labels["sensor"]
        assert labels["ward"] == stack.target_labels["ward"]
    # The truncated packet is counted by reason.
    assert stack.prometheus.query("santinel_decode_errors_total")


def metrics_read_by(expr: str) -> set[str]:
    """Exported metrics a query reads, directly or through recording rules."""
    groups = yaml.safe_load(RECORDING_RULES.read_text())["groups"]
    recording = {r["record"]: r["expr"] for g in groups for r in g["rules"]}
    names = santinel_metrics_in(expr)
    for record in recorded_metrics_in(expr):
        names |= metrics_read_by(recording[record])
    return names


def test_every_dashboard_query_over_exported_metrics_has_data_from_the_daemon(
    stack: Stack,
) -> None:
    """Panels may only be empty because the daemon exports none of a metric they read (no
    anomaly or signature on this capture), never because of a wrong query or label."""
    exported = exported_metrics(stack.prometheus)
    device = stack.prometheus.query(f'santinel_device_info{{mac="{PUMP}"}}')[0]["metric"]["device"]
    values = {"ward": ".*", "instance": ".+", "device": device}
    checked, empty = 0, []
    for path in dashboard_files():
        dashboard = load(path)
        for title, expr in queries(dashboard):
            if not metrics_read_by(expr) <= exported:
                continue
            checked += 1
            if not stack.prometheus.query(substitute(expr, values, rate_interval="10s")):
                empty.append(f"{dashboard['uid']} / {title}: {expr}")
    assert not empty, "\n".join(empty)
    assert checked >= 25, f"only {checked} queries read metrics the daemon exports"


def test_a_life_sustaining_pump_that_stops_reporting_pages_the_clinical_pager(
    stack: Stack,
) -> None:
    prom = stack.prometheus
    cadence = prom.query(f'santinel_device_expected_interval_seconds{{device="{PUMP}"}}')
    if not cadence:
        pytest.skip(
            "the daemon on this branch exports no learned cadence "
            "(santinel_device_expected_interval_seconds) yet: baselines are not wired in"
        )

    def paged() -> list[dict[str, Any]]:
        return [
            a
            for a in stack.receiver.alerts(path="/clinical-pager")
            if a["labels"]["alertname"] == "SantinelDeviceSilent"
        ]

    (alert, *_) = wait_until(paged, timeout=30, message="SantinelDeviceSilent paged")
    assert alert["labels"]["device"] == PUMP
    assert alert["labels"]["criticality"] == "life_sustaining"
    assert alert["labels"]["severity"] == "critical"
    assert "more than 3 times its usual reporting interval" in alert["annotations"]["description"]

    # Once the replay is over, the silence is the 120 s between the pump's last report and the
    # end of the capture, on the sensor's clock (not Prometheus's wall clock).
    def silence() -> list[float]:
        return [
            float(a["value"])
            for a in prom.alerts()
            if a["labels"]["alertname"] == "SantinelDeviceSilent" and a["labels"]["device"] == PUMP
        ]

    wait_until(
        lambda: silence() and abs(silence()[0] - (END - PUMP_STOPS)) <= 1,
        timeout=20,
        message=f"SantinelDeviceSilent value of {END - PUMP_STOPS} s",
    )


def test_nothing_pages_about_the_benign_devices_and_the_watchdog_arrives(stack: Stack) -> None:
    wait_until(lambda: stack.receiver.alerts(path="/deadmans-switch"), timeout=30)
    about_benign = [
        a["labels"]
        for a in stack.receiver.alerts()
        if a["labels"].get("device") in (MONITOR, SERVER)
    ]
    assert not about_benign
    firing = {a["labels"]["alertname"] for a in stack.prometheus.alerts()}
    assert not firing & {"SantinelSensorDown", "SantinelSensorBlind", "SantinelCaptureLoss"}


def test_a_device_without_anomalies_shows_zero_events_not_no_data(stack: Stack) -> None:
    board = load(next(p for p in dashboard_files() if p.name == "santinel-device.json"))
    (expr,) = [e for title, e in queries(board) if title == "New anomaly events"]
    with_events = {
        s["metric"]["device"] for s in stack.prometheus.query("santinel_anomalies_total")
    }
    quiet = next((d for d in (MONITOR, SERVER, PUMP) if d not in with_events), "no-such-device")
    values = {"ward": ".*", "instance": ".+", "device": quiet}
    result = stack.prometheus.query(substitute(expr, values, rate_interval="10s"))
    assert [(r["metric"], r["value"][1]) for r in result] == [({"detector": "none"}, "0")]
