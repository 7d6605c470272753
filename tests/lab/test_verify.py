"""The verifier is not a rubber stamp: a truth file that disagrees with the capture — an event
placed at the wrong time, a device with the wrong MAC — is reported."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from monitor.lab.verify import check, decode_as_rules, read_frames

from .conftest import LabRun

pytestmark = pytest.mark.netns


@pytest.fixture(scope="module")
def frames_and_truth(ci_run: LabRun) -> tuple[list[Any], dict[str, Any]]:
    truth = ci_run.truth
    return read_frames(ci_run.pcap, decode_as_rules(truth)), truth


def test_the_recorded_truth_checks_clean(
    frames_and_truth: tuple[list[Any], dict[str, Any]],
) -> None:
    frames, truth = frames_and_truth
    assert check(frames, truth) == []


@pytest.mark.parametrize("anomaly", ["port_scan", "arp_spoofing", "dicom_unknown_ae",
                                     "exfiltration", "firmware_transfer", "ip_change",
                                     "new_device", "new_external_peer"])  # fmt: skip
def test_an_event_moved_to_a_time_it_did_not_happen_is_reported(
    frames_and_truth: tuple[list[Any], dict[str, Any]], anomaly: str
) -> None:
    frames, truth = frames_and_truth
    wrong = copy.deepcopy(truth)
    index, event = next((i, e) for i, e in enumerate(wrong["events"]) if e["anomaly"] == anomaly)
    # Back to before the first event, when the ward was only doing its normal work.
    shift = event["start"] - (truth["start"] + 1.0)
    event["start"] -= shift
    event["end"] -= shift
    problems = check(frames, wrong)
    assert any(p.startswith(f"event {index} ") for p in problems), problems


def test_a_silence_that_did_not_happen_is_reported(
    frames_and_truth: tuple[list[Any], dict[str, Any]],
) -> None:
    frames, truth = frames_and_truth
    wrong = copy.deepcopy(truth)
    for anomaly in ("silence_app", "silence_gone"):
        event = next(e for e in wrong["events"] if e["anomaly"] == anomaly)
        length = event["end"] - event["start"]
        event["start"] = truth["start"] + 2.0
        event["end"] = event["start"] + length
    problems = check(frames, wrong)
    assert sum("silence" in p or "unplug" in p for p in problems) == 2, problems


def test_a_device_with_a_wrong_mac_is_reported(
    frames_and_truth: tuple[list[Any], dict[str, Any]],
) -> None:
    frames, truth = frames_and_truth
    wrong = copy.deepcopy(truth)
    wrong["devices"][1]["mac"] = "00:12:21:00:00:00"
    problems = check(frames, wrong)
    assert f"device {wrong['devices'][1]['name']}: no frame from 00:12:21:00:00:00" in problems
