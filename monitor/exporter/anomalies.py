"""Anomaly series: ``santinel_anomalies_total``, ``santinel_anomaly_active`` and
``santinel_signature_matches_total``, for the devices that have per-device series.

``AnomalyBook`` is the default ``Findings``: the daemon hands it every event the detectors
emit (DESIGN.md's event dict); it counts them per (device, detector, severity) and holds an
anomaly active for ``hold_seconds`` of capture time after its last event. Events that name a
``signature`` also count as a match of that signature.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from monitor.exporter import Sensor, pseudonym
from monitor.exporter.devices import kept_device_ids

SEVERITIES = ("critical", "warning", "info")
MAX_NAME = 64


def _bounded(value: object) -> str:
    text = str(value) if value is not None else ""
    return "".join(c for c in text if c.isalnum() or c in "_-.:")[:MAX_NAME]


class AnomalyBook:
    """Counts and holds anomalies from events; thread-safe."""

    def __init__(self, hold_seconds: float = 3600.0) -> None:
        self.hold_seconds = hold_seconds
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str, str], int] = {}
        self._last: dict[tuple[str, str, str], float] = {}
        self._matches: dict[tuple[str, str], int] = {}

    def record(self, event: Mapping[str, Any], when: float) -> None:
        """Count one event (``device``, ``detector``, ``severity``, optional ``signature``)."""
        severity = str(event.get("severity", "warning"))
        if severity not in SEVERITIES:
            severity = "warning"
        key = (str(event.get("device", "")), _bounded(event.get("detector")), severity)
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + 1
            self._last[key] = max(when, self._last.get(key, when))
            signature = event.get("signature")
            if signature:
                match = (key[0], _bounded(signature))
                self._matches[match] = self._matches.get(match, 0) + 1

    def anomaly_counts(self) -> Mapping[tuple[str, str, str], int]:
        with self._lock:
            return dict(self._counts)

    def active_anomalies(self, now: float) -> Iterable[tuple[str, str, str]]:
        with self._lock:
            return [k for k, t in self._last.items() if now - t < self.hold_seconds]

    def signature_matches(self) -> Mapping[tuple[str, str], int]:
        with self._lock:
            return dict(self._matches)


class AnomaliesCollector(Collector):
    def __init__(self, sensor: Sensor) -> None:
        self.sensor = sensor

    def collect(self) -> Iterator[Metric]:
        sensor = self.sensor
        with sensor.lock:
            findings = sensor.findings
            if findings is None:
                return
            kept = kept_device_ids(sensor)
            counts = findings.anomaly_counts()
            active = set(findings.active_anomalies(sensor.now))
            matches = findings.signature_matches()
        key = sensor.settings.pseudonym_key
        total = CounterMetricFamily(
            "santinel_anomalies",
            "Anomalies detected, by device, detector and severity.",
            labels=["device", "detector", "severity"],
        )
        held = GaugeMetricFamily(
            "santinel_anomaly_active",
            "1 while an anomaly is held active (anomalies.hold_seconds after its last event).",
            labels=["device", "detector", "severity"],
        )
        for device, detector, severity in sorted(counts):
            if device not in kept:
                continue
            labels = [pseudonym(key, device), detector, severity]
            total.add_metric(labels, counts[(device, detector, severity)])
            active_now = (device, detector, severity) in active
            held.add_metric(labels, 1 if active_now else 0)
        signatures = CounterMetricFamily(
            "santinel_signature_matches",
            "Signature matches, by device and signature.",
            labels=["device", "signature"],
        )
        for (device, signature), count in sorted(matches.items()):
            if device in kept:
                signatures.add_metric([pseudonym(key, device), signature], count)
        yield total
        yield held
        yield signatures
