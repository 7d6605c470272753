"""Signature rules as a detector: the lab's insulin pump and CGM bridge publishing readings
over cleartext MQTT; an industrial MQTT client (nDPI capture) is not a clinical device."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from monitor.detectors._window import as_of
from monitor.detectors.signature_rules import SignatureRuleDetector, detector_for
from monitor.facts import FactTable
from monitor.model import Classification, Device
from monitor.signatures import default_signature_dirs, load_library
from tests.detectors.helpers import LAB_DEMO, run
from tests.detectors.lab import run_lab


def test_rule_ids_map_to_the_kind_of_danger() -> None:
    assert detector_for("rule.telnet-on-clinical-device") == "cleartext_remote_admin"
    assert detector_for("rule.ftp-on-clinical-device") == "cleartext_remote_admin"
    assert detector_for("rule.tftp-on-clinical-device") == "firmware_transfer"
    assert detector_for("rule.dicom-external-peer") == "phi_to_external"
    assert detector_for("rule.something-new") == "signature_rule"


def test_cleartext_mqtt_from_the_lab_diabetes_devices_is_a_standing_exposure() -> None:
    result = run_lab(LAB_DEMO)
    found = result.of("cleartext_clinical_data")
    assert sorted(e.device_class for e in found) == ["cgm_gateway", "insulin_pump"]
    for event in found:
        assert event.signature == "rule.cleartext-mqtt-from-clinical-device"
        assert event.references and event.observed
        # what the devices did from the start: a standing exposure, recorded at info
        assert event.severity == "info" and event.observed["new_to_baseline"] == []
    # one event per device, held, although every window shows MQTT again
    assert len(found) == 2
    assert any(e.detector == "cleartext_clinical_data" for e in result.detections[2:])


def test_industrial_mqtt_client_fires_no_clinical_rule(shared_pcaps: Path) -> None:
    library = load_library(default_signature_dirs())
    result = run([shared_pcaps / "ndpi/mqtt.pcap"], window=60.0, signatures=library)
    assert [e for e in result.events if e.signature] == []


def test_telnet_newly_offered_by_an_enforcing_pump_keeps_the_rule_severity(
    tmp_path: Path,
) -> None:
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether

    from tests.detectors.helpers import LAPTOP, PUMP, T0, ward, write

    packets = ward(T0, T0 + 200)
    for k in range(3):  # a Telnet session to the pump after learning
        t = T0 + 170 + k
        for src, dst, flags, sport, dport in ((LAPTOP, PUMP, "S", 40100 + k, 23),
                                              (PUMP, LAPTOP, "SA", 23, 40100 + k)):  # fmt: skip
            p = Ether(src=src[0], dst=dst[0]) / IP(src=src[1], dst=dst[1]) / TCP(
                sport=sport, dport=dport, flags=flags)  # fmt: skip
            p.time = t + (0.01 if flags == "SA" else 0.0)
            packets.append(p)
    library = load_library(default_signature_dirs())
    result = run([write(tmp_path / "telnet.pcap", packets)], signatures=library)
    (event,) = result.of("cleartext_remote_admin", PUMP[0])
    assert event.device_class == "infusion_pump"
    assert event.severity == "critical" and event.observed["new_to_baseline"] == ["tcp/23"]


def _pump(devices: dict[str, Device]) -> Device:
    pump = Device("00:12:21:00:00:04", "00:12:21:00:00:04", False, "Smiths Medical", 0.0, 0.0)
    pump.classification = Classification(
        "pump", "Smiths Medical", "infusion_pump", None, "life_sustaining", 0.9
    )
    pump.facts.record("service_offered", "tcp/443", 10.0)
    devices[pump.id] = pump
    return pump


def test_a_device_is_judged_again_only_when_what_its_rules_read_changed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from monitor.detectors import signature_rules

    library = load_library(default_signature_dirs())
    devices: dict[str, Device] = {}
    analysis = SimpleNamespace(devices=devices)
    pump = _pump(devices)
    detector = SignatureRuleDetector()
    judged = []
    evaluate = signature_rules.evaluate_rules
    monkeypatch.setattr(
        signature_rules, "evaluate_rules", lambda d, lib: judged.append(d.id) or evaluate(d, lib)
    )

    def rules() -> list[str]:
        return [f.rule_id for f in detector.findings(pump, analysis, library)]

    assert rules() == []
    pump.facts.record("service_offered", "tcp/443", 70.0)  # it did what it did: nothing new
    assert rules() == [] and len(judged) == 1
    # a value replaced by another: as many values, not the same ones
    del pump.facts["service_offered"]["tcp/443"]
    pump.facts.record("service_offered", "tcp/23", 80.0)
    assert pump.facts.value_count() == 1
    assert rules() == ["rule.telnet-on-clinical-device"] and len(judged) == 2
    pump.facts.record("service_offered", "tcp/443", 10.0)  # a new value
    assert rules() == ["rule.telnet-on-clinical-device"] and len(judged) == 3
    # a finding is kept as long as what it read is the same
    assert rules() == ["rule.telnet-on-clinical-device"] and len(judged) == 3
    # as of a window that ended before Telnet showed, it was not there
    assert detector.findings(as_of(pump, 75.0), analysis, library) == [] and len(judged) == 4
    assert detector.findings(as_of(pump, 75.0), analysis, library) == [] and len(judged) == 4
    # another table at the same version, whose view as of that time holds as many values
    telnet_table, pump.facts = pump.facts, FactTable()
    pump.facts.record("service_offered", "tcp/23", 5.0)
    pump.facts.record("service_offered", "tcp/443", 90.0)
    pump.facts.record("service_offered", "tcp/23", 4.0)
    pump.facts.record("service_offered", "tcp/23", 3.0)
    view = as_of(pump, 75.0)
    assert pump.facts.version == telnet_table.version and view.facts.value_count() == 1
    found = detector.findings(view, analysis, library)
    assert [f.rule_id for f in found] == ["rule.telnet-on-clinical-device"] and len(judged) == 5
    pump.facts = telnet_table
    assert detector.findings(as_of(pump, 75.0), analysis, library) == [] and len(judged) == 6
    assert detector.findings(as_of(pump, 75.0), analysis, library) == [] and len(judged) == 6
    # the whole table at the same version: more values than its view
    assert rules() == ["rule.telnet-on-clinical-device"] and len(judged) == 7
    assert detector.findings(as_of(pump, 75.0), analysis, library) == [] and len(judged) == 8
    # reclassified, a library reloaded, another vendor
    pump.classification = replace(pump.classification, device_class="workstation")
    assert detector.findings(as_of(pump, 75.0), analysis, library) == [] and len(judged) == 9
    other = replace(library, rules=library.rules[1:])
    assert detector.findings(as_of(pump, 75.0), analysis, other) == [] and len(judged) == 10
    pump.vendor = None  # (a rule may read the vendor of its MAC address)
    assert detector.findings(as_of(pump, 75.0), analysis, other) == [] and len(judged) == 11


def test_findings_are_kept_for_the_devices_judged_last_and_judged_again_on_a_change(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from monitor.detectors import signature_rules

    library = load_library(default_signature_dirs())
    devices: dict[str, Device] = {}
    analysis = SimpleNamespace(devices=devices)
    first = _pump(devices)
    second = Device("00:12:21:00:00:05", "00:12:21:00:00:05", False, "Smiths Medical", 0.0, 0.0)
    second.classification = first.classification
    devices[second.id] = second
    for pump in (first, second):
        pump.facts.record("service_offered", "tcp/23", 20.0)
    detector = SignatureRuleDetector()
    judged: list[str] = []
    evaluate = signature_rules.evaluate_rules
    monkeypatch.setattr(
        signature_rules, "evaluate_rules", lambda d, lib: judged.append(d.id) or evaluate(d, lib)
    )
    monkeypatch.setattr(signature_rules, "FINDINGS_KEPT", 1)

    def rules(pump: Device, rules_library: Any = library) -> list[str]:
        return [f.rule_id for f in detector.findings(pump, analysis, rules_library)]

    telnet = ["rule.telnet-on-clinical-device"]
    assert rules(first) == rules(first) == telnet and judged == [first.id]
    assert rules(second) == telnet and judged == [first.id, second.id]
    assert rules(second) == rules(second) == telnet and len(judged) == 2
    assert rules(first) == telnet and judged[2:] == [first.id]  # one device's findings kept
    assert rules(first) == telnet and len(judged) == 3
    first.vendor = None
    assert rules(first) == telnet and len(judged) == 4
    first.classification = replace(first.classification, device_class="patient_monitor")
    assert rules(first) == telnet and len(judged) == 5
    other = replace(library, rules=library.rules[1:])
    assert rules(first, other) == telnet and len(judged) == 6
    first.facts.record("service_offered", "tcp/80", 30.0)
    assert rules(first, other) == telnet and len(judged) == 7
    assert rules(first, other) == telnet and len(judged) == 7
    del first.facts["service_offered"]["tcp/23"]  # what it found is found no more
    assert rules(first, other) == [] and len(judged) == 8
    assert rules(first, other) == [] and len(judged) == 8
