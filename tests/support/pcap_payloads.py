"""TCP and UDP payloads of a capture, read with scapy (for tests only: it is slow)."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from scapy.layers.inet import TCP, UDP
from scapy.utils import rdpcap


class Payload(NamedTuple):
    frame: int  # 1-based, as tshark numbers frames
    sport: int
    dport: int
    data: bytes


def tcp_payloads(path: Path) -> list[Payload]:
    """Every non-empty TCP payload, in capture order."""
    out = []
    for number, packet in enumerate(rdpcap(str(path)), 1):
        if TCP in packet:
            data = bytes(packet[TCP].payload)
            if data:
                out.append(Payload(number, packet[TCP].sport, packet[TCP].dport, data))
    return out


def udp_payloads(path: Path) -> list[Payload]:
    """Every UDP payload (Ethernet padding cut by the UDP length), in capture order."""
    out = []
    for number, packet in enumerate(rdpcap(str(path)), 1):
        if UDP in packet and packet[UDP].name == "UDP":
            udp = packet[UDP]
            out.append(Payload(number, udp.sport, udp.dport, bytes(udp.payload)[: udp.len - 8]))
    return out
