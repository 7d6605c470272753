"""Bounded tables: how many flows the sensor tracks and what it evicted to stay bounded.

A sensor under a flood (a port scan, a MAC flood) must not grow without limit; it evicts
instead, and these series say so: ``santinel_flows_evicted_total{reason="full"}`` rising
means the flow table is too small for the traffic (raise ``max_flows``) or something is
spraying connections; ``santinel_devices_evicted_total`` rising means more sources than
``max_devices`` appeared; ``santinel_fact_values_evicted_total`` rising means devices meet
more distinct peers, names or services than a device keeps per kind (a scan, a busy server).
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from monitor.exporter import Sensor

EVICTION_REASONS = ("idle", "full")


class TablesCollector(Collector):
    def __init__(self, sensor: Sensor) -> None:
        self.sensor = sensor

    def collect(self) -> Iterator[Metric]:
        with self.sensor.lock:
            stats = self.sensor.analysis.table_stats()
        active = GaugeMetricFamily("santinel_flows_active", "Flows tracked now.")
        active.add_metric([], stats.flows_active)
        started = CounterMetricFamily(
            "santinel_flows_started",
            "Flow records started (a flow that resumes after its eviction starts a new one).",
        )
        started.add_metric([], stats.flows_started)
        evicted = CounterMetricFamily(
            "santinel_flows_evicted",
            "Flows dropped from the flow table: idle past their timeout, or to make room.",
            labels=["reason"],
        )
        for reason in EVICTION_REASONS:
            evicted.add_metric([reason], stats.flows_evicted.get(reason, 0))
        devices = CounterMetricFamily(
            "santinel_devices_evicted",
            "Devices dropped from the inventory to make room (max_devices reached).",
        )
        devices.add_metric([], stats.devices_evicted)
        values = CounterMetricFamily(
            "santinel_fact_values_evicted",
            "Learned values (peers, names, ...) dropped past a device's bound per kind, "
            "least recently seen first.",
        )
        values.add_metric([], stats.facts_evicted)
        yield active
        yield started
        yield evicted
        yield devices
        yield values
