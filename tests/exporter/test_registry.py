"""Golden exposition: a fixed sensor state renders exactly tests/data/golden/metrics.prom,
and promtool accepts it (prometheus-pve-exporter style golden file).

Regenerate after a deliberate change with ``SANTINEL_UPDATE_GOLDEN=1 pytest tests/exporter``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from monitor.exporter import Sensor
from monitor.exporter.registry import build_registry
from tests.exporter.sensorstate import fixed_sensor


@pytest.fixture
def sensor() -> Sensor:
    return fixed_sensor()


GOLDEN = Path(__file__).resolve().parent.parent / "data" / "golden" / "metrics.prom"


def test_exposition_matches_the_golden_file(sensor: Sensor) -> None:
    text = generate_latest(build_registry(sensor)).decode()
    if os.environ.get("SANTINEL_UPDATE_GOLDEN"):
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()


def test_promtool_check_metrics_accepts_the_golden_exposition() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool (Debian package prometheus) is not installed")
    result = subprocess.run(
        [promtool, "check", "metrics"],
        input=GOLDEN.read_bytes(),
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    assert result.stdout == b"" and result.stderr == b""


def test_exposition_names_exactly_the_metrics_of_design_md(sensor: Sensor) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    text = generate_latest(build_registry(sensor)).decode()
    names = {f.name for f in text_string_to_metric_families(text)}
    assert names == {
        "santinel_build_info",
        "santinel_capture_packets",
        "santinel_capture_bytes",
        "santinel_capture_dropped_packets",
        "santinel_decode_errors",
        "santinel_capture_last_packet_timestamp_seconds",
        "santinel_capture_processing_lag_seconds",
        "santinel_devices",
        "santinel_devices_overflow",
        "santinel_device_info",
        "santinel_device_last_seen_timestamp_seconds",
        "santinel_device_expected_interval_seconds",
        "santinel_device_transmit_bytes",
        "santinel_device_receive_bytes",
        "santinel_device_transmit_packets",
        "santinel_device_receive_packets",
        "santinel_device_peers",
        "santinel_device_baseline_ready",
        "santinel_anomalies",
        "santinel_anomaly_active",
        "santinel_signature_matches",
        "santinel_config_last_reload_successful",
        "santinel_flows_active",
        "santinel_flows_started",
        "santinel_flows_evicted",
        "santinel_devices_evicted",
        "santinel_fact_values_evicted",
        "santinel_windows_judged",
        "santinel_window_judge_seconds",
        "santinel_window_judge_last_duration_seconds",
        "santinel_window_judge_last_devices",
    }
