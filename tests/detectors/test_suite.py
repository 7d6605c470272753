"""The suite: score before learning; a window found anomalous is not learned; the plain
callable form for a daemon that learns by itself."""

from __future__ import annotations

from pathlib import Path

from monitor.baseline import BaselineConfig, BaselineStore
from monitor.detectors import DetectorSuite
from monitor.pipeline import analyze_captures
from tests.detectors.helpers import LAPTOP, PUMP, T0, syn, ward, write


def test_hook_scores_without_learning_and_returns_event_dicts(tmp_path: Path) -> None:
    packets = ward(T0, T0 + 60)
    packets += [syn(LAPTOP, PUMP, T0 + 30 + port / 1000, port) for port in range(1, 201)]
    capture = write(tmp_path / "scan.pcap", packets)
    store = BaselineStore(BaselineConfig(min_duration=10, min_windows=1))
    hook = DetectorSuite().as_hook()
    found: list[dict[str, object]] = []
    analyze_captures([capture], window_seconds=5.0,
                     on_window=lambda profiles, analysis: found.extend(
                         hook(profiles, analysis, store)))  # fmt: skip
    assert {(e["detector"], e["device"]) for e in found} >= {("port_scan", LAPTOP[0])}
    assert all(isinstance(e["time"], str) and e["summary"] for e in found)
    assert len(store) == 0  # the hook never learns
