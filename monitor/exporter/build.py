"""The sensor's own identity and configuration health: build info, last reload result."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from monitor import __version__
from monitor.exporter import Sensor


class BuildCollector(Collector):
    def __init__(self, sensor: Sensor) -> None:
        self.sensor = sensor

    def collect(self) -> Iterator[Metric]:
        info = GaugeMetricFamily(
            "santinel_build_info", "Santinel version, constant 1.", labels=["version"]
        )
        info.add_metric([__version__], 1)
        yield info
        with self.sensor.lock:
            ok = self.sensor.config_reload_successful
        yield GaugeMetricFamily(
            "santinel_config_last_reload_successful",
            "1 if the last configuration (and signature) reload succeeded, 0 if it failed and "
            "the previous configuration is still in use.",
            value=1 if ok else 0,
        )
