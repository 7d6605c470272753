"""Build small captures from scapy packets for pipeline tests (written with scapy's wrpcap)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from scapy.packet import Packet
from scapy.utils import wrpcap


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
