"""The shipped scenarios play in full: the capture matches the truth (devices and every
event), nothing is dropped or left behind, and the inventory finds every device.

Slow: the demo takes about 1.5 minutes, the incidents 4, the benign ward 12."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from monitor.lab.scenario import ANOMALY_OF_EVENT
from monitor.lab.verify import verify

from .conftest import REPO, lab_requirements, leftovers, tag_of
from .test_inventory_on_lab import check_inventory

SCENARIOS = REPO / "monitor" / "lab" / "scenarios"

pytestmark = [pytest.mark.netns, pytest.mark.slow, pytest.mark.long]


@pytest.mark.timeout(1500)
@pytest.mark.parametrize("name", ["demo.yml", "incidents.yml", "benign-ward.yml"])
def test_a_shipped_scenario_plays_and_its_capture_matches_its_truth(
    tmp_path: Path, name: str
) -> None:
    reason = lab_requirements()
    if reason:
        pytest.skip(reason)
    result = subprocess.run(
        [sys.executable, "-m", "monitor", "lab", "run", str(SCENARIOS / name), "--out",
         str(tmp_path)],
        capture_output=True, text=True, timeout=1400, cwd=REPO,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert leftovers(tag_of(result.stderr)) == []
    truth = json.loads((tmp_path / "truth.json").read_text())
    assert truth["errors"] == []
    assert truth["capture_dropped"] == 0
    assert verify(tmp_path) == []
    check_inventory(tmp_path / "capture.pcap", truth)
    if name == "incidents.yml":
        assert {e["anomaly"] for e in truth["events"]} == set(ANOMALY_OF_EVENT.values())
