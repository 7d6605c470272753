"""Build small captures from scapy packets for pipeline tests (written with scapy's wrpcap)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from scapy.layers.dns import DNS, DNSQR
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Packet
from scapy.utils import wrpcap

# a CGM bridge with a locally administered MAC (no registry vendor) and the host it reports to
BRIDGE = "02:00:00:00:00:05"
BRIDGE_SERVER = "00:50:56:00:00:02"


def write_capture(
    path: Path,
    packets: Sequence[Packet],
    start: float = 1_700_000_000.0,
    times: Sequence[float] | None = None,
) -> Path:
    """Write ``packets`` to ``path``; packet i at ``times[i]`` seconds after ``start``
    (default: one millisecond apart)."""
    for i, packet in enumerate(packets):
        offset = times[i] if times is not None else i * 0.001
        packet.time = start + offset
    wrpcap(str(path), list(packets))
    return path


def bridge_identified_in_its_second_window(path: Path) -> Path:
    """A bridge that says what it is (a CareLink lookup) only in its second 60-s window: a
    report at 10 s, the lookup at 70 s, a report at 130 s."""
    to_server = Ether(src=BRIDGE, dst=BRIDGE_SERVER) / IP(src="10.1.0.5", dst="10.1.0.9")
    packets = [
        to_server / UDP(sport=40000, dport=514) / b"x",
        to_server / UDP(sport=40001, dport=53) / DNS(qd=DNSQR(qname="carelink.minimed.com")),
        to_server / UDP(sport=40000, dport=514) / b"x",
    ]
    return write_capture(path, packets, times=[10.0, 70.0, 130.0])
