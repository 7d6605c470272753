"""The shipped signature library on lab recordings: every device of the truth file is
classified as the class the scenario gave it, and the library's rules fire on the incidents
the scenario played (Telnet and FTP on the pump, the CT talking to internet hosts).

Runs on the committed demo recording (no root needed) and on a fresh CI-scenario run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from monitor.pipeline import Analysis, analyze_captures
from monitor.rules import evaluate_rules
from monitor.signatures import SignatureLibrary, default_signature_dirs, load_library

from .conftest import LabRun

DEMO = Path(__file__).resolve().parents[1] / "data" / "lab-demo"


@pytest.fixture(scope="module")
def library() -> SignatureLibrary:
    return load_library(default_signature_dirs())


def classify_lab(pcap: Path, truth: dict[str, Any], library: SignatureLibrary) -> Analysis:
    analysis = analyze_captures([pcap], signatures=library)
    assert analysis.file_errors == []
    wrong = {}
    for expected in truth["devices"]:
        classification = analysis.devices[expected["mac"]].classification
        got = classification.device_class if classification else None
        if got != expected["class"]:
            wrong[expected["name"]] = (expected["class"], got)
    assert wrong == {}, f"device: (truth class, classified as): {wrong}"
    return analysis


def test_every_demo_device_is_classified_as_its_truth_class(library: SignatureLibrary) -> None:
    classify_lab(DEMO / "capture.pcap", json.loads((DEMO / "truth.json").read_text()), library)


@pytest.mark.netns
def test_every_device_of_a_fresh_lab_run_is_classified_and_its_incidents_flagged(
    ci_run: LabRun, library: SignatureLibrary
) -> None:
    assert ci_run.result.returncode == 0, ci_run.result.stderr[-2000:]
    analysis = classify_lab(ci_run.pcap, ci_run.truth, library)
    pump = analysis.devices[ci_run.device("pump1")["mac"]]
    fired = {f.rule_id for f in evaluate_rules(pump, library)}
    assert {"rule.telnet-on-clinical-device", "rule.ftp-on-clinical-device"} <= fired
    ct = analysis.devices[ci_run.device("ct1")["mac"]]
    assert "rule.dicom-external-peer" in {f.rule_id for f in evaluate_rules(ct, library)}
