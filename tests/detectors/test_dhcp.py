"""DHCP starvation: one host flooding DHCP (Zeek's capture), a crowd of invented MACs
(scapy); a normal DORA exchange raises nothing."""

from __future__ import annotations

from pathlib import Path

from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Packet

from tests.detectors.helpers import ROUTER, T0, run, udp, write


def discover(mac: str, when: float) -> Packet:
    p = (
        Ether(src=mac, dst="ff:ff:ff:ff:ff:ff")
        / IP(src="0.0.0.0", dst="255.255.255.255")
        / UDP(sport=68, dport=67)
        / BOOTP(chaddr=bytes.fromhex(mac.replace(":", "")) + b"\0" * 10, xid=int(when) % 9999)
        / DHCP(options=[("message-type", "discover"), "end"])
    )
    p.time = when
    return p


def offer(client_mac: str, when: float) -> Packet:
    p = (
        Ether(src=ROUTER[0], dst="ff:ff:ff:ff:ff:ff")
        / IP(src=ROUTER[1], dst="255.255.255.255")
        / UDP(sport=67, dport=68)
        / BOOTP(op=2, yiaddr="10.9.0.200", chaddr=bytes.fromhex(client_mac.replace(":", ""))
                + b"\0" * 10, xid=int(when) % 9999)
        / DHCP(options=[("message-type", "offer"), ("server_id", ROUTER[1]), "end"])
    )  # fmt: skip
    p.time = when
    return p


def test_server_answering_hundreds_of_requests_in_a_window(tmp_path: Path) -> None:
    packets = []
    for k in range(150):
        mac = f"02:de:ad:01:{k // 256:02x}:{k % 256:02x}"
        packets += [discover(mac, T0 + k * 0.1), offer(mac, T0 + k * 0.1 + 0.01)]
    result = run([write(tmp_path / "starve.pcap", packets)], window=60.0)
    events = result.of("dhcp_starvation", ROUTER[0])
    assert len(events) == 1, [e.to_dict() for e in result.events]
    assert {"dhcp_answers", "new_clients_without_address"} & set(events[0].observed)


def test_many_invented_macs_asking_for_addresses(tmp_path: Path) -> None:
    packets = [udp(ROUTER, ("ff:ff:ff:ff:ff:ff", "10.9.0.255"), T0 + k, 67, 68)
               for k in range(3)]  # fmt: skip
    packets += [discover(f"02:de:ad:00:{k // 256:02x}:{k % 256:02x}", T0 + 3 + k * 0.01)
                for k in range(40)]  # fmt: skip
    result = run([write(tmp_path / "starve.pcap", packets)], window=60.0)
    (event,) = result.of("dhcp_starvation")
    assert event.observed["new_clients_without_address"] == 40


def test_normal_dhcp_exchange_raises_nothing(shared_pcaps: Path) -> None:
    for name in ("zeek/dhcp_dhcp.pcap", "chrissanders-packets/dhcp_nolease_initialization.pcapng"):
        assert run([shared_pcaps / name], window=60.0).events == [], name
