"""Window judging series: counted from the first scrape, the latest close once there is one."""

from __future__ import annotations

from prometheus_client import generate_latest

from monitor.exporter import Sensor
from monitor.exporter.registry import build_registry
from tests.exporter.sensorstate import FakeAnalysis


def test_before_a_window_closes_the_counters_are_zero_and_the_latest_close_is_absent() -> None:
    sensor = Sensor(analysis=FakeAnalysis())
    text = generate_latest(build_registry(sensor)).decode()
    assert "santinel_windows_judged_total 0.0" in text
    assert "santinel_window_judge_seconds_total 0.0" in text
    assert "santinel_window_judge_last_duration_seconds" not in text
    assert "santinel_window_judge_last_devices" not in text


def test_each_judged_window_adds_to_the_counters_and_replaces_the_latest_close() -> None:
    sensor = Sensor(analysis=FakeAnalysis())
    sensor.judging.add(1.5, 300)
    sensor.judging.add(0.25, 12)
    text = generate_latest(build_registry(sensor)).decode()
    assert "santinel_windows_judged_total 2.0" in text
    assert "santinel_window_judge_seconds_total 1.75" in text
    assert "santinel_window_judge_last_duration_seconds 0.25" in text
    assert "santinel_window_judge_last_devices 12.0" in text
