"""Packet sources: capture files and live interfaces, both yielding ``FrameBatch``.

Promise: a source never raises anything but ``CaptureError`` to its caller, and a
``CaptureError`` is raised only after every good frame before the problem was yielded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

# Link-layer header types (https://www.tcpdump.org/linktypes.html) that the decoder knows.
LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276
# DLT_RAW has two numbers depending on the platform that wrote the file.
LINKTYPE_RAW_ALT = (12, 14)

SUPPORTED_LINKTYPES = frozenset(
    {
        LINKTYPE_NULL,
        LINKTYPE_ETHERNET,
        LINKTYPE_RAW,
        LINKTYPE_LOOP,
        LINKTYPE_LINUX_SLL,
        LINKTYPE_IPV4,
        LINKTYPE_IPV6,
        LINKTYPE_LINUX_SLL2,
        *LINKTYPE_RAW_ALT,
    }
)

# Frames per batch, from a file or a live ring alike: the work the pipeline repeats per batch
# (the notes of each distinct announcement, the decoding of each distinct payload, the
# accounting per device) is shared by this many packets at most. A live read takes what the
# ring has ready up to this, never more bytes than the ring (capture.buffer_bytes) held.
BATCH_FRAMES = 65536
# How long a live read lets the blocks the kernel handed over wait for more, so that a wire
# at moderate rates makes batches of thousands of frames rather than one per ring block (see
# monitor.capture.afpacket): what a sensor whose windows are a minute long can spare.
LIVE_GATHER_SECONDS = 0.25
# The kernel ring a live interface is read through, per capture process (capture.buffer_bytes).
# It must hold what arrives while the reader is busy elsewhere, and a minute window's close
# is where it is: every device active in the window is judged (scored, learned) at once.
# 20,000 active devices at 50,000 packets/s lost 13 % of the frames through a 32 MiB ring and
# none through this one (bench/RESULTS.md). Zeek's AF_Packet plugin reads through 128 MiB too.
RING_BYTES = 128 << 20


@dataclass(frozen=True, slots=True)
class FrameBatch:
    """Frames from one source, in capture order, laid out for batch decoding.

    Frame ``i`` is ``buffer[offsets[i] : offsets[i] + caplens[i]]``.
    """

    buffer: npt.NDArray[np.uint8]
    offsets: npt.NDArray[np.int64]
    caplens: npt.NDArray[np.int32]
    wirelens: npt.NDArray[np.int32]
    timestamps_ns: npt.NDArray[np.int64]
    linktypes: npt.NDArray[np.int32]
    source: str

    def __len__(self) -> int:
        return int(self.offsets.shape[0])

    def frames(self, start: int, end: int) -> FrameBatch:
        """Frames ``start`` to ``end`` (excluded) as a batch of their own, sharing the
        buffer."""
        return FrameBatch(
            self.buffer,
            self.offsets[start:end],
            self.caplens[start:end],
            self.wirelens[start:end],
            self.timestamps_ns[start:end],
            self.linktypes[start:end],
            self.source,
        )

    def frame(self, i: int) -> bytes:
        start = int(self.offsets[i])
        return self.buffer[start : start + int(self.caplens[i])].tobytes()


class CaptureError(Exception):
    """A capture file or interface that cannot be read (further).

    ``str()`` is one line: ``FILE: at byte N: reason`` (or ``FILE: reason``).
    Never carries packet content.
    """

    def __init__(self, source: str, reason: str, offset: int | None = None) -> None:
        self.source = source
        self.reason = reason
        self.offset = offset
        where = f"at byte {offset}: " if offset is not None else ""
        super().__init__(f"{source}: {where}{reason}")
