"""Scans without a baseline: a SYN scan (scapy, lab) and an ARP sweep (Zeek's nmap capture);
normal TCP to a handful of services is not a scan."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.detectors.helpers import LAB_DEMO, LAPTOP, PUMP, T0, run, syn, ward, write


def test_syn_scan_of_a_pump_names_the_scanner_and_the_target(tmp_path: Path) -> None:
    packets = ward(T0, T0 + 60)
    packets += [syn(LAPTOP, PUMP, T0 + 30 + port / 1000, port) for port in range(1, 301)]
    result = run([write(tmp_path / "scan.pcap", packets)])
    (scanner,) = result.of("port_scan", LAPTOP[0])
    assert scanner.observed["ports_tried"] == 300 and scanner.observed["role"] == "scanner"
    assert "300 different ports" in scanner.summary
    (target,) = result.of("port_scan", PUMP[0])
    assert target.observed["role"] == "target"


def test_normal_traffic_to_a_few_services_is_not_a_scan(tmp_path: Path, shared_pcaps: Path) -> None:
    quiet = run([write(tmp_path / "ward.pcap", ward(T0, T0 + 120))])
    assert quiet.events == []
    for name in ("chrissanders-packets/tcp_ports.pcapng", "zeek/var-services-std-ports.pcap"):
        result = run([shared_pcaps / name], window=60.0)
        scans = [e for e in result.events if e.detector in ("port_scan", "host_scan")]
        assert scans == [], name


def test_arp_ping_sweep_is_a_host_scan(shared_pcaps: Path) -> None:
    result = run([shared_pcaps / "zeek/nmap-vsn.pcap"], window=60.0)
    sweeps = result.of("host_scan")
    assert [e.device for e in sweeps] == [sweeps[0].device] and sweeps
    assert sweeps[0].observed["arp_packets"] >= 256


@pytest.mark.skipif(not (LAB_DEMO / "truth.json").is_file(), reason="lab demo capture absent")
def test_lab_nmap_scan_is_found_in_its_window() -> None:
    from tests.detectors.lab import run_lab

    truth = json.loads((LAB_DEMO / "truth.json").read_text())
    (injected,) = [e for e in truth["events"] if e["anomaly"] == "port_scan"]
    result = run_lab(LAB_DEMO)
    (found,) = result.of("port_scan", injected["device"]["mac"])
    assert injected["start"] <= found.time <= injected["end"] + 2 * 60 / truth["time_scale"]
