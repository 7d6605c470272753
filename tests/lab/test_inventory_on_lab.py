"""Santinel's inventory on lab captures finds every device of the truth file with its MAC, its
addresses, its registry vendor and (DHCP clients) its hostname — and no device that was not
there.

Runs on the committed demo recording (no root needed) and on a fresh CI-scenario run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from monitor.lab.verify import verify
from monitor.pipeline import analyze_captures

from .conftest import LabRun

DEMO = Path(__file__).resolve().parents[1] / "data" / "lab-demo"


def check_inventory(pcap: Path, truth: dict[str, Any]) -> None:
    analysis = analyze_captures([pcap])
    assert analysis.file_errors == []
    local = {device_id for device_id, d in analysis.devices.items() if d.local}
    assert local == {d["mac"] for d in truth["devices"]}
    for expected in truth["devices"]:
        device = analysis.devices[expected["mac"]]
        assert device.mac == expected["mac"], expected["name"]
        assert set(expected["ips"]) <= set(device.ips), expected["name"]
        assert device.vendor == expected["vendor"], expected["name"]
        assert not device.locally_administered
        if expected["address"] == "dhcp":
            assert expected["hostname"] in device.hostnames, expected["name"]


def test_the_committed_demo_is_small_and_matches_its_truth() -> None:
    assert (DEMO / "capture.pcap").stat().st_size < 2 * 1024 * 1024
    assert verify(DEMO) == []


def test_inventory_finds_every_demo_device_with_mac_ip_and_vendor() -> None:
    check_inventory(DEMO / "capture.pcap", json.loads((DEMO / "truth.json").read_text()))


@pytest.mark.netns
def test_inventory_finds_every_device_of_a_fresh_lab_run(ci_run: LabRun) -> None:
    assert ci_run.result.returncode == 0, ci_run.result.stderr[-2000:]
    check_inventory(ci_run.pcap, ci_run.truth)
