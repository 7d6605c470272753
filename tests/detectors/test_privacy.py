"""No patient data in events, evidence or logs: the lab's canary patients are on the wire
(the test checks that first) and must appear in nothing the detectors produce."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.detectors.helpers import LAB_DEMO, REPO
from tests.detectors.lab import run_lab


def _canaries() -> list[str]:
    truth = json.loads((LAB_DEMO / "truth.json").read_text())
    canaries = [str(c) for c in truth["canaries"]]
    assert canaries
    return canaries


def test_the_lab_capture_really_carries_the_canaries() -> None:
    raw = (LAB_DEMO / "capture.pcap").read_bytes()
    assert any(c.encode() in raw for c in _canaries())


def test_no_canary_in_any_event_or_detection() -> None:
    result = run_lab(LAB_DEMO)
    assert result.events and result.detections
    text = json.dumps([e.to_dict() for e in result.events + result.detections])
    for canary in _canaries():
        assert canary not in text


def test_no_canary_in_the_daemon_events_file_or_its_log(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    config = tmp_path / "santinel.yml"
    config.write_text(
        "web:\n  listen_address: 127.0.0.1:0\n"
        "profiles:\n  window_seconds: 1\n"
        "baseline:\n  min_duration: 15\n  min_windows: 3\n"
        "anomalies:\n  hold_seconds: 60\n"
        f"  events_file: {events}\n"
        f"state:\n  path: {tmp_path / 'state.db'}\n"
        "logging:\n  level: debug\n"
    )
    run = subprocess.run(
        [sys.executable, "-m", "monitor", "run", "--config.file", str(config), "--pcap",
         str(LAB_DEMO / "capture.pcap"), "--replay-speed", "0", "--exit-after-pcap"],
        capture_output=True, text=True, timeout=300, cwd=REPO,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    lines = [json.loads(line) for line in events.read_text().splitlines()]
    detectors = {line["detector"] for line in lines}
    # scored first, then learned: the injected incidents are there
    assert {"port_scan", "dicom_unknown_ae", "new_external_peer"} <= detectors, detectors
    assert "detector=port_scan" in run.stderr  # one log line per event, metadata only
    everything = events.read_text() + run.stdout + run.stderr
    for canary in _canaries():
        assert canary not in everything
