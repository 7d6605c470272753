"""Entry samples turned into devices and checked (monitor/signature_samples.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.signature_samples import run_samples, sample_device
from monitor.signatures import Sample, SignatureLibrary, load_library

LIBRARY_TEXT = """\
fingerprints:
  - id: fp.s.monitor
    title: Monitor
    sources: [test]
    result: {vendor: Acme, device_class: patient_monitor, criticality: high}
    evidence: [{kind: oui_vendor, pattern: '^acme', weight: 0.6}]
    samples:
      positive: [{vendor: Acme}]
      negative: [{vendor: Zeta}]
rules:
  - id: rule.s.wrong
    title: A rule whose negative sample is wrong
    severity: warning
    summary: "{class_label} uses {values}"
    runbook: "1."
    references: [CWE-319]
    any: [{kind: service_used, equals: tcp/23}]
    samples:
      positive: [{facts: {service_used: [tcp/23]}}]
      negative: [{facts: {service_used: [tcp/23, tcp/80]}}]
policies:
  - id: policy.s.monitor
    title: Monitors talk to central stations
    device_classes: [patient_monitor]
    summary: "{class_label}: {values}"
    runbook: "1."
    peers: [{classes: [central_station]}]
    samples:
      positive:
        - vendor: Acme
          facts: {peer: [cc:00:00:00:00:02]}
          peers: {"cc:00:00:00:00:02": {vendor: Zeta}}
      negative:
        - vendor: Acme
          facts: {peer: [cc:00:00:00:00:01]}
          peers: {"cc:00:00:00:00:01": {classification: {device_class: central_station}}}
"""


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> SignatureLibrary:
    directory: Path = tmp_path_factory.mktemp("lib")
    (directory / "s.yml").write_text(LIBRARY_TEXT, encoding="utf-8")
    return load_library([directory])


def test_a_sample_without_classification_is_classified_by_the_library(
    library: SignatureLibrary,
) -> None:
    device = sample_device(Sample(vendor="Acme Corp"), library, "x")
    assert device.classification is not None
    assert device.classification.signature == "fp.s.monitor"


def test_a_given_classification_gets_its_class_default_criticality(
    library: SignatureLibrary,
) -> None:
    sample = Sample.model_validate({"classification": {"device_class": "infusion_pump"}})
    device = sample_device(sample, library, "x")
    assert device.classification is not None
    assert device.classification.criticality == "life_sustaining"


def test_policy_samples_see_their_peers_under_their_ids(library: SignatureLibrary) -> None:
    (policy,) = library.policies
    results = run_samples(policy, library)
    assert [(r.polarity, r.ok) for r in results] == [("positive", True), ("negative", True)]
    assert "cc:00:00:00:00:02" in results[0].message


def test_a_wrong_sample_is_reported_with_what_happened(library: SignatureLibrary) -> None:
    (rule,) = library.rules
    results = run_samples(rule, library)
    assert [(r.polarity, r.ok) for r in results] == [("positive", True), ("negative", False)]
    assert results[1].describe() == (
        "FAIL rule.s.wrong negative sample 1: fired: unidentified device uses tcp/23"
    )
