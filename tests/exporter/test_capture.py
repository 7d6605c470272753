"""Sensor-health series: a source is exported from its first scrape, before any packet."""

from __future__ import annotations

from prometheus_client import generate_latest

from monitor.exporter import Sensor
from monitor.exporter.registry import build_registry
from tests.exporter.sensorstate import FakeAnalysis, Stats


def test_a_source_without_packets_has_zero_counters_and_no_last_packet_timestamp() -> None:
    sensor = Sensor(analysis=FakeAnalysis(capture_stats={"eth1": Stats(0, 0, 0.0, 0)}))
    text = generate_latest(build_registry(sensor)).decode()
    assert 'santinel_capture_packets_total{interface="eth1"} 0.0' in text
    assert 'santinel_capture_dropped_packets_total{interface="eth1"} 0.0' in text
    assert 'santinel_capture_last_packet_timestamp_seconds{interface="eth1"}' not in text
