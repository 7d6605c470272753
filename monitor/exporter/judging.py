"""Window judging: how long the detectors and baselines take over each closed window.

At a window's close the detectors score every device profile of the window and the
baselines learn them: seconds of work at once on a sensor of thousands of devices, during
which a sensor without capture workers reads no frame and the kernel ring fills (workers go
on capturing; their reports wait). These series show that burst:
``santinel_window_judge_last_duration_seconds`` against what the ring holds
(``capture.buffer_bytes`` over the bytes per second on the wire) says whether the next
close will cost packets before ``santinel_capture_dropped_packets_total`` does; the two
counters give the mean over any range (``rate`` of the seconds over ``rate`` of the
windows), and ``santinel_window_judge_last_devices`` what a close cost per device.
The gauges are absent until a window has been judged.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from monitor.exporter import Sensor


class JudgingCollector(Collector):
    def __init__(self, sensor: Sensor) -> None:
        self.sensor = sensor

    def collect(self) -> Iterator[Metric]:
        with self.sensor.lock:
            judging = self.sensor.judging
            windows, seconds = judging.windows, judging.seconds
            last_seconds, last_devices = judging.last_seconds, judging.last_devices
        # no labels: each family takes its one value as it is made
        yield CounterMetricFamily(
            "santinel_windows_judged",
            "Closed windows whose device profiles the detectors scored and the baselines learned.",
            value=windows,
        )
        yield CounterMetricFamily(
            "santinel_window_judge_seconds",
            "Wall-clock seconds spent judging the closed windows (scoring, then learning).",
            value=seconds,
        )
        if last_seconds is None:
            return
        yield GaugeMetricFamily(
            "santinel_window_judge_last_duration_seconds",
            "Wall-clock seconds the latest closed window took to judge.",
            value=last_seconds,
        )
        yield GaugeMetricFamily(
            "santinel_window_judge_last_devices",
            "Device profiles the latest closed window held.",
            value=last_devices,
        )
