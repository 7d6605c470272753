"""Rules and policies evaluated against devices (monitor/rules.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.classifier import classify
from monitor.facts import FACT_KINDS
from monitor.model import Classification, Device
from monitor.rules import PeerVerdicts, evaluate_policies, evaluate_rules, service_allowed
from monitor.signatures import (
    DEVICE_CLASSES,
    SignatureLibrary,
    address_of,
    default_signature_dirs,
    in_network,
    load_library,
)

LIBRARY_TEXT = """\
rules:
  - id: rule.t.telnet
    title: Telnet on a clinical device
    severity: critical
    summary: "The {class_label} ({vendor}) accepts Telnet ({values})."
    runbook: "1. Close it."
    references: [CVE-2015-3459, ICSA-15-125-01B]
    scope: {medical: true}
    any:
      - {kind: service_offered, equals: [tcp/23, tcp/2323]}
    none:
      - {kind: hostname, pattern: '^biomed-lab-'}
    samples:
      positive:
        - classification: {device_class: infusion_pump}
          facts: {service_offered: [tcp/23]}
      negative: [{classification: {device_class: infusion_pump}}]
  - id: rule.t.all
    title: Both conditions
    severity: warning
    summary: "{count} values: {values}"
    runbook: "1."
    references: [CWE-319]
    all:
      - {kind: protocol, equals: hl7}
      - {kind: peer, networks: [public]}
    samples:
      positive: [{facts: {protocol: [hl7], peer: ["ext:203.0.113.1"]}}]
      negative: [{facts: {protocol: [hl7]}}]
policies:
  - id: policy.t.pump
    title: Pumps
    device_classes: [infusion_pump]
    summary: "The {class_label} talked outside its policy: {values}."
    runbook: "1. Check."
    peers:
      - {classes: [medical_gateway]}
      - {roles: [dns_server]}
      - {networks: [10.50.0.0/16, multicast]}
    services_used: [udp/53, tcp/443, "tcp/8000-8010"]
    protocols: [tcp, udp, dns, tls]
    samples:
      positive:
        - classification: {device_class: infusion_pump}
          facts: {peer: ["ext:203.0.113.9"]}
      negative: [{classification: {device_class: infusion_pump}}]
