"""Live capture from one network interface, as ``FrameBatch``es.

``LiveSource`` is one AF_PACKET socket with a TPACKET_V3 ring (``monitor.capture.afpacket``)
that belongs to no fanout group: the whole interface's traffic, read in batches, with the
kernel's timestamps in nanoseconds and the real wire length of every frame. It replaced the
libpcap (pcapy-ng) handle, whose batch interface reported no wire length; libpcap still
compiles the BPF filter.

Promise: as ``PacketRing``'s: the constructor, ``read_batch`` and ``stats`` raise nothing but
``CaptureError`` (source = interface name), with the reason; messages never carry packet
content. ``stats()`` is ``(received, dropped_by_kernel, queue_freezes)`` since open.
"""

from __future__ import annotations

from monitor.capture import RING_BYTES
from monitor.capture.afpacket import PacketRing, RingStats


class LiveSource(PacketRing):
    """Every frame arriving on ``interface`` that passes ``bpf_filter``."""

    def __init__(
        self,
        interface: str,
        bpf_filter: str = "",
        snaplen: int = 65535,
        buffer_bytes: int = RING_BYTES,
        timeout_ms: int = 100,
        promiscuous: bool = True,
    ) -> None:
        super().__init__(
            interface,
            bpf_filter=bpf_filter,
            snaplen=snaplen,
            buffer_bytes=buffer_bytes,
            timeout_ms=timeout_ms,
            promiscuous=promiscuous,
        )


__all__ = ["LiveSource", "RingStats"]
