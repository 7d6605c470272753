"""Live capture from a network interface through libpcap (pcapy-ng), as ``FrameBatch``es.

The handle is made with ``pcapy.create()`` so that the kernel ring can be sized before
activation (``buffer_bytes``; libpcap uses a TPACKET_V3 memory-mapped ring on Linux), and it is
read in non-blocking mode with ``poll()`` on its descriptor, so ``read_batch`` returns within
its timeout even when the wire is silent. Each ``read_batch`` copies the frames that arrived
into one contiguous buffer (one copy, done in C by ``next_batch``), never one Python object
per packet. Capture time is the kernel's timestamp (microseconds).

libpcap's batch interface reports no original ("wire") length: ``wirelens`` equals
``caplens``, which is exact for every frame shorter than ``snaplen`` and a lower bound for a
frame cut at ``snaplen``.

Promise: the constructor, ``read_batch`` and ``stats`` raise nothing but ``CaptureError``
(source = interface name), with the reason (no such device, permission, bad BPF filter,
unsupported link type, interface gone). Messages never carry packet content.
"""

from __future__ import annotations

import select
import time
from types import TracebackType

import numpy as np
import pcapy

from monitor.capture import SUPPORTED_LINKTYPES, CaptureError, FrameBatch
from monitor.capture.linktypes import describe

# libpcap's pcap_activate() status codes (pcap/pcap.h), for readable reasons.
_ACTIVATE_ERRORS = {
    -1: "generic error",
    -3: "not activated",
    -4: "already activated",
    -5: "no such device",
    -6: "monitor mode not supported",
    -7: "not in monitor mode",
    -8: "permission denied (needs root or CAP_NET_RAW)",
    -9: "interface is not up",
    -10: "cannot set timestamp type",
    -11: "permission denied for promiscuous mode",
    -12: "timestamp precision not supported",
}

_PCAP_FAILURES = (pcapy.PcapError, ValueError, TypeError, OSError)


class LiveSource:
    """Frames arriving on ``interface``, optionally filtered by a BPF expression."""

    def __init__(
        self,
        interface: str,
        bpf_filter: str = "",
        snaplen: int = 65535,
        buffer_bytes: int = 64 << 20,
        timeout_ms: int = 100,
        promiscuous: bool = True,
    ) -> None:
        self.interface = interface
        self.timeout_ms = timeout_ms
        self._closed = False
        try:
            handle = pcapy.create(interface)
        except _PCAP_FAILURES as exc:
            raise CaptureError(interface, f"cannot open interface: {exc}") from None
        try:
            handle.set_snaplen(snaplen)
            handle.set_promisc(1 if promiscuous else 0)
            handle.set_timeout(timeout_ms)
            handle.set_buffer_size(buffer_bytes)
            status = handle.activate()
            if status is not None and status < 0:
                reason = _ACTIVATE_ERRORS.get(status, f"libpcap error {status}")
                raise CaptureError(interface, f"cannot capture: {reason}")
            self.linktype = int(handle.datalink())
            if self.linktype not in SUPPORTED_LINKTYPES:
                raise CaptureError(interface, f"unsupported link type {describe(self.linktype)}")
            if bpf_filter:
                try:
                    handle.setfilter(bpf_filter)
                except _PCAP_FAILURES as exc:
                    raise CaptureError(interface, f"bad BPF filter {bpf_filter!r}: {exc}") from None
            handle.setnonblock(1)
            self._poll = select.poll()
            self._poll.register(handle.getfd(), select.POLLIN)
        except CaptureError:
            handle.close()
            raise
        except _PCAP_FAILURES as exc:
            handle.close()
            raise CaptureError(interface, f"cannot capture: {exc}") from None
        self._handle = handle

    def read_batch(self, max_frames: int = 4096) -> FrameBatch | None:
        """The frames that arrive within ``timeout_ms`` (at most ``max_frames``), or ``None``."""
        if self._closed:
            raise CaptureError(self.interface, "capture is closed")
        deadline = time.monotonic() + self.timeout_ms / 1000
        chunks: list[tuple[bytes, bytes]] = []
        count = 0
        try:
            while True:
                data, meta = self._handle.next_batch(max_frames - count)
                if meta:
                    chunks.append((data, meta))
                    count += len(meta) // 16
                    if count >= max_frames:
                        break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._poll.poll(max(1, int(remaining * 1000)))
        except _PCAP_FAILURES as exc:
            raise CaptureError(self.interface, f"capture failed: {exc}") from None
        if not count:
            return None
        return self._batch(chunks, count)

    def _batch(self, chunks: list[tuple[bytes, bytes]], count: int) -> FrameBatch:
        metas = [np.frombuffer(meta, dtype=np.uint32).reshape(-1, 4) for _, meta in chunks]
        if len(chunks) == 1:
            buffer = np.frombuffer(chunks[0][0], dtype=np.uint8)
            offsets = metas[0][:, 2].astype(np.int64)
        else:
            buffer = np.frombuffer(b"".join(data for data, _ in chunks), dtype=np.uint8)
            starts = np.cumsum([0] + [len(data) for data, _ in chunks[:-1]], dtype=np.int64)
            offsets = np.concatenate(
                [m[:, 2].astype(np.int64) + s for m, s in zip(metas, starts, strict=True)]
            )
        meta = np.concatenate(metas) if len(metas) > 1 else metas[0]
        caplens = meta[:, 3].astype(np.int32)
        timestamps = (
            meta[:, 0].astype(np.int64) * 1_000_000_000 + meta[:, 1].astype(np.int64) * 1000
        )
        return FrameBatch(
            buffer=buffer,
            offsets=offsets,
            caplens=caplens,
            wirelens=caplens.copy(),
            timestamps_ns=timestamps,
            linktypes=np.full(count, self.linktype, dtype=np.int32),
            source=self.interface,
        )

    def stats(self) -> tuple[int, int, int]:
        """``(received, dropped_by_kernel, dropped_by_interface)`` since the capture began.

        As libpcap counts them on Linux: ``received`` is every frame that passed the BPF
        filter, including those then dropped (and, on ``lo``, the outgoing copies libpcap
        discards); ``dropped_by_kernel`` is frames lost because the ring was full;
        ``dropped_by_interface`` is what the driver reports, often 0.
        """
        if self._closed:
            raise CaptureError(self.interface, "capture is closed")
        try:
            received, dropped, if_dropped = self._handle.stats()
        except _PCAP_FAILURES as exc:
            raise CaptureError(self.interface, f"cannot read statistics: {exc}") from None
        return int(received), int(dropped), int(if_dropped)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._handle.close()

    def __enter__(self) -> LiveSource:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
