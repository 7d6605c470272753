"""Classification of devices by fingerprint evidence (monitor/classifier.py)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from netaddr import EUI

from monitor.classifier import candidates, classify, could_tell
from monitor.model import Device
from monitor.signatures import (
    MEDICAL_CLASSES,
    SignatureLibrary,
    default_signature_dirs,
    load_library,
)

LIBRARY_TEXT = """\
fingerprints:
  - id: fp.t.pump
    title: Test pump
    sources: [test]
    result: {vendor: Acme, device_class: infusion_pump, model: P1, criticality: life_sustaining}
    evidence:
      - {name: oui, kind: oui_vendor, pattern: '^acme medical', weight: 0.4}
      - {name: port, kind: service_used, equals: udp/3613, weight: 0.6}
      - {name: dhcp, kind: dhcp_vendor_class, pattern: 'acmepump', weight: 0.3}
    samples:
      positive: [{vendor: Acme Medical, facts: {service_used: [udp/3613]}}]
      negative: [{vendor: Acme Toys}]
  - id: fp.t.vetoed
    title: Test monitor, unless the client port is seen
    sources: [test]
    result: {device_class: patient_monitor, criticality: high}
    evidence:
      - {kind: service_offered, equals: udp/24105, weight: 0.7}
      - {kind: service_used, equals: udp/24105, veto: true}
    samples:
      positive: [{facts: {service_offered: [udp/24105]}}]
      negative: [{facts: {service_offered: [udp/24105], service_used: [udp/24105]}}]
  - id: fp.t.windows
    title: Test Windows fallback
    fallback: true
    sources: [test]
    result: {device_class: generic_it, model: Windows, criticality: low}
    evidence:
      - {kind: dhcp_vendor_class, pattern: '^msft 5\\.0', weight: 0.9}
    samples:
      positive: [{facts: {dhcp_vendor_class: [MSFT 5.0]}}]
      negative: [{facts: {dhcp_vendor_class: [udhcp 1.2]}}]
  - id: fp.t.draeger
    title: Test umlaut
    sources: [test]
    result: {device_class: ventilator, criticality: life_sustaining}
    evidence:
      - {kind: oui_vendor, pattern: '^drägerwerk', weight: 0.5}
    samples:
      positive: [{vendor: Drägerwerk AG}]
      negative: [{vendor: Draeger}]
  - id: fp.t.external
    title: Test networks evidence
    sources: [test]
    result: {device_class: cgm_gateway, criticality: high}
    evidence:
      - {kind: peer, networks: [198.51.100.0/24], weight: 0.5}
    samples:
      positive: [{facts: {peer: ["ext:198.51.100.7"]}}]
      negative: [{facts: {peer: ["ext:198.51.101.7"]}}]
