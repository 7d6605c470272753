"""Scoring the detectors against a lab recording's ground truth (``truth.json``).

``evaluate_lab(directory)`` replays ``capture.pcap`` with windows and time thresholds scaled
by the scenario's ``time_scale``, baselines learning until the first injected event, and
says for each injected event whether the detector meant for it (truth's ``anomaly``) fired on
the truth's device between one window before its start and two windows after its end — for
silence, two windows after the earliest moment it can be seen (k x the learned interval
after the start). ``bench/evaluate_detectors.py`` and the lab tests use it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monitor.baseline import BaselineConfig, BaselineStore
from monitor.detectors import DetectorConfig, DetectorSuite
from monitor.detectors.offline import replay
from monitor.events import Event, EventBook


@dataclass
class Outcome:
    """One injected event: found or not, how late (seconds of capture time after its start)."""

    anomaly: str
    device: str | None  # MAC
    name: str
    start: float
    end: float
    due: float  # the earliest moment the detector could see it
    delay: float | None = None  # None: missed

    @property
    def detected(self) -> bool:
        return self.delay is not None


@dataclass
class LabResult:
    scenario: str
    time_scale: float
    window: float
    learned_until: float
    outcomes: list[Outcome] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)  # deduplicated, in order
    suite: DetectorSuite | None = None


def evaluate_lab(directory: Path, library: Any = None) -> LabResult:
    truth = json.loads((directory / "truth.json").read_text())
    scale = float(truth["time_scale"])
    window = 60.0 / scale
    first = min((e["start"] for e in truth["events"]), default=truth["end"])
    learn = max(first - truth["start"], window)
    store = BaselineStore(BaselineConfig(min_duration=0.8 * learn, min_windows=3))
    config = DetectorConfig().scaled(scale)
    suite = DetectorSuite(EventBook(hold_seconds=3600.0 / scale), config)
    suite.record_detections = True
    replay([directory / "capture.pcap"], suite, store, library, window_seconds=window)
    result = LabResult(truth["scenario"], scale, window, first, suite=suite)
    result.events = list(suite.book.emitted)
    for injected in truth["events"]:
        device = injected.get("device") or {}
        mac = device.get("mac")
        outcome = Outcome(injected["anomaly"], mac, device.get("name") or str(mac),
                          float(injected["start"]), float(injected["end"]),
                          float(injected["start"]))  # fmt: skip
        if outcome.anomaly.startswith("silence"):
            baseline = store.get(mac or "")
            found = baseline.expected_interval() if baseline is not None else None
            interval = found[1].median if found is not None else 0.0
            outcome.due += max(config.silence_k * interval, config.silence_min_seconds)
        latest = max(outcome.end, outcome.due) + 2 * window
        hits = [
            d.time
            for d in suite.detections
            if d.detector == outcome.anomaly
            and d.device == mac
            and outcome.start - window <= d.time <= latest
        ]
        if hits:
            outcome.delay = max(0.0, min(hits) - outcome.start)
        result.outcomes.append(outcome)
    return result
