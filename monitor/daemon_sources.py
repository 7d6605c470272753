"""Packet sources for the daemon: a live interface (an AF_PACKET ring) and a capture
file replayed at a chosen speed. Both hand out ``FrameBatch``es with ``read(timeout)``.

Promises:
- ``read`` waits at most ``timeout`` seconds and returns a batch or ``None`` (nothing yet);
  it raises only ``CaptureError`` (one line, no packet content);
- a live source reports the kernel's drop counter (``dropped()``), cumulative since open;
- a file source paces frames so that capture time runs ``replay_speed`` times as fast as the
  wall clock (0: as fast as possible) and sets ``ended`` at the end of the file;
- ``lag()`` is how far processing runs behind the capture (live) or behind the replay clock.

The live source is ``monitor.capture.live.LiveSource`` (an AF_PACKET TPACKET_V3 ring, polled)
plus what a months-long daemon needs on top: a link that goes down is waited out, an interface
that disappears ends the capture. Files are read by ``monitor.capture.files``.
"""

from __future__ import annotations

import dataclasses
import fcntl
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import numpy as np

from monitor.capture import (
    BATCH_FRAMES,
    LIVE_GATHER_SECONDS,
    RING_BYTES,
    CaptureError,
    FrameBatch,
)
from monitor.capture import live as capture_live
from monitor.capture.files import open_capture

LIVE_TIMEOUT_MS = 100  # the kernel hands over a ring block at least this often


class PacketSource(Protocol):
    name: str
    live: bool
    ended: bool

    def read(self, timeout: float) -> FrameBatch | None: ...
    def dropped(self) -> int | None: ...
    def lag(self) -> float | None: ...
    def close(self) -> None: ...


class LiveSource:
    """A live interface. Opening it needs CAP_NET_RAW; reading does not.

    A link that goes down is waited for (``down`` is True meanwhile); an interface that
    disappears is a ``CaptureError``: the capability to open it again was dropped on purpose,
    so the daemon exits and its supervisor starts it again.
    """

    live = True
    ended = False
    down = False

    def __init__(
        self,
        interface: str,
        bpf_filter: str = "",
        snaplen: int = 65535,
        buffer_bytes: int = RING_BYTES,
    ) -> None:
        self.name = interface
        self._lag: float | None = None
        self._capture = capture_live.LiveSource(
            interface,
            bpf_filter=bpf_filter,
            snaplen=snaplen,
            buffer_bytes=buffer_bytes,
            timeout_ms=LIVE_TIMEOUT_MS,
        )
        self._ifindex = _ifindex(interface)

    def read(self, timeout: float) -> FrameBatch | None:
        if self.down:
            if not _link_up(self.name):
                if _ifindex(self.name) != self._ifindex:
                    raise CaptureError(self.name, "capture failed: the interface disappeared")
                time.sleep(timeout)  # wait for the link without spinning
                return None
            self.down = False
        self._capture.timeout_ms = max(1, int(timeout * 1000))
        try:
            batch = self._capture.read_batch(BATCH_FRAMES, LIVE_GATHER_SECONDS)
        except CaptureError as error:
            reason = error.reason
            if "went down" in reason and _ifindex(self.name) == self._ifindex:
                # link down (cable, switch port, ip link set down): the socket works again
                # when the link is back
                self.down = not _link_up(self.name)
                time.sleep(timeout)
                return None
            if "went down" in reason:
                reason = "capture failed: the interface disappeared"
            raise CaptureError(self.name, reason) from None
        if batch is None:
            return None
        self._lag = max(0.0, time.time() - float(batch.timestamps_ns[-1]) / 1e9)
        return batch

    def dropped(self) -> int | None:
        try:
            return self._capture.stats()[1]
        except CaptureError:
            return None

    def lag(self) -> float | None:
        return self._lag

    def close(self) -> None:
        self._capture.close()


def _ifindex(interface: str) -> int | None:
    """The interface's index now (None when it does not exist): a deleted and re-created
    interface gets a new index, which our socket is not bound to."""
    try:
        return socket.if_nametoindex(interface)
    except OSError:
        return None


SIOCGIFFLAGS = 0x8913
IFF_UP = 0x1
IFF_RUNNING = 0x40


def _link_up(interface: str) -> bool:
    """Administratively up with a carrier (``ip link`` shows ``UP,LOWER_UP``)."""
    request = struct.pack("16sH14x", interface.encode()[:15], 0)
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            reply = fcntl.ioctl(sock.fileno(), SIOCGIFFLAGS, request)
    except OSError:
        return False
    flags = struct.unpack("16sH14x", reply)[1]
    return bool(flags & IFF_UP and flags & IFF_RUNNING)


def _file_batches(path: Path) -> Iterator[FrameBatch]:
    """The capture library's reader (pcap and pcapng by magic number), opened now."""
    batches: Iterator[FrameBatch] = open_capture(path)
    return batches


def slice_batch(batch: FrameBatch, start: int, stop: int, source: str) -> FrameBatch:
    """Frames ``start:stop`` of ``batch`` (sharing its buffer), under the name ``source``."""
    return dataclasses.replace(
        batch,
        offsets=batch.offsets[start:stop],
        caplens=batch.caplens[start:stop],
        wirelens=batch.wirelens[start:stop],
        timestamps_ns=batch.timestamps_ns[start:stop],
        linktypes=batch.linktypes[start:stop],
        source=source,
    )


class FileSource:
    """A capture file replayed at ``speed`` × real time (0: as fast as possible)."""

    live = False

    def __init__(self, path: Path, speed: float = 1.0, chunk: int = 4096) -> None:
        self.path = path
        self.name = path.name
        self.speed = speed
        self.chunk = chunk
        self.ended = False
        self._batches = _file_batches(path)
        self._current: FrameBatch | None = None
        self._index = 0
        self._origin: tuple[float, float] | None = None  # (first capture time, wall start)
        self._lag: float | None = None

    def _due(self, capture_time: float) -> float:
        assert self._origin is not None
        first, wall = self._origin
        return wall + (capture_time - first) / self.speed

    def read(self, timeout: float) -> FrameBatch | None:
        if self.ended:
            time.sleep(timeout)
            return None
        if self._current is None or self._index >= len(self._current):
            try:
                self._current = next(self._batches, None)
            except CaptureError:
                self.ended = True
                raise
            self._index = 0
            if self._current is None:
                self.ended = True
                return None
            if len(self._current) == 0:
                return None
        batch = self._current
        start = self._index
        stop = min(start + self.chunk, len(batch))
        if self.speed > 0:
            stamps = batch.timestamps_ns
            if self._origin is None:
                self._origin = (float(stamps[start]) / 1e9, time.time())
            now = time.time()
            # frames due by now (capture time mapped to the replay clock)
            horizon_ns = int((self._origin[0] + (now - self._origin[1]) * self.speed) * 1e9)
            due = int(np.searchsorted(stamps[start:stop], horizon_ns, side="right"))
            if due == 0:
                wait = self._due(float(stamps[start]) / 1e9) - now
                time.sleep(min(max(wait, 0.0), timeout))
                return None
            stop = start + due
            self._lag = max(0.0, now - self._due(float(stamps[stop - 1]) / 1e9))
        self._index = stop
        return slice_batch(batch, start, stop, self.name)

    def dropped(self) -> int | None:
        return None

    def lag(self) -> float | None:
        return self._lag

    def close(self) -> None:
        self._batches = iter(())
