"""Anomaly series: counts per (device, detector, severity), the hold of anomaly_active, and
the device cap applied to them too."""

from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from monitor.exporter import ExporterSettings, Sensor
from monitor.exporter.anomalies import AnomalyBook
from monitor.exporter.registry import build_registry
from tests.exporter.sensorstate import NOW, FakeAnalysis, make_device


def samples(sensor: Sensor, name: str) -> dict[tuple[str, ...], float]:
    text = generate_latest(build_registry(sensor)).decode()
    for family in text_string_to_metric_families(text):
        if family.name == name:
            return {
                tuple(s.labels[k] for k in ("device", "detector", "severity") if k in s.labels)
                + ((s.labels["signature"],) if "signature" in s.labels else ()): s.value
                for s in family.samples
            }
    return {}


def sensor_with(book: AnomalyBook, max_devices: int = 10) -> Sensor:
    devices = {
        f"02:00:00:00:00:0{i}": make_device(f"02:00:00:00:00:0{i}", NOW - 100 + i, NOW)
        for i in range(3)
    }
    return Sensor(
        analysis=FakeAnalysis(devices=devices),
        now=NOW,
        findings=book,
        settings=ExporterSettings(max_devices=max_devices),
    )


def test_anomaly_is_active_for_hold_seconds_after_its_last_event_then_only_counted() -> None:
    book = AnomalyBook(hold_seconds=300)
    event = {"device": "02:00:00:00:00:00", "detector": "silence", "severity": "critical"}
    book.record(event, NOW - 400)
    book.record(event, NOW - 200)
    sensor = sensor_with(book)
    key = ("02:00:00:00:00:00", "silence", "critical")
    assert samples(sensor, "santinel_anomalies") == {key: 2}
    assert samples(sensor, "santinel_anomaly_active") == {key: 1}
    sensor.now = NOW + 101
    assert samples(sensor, "santinel_anomaly_active") == {key: 0}
    assert samples(sensor, "santinel_anomalies") == {key: 2}


def test_anomaly_labels_are_bounded_and_unknown_severities_become_warning() -> None:
    book = AnomalyBook()
    book.record(
        {
            "device": "02:00:00:00:00:01",
            "detector": "new peer <203.0.113.9>",
            "severity": "apocalyptic",
        },
        NOW,
    )
    assert samples(sensor_with(book), "santinel_anomalies") == {
        ("02:00:00:00:00:01", "newpeer203.0.113.9", "warning"): 1
    }


def test_devices_over_the_cap_get_no_anomaly_or_signature_series() -> None:
    book = AnomalyBook()
    for i in range(3):
        book.record(
            {
                "device": f"02:00:00:00:00:0{i}",
                "detector": "scan",
                "severity": "info",
                "signature": "port-scan",
            },
            NOW,
        )
    sensor = sensor_with(book, max_devices=1)
    assert set(samples(sensor, "santinel_anomalies")) == {("02:00:00:00:00:00", "scan", "info")}
    assert samples(sensor, "santinel_signature_matches") == {("02:00:00:00:00:00", "port-scan"): 1}


def test_without_a_detector_part_the_anomaly_series_are_absent() -> None:
    sensor = sensor_with(AnomalyBook())
    sensor.findings = None
    text = generate_latest(build_registry(sensor)).decode()
    assert "santinel_anomalies_total" not in text
