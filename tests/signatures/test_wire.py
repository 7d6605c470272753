"""From the wire to findings: frames crafted with scapy, written to a pcap, replayed through
``monitor.pipeline.analyze_captures`` with the shipped library, then rules and policies.

A small ward: a GE monitor and a Philips monitor announcing themselves over DHCP and sending
their discovery broadcasts, a B. Braun pump, and an office laptop opening a Telnet session
to the pump.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from scapy.utils import wrpcap

from monitor.pipeline import Analysis, analyze_captures
from monitor.rules import evaluate_policies, evaluate_rules
from monitor.signatures import default_signature_dirs, load_library

GE, PHILIPS, PUMP, LAPTOP = (
    "44:4b:5d:00:00:07",  # GE Healthcare
    "00:09:fb:00:00:05",  # Philips Patient Monitoring
    "00:12:21:00:00:09",  # B.Braun Melsungen AG
    "00:14:22:00:00:02",  # Dell Inc.
)
START = 1_796_000_000.0


def _dhcp_discover(mac: str, vendor_class: str, hostname: str, xid: int) -> Any:
    chaddr = bytes.fromhex(mac.replace(":", "")) + bytes(10)
    options = [
        ("message-type", "discover"),
        ("vendor_class_id", vendor_class),
        ("hostname", hostname),
        ("param_req_list", [1, 3, 6, 15, 42]),
        "end",
    ]
    return (
        Ether(src=mac, dst="ff:ff:ff:ff:ff:ff")
        / IP(src="0.0.0.0", dst="255.255.255.255")
        / UDP(sport=68, dport=67)
        / BOOTP(chaddr=chaddr, xid=xid)
        / DHCP(options=options)
    )


def _telnet_session() -> list[Any]:
    laptop, pump = ("10.1.0.2", 40000), ("10.1.0.9", 23)
    steps = [
        (LAPTOP, PUMP, laptop, pump, "S", 1000, 0, b""),
        (PUMP, LAPTOP, pump, laptop, "SA", 5000, 1001, b""),
        (LAPTOP, PUMP, laptop, pump, "A", 1001, 5001, b""),
        (PUMP, LAPTOP, pump, laptop, "PA", 5001, 1001, b"login: "),
    ]
    frames = []
    for src_mac, dst_mac, (src, sport), (dst, dport), flags, seq, ack, payload in steps:
        frame = Ether(src=src_mac, dst=dst_mac) / IP(src=src, dst=dst)
        frame = frame / TCP(sport=sport, dport=dport, flags=flags, seq=seq, ack=ack)
        frames.append(frame / Raw(payload) if payload else frame)
    return frames


@pytest.fixture(scope="module")
def ward(tmp_path_factory: pytest.TempPathFactory) -> Analysis:
    frames = [
        _dhcp_discover(GE, "GE CARESCAPE B650", "b650-bed2", 1),
        _dhcp_discover(PHILIPS, "Philips IntelliVue MX800", "mx800-bed1", 2),
        _dhcp_discover(PUMP, "BBraun SpaceStation", "pump-07", 3),
    ]
    for _ in range(3):
        frames.append(
            Ether(src=GE, dst="ff:ff:ff:ff:ff:ff")
            / IP(src="10.1.0.7", dst="10.1.0.255")
            / UDP(sport=7000, dport=7000)
            / Raw(bytes(64))
        )
        frames.append(
            Ether(src=PHILIPS, dst="ff:ff:ff:ff:ff:ff")
            / IP(src="10.1.0.5", dst="255.255.255.255")
            / UDP(sport=24005, dport=24005)
            / Raw(bytes(40))
        )
    frames += _telnet_session()
    for number, frame in enumerate(frames):
        frame.time = START + number * 0.1
    path: Path = tmp_path_factory.mktemp("wire") / "ward.pcap"
    wrpcap(str(path), frames)
    analysis = analyze_captures([path], signatures=load_library(default_signature_dirs()))
    assert not analysis.file_errors
    return analysis


@pytest.mark.parametrize(
    ("mac", "signature", "device_class", "vendor"),
    [
        (GE, "fp.ge.carescape-monitor", "patient_monitor", "GE HealthCare"),
        (PHILIPS, "fp.philips.intellivue", "patient_monitor", "Philips"),
        (PUMP, "fp.bbraun.space", "infusion_pump", "B. Braun"),
        (LAPTOP, "fp.vendor.computer-maker", "generic_it", "Dell Inc."),
    ],
)
def test_devices_on_the_wire_are_classified(
    ward: Analysis, mac: str, signature: str, device_class: str, vendor: str
) -> None:
    classification = ward.devices[mac].classification
    assert classification is not None
    assert (classification.signature, classification.device_class, classification.vendor) == (
        signature,
        device_class,
        vendor,
    )
    assert {e.kind for e in classification.evidence} >= {"oui_vendor"}


def test_telnet_offered_by_the_pump_is_a_critical_finding(ward: Analysis) -> None:
    library = load_library(default_signature_dirs())
    findings = {f.rule_id: f for f in evaluate_rules(ward.devices[PUMP], library)}
    telnet = findings["rule.telnet-on-clinical-device"]
    assert telnet.severity == "critical"
    assert telnet.evidence["service_offered"] == ("tcp/23",)


def test_the_laptop_is_outside_the_pump_policy_but_broadcasts_are_not(ward: Analysis) -> None:
    library = load_library(default_signature_dirs())
    (pump_finding,) = evaluate_policies(ward.devices[PUMP], ward.devices, library)
    assert pump_finding.rule_id == "policy.infusion-pump"
    assert pump_finding.evidence == {"peer": (LAPTOP,)}
    assert evaluate_policies(ward.devices[GE], ward.devices, library) == []
    assert evaluate_rules(ward.devices[LAPTOP], library) == []
