"""The shipped library on the IoT Sentinel setup captures, through the real pipeline.

Each folder of ``iot-sentinel/`` holds the setup captures of one consumer IoT device (its MAC
in ``_iotdevice-mac.txt``). Replayed through ``monitor.pipeline.analyze_captures`` with the
shipped signatures, the device must get its vendor and the class a person would give it,
and no device in any of these home networks (the IoT devices, the setup phones, the access
point) may be called a medical device.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.pipeline import analyze_captures
from monitor.signatures import (
    MEDICAL_CLASSES,
    SignatureLibrary,
    default_signature_dirs,
    load_library,
)

pytestmark = pytest.mark.shared

# folder -> (vendor, device class) a person would agree with
EXPECTED: dict[str, tuple[str, str]] = {
    "Aria": ("Fitbit", "consumer_health"),  # Fitbit Aria scale on a Delta Electronics module
    "D-LinkCam": ("D-Link", "ip_camera"),
    "D-LinkDayCam": ("D-Link", "ip_camera"),
    "D-LinkDoorSensor": ("D-Link", "generic_iot"),
    "D-LinkHomeHub": ("D-Link", "generic_iot"),
    "D-LinkSensor": ("D-Link", "generic_iot"),
    "D-LinkSiren": ("D-Link", "generic_iot"),
    "D-LinkSwitch": ("D-Link", "generic_iot"),
    "D-LinkWaterSensor": ("D-Link", "generic_iot"),
    "EdimaxCam1": ("Edimax", "ip_camera"),
    "EdimaxCam2": ("Edimax", "ip_camera"),
    "EdimaxPlug1101W": ("Edimax", "generic_iot"),
    "EdimaxPlug2101W": ("Edimax", "generic_iot"),
    "EdnetCam1": ("Ednet (ASSMANN)", "ip_camera"),
    "EdnetCam2": ("Ednet (ASSMANN)", "ip_camera"),
    "EdnetGateway": ("Hi-flying electronics technology Co.,Ltd", "generic_iot"),
    "HomeMaticPlug": ("eQ-3", "generic_iot"),
    "HueBridge": ("Philips Hue (Signify)", "generic_iot"),  # Philips, but not medical
    "HueSwitch": ("Philips Hue (Signify)", "generic_iot"),  # seen through the bridge's MAC
    "Lightify": ("Osram", "generic_iot"),
    "MAXGateway": ("eQ-3", "generic_iot"),
    "SmarterCoffee": ("Espressif Inc.", "generic_iot"),
    "TP-LinkPlugHS100": ("TP-Link", "generic_iot"),
    "TP-LinkPlugHS110": ("TP-Link", "generic_iot"),
    "WeMoInsightSwitch": ("Belkin", "generic_iot"),
    "WeMoInsightSwitch2": ("Belkin", "generic_iot"),
    "WeMoLink": ("Belkin", "generic_iot"),
    "WeMoSwitch": ("Belkin", "generic_iot"),
    "WeMoSwitch2": ("Belkin", "generic_iot"),
    "Withings": ("Withings", "consumer_health"),  # a connected scale: health, not clinical
    "iKettle2": ("Espressif Inc.", "generic_iot"),
}


@pytest.fixture(scope="module")
def library() -> SignatureLibrary:
    return load_library(default_signature_dirs())


@pytest.fixture(scope="module")
def sentinel(shared_pcaps: Path) -> Path:
    folder = shared_pcaps / "iot-sentinel"
    if not folder.is_dir():
        pytest.skip(f"needs {folder}, which is absent")
    return folder


def test_the_table_names_every_folder_of_the_dataset(sentinel: Path) -> None:
    folders = {p.name for p in sentinel.iterdir() if p.is_dir()}
    assert folders == set(EXPECTED)


@pytest.mark.parametrize("folder", sorted(EXPECTED))
def test_device_gets_its_vendor_and_class_and_nothing_is_called_medical(
    sentinel: Path, library: SignatureLibrary, folder: str
) -> None:
    captures = sorted((sentinel / folder).glob("*.pcap"))
    if not captures:
        pytest.skip(f"{folder}: the public dataset ships no capture for this device")
    mac = (sentinel / folder / "_iotdevice-mac.txt").read_text().strip().lower()
    analysis = analyze_captures(captures, signatures=library)
    assert not analysis.file_errors
    device = analysis.devices[mac]
    classification = device.classification
    assert classification is not None, f"{folder}: unclassified, facts {sorted(device.facts)}"
    vendor, device_class = EXPECTED[folder]
    assert (classification.vendor, classification.device_class) == (vendor, device_class)
    assert classification.evidence, "the classification keeps its evidence"
    assert 0 < classification.confidence < 1
    medical = {
        d.id: d.classification.signature
        for d in analysis.devices.values()
        if d.classification is not None and d.classification.device_class in MEDICAL_CLASSES
    }
    assert medical == {}, f"consumer devices called medical: {medical}"
