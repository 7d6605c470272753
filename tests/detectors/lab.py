"""Run the detectors over a lab recording (``capture.pcap`` + ``truth.json``) the way the
evaluation does: scaled windows, learning until the first injected event."""

from __future__ import annotations

import functools
import json
from pathlib import Path

from monitor.baseline import BaselineConfig, BaselineStore
from monitor.detectors import DetectorConfig
from monitor.signatures import default_signature_dirs, load_library
from tests.detectors.helpers import Run, run


@functools.cache  # one replay per recording and test session: the tests only read it
def run_lab(directory: Path) -> Run:
    truth = json.loads((directory / "truth.json").read_text())
    scale = float(truth["time_scale"])
    first = min((e["start"] for e in truth["events"]), default=truth["end"])
    learn = max(first - truth["start"], 60.0 / scale)
    store = BaselineStore(BaselineConfig(min_duration=0.8 * learn, min_windows=3))
    return run(
        [directory / "capture.pcap"],
        window=60.0 / scale,
        signatures=load_library(default_signature_dirs()),
        hold=3600.0 / scale,
        config=DetectorConfig().scaled(scale),
        store=store,
    )