"""


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> SignatureLibrary:
    directory: Path = tmp_path_factory.mktemp("lib")
    (directory / "test.yml").write_text(LIBRARY_TEXT, encoding="utf-8")
    return load_library([directory])


def device(
    device_class: str | None = None,
    criticality: str = "life_sustaining",
    device_id: str = "00:12:21:00:00:01",
    vendor: str | None = "B.Braun Melsungen AG",
    facts: dict[str, list[str]] | None = None,
    **more_facts: list[str],
) -> Device:
    result = Device(
        id=device_id,
        mac=device_id,
        locally_administered=False,
        vendor=vendor,
        first_seen=0,
        last_seen=0,
    )
    if device_class is not None:
        result.classification = Classification(
            "fp.x", "B. Braun", device_class, "Space", criticality, 0.8
        )
    for kind, values in {**(facts or {}), **more_facts}.items():
        for value in values:
            result.facts.record(kind, value, 1.0)
    return result


def test_a_rule_fires_with_its_evidence_summary_runbook_and_references(
    library: SignatureLibrary,
) -> None:
    findings = evaluate_rules(
        device("infusion_pump", service_offered=["tcp/23", "tcp/443"]), library
    )
    assert len(findings) == 1
    finding = findings[0]
    assert finding.rule_id == "rule.t.telnet"
    assert finding.kind == "rule"
    assert finding.severity == "critical"
    assert finding.summary == "The infusion pump (B. Braun) accepts Telnet (tcp/23)."
    assert dict(finding.evidence) == {"service_offered": ("tcp/23",)}
    assert finding.runbook == "1. Close it."
    assert finding.references == ("CVE-2015-3459", "ICSA-15-125-01B")
    assert finding.device_id == "00:12:21:00:00:01"
    assert (finding.device_class, finding.criticality) == ("infusion_pump", "life_sustaining")


def test_a_finding_serialises_to_json_event_fields(library: SignatureLibrary) -> None:
    (finding,) = evaluate_rules(device("infusion_pump", service_offered=["tcp/23"]), library)
    data = json.loads(json.dumps(finding.to_dict()))
    assert data["rule"] == "rule.t.telnet" and data["detector"] == "rule"
    assert data["evidence"] == {"observed": {"service_offered": ["tcp/23"]}}
    assert data["references"] == ["CVE-2015-3459", "ICSA-15-125-01B"]
    assert (data["device"], data["device_class"], data["severity"]) == (
        "00:12:21:00:00:01",
        "infusion_pump",
        "critical",
    )


def test_a_rule_scoped_to_medical_devices_ignores_others(library: SignatureLibrary) -> None:
    assert evaluate_rules(device("generic_it", "low", service_offered=["tcp/23"]), library) == []
    assert evaluate_rules(device(None, service_offered=["tcp/23"]), library) == []


def test_a_none_condition_suppresses_the_rule(library: SignatureLibrary) -> None:
    quiet = device("infusion_pump", service_offered=["tcp/23"], hostname=["biomed-lab-pump3"])
    assert evaluate_rules(quiet, library) == []


def test_all_conditions_must_match(library: SignatureLibrary) -> None:
    both = device(None, protocol=["hl7", "tcp"], peer=["ext:203.0.113.1", "ext:10.0.0.1"])
    findings = evaluate_rules(both, library)
    assert [f.rule_id for f in findings] == ["rule.t.all"]
    assert findings[0].summary == "2 values: ext:203.0.113.1, hl7"
    assert evaluate_rules(device(None, protocol=["hl7"], peer=["ext:10.0.0.1"]), library) == []


def test_summary_lists_at_most_five_values(library: SignatureLibrary) -> None:
    many = device(None, protocol=["hl7"], peer=[f"ext:203.0.113.{n}" for n in range(1, 9)])
    (finding,) = evaluate_rules(many, library)
    assert finding.summary == (
        "9 values: ext:203.0.113.1, ext:203.0.113.2, ext:203.0.113.3, ext:203.0.113.4, "
        "ext:203.0.113.5, and 4 more"
    )
    assert len(finding.evidence["peer"]) == 8


def test_policy_allows_peers_by_class_role_and_network(library: SignatureLibrary) -> None:
    gateway = device("medical_gateway", "high", "aa:00:00:00:00:01")
    resolver = device(None, "low", "aa:00:00:00:00:02", service_offered=["udp/53"])
    pump = device(
        "infusion_pump",
        peer=["aa:00:00:00:00:01", "aa:00:00:00:00:02", "ext:10.50.3.4", "ext:224.0.0.251"],
        service_used=["tcp/443", "tcp/8005"],
        protocol=["tls", "tcp"],
    )
    peers = {d.id: d for d in (gateway, resolver)}
    assert evaluate_policies(pump, peers, library) == []


def test_policy_reports_every_violation_in_one_finding(library: SignatureLibrary) -> None:
    laptop = device("generic_it", "low", "aa:00:00:00:00:09", vendor="Dell Inc.")
    pump = device(
        "infusion_pump",
        peer=["aa:00:00:00:00:09", "ext:203.0.113.9", "ff:ff:00:00:00:01"],
        service_used=["tcp/443", "tcp/23"],
        protocol=["tcp", "telnet"],
    )
    findings = evaluate_policies(pump, {laptop.id: laptop}, library)
    assert len(findings) == 1
    finding = findings[0]
    assert finding.rule_id == "policy.t.pump" and finding.kind == "policy"
    assert dict(finding.evidence) == {
        "peer": ("aa:00:00:00:00:09", "ext:203.0.113.9", "ff:ff:00:00:00:01"),
        "service_used": ("tcp/23",),
        "protocol": ("telnet",),
    }
    assert finding.summary.startswith("The infusion pump talked outside its policy: ")
    assert "and 0 more" not in finding.summary


def test_wire_values_cannot_break_the_summary_line(library: SignatureLibrary) -> None:
    forged = "ftp\nsantinel: all clear\x1b[2J" + "x" * 200
    pump = device("infusion_pump", protocol=["tls", forged])
    (finding,) = evaluate_policies(pump, {}, library)
    assert "\n" not in finding.summary and "\x1b" not in finding.summary
    assert "ftp?santinel: all clear?[2J" in finding.summary
    assert len(finding.summary) < 200
    assert finding.evidence["protocol"] == (forged,)  # evidence keeps the observed value


def test_a_shown_value_is_cut_at_its_limit_whether_clean_or_not() -> None:
    from monitor.rules import MAX_SHOWN_LENGTH, printable

    assert printable("tcp/2575") == "tcp/2575"
    for value in ("x" * 300, "\x1b" + "x" * 299):
        shown = printable(value)
        assert len(shown) == MAX_SHOWN_LENGTH and shown.endswith("…")
    assert printable("\x1b" + "x" * 299).startswith("?x")
    assert printable("x" * MAX_SHOWN_LENGTH) == "x" * MAX_SHOWN_LENGTH


SCOPED_RULES = """\
rules:
""" + "".join(
    f"""\
  - id: rule.t.scope{number}
    title: Telnet, scope {number}
    severity: warning
    summary: "Telnet ({{values}})."
    runbook: "1."
    references: [CWE-319]
    scope: {scope}
    any: [{{kind: service_offered, equals: [tcp/23]}}]
    samples:
      positive: [{{classification: {{device_class: {device_class}, criticality: {criticality}}},
                   facts: {{service_offered: [tcp/23]}}}}]
      negative: [{{classification: {{device_class: {device_class}, criticality: {criticality}}}}}]
