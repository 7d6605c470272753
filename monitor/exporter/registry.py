"""One registry with every Santinel collector, for the daemon and for tests."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from monitor.exporter import Sensor
from monitor.exporter.anomalies import AnomaliesCollector
from monitor.exporter.build import BuildCollector
from monitor.exporter.capture import CaptureCollector
from monitor.exporter.devices import DevicesCollector
from monitor.exporter.judging import JudgingCollector
from monitor.exporter.tables import TablesCollector


def build_registry(sensor: Sensor) -> CollectorRegistry:
    """A fresh registry (no process/platform collectors: only what DESIGN.md names)."""
    registry = CollectorRegistry(auto_describe=False)
    for collector in (
        BuildCollector(sensor),
        CaptureCollector(sensor),
        DevicesCollector(sensor),
        AnomaliesCollector(sensor),
        TablesCollector(sensor),
        JudgingCollector(sensor),
    ):
        registry.register(collector)
    return registry