"""


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> SignatureLibrary:
    directory: Path = tmp_path_factory.mktemp("lib")
    (directory / "test.yml").write_text(LIBRARY_TEXT, encoding="utf-8")
    return load_library([directory])


def device(vendor: str | None = None, mac: str = "00:00:00:00:00:01", **facts: list[str]) -> Device:
    result = Device(
        id=mac, mac=mac, locally_administered=False, vendor=vendor, first_seen=0, last_seen=0
    )
    for kind, values in facts.items():
        for value in values:
            result.facts.record(kind, value, 1.0)
    return result


def test_confidence_is_the_noisy_or_of_matched_weights(library: SignatureLibrary) -> None:
    found = classify(
        device("Acme Medical Inc", service_used=["udp/3613"], dhcp_vendor_class=["AcmePump 2"]),
        library,
    )
    assert found is not None
    assert found.signature == "fp.t.pump"
    assert found.confidence == pytest.approx(1 - (1 - 0.4) * (1 - 0.6) * (1 - 0.3), abs=1e-4)
    assert (found.vendor, found.device_class, found.model, found.criticality) == (
        "Acme",
        "infusion_pump",
        "P1",
        "life_sustaining",
    )


def test_classification_keeps_the_evidence_that_matched(library: SignatureLibrary) -> None:
    found = classify(device("Acme Medical Inc", service_used=["udp/3613", "tcp/443"]), library)
    assert found is not None
    assert [(e.kind, e.value, e.weight) for e in found.evidence] == [
        ("oui_vendor", "Acme Medical Inc", 0.4),
        ("service_used", "udp/3613", 0.6),
    ]


def test_weak_evidence_below_the_threshold_classifies_nothing(library: SignatureLibrary) -> None:
    assert classify(device("Acme Medical Inc"), library) is None
    assert classify(device("Acme Toys", service_used=["tcp/443"]), library) is None


def test_an_evidence_item_counts_once_however_many_values_match(library: SignatureLibrary) -> None:
    found = classify(
        device(dhcp_vendor_class=["acmepump a", "acmepump b"], service_used=["udp/3613"]), library
    )
    assert found is not None
    assert found.confidence == pytest.approx(1 - 0.4 * 0.7, abs=1e-4)


def test_a_veto_item_stops_the_fingerprint(library: SignatureLibrary) -> None:
    assert classify(device(service_offered=["udp/24105"]), library) is not None
    assert (
        classify(device(service_offered=["udp/24105"], service_used=["udp/24105"]), library) is None
    )


def test_only_values_some_evidence_matches_could_tell_what_a_device_is(
    library: SignatureLibrary,
) -> None:
    """A window is judged with the class a device had at its end: values first seen since
    that match no evidence (most: peers, names looked up) need no classifying again."""
    assert could_tell(library, "service_used", "udp/3613")
    assert could_tell(library, "service_used", "udp/24105")  # a veto tells too
    assert could_tell(library, "peer", "ext:198.51.100.7")
    assert not could_tell(library, "peer", "ext:198.51.101.7")
    assert not could_tell(library, "service_used", "tcp/443")
    assert not could_tell(library, "dns_query", "example.org")  # a kind no evidence reads


def test_a_specific_fingerprint_beats_a_fallback_with_higher_confidence(
    library: SignatureLibrary,
) -> None:
    both = device("Acme Medical Inc", service_used=["udp/3613"], dhcp_vendor_class=["MSFT 5.0"])
    ranked = candidates(both, library)
    assert [c.signature for c in ranked] == ["fp.t.pump", "fp.t.windows"]
    assert ranked[1].confidence > ranked[0].confidence
    only_windows = classify(device(dhcp_vendor_class=["MSFT 5.0"]), library)
    assert only_windows is not None and only_windows.signature == "fp.t.windows"


def test_vendor_names_match_after_unicode_normalisation_and_case_folding(
    library: SignatureLibrary,
) -> None:
    decomposed = "Dra\u0308gerwerk AG & Co. KG aA"  # a + combining diaeresis
    found = classify(device(decomposed), library)
    assert found is not None and found.signature == "fp.t.draeger"
    assert classify(device("DRÄGERWERK AG"), library) is not None


def test_network_evidence_matches_peer_addresses(library: SignatureLibrary) -> None:
    assert classify(device(peer=["ext:198.51.100.7"]), library) is not None
    assert classify(device(peer=["ext:198.51.101.7", "00:11:22:33:44:55"]), library) is None


def test_classification_uses_the_registry_vendor_when_the_fingerprint_names_none(
    library: SignatureLibrary,
) -> None:
    found = classify(device("Microsoft", dhcp_vendor_class=["MSFT 5.0"]), library)
    assert found is not None and found.vendor == "Microsoft"


# --- the shipped library ----------------------------------------------------------------------

SHIPPED = load_library(default_signature_dirs())


def registry(mac: str) -> str:
    """The organisation the IEEE registry gives, as the inventory fills Device.vendor."""
    return str(EUI(mac).oui.registration().org)


@pytest.mark.parametrize(
    ("mac", "facts", "expected_class"),
    [
        ("00:09:fb:01:02:03", {"service_used": ["udp/24005"]}, "patient_monitor"),
        ("00:d0:75:01:02:03", {"service_used": ["udp/3613"]}, "infusion_pump"),
        ("64:00:9c:01:02:03", {}, "insulin_pump"),
        ("44:4b:5d:01:02:03", {"service_used": ["udp/2000", "udp/7000"]}, "central_station"),
        ("00:25:41:01:02:03", {}, "ventilator"),
        ("c0:a2:6d:01:02:03", {}, "point_of_care"),
    ],
)
def test_registry_names_of_real_medical_prefixes_classify(
    mac: str, facts: dict[str, list[str]], expected_class: str
) -> None:
    found = classify(device(registry(mac), mac, **facts), SHIPPED)
    assert found is not None and found.device_class == expected_class


@pytest.mark.parametrize(
    ("mac", "facts"),
    [
        ("00:17:88:24:76:ff", {"hostname": ["Philips-hue"]}),  # Philips Lighting (Hue)
        ("00:00:66:01:02:03", {"service_used": ["tcp/443"]}),  # TALARIS, not Alaris
        ("60:3e:ca:01:02:03", {"service_used": ["udp/7000"]}),  # Cambridge Medical Robotics
        ("98:cc:e4:01:02:03", {}),  # Mindray's veterinary company
        ("00:24:e4:24:80:2a", {"http_user_agent": ["Withings UserAgent"]}),  # a scale
    ],
)
def test_lookalike_vendors_are_not_called_medical(mac: str, facts: dict[str, list[str]]) -> None:
    found = classify(device(registry(mac), mac, **facts), SHIPPED)
    assert found is None or found.device_class not in MEDICAL_CLASSES


def test_classifying_five_thousand_devices_is_fast() -> None:
    vendors = ["Dell Inc.", "Philips Patient Monitoring", "D-Link International", "Apple, Inc."]
    devices = []
    for n in range(5000):
        mac = f"02:00:00:{n >> 16 & 255:02x}:{n >> 8 & 255:02x}:{n & 255:02x}"
        devices.append(
            device(
                vendors[n % 4],
                mac,
                hostname=[f"host-{n}"],
                dhcp_vendor_class=["MSFT 5.0" if n % 2 else "udhcp 1.22.1"],
                dns_query=[f"api{n % 50}.example.com", "share2.dexcom.com"],
                service_used=["tcp/443", "udp/53", f"tcp/{1000 + n % 100}"],
                service_offered=["tcp/80"],
            )
        )
    classify(devices[0], SHIPPED)  # build the index once
    start = time.perf_counter()
    results = [classify(d, SHIPPED) for d in devices]
    elapsed = time.perf_counter() - start
    assert all(r is not None for r in results)
    assert elapsed < 2.0, f"{elapsed:.2f} s for 5000 devices"


def test_patterns_still_match_when_the_regex_set_cannot_be_built(
    library: SignatureLibrary, monkeypatch: pytest.MonkeyPatch
) -> None:
    import re2

    class Refusing:
        @staticmethod
        def SearchSet(options: object) -> object:
            raise re2.error("refused")

    fresh = SignatureLibrary(fingerprints=list(library.fingerprints))
    monkeypatch.setattr(re2, "Set", Refusing)
    found = classify(device("Acme Medical Inc", service_used=["udp/3613"]), fresh)
    assert found is not None and found.signature == "fp.t.pump"
    assert found.confidence == pytest.approx(0.76, abs=1e-4)


def test_what_a_value_matched_is_remembered_without_changing_the_answer(
    library: SignatureLibrary, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import monitor.classifier as classifier

    monkeypatch.setattr(classifier, "MATCH_MEMO_SIZE", 4)
    pump = device("Acme Medical Inc", service_used=["tcp/443"])
    assert classify(pump, library) is None
    pump.facts.record("service_used", "udp/3613", 2.0)
    for value in range(10):  # more values than the memo holds: it starts again, bounded
        pump.facts.record("service_used", f"tcp/{8000 + value}", 2.0)
    remembered = classify(pump, library)
    (directory := tmp_path / "fresh").mkdir()
    (directory / "test.yml").write_text(LIBRARY_TEXT, encoding="utf-8")
    assert remembered == classify(pump, load_library([directory]))
    assert remembered is not None and remembered.signature == "fp.t.pump"
    memo = classifier._index(library).kinds["service_used"].matched
    assert 0 < len(memo) <= 4
    # the values passed over are those remembered as matching nothing, no more
    matching_nothing = {value for value, found in memo.items() if not found}
    assert classifier._index(library).kinds["service_used"].matches_nothing == matching_nothing
    assert remembered == classify(pump, library)  # and classified again, past them
