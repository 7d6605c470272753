"""What a closed window costs a daemon in its steady state: detectors and learning per device.

Learns ``--history`` one-minute windows of ``--devices`` devices into a ``BaselineStore``
(the profiles of ``bench/baseline_memory.py``; ``min_duration`` lowered to an hour so the
baselines enforce), then scores and learns ``--windows`` more through the
``DetectorSuite`` as the daemon does (``on_window``: score, then learn), timing each with
the process's CPU clock. Reports, per window, the whole suite and each detector (its
``score_window`` alone, timed in the same windows), and per device.

A baseline keeps ``history_windows`` (512) windows of volumes: past 128 of them its median
and MAD take the sorted-array path, which is what a device watched for more than two hours
costs every window.

    python3 bench/window_cost.py [--devices 1000] [--history 300] [--windows 5] [--markdown]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness
from baseline_memory import T0, profiles

from monitor.baseline import BaselineConfig, BaselineStore
from monitor.detectors import DetectorConfig, DetectorSuite
from monitor.events import EventBook
from monitor.model import Device


class _Analysis:
    """The part of ``Analysis`` the detectors read: devices with the facts of their windows."""

    def __init__(self) -> None:
        self.devices: dict[str, Device] = {}
        self.capture_stats: dict[str, Any] = {}

    def absorb(self, window: list[Any]) -> None:
        for profile in window:
            device = self.devices.get(profile.device_id)
            if device is None:
                device = self.devices[profile.device_id] = Device(
                    profile.device_id, profile.device_id, False, None, profile.start, profile.end
                )
            device.last_seen = profile.end
            for kind, values in profile.facts.items():
                device.facts.record_counts(kind, values, profile.start)
            device.facts.record_counts("peer", dict.fromkeys(profile.peers, 1), profile.start)


def _timed_detectors(suite: DetectorSuite, spent: dict[str, list[float]]) -> None:
    """Wrap each detector's ``score_window`` to add its CPU time to ``spent``."""
    for detector in suite.detectors:
        score = detector.score_window

        def timed(*args: Any, _score: Any = score, _name: str = detector.name) -> Any:
            began = time.process_time()
            try:
                return _score(*args)
            finally:
                spent[_name][-1] += time.process_time() - began

        detector.score_window = timed  # type: ignore[method-assign]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=1_000)
    parser.add_argument("--history", type=int, default=300, help="windows learned first")
    parser.add_argument("--windows", type=int, default=5, help="windows timed")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()

    store = BaselineStore(BaselineConfig(min_duration=3600.0))
    analysis = _Analysis()
    for w in range(args.history):
        window = profiles(args.devices, 5, 2, T0 + 60.0 * w, 60.0)
        analysis.absorb(window)
        store.learn_window(window)
    suite = DetectorSuite(EventBook(hold_seconds=3600.0), DetectorConfig(60.0))
    spent: dict[str, list[float]] = defaultdict(list)
    _timed_detectors(suite, spent)
    totals = []
    for w in range(args.history, args.history + args.windows):
        window = profiles(args.devices, 5, 2, T0 + 60.0 * w, 60.0)
        analysis.absorb(window)
        for name in [d.name for d in suite.detectors]:
            spent[name].append(0.0)
        began = time.process_time()
        suite.on_window(window, analysis, store, learn=True)
        totals.append(time.process_time() - began)

    total = statistics.median(totals)
    per_device = total / args.devices * 1e6
    machine = harness.machine()
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    if args.markdown:
        print(f"### A closed window: {args.devices:,} devices, {args.history} windows learned")
        print()
        print(f"{harness.machine_line(machine)} Load average {load}.")
        print()
        print("| part | ms per window | µs per device |")
        print("|---|---:|---:|")
        print(f"| score and learn (`on_window`) | {total * 1e3:.1f} | {per_device:.0f} |")
        for name, seconds in sorted(spent.items(), key=lambda kv: -statistics.median(kv[1])):
            ms = statistics.median(seconds) * 1e3
            print(f"| detector `{name}` | {ms:.1f} | {ms * 1e3 / args.devices:.0f} |")
    else:
        print(f"{args.devices} devices, {args.history} windows learned, load {load}")
        print(f"on_window: {total * 1e3:.1f} ms per window, {per_device:.0f} µs per device")
        for name, seconds in sorted(spent.items(), key=lambda kv: -statistics.median(kv[1])):
            print(f"  {name}: {statistics.median(seconds) * 1e3:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