"""
    for number, (scope, device_class, criticality) in enumerate(
        [
            ("{device_classes: [infusion_pump]}", "infusion_pump", "high"),
            ("{criticalities: [life_sustaining, high]}", "ventilator", "life_sustaining"),
            ("{criticalities: [low]}", "generic_it", "low"),
            ("{medical: false}", "generic_it", "low"),
            ("{medical: true, criticalities: [high]}", "infusion_pump", "high"),
            ("{}", "generic_it", "low"),
        ]
    )
)


def test_the_rules_a_device_is_judged_by_follow_its_class_and_criticality(
    tmp_path: Path,
) -> None:
    """The library's rules are picked once per class and criticality: each pair, in any
    order, gets the findings its rules give one by one."""
    from monitor.rules import evaluate_rule
    from monitor.signatures import CRITICALITIES

    (tmp_path / "scoped.yml").write_text(SCOPED_RULES, encoding="utf-8")
    scoped = load_library([tmp_path])
    pairs = [(None, "low")] + [
        (device_class, criticality)
        for criticality in CRITICALITIES
        for device_class in sorted(DEVICE_CLASSES)
    ]
    for device_class, criticality in [*pairs, *reversed(pairs)]:
        subject = device(device_class, criticality, service_offered=["tcp/23"])
        one_by_one = [evaluate_rule(rule, subject) for rule in scoped.rules]
        expected = [finding for finding in one_by_one if finding is not None]
        assert evaluate_rules(subject, scoped) == expected, (device_class, criticality)
    fired = {
        f.rule_id
        for f in evaluate_rules(device("infusion_pump", "high", service_offered=["tcp/23"]), scoped)
    }
    assert fired == {"rule.t.scope0", "rule.t.scope1", "rule.t.scope4", "rule.t.scope5"}


def test_policy_severity_follows_the_device_criticality(library: SignatureLibrary) -> None:
    for criticality, severity in (("life_sustaining", "critical"), ("high", "high")):
        pump = device("infusion_pump", criticality, peer=["ext:203.0.113.9"])
        assert evaluate_policies(pump, {}, library)[0].severity == severity


def test_the_policies_a_device_is_judged_by_follow_its_class() -> None:
    """The shipped policies are picked once per class: every class, in any order, gets the
    findings the policies give one by one."""
    from monitor.rules import evaluate_policy

    shipped = load_library(default_signature_dirs())
    classes = [None, *sorted(DEVICE_CLASSES)]
    fired = set()
    for device_class in [*classes, *reversed(classes)]:
        subject = device(
            device_class,
            "high",
            peer=["ext:203.0.113.9"],
            service_offered=["tcp/23"],
            service_used=["tcp/6667"],
        )
        one_by_one = [evaluate_policy(policy, subject, {}) for policy in shipped.policies]
        expected = [finding for finding in one_by_one if finding is not None]
        assert evaluate_policies(subject, {}, shipped) == expected, device_class
        fired |= {finding.rule_id for finding in expected}
    assert len(fired) >= 2  # policies of several classes fired


def test_policies_of_other_classes_do_not_apply(library: SignatureLibrary) -> None:
    assert evaluate_policies(device("pacs", "medium", peer=["ext:203.0.113.9"]), {}, library) == []


@pytest.mark.parametrize(
    ("value", "allowed"),
    [("tcp/443", True), ("tcp/8010", True), ("tcp/8011", False), ("udp/443", False), ("x", False)],
)
def test_service_specs_cover_ports_and_ranges(value: str, allowed: bool) -> None:
    assert service_allowed(value, ["tcp/443", "tcp/8000-8010", "udp/53"]) is allowed


def test_a_wildcard_service_spec_covers_every_port_of_its_protocol() -> None:
    assert service_allowed("udp/65535", ["udp/*"]) and not service_allowed("tcp/1", ["udp/*"])


# --- the shipped rules and policies -----------------------------------------------------------

SHIPPED = load_library(default_signature_dirs())


def test_shipped_rules_flag_telnet_on_a_pump_with_advisory_references() -> None:
    pump = device("infusion_pump", service_offered=["tcp/23"])
    findings = {f.rule_id: f for f in evaluate_rules(pump, SHIPPED)}
    telnet = findings["rule.telnet-on-clinical-device"]
    assert telnet.severity == "critical"
    assert "CVE-2015-3459" in telnet.references
    assert telnet.summary.endswith(".") and "\n" not in telnet.summary


def test_shipped_policy_flags_a_monitor_talking_to_the_internet() -> None:
    monitor = device("patient_monitor", "high", peer=["ext:203.0.113.50"])
    findings = evaluate_policies(monitor, {}, SHIPPED)
    assert [f.rule_id for f in findings] == ["policy.patient-monitor"]
    assert findings[0].severity == "high"
    assert findings[0].evidence["peer"] == ("ext:203.0.113.50",)


FACT_VALUES = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["tcp/23", "udp/53", "ext:203.0.113.9", "ip:fe80::1%eth0", "ext:", "ip:x"]),
)


@settings(max_examples=200, deadline=None)
@given(
    vendor=st.none() | st.text(max_size=30),
    facts=st.dictionaries(
        st.sampled_from(sorted(FACT_KINDS)), st.lists(FACT_VALUES, max_size=4), max_size=6
    ),
    device_class=st.none() | st.sampled_from(sorted(DEVICE_CLASSES)),
)
def test_any_device_is_evaluated_without_raising(
    vendor: str | None, facts: dict[str, list[str]], device_class: str | None
) -> None:
    subject = device(device_class, vendor=vendor, facts=facts)
    found = classify(subject, SHIPPED)
    assert found is None or 0 < found.confidence < 1
    peers = {"aa:00:00:00:00:01": device("pacs", "medium", "aa:00:00:00:00:01", facts=facts)}
    for finding in [*evaluate_rules(subject, SHIPPED), *evaluate_policies(subject, peers, SHIPPED)]:
        assert finding.summary and "\n" not in finding.summary
        json.dumps(finding.to_dict())


@pytest.mark.parametrize(
    ("address", "keyword", "expected"),
    [
        ("10.1.0.255", "broadcast", True),
        ("255.255.255.255", "multicast", True),
        ("10.1.0.7", "broadcast", False),
        ("224.0.0.251", "multicast", True),
        ("ff02::fb", "multicast", True),
        ("203.0.113.9", "public", True),
        ("8.8.8.8", "public", True),
        ("10.1.0.7", "public", False),
        ("172.20.0.1", "private", True),
        ("fd00::1", "private", True),
        ("169.254.1.1", "link_local", True),
        ("169.254.1.1", "public", False),
        ("10.1.0.7", "10.1.0.0/24", True),
        ("10.1.1.7", "10.1.0.0/24", False),
        ("fe80::1", "10.0.0.0/8", False),
    ],
)
def test_network_keywords_and_cidrs(address: str, keyword: str, expected: bool) -> None:
    ip = address_of(f"ext:{address}")
    assert ip is not None
    assert in_network(ip, keyword) is expected


def test_peer_values_without_an_address_match_no_network() -> None:
    assert address_of("00:11:22:33:44:55") is None
    assert address_of("ip:fe80::1%eth0") is not None


def test_peer_verdicts_shared_across_devices_are_per_class(tmp_path: Path) -> None:
    # One pass judges each peer once per policy and class; a pump and a monitor under one
    # policy that allows "same_class" peers must still get different verdicts on one peer.
    (tmp_path / "same.yml").write_text(
        """\
