"""Floods: a real UDP amplification capture (StopDDoS) seen in 1-second windows; two-way
traffic, even when heavy, is not a flood."""

from __future__ import annotations

from pathlib import Path

from tests.detectors.helpers import ENGINE, PUMP, T0, run, udp, ward, write


def test_amplification_flood_is_found(shared_pcaps: Path) -> None:
    result = run([shared_pcaps / "stopddos/amp.UDP.isakmp.pcap"], window=1.0)
    floods = result.of("flood")
    assert floods, [e.to_dict() for e in result.events]
    assert floods[0].device == "98:5d:82:11:54:49"  # the link it arrives through
    assert floods[0].observed["packets"] >= 300


def test_synthetic_flood_against_a_pump(tmp_path: Path) -> None:
    packets = ward(T0, T0 + 60)
    packets += [udp(ENGINE, PUMP, T0 + 40 + k * 0.0002, 4000 + k % 100, 80, 60)
                for k in range(20000)]  # fmt: skip
    result = run([write(tmp_path / "flood.pcap", packets)], window=5.0)
    (event,) = result.of("flood", PUMP[0])
    assert event.observed["direction"] == "against"


def test_heavy_two_way_traffic_is_not_a_flood(tmp_path: Path, shared_pcaps: Path) -> None:
    packets = ward(T0, T0 + 60)
    for k in range(5000):
        packets.append(udp(ENGINE, PUMP, T0 + 40 + k * 0.001, 5000, 80, 1000))
        packets.append(udp(PUMP, ENGINE, T0 + 40 + k * 0.001 + 0.0005, 80, 5000, 1000))
    assert run([write(tmp_path / "busy.pcap", packets)], window=5.0).of("flood") == []
    tcp = run([shared_pcaps / "chrissanders-packets/tcp_ports.pcapng"], window=1.0)
    assert tcp.of("flood") == []
