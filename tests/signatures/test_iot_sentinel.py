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

# folder -> the vendor, class and model a person would agree with (non-medical devices all
# get the generic_iot class; the model says what they are)
EXPECTED: dict[str, tuple[str, str, str]] = {
    "Aria": ("Fitbit", "generic_iot", "scale"),  # Fitbit Aria on a Delta Electronics module
    "D-LinkCam": ("D-Link", "generic_iot", "IP camera"),
    "D-LinkDayCam": ("D-Link", "generic_iot", "IP camera"),
    "D-LinkDoorSensor": ("D-Link", "generic_iot", "mydlink"),
    "D-LinkHomeHub": ("D-Link", "generic_iot", "mydlink"),
    "D-LinkSensor": ("D-Link", "generic_iot", "mydlink"),
    "D-LinkSiren": ("D-Link", "generic_iot", "mydlink"),
    "D-LinkSwitch": ("D-Link", "generic_iot", "mydlink"),
    "D-LinkWaterSensor": ("D-Link", "generic_iot", "mydlink"),
    "EdimaxCam1": ("Edimax", "generic_iot", "IP camera"),
    "EdimaxCam2": ("Edimax", "generic_iot", "IP camera"),
    "EdimaxPlug1101W": ("Edimax", "generic_iot", "smart plug"),
    "EdimaxPlug2101W": ("Edimax", "generic_iot", "smart plug"),
    "EdnetCam1": ("Ednet (ASSMANN)", "generic_iot", "IP camera"),
    "EdnetCam2": ("Ednet (ASSMANN)", "generic_iot", "IP camera"),
    "EdnetGateway": ("Hi-flying electronics technology Co.,Ltd", "generic_iot", "Wi-Fi module"),
    "HomeMaticPlug": ("eQ-3", "generic_iot", "HomeMatic"),
    "HueBridge": ("Philips Hue (Signify)", "generic_iot", "Hue bridge"),  # Philips, not medical
    "HueSwitch": ("Philips Hue (Signify)", "generic_iot", "Hue bridge"),  # behind the bridge
    "Lightify": ("Osram", "generic_iot", "Lightify"),
    "MAXGateway": ("eQ-3", "generic_iot", "HomeMatic"),
    "SmarterCoffee": ("Espressif Inc.", "generic_iot", "Espressif"),
    "TP-LinkPlugHS100": ("TP-Link", "generic_iot", "smart plug"),
    "TP-LinkPlugHS110": ("TP-Link", "generic_iot", "smart plug"),
    "WeMoInsightSwitch": ("Belkin", "generic_iot", "WeMo"),
    "WeMoInsightSwitch2": ("Belkin", "generic_iot", "WeMo"),
    "WeMoLink": ("Belkin", "generic_iot", "WeMo"),
    "WeMoSwitch": ("Belkin", "generic_iot", "WeMo"),
    "WeMoSwitch2": ("Belkin", "generic_iot", "WeMo"),
    "Withings": ("Withings", "generic_iot", "scale"),  # health data, but not a clinical device
    "iKettle2": ("Espressif Inc.", "generic_iot", "Espressif"),
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
    vendor, device_class, model_words = EXPECTED[folder]
    assert (classification.vendor, classification.device_class) == (vendor, device_class)
    assert model_words in (classification.model or "")
    assert classification.evidence, "the classification keeps its evidence"
    assert 0 < classification.confidence < 1
    medical = {
        d.id: d.classification.signature
        for d in analysis.devices.values()
        if d.classification is not None and d.classification.device_class in MEDICAL_CLASSES
    }
    assert medical == {}, f"consumer devices called medical: {medical}"
