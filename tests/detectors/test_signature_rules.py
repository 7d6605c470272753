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


INF = float("inf")


def _counting_rule_evaluations(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The ids of the rules evaluated from now on, one entry per evaluation."""
    from monitor import rules as rules_module

    evaluated: list[str] = []
    real = rules_module._finding

    def counting(rule: Any, device: Device, reader: Any) -> Any:
        evaluated.append(rule.id)
        return real(rule, device, reader)

    monkeypatch.setattr(rules_module, "_finding", counting)
    return evaluated


def test_a_device_is_judged_again_only_when_what_its_rules_read_changed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    library = load_library(default_signature_dirs())
    devices: dict[str, Device] = {}
    analysis = SimpleNamespace(devices=devices)
    pump = _pump(devices)
    detector = SignatureRuleDetector()
    evaluated = _counting_rule_evaluations(monkeypatch)

    def rules(end: float = INF, subject: Device | None = None) -> list[str]:
        found = detector.findings(subject or pump, analysis, library, end)
        return [f.rule_id for f in found]

    def evaluations() -> int:
        count = len(evaluated)
        evaluated.clear()
        return count

    assert rules() == []
    judged = set(evaluated)  # the rules in scope for a life-sustaining pump
    in_scope = evaluations()
    reading_services = sum(
        any(c.kind == "service_offered" for c in (*r.all, *r.any, *r.none))
        for r in library.rules
        if r.id in judged
    )
    pump.facts.record("service_offered", "tcp/443", 70.0)  # it did what it did: nothing new
    assert rules() == [] and evaluations() == 0
    # a value replaced by another: as many values, not the same ones
    del pump.facts["service_offered"]["tcp/443"]
    pump.facts.record("service_offered", "tcp/23", 80.0)
    assert pump.facts.value_count() == 1
    assert rules() == ["rule.telnet-on-clinical-device"] and evaluations() == in_scope
    # a new value: the rules that read the offered services, and only those
    pump.facts.record("service_offered", "tcp/443", 10.0)
    assert rules() == ["rule.telnet-on-clinical-device"]
    assert 0 < evaluations() == reading_services < in_scope
    # a finding is kept as long as what it read is the same
    assert rules() == ["rule.telnet-on-clinical-device"] and evaluations() == 0
    # as of a window that ended before Telnet showed, it was not there: an earlier end is
    # judged anew
    assert rules(75.0, as_of(pump, 75.0)) == [] and evaluations() == in_scope
    assert rules(75.0, as_of(pump, 75.0)) == [] and evaluations() == 0
    # another table at the same version, whose view as of that time holds as many values
    telnet_table, pump.facts = pump.facts, FactTable()
    pump.facts.record("service_offered", "tcp/23", 5.0)
    pump.facts.record("service_offered", "tcp/443", 90.0)
    pump.facts.record("service_offered", "tcp/23", 4.0)
    pump.facts.record("service_offered", "tcp/23", 3.0)
    view = as_of(pump, 75.0)
    assert pump.facts.version == telnet_table.version and view.facts.value_count() == 1
    assert rules(75.0, view) == ["rule.telnet-on-clinical-device"]
    assert evaluations() == in_scope
    pump.facts = telnet_table
    assert rules(75.0, as_of(pump, 75.0)) == [] and evaluations() == in_scope
    # the whole table, later: more offered services than its view had
    assert rules() == ["rule.telnet-on-clinical-device"] and evaluations() == reading_services
    # another table that shrank as often, with as many values but other ones
    whole_table, pump.facts = pump.facts, FactTable()
    for port in (443, 2575, 9):
        pump.facts.record("service_offered", f"tcp/{port}", 1.0)
    del pump.facts["service_offered"]["tcp/9"]
    assert pump.facts.shrinks == whole_table.shrinks
    assert rules() == [] and evaluations() == in_scope
    pump.facts = whole_table
    assert rules() == ["rule.telnet-on-clinical-device"] and evaluations() == in_scope
    # a value whose first seen moves earlier shows in a view it was not in
    pump.facts.record("service_offered", "tcp/23", 60.0)
    assert rules(INF, as_of(pump, INF)) == ["rule.telnet-on-clinical-device"]
    assert evaluations() == 0  # the view as of any time after all values is the table
    # reclassified, a library reloaded, another vendor
    pump.classification = replace(pump.classification, device_class="workstation")
    assert rules() == [] and evaluations() > 0
    other = replace(library, rules=library.rules[1:])
    assert detector.findings(pump, analysis, other, INF) == [] and evaluations() > 0
    assert detector.findings(pump, analysis, other, INF) == [] and evaluations() == 0
    pump.vendor = None  # (a rule may read the vendor of its MAC address)
    assert detector.findings(pump, analysis, other, INF) == [] and evaluations() > 0


def test_a_value_that_enters_a_later_window_s_view_is_judged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Telnet first seen at 50: absent from the view as of 40, present as of 60, and
    present as of 40 once a sighting at 30 moves its first seen earlier."""
    library = load_library(default_signature_dirs())
    devices: dict[str, Device] = {}
    analysis = SimpleNamespace(devices=devices)
    pump = _pump(devices)
    pump.facts.record("service_offered", "tcp/23", 50.0)
    detector = SignatureRuleDetector()
    evaluated = _counting_rule_evaluations(monkeypatch)

    def rules(end: float) -> list[str]:
        found = detector.findings(as_of(pump, end), analysis, library, end)
        return [f.rule_id for f in found]

    telnet = ["rule.telnet-on-clinical-device"]
    assert rules(40.0) == []
    assert rules(60.0) == telnet
    assert rules(40.0) == []  # an earlier end: judged anew
    pump.facts.record("service_offered", "tcp/23", 30.0)
    assert rules(45.0) == telnet
    evaluated.clear()
    assert rules(45.0) == telnet and evaluated == []


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
    evaluated = _counting_rule_evaluations(monkeypatch)
    monkeypatch.setattr(signature_rules, "FINDINGS_KEPT", 1)

    def rules(pump: Device, rules_library: Any = library) -> list[str]:
        return [f.rule_id for f in detector.findings(pump, analysis, rules_library, INF)]

    def evaluations() -> int:
        count = len(evaluated)
        evaluated.clear()
        return count

    telnet = ["rule.telnet-on-clinical-device"]
    assert rules(first) == telnet
    in_scope = evaluations()
    assert rules(first) == telnet and evaluations() == 0
    assert rules(second) == telnet and evaluations() == in_scope
    assert rules(second) == rules(second) == telnet and evaluations() == 0
    assert rules(first) == telnet and evaluations() == in_scope  # one device's findings kept
    assert rules(first) == telnet and evaluations() == 0
    first.vendor = None
    assert rules(first) == telnet and evaluations() == in_scope
    first.classification = replace(first.classification, device_class="patient_monitor")
    assert rules(first) == telnet and evaluations() > 0
    other = replace(library, rules=library.rules[1:])
    assert rules(first, other) == telnet and evaluations() > 0
    first.facts.record("service_offered", "tcp/80", 30.0)
    assert rules(first, other) == telnet and evaluations() > 0
    assert rules(first, other) == telnet and evaluations() == 0
    del first.facts["service_offered"]["tcp/23"]  # what it found is found no more
    assert rules(first, other) == [] and evaluations() > 0
    assert rules(first, other) == [] and evaluations() == 0
