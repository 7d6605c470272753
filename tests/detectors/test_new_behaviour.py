"""New behaviour against the baseline: a new internet destination, a cloud address rotation
that is not one, an unknown DICOM AE title (lab), a changed DHCP identity, an identity on a
new MAC; nothing while the baseline is still learning."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.dns import DNS, DNSQR, DNSRR
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Packet

from tests.detectors.helpers import (
    LAB_DEMO,
    LAPTOP,
    PUMP,
    ROGUE,
    ROUTER,
    T0,
    every,
    run,
    udp_to,
    ward,
    write,
)

LEARN_END = T0 + 150.0
END = T0 + 200.0


def dns_answer(name: str, address: str, when: float) -> Packet:
    p = (
        Ether(src=ROUTER[0], dst=PUMP[0])
        / IP(src=ROUTER[1], dst=PUMP[1])
        / UDP(sport=53, dport=33333)
        / DNS(id=7, qr=1, qd=DNSQR(qname=name), an=DNSRR(rrname=name, rdata=address, ttl=60))
    )
    p.time = when
    return p


def dhcp_request(mac: str, when: float, vendor: bytes, hostname: bytes) -> Packet:
    p = (
        Ether(src=mac, dst="ff:ff:ff:ff:ff:ff")
        / IP(src="0.0.0.0", dst="255.255.255.255")
        / UDP(sport=68, dport=67)
        / BOOTP(chaddr=bytes.fromhex(mac.replace(":", "")) + b"\0" * 10, xid=5)
        / DHCP(options=[("message-type", "request"), ("vendor_class_id", vendor),
                        ("hostname", hostname), ("param_req_list", [1, 3, 6]), "end"])
    )  # fmt: skip
    p.time = when
    return p


def cloud(packets: list[Packet], start: float, end: float, address: str) -> None:
    """The pump's own cloud service, resolved by name and reached every 5 s."""
    packets.append(dns_answer("pumps.vendor-cloud.example", address, start))
    packets.extend(udp_to(PUMP, address, ROUTER, t + 0.5, 443) for t in every(start, end, 5.0))


def test_new_internet_destination_is_found_and_explained(tmp_path: Path) -> None:
    packets = ward(T0, END)
    cloud(packets, T0, END, "198.51.100.20")
    packets.append(udp_to(PUMP, "203.0.113.66", ROUTER, LEARN_END + 12.2, 443, 800))
    result = run([write(tmp_path / "c.pcap", packets)])
    found = result.of("new_external_peer", PUMP[0])
    assert len(found) == 1, [e.to_dict() for e in result.events]
    event = found[0]
    assert LEARN_END + 10 <= event.time <= LEARN_END + 20  # the window it happened in
    assert "203.0.113.66:443 (internet)" in event.summary
    assert event.observed["new_external_peer"]["peer"] == ["ext:203.0.113.66"]
    assert event.baseline["peer"]["count"] >= 2 and event.baseline["state"] == "enforcing"


def test_known_service_on_a_new_address_and_plain_routine_raise_nothing(tmp_path: Path) -> None:
    packets = ward(T0, END)
    cloud(packets, T0, LEARN_END, "198.51.100.20")
    cloud(packets, LEARN_END, END, "198.51.100.77")  # the cloud moved: same name
    result = run([write(tmp_path / "c.pcap", packets)])
    assert result.events == [], [e.to_dict() for e in result.events]


def test_nothing_is_reported_while_the_baseline_is_learning(tmp_path: Path) -> None:
    packets = ward(T0, END)
    packets.append(udp_to(PUMP, "203.0.113.66", ROUTER, T0 + 30.2, 443, 800))
    result = run([write(tmp_path / "c.pcap", packets)])
    assert result.of("new_external_peer") == []


def test_changed_dhcp_fingerprint_on_the_same_mac_is_an_identity_change(tmp_path: Path) -> None:
    packets = ward(T0, END)
    packets += [dhcp_request(LAPTOP[0], t, b"MSFT 5.0", b"biomed-laptop")
                for t in every(T0 + 2, LEARN_END, 30.0)]  # fmt: skip
    packets.append(dhcp_request(LAPTOP[0], LEARN_END + 21, b"udhcp 1.35.0", b"biomed-laptop"))
    result = run([write(tmp_path / "c.pcap", packets)])
    (event,) = result.of("identity_changed", LAPTOP[0])
    assert event.observed["identity_changed"]["dhcp_vendor_class"] == ["udhcp 1.35.0"]
    assert event.baseline["dhcp_vendor_class"]["values"] == ["MSFT 5.0"]


def test_a_hostname_reappearing_on_a_new_mac_is_reported(tmp_path: Path) -> None:
    packets = [p for p in ward(T0, END) if p.src != LAPTOP[0] or float(p.time) < LEARN_END]
    packets += [dhcp_request(LAPTOP[0], t, b"MSFT 5.0", b"biomed-laptop")
                for t in every(T0 + 2, LEARN_END, 30.0)]  # fmt: skip
    packets.append(dhcp_request(ROGUE[0], LEARN_END + 31, b"MSFT 5.0", b"biomed-laptop"))
    result = run([write(tmp_path / "c.pcap", packets)])
    (event,) = result.of("identity_new_mac", ROGUE[0])
    assert LAPTOP[0] in event.summary and "biomed-laptop" in event.summary


@pytest.mark.skipif(not (LAB_DEMO / "truth.json").is_file(), reason="lab demo capture absent")
def test_lab_dicom_query_from_an_unknown_ae_title_and_new_internet_peer() -> None:
    from tests.detectors.lab import run_lab

    truth = json.loads((LAB_DEMO / "truth.json").read_text())
    result = run_lab(LAB_DEMO)
    for anomaly in ("dicom_unknown_ae", "new_external_peer"):
        (injected,) = [e for e in truth["events"] if e["anomaly"] == anomaly]
        found = result.of(anomaly, injected["device"]["mac"])
        assert len(found) == 1, anomaly
        window = 60.0 / truth["time_scale"]
        assert injected["start"] <= found[0].time <= injected["end"] + 2 * window
    (ae,) = result.of("dicom_unknown_ae")
    assert "HARVESTER" in ae.summary
    # before the first injected event, the enforcing baselines raise no new-behaviour event
    first = min(e["start"] for e in truth["events"])
    early = [e for e in result.events if e.time < first and e.detector.startswith("new_")]
    assert early == []