policies:
  - id: policy.t.same
    title: Same class only
    device_classes: [infusion_pump, patient_monitor]
    summary: "{values}"
    runbook: "1."
    peers: [{roles: [same_class]}]
    samples:
      positive:
        - classification: {device_class: infusion_pump}
          facts: {peer: ["ext:203.0.113.9"]}
      negative: [{classification: {device_class: infusion_pump}}]
""",
        encoding="utf-8",
    )
    library = load_library([tmp_path])
    other_monitor = device("patient_monitor", "high", "aa:00:00:00:00:05")
    monitor = device("patient_monitor", "high", "aa:00:00:00:00:06", peer=[other_monitor.id])
    pump = device("infusion_pump", "high", "aa:00:00:00:00:07", peer=[other_monitor.id])
    devices = {d.id: d for d in (other_monitor, monitor, pump)}
    verdicts = PeerVerdicts()
    shared = [evaluate_policies(d, devices, library, verdicts) for d in (monitor, pump)]
    alone = [evaluate_policies(d, devices, library) for d in (monitor, pump)]
    assert shared == alone
    assert shared[0] == [] and [f.evidence["peer"] for f in shared[1]] == [(other_monitor.id,)]
    assert len(verdicts.peers) == 1 and len(verdicts.allowed) == 2


def test_peers_that_offer_the_same_services_share_one_set_of_them_in_a_pass() -> None:
    # a pass resolves every device that is somebody's peer: 100,000 at a large site, most of
    # a kind offering the same few services
    servers = [
        device("patient_monitor", "high", f"aa:00:00:00:01:0{n}", service_offered=offered)
        for n, offered in enumerate((["tcp/443", "udp/161"], ["udp/161", "tcp/443"], ["tcp/80"]))
    ]
    quiet = [device("patient_monitor", "high", f"aa:00:00:00:02:0{n}") for n in range(2)]
    devices = {d.id: d for d in (*servers, *quiet)}
    verdicts = PeerVerdicts()
    first, second, third = (verdicts.peer(d.id, devices) for d in servers)
    assert first.offers == {"tcp/443", "udp/161"} and first.offers is second.offers
    assert third.offers == {"tcp/80"}
    silent = [verdicts.peer(d.id, devices) for d in quiet]
    external = verdicts.peer("ext:203.0.113.9", devices)
    assert silent[0].offers == frozenset() and silent[0].offers is silent[1].offers
    assert external.offers is silent[0].offers
    assert verdicts.peer(servers[0].id, devices) is first  # resolved once per pass
