"""Tests of the real-Prometheus/Alertmanager test stack: scrape, rules, alert delivery, cleanup."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.support.promstack import (
    Alertmanager,
    Prometheus,
    StackError,
    WebhookReceiver,
    alertmanager_config,
    prometheus_config,
    scrape_job,
    wait_until,
)

EXPOSITION = b"""# HELP santinel_capture_packets_total Packets captured.
# TYPE santinel_capture_packets_total counter
santinel_capture_packets_total{interface="eth1"} 1234
"""


@pytest.fixture
def metrics_target() -> Iterator[str]:
    """A static /metrics endpoint on loopback; yields its host:port."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.end_headers()
            self.wfile.write(EXPOSITION)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_prometheus_scrapes_a_target_and_answers_queries(
    prometheus_factory: Callable[..., Prometheus], metrics_target: str
) -> None:
    prom = prometheus_factory(prometheus_config([scrape_job("santinel", [metrics_target])]))
    prom.wait_for_targets_up(timeout=15)
    values = wait_until(
        lambda: prom.values("santinel_capture_packets_total"), timeout=15, message="sample"
    )
    assert values == {
        (
            ("__name__", "santinel_capture_packets_total"),
            ("instance", metrics_target),
            ("interface", "eth1"),
            ("job", "santinel"),
        ): 1234.0
    }


def test_alert_flows_from_rule_through_alertmanager_to_webhook(
    tmp_path: Path,
    prometheus_factory: Callable[..., Prometheus],
    alertmanager_factory: Callable[..., Alertmanager],
    webhook_receiver: WebhookReceiver,
    metrics_target: str,
) -> None:
    rules = tmp_path / "rules.yml"
    rules.write_text(
        "groups:\n"
        "  - name: t\n"
        "    rules:\n"
        "      - alert: StackTestPackets\n"
        "        expr: santinel_capture_packets_total > 1000\n"
        "        labels: {severity: info}\n"
        "        annotations: {summary: 'packets on {{ $labels.interface }}'}\n"
    )
    am = alertmanager_factory(alertmanager_config(webhook_receiver.url("/hook")))
    prom = prometheus_factory(
        prometheus_config(
            [scrape_job("santinel", [metrics_target])],
            rule_files=[rules],
            alertmanagers=[am.address],
        )
    )
    wait_until(lambda: prom.firing("StackTestPackets"), timeout=20, message="alert firing")
    alerts = wait_until(
        lambda: webhook_receiver.alerts(path="/hook"), timeout=20, message="webhook called"
    )
    assert alerts[0]["labels"]["alertname"] == "StackTestPackets"
    assert alerts[0]["labels"]["interface"] == "eth1"
    assert alerts[0]["annotations"]["summary"] == "packets on eth1"
    assert [a["labels"]["alertname"] for a in am.alerts(active="true")] == ["StackTestPackets"]


def test_a_bad_configuration_fails_fast_with_the_log(tmp_path: Path) -> None:
    prom = Prometheus({"scrape_configs": [{"no_such_key": 1}]}, tmp_path / "p")
    with pytest.raises(StackError, match="no_such_key"):
        prom.start(timeout=20)
    assert not prom.running


def test_stop_leaves_no_process_and_can_be_repeated(tmp_path: Path) -> None:
    am = Alertmanager(alertmanager_config("http://127.0.0.1:9/"), tmp_path / "am")
    with am:
        assert am.running
        process = am._process
    assert not am.running
    assert process is not None and process.poll() is not None
    am.stop()
