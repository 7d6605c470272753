"""Signature rules as a detector: the lab's insulin pump and CGM bridge publishing readings
over cleartext MQTT; an industrial MQTT client (nDPI capture) is not a clinical device."""

from __future__ import annotations

from pathlib import Path

from monitor.detectors.signature_rules import detector_for
from monitor.signatures import default_signature_dirs, load_library
from tests.detectors.helpers import LAB_DEMO, run
from tests.detectors.lab import run_lab


def test_rule_ids_map_to_the_kind_of_danger() -> None:
    assert detector_for("rule.telnet-on-clinical-device") == "cleartext_remote_admin"
    assert detector_for("rule.ftp-on-clinical-device") == "cleartext_remote_admin"
    assert detector_for("rule.tftp-on-clinical-device") == "firmware_transfer"
    assert detector_for("rule.dicom-external-peer") == "phi_to_external"
    assert detector_for("rule.something-new") == "signature_rule"


def test_cleartext_mqtt_from_the_lab_diabetes_devices() -> None:
    result = run_lab(LAB_DEMO)
    found = result.of("cleartext_clinical_data")
    assert sorted(e.device_class for e in found) == ["cgm_gateway", "insulin_pump"]
    for event in found:
        assert event.signature == "rule.cleartext-mqtt-from-clinical-device"
        assert event.references and event.observed
    # one event per device, held, although every window shows MQTT again
    assert len(found) == 2
    assert any(e.detector == "cleartext_clinical_data" for e in result.detections[2:])


def test_industrial_mqtt_client_fires_no_clinical_rule(shared_pcaps: Path) -> None:
    library = load_library(default_signature_dirs())
    result = run([shared_pcaps / "ndpi/mqtt.pcap"], window=60.0, signatures=library)
    assert [e for e in result.events if e.signature] == []
