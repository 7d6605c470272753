"""The detectors against the lab's ground truth: every injected event is found by the
detector meant for it within two windows (silence: of the moment k x its cadence passed),
on the recorded demo and (slow, root) on a fresh run of the incidents scenario."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from monitor.detectors.evaluation import evaluate_lab
from monitor.signatures import default_signature_dirs, load_library
from tests.detectors.helpers import LAB_DEMO, REPO


def _check(directory: Path) -> None:
    result = evaluate_lab(directory, load_library(default_signature_dirs()))
    assert result.outcomes
    missed = [(o.anomaly, o.name) for o in result.outcomes if not o.detected]
    assert missed == []
    for outcome in result.outcomes:
        assert outcome.delay is not None
        found_at = outcome.start + outcome.delay
        assert found_at <= max(outcome.end, outcome.due) + 2 * result.window, outcome
    canaries = json.loads((directory / "truth.json").read_text())["canaries"]
    text = json.dumps([e.to_dict() for e in result.events])
    assert not any(c in text for c in canaries)


def test_every_event_of_the_recorded_demo_is_found_in_time() -> None:
    _check(LAB_DEMO)


@pytest.mark.slow
@pytest.mark.netns
@pytest.mark.timeout(900)
def test_every_event_of_a_fresh_incidents_run_is_found_in_time(tmp_path: Path) -> None:
    if os.geteuid() != 0 or not all(shutil.which(t) for t in ("ip", "tcpdump", "nmap")):
        pytest.skip("the lab needs root, iproute2, tcpdump and nmap")
    scenario = REPO / "monitor" / "lab" / "scenarios" / "incidents.yml"
    run = subprocess.run(
        [sys.executable, "-m", "monitor", "lab", "run", str(scenario), "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=800, cwd=REPO,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    _check(tmp_path)
