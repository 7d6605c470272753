"""ARP spoofing and address changes: a real ARP poisoning capture (Chris Sanders), a plain
ARP exchange, a device that changes its address, and the benign ward."""

from __future__ import annotations

from pathlib import Path

from scapy.layers.inet import IP
from scapy.layers.l2 import ARP

from tests.detectors.helpers import (
    ENGINE,
    MONITOR,
    ROGUE,
    ROUTER,
    T0,
    Run,
    arp_reply,
    arp_request,
    every,
    run,
    udp,
    ward,
    write,
)


def test_arp_poisoning_capture_names_the_attacker_and_the_gateway(shared_pcaps: Path) -> None:
    result = run([shared_pcaps / "chrissanders-packets/arppoison.pcapng"], window=60.0)
    spoofs = result.of("arp_spoofing")
    assert [e.device for e in spoofs] == ["00:25:b3:bf:91:ee"]
    assert spoofs[0].observed["claimed_address"] == "172.16.0.1"
    assert "ARP spoofing" in spoofs[0].summary


def test_plain_arp_resolution_raises_nothing(shared_pcaps: Path) -> None:
    for name in ("chrissanders-packets/arp_resolution.pcapng", "zeek/arp-leak.pcap"):
        assert run([shared_pcaps / name], window=60.0).events == [], name


def test_device_claiming_the_gateway_address_in_the_ward(tmp_path: Path) -> None:
    packets = ward(T0, T0 + 120)
    packets += [arp_reply(MONITOR[0], ROUTER[1], ROUTER, T0 + 90 + k) for k in range(5)]
    result = run([write(tmp_path / "spoof.pcap", packets)])
    (event,) = result.of("arp_spoofing", MONITOR[0])
    assert event.baseline["owners"] == [ROUTER[0]]
    assert result.of("ip_change") == [] and result.of("ip_conflict") == []


def test_device_moving_to_a_new_address_is_an_ip_change(tmp_path: Path) -> None:
    packets = ward(T0, T0 + 120)
    for packet in packets:  # from T0 + 95 on, the monitor uses its new address only
        if packet.src == MONITOR[0] and float(packet.time) >= T0 + 95:
            if packet.haslayer(IP):
                packet[IP].src = "10.9.0.150"
            else:
                packet[ARP].psrc = "10.9.0.150"
        elif packet.haslayer(IP) and packet[IP].dst == MONITOR[1] and float(packet.time) >= T0 + 95:
            packet[IP].dst = "10.9.0.150"
    packets.append(arp_request((MONITOR[0], "10.9.0.150"), ROUTER[1], T0 + 95))
    result = run([write(tmp_path / "move.pcap", packets)])
    (event,) = result.of("ip_change", MONITOR[0])
    assert "10.9.0.150" in event.summary and MONITOR[1] in event.summary
    assert result.of("arp_spoofing") == []


def test_benign_ward_has_no_address_events(tmp_path: Path) -> None:
    result = run([write(tmp_path / "ward.pcap", ward(T0, T0 + 200))])
    assert [e for e in result.events if e.detector in ("arp_spoofing", "ip_conflict",
                                                        "ip_change")] == []  # fmt: skip


def _address_events(result: Run) -> list[tuple[str, str, dict[str, object]]]:
    return [
        (e.detector, e.device, e.observed)
        for e in result.events
        if e.detector in ("arp_spoofing", "ip_conflict", "ip_change")
    ]


def test_a_device_that_moved_and_came_back_later_changed_its_address_in_one_batch_too(
    tmp_path: Path,
) -> None:
    """The move is decided a window after it, when the old address had been left; one batch
    also holds the return to it, which must not make the move look like a spoofer's."""
    packets = ward(T0, T0 + 240)
    for packet in packets:  # from T0 + 95 to T0 + 150, the monitor uses its new address
        if not T0 + 95 <= float(packet.time) < T0 + 150:
            continue
        if packet.src == MONITOR[0]:
            if packet.haslayer(IP):
                packet[IP].src = "10.9.0.150"
            else:
                packet[ARP].psrc = "10.9.0.150"
        elif packet.haslayer(IP) and packet[IP].dst == MONITOR[1]:
            packet[IP].dst = "10.9.0.150"
    packets.append(arp_request((MONITOR[0], "10.9.0.150"), ROUTER[1], T0 + 95))
    capture = write(tmp_path / "move-and-back.pcap", packets)
    frame_by_frame = _address_events(run([capture], batch_frames=1))
    assert [(d, device) for d, device, _ in frame_by_frame] == [("ip_change", MONITOR[0])]
    assert _address_events(run([capture])) == frame_by_frame


def test_a_brief_claim_used_again_after_the_verdict_is_still_a_brief_claim_in_one_batch(
    tmp_path: Path,
) -> None:
    """A MAC that ARPed for one address a few times, then took another: as of the verdict
    the first was a brief claim (a spoofer's), whatever it carried afterwards, which one
    batch has counted already."""
    rogue_first, rogue_then = (ROGUE[0], "10.9.0.99"), (ROGUE[0], "10.9.0.77")
    packets = ward(T0, T0 + 300)
    packets += [arp_request(rogue_first, ROUTER[1], T0 + 50 + k) for k in range(3)]
    packets += [udp(rogue_then, ENGINE, t, 40009, 2575) for t in every(T0 + 95, T0 + 200, 2.0)]
    packets += [udp(rogue_first, ENGINE, t, 40009, 2575) for t in every(T0 + 200, T0 + 260, 2.0)]
    capture = write(tmp_path / "brief-claim.pcap", packets)
    frame_by_frame = _address_events(run([capture], batch_frames=1))
    assert [(d, device, o["claimed_address"]) for d, device, o in frame_by_frame] == [
        ("arp_spoofing", ROGUE[0], "10.9.0.99")
    ]
    assert _address_events(run([capture])) == frame_by_frame
