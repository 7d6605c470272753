"""Sensor health: packets, bytes, kernel drops, decode errors, last packet time, lag.

These series tell Grafana when the sensor is blind: a capture interface whose
``santinel_capture_last_packet_timestamp_seconds`` stops moving, or whose drop counter grows.

With capture workers (``capture.workers`` > 1) the per-interface series are the sums over
the workers, and ``santinel_capture_worker_packets_total`` and
``santinel_capture_worker_dropped_packets_total`` (labels ``interface``, ``worker``: 0 ..
workers - 1, bounded by the machine's cores) show each worker's share and its socket's
kernel drops: one worker that falls behind shows there, diluted in the sum.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from monitor.exporter import Sensor


class CaptureCollector(Collector):
    def __init__(self, sensor: Sensor) -> None:
        self.sensor = sensor

    def collect(self) -> Iterator[Metric]:
        sensor = self.sensor
        with sensor.lock:
            stats = [
                (name, s.packets, s.bytes, s.dropped, s.last_packet_time)
                for name, s in sensor.analysis.capture_stats.items()
            ]
            errors = sorted(sensor.analysis.decode_errors.items())
            lag = dict(sensor.processing_lag)
            interface = getattr(sensor.analysis, "interface", "")
            workers = [
                (str(i), int(w.packets), int(w.dropped))
                for i, w in enumerate(getattr(sensor.analysis, "worker_stats", ()))
            ]
        stats.sort()
        packets = CounterMetricFamily(
            "santinel_capture_packets",
            "Packets captured on the interface and handed to the decoder.",
            labels=["interface"],
        )
        octets = CounterMetricFamily(
            "santinel_capture_bytes",
            "Bytes on the wire of the packets captured on the interface.",
            labels=["interface"],
        )
        dropped = CounterMetricFamily(
            "santinel_capture_dropped_packets",
            "Packets the kernel dropped before the sensor could read them.",
            labels=["interface"],
        )
        last = GaugeMetricFamily(
            "santinel_capture_last_packet_timestamp_seconds",
            "Capture time of the last packet seen on the interface.",
            labels=["interface"],
        )
        lags = GaugeMetricFamily(
            "santinel_capture_processing_lag_seconds",
            "Delay between a packet's capture time and its processing, for the latest batch.",
            labels=["interface"],
        )
        for name, n_packets, n_bytes, n_dropped, last_time in stats:
            packets.add_metric([name], n_packets)
            octets.add_metric([name], n_bytes)
            dropped.add_metric([name], n_dropped)
            if last_time:  # None or 0: no packet yet
                last.add_metric([name], last_time)
            if name in lag:
                lags.add_metric([name], lag[name])
        decode = CounterMetricFamily(
            "santinel_decode_errors",
            "Truncated or malformed packets, by reason.",
            labels=["reason"],
        )
        for reason, count in errors:
            decode.add_metric([reason], count)
        yield packets
        yield octets
        yield dropped
        if workers:
            worker_packets = CounterMetricFamily(
                "santinel_capture_worker_packets",
                "Packets the capture worker received from the interface's fanout group.",
                labels=["interface", "worker"],
            )
            worker_dropped = CounterMetricFamily(
                "santinel_capture_worker_dropped_packets",
                "Packets the kernel dropped because the capture worker's ring was full.",
                labels=["interface", "worker"],
            )
            for worker, n_packets, n_dropped in workers:
                worker_packets.add_metric([interface, worker], n_packets)
                worker_dropped.add_metric([interface, worker], n_dropped)
            yield worker_packets
            yield worker_dropped
        yield last
        yield lags
        yield decode
