"""Classic libpcap capture files: both byte orders, microsecond and nanosecond timestamps.

The file is already in memory (usually mapped); records are indexed by a compiled loop and
every ``FrameBatch`` is a zero-copy view of the file bytes.

Promise: ``read_pcap`` yields every good frame, in file order, in batches of at most
``batch_frames``; then, if the file is damaged (truncated record, absurd length) or its link
type is not one the decoder reads, it raises ``CaptureError`` naming the byte offset or the
link type. It raises nothing else.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import numpy.typing as npt

from monitor.capture import BATCH_FRAMES, CaptureError, FrameBatch
from monitor.capture._index import (
    MAX_CAPLEN,
    ST_BAD_CAPLEN,
    ST_END,
    ST_FULL,
    ST_TRUNC_DATA,
    ST_TRUNC_HEADER,
    index_pcap,
)
from monitor.capture.linktypes import describe, is_supported

# Magic numbers as the first four bytes of the file read as they appear on disk.
MAGIC_US_LE = b"\xd4\xc3\xb2\xa1"
MAGIC_US_BE = b"\xa1\xb2\xc3\xd4"
MAGIC_NS_LE = b"\x4d\x3c\xb2\xa1"
MAGIC_NS_BE = b"\xa1\xb2\x3c\x4d"
MAGICS = frozenset({MAGIC_US_LE, MAGIC_US_BE, MAGIC_NS_LE, MAGIC_NS_BE})

FILE_HEADER_LEN = 24
# The low 26 bits hold the link type; the bits above carry FCS information.
_LINKTYPE_MASK = 0x03FFFFFF


def read_pcap(
    buf: npt.NDArray[np.uint8], source: str, batch_frames: int = BATCH_FRAMES
) -> Iterator[FrameBatch]:
    """Frames of the classic pcap file held in ``buf`` (see the module promise)."""
    if buf.shape[0] < FILE_HEADER_LEN:
        raise CaptureError(source, "truncated pcap file header", 0)
    magic = buf[:4].tobytes()
    if magic not in MAGICS:
        raise CaptureError(source, "not a classic pcap file", 0)
    big = magic in (MAGIC_US_BE, MAGIC_NS_BE)
    nano = magic in (MAGIC_NS_LE, MAGIC_NS_BE)
    network = int.from_bytes(buf[20:24].tobytes(), "big" if big else "little")
    linktype = network & _LINKTYPE_MASK
    if not is_supported(linktype):
        raise CaptureError(source, f"unsupported link type {describe(linktype)}")
    pos = FILE_HEADER_LEN
    while True:
        offsets = np.empty(batch_frames, np.int64)
        caplens = np.empty(batch_frames, np.int32)
        wirelens = np.empty(batch_frames, np.int32)
        timestamps = np.empty(batch_frames, np.int64)
        linktypes = np.empty(batch_frames, np.int32)
        n, new_pos, status = index_pcap(
            buf, pos, big, nano, linktype, offsets, caplens, wirelens, timestamps, linktypes, 0
        )
        if n:
            yield FrameBatch(
                buffer=buf,
                offsets=offsets[:n],
                caplens=caplens[:n],
                wirelens=wirelens[:n],
                timestamps_ns=timestamps[:n],
                linktypes=linktypes[:n],
                source=source,
            )
        pos = new_pos
        if status == ST_FULL:
            continue
        if status == ST_END:
            return
        raise CaptureError(source, _reason(buf, pos, status, big), pos)


def _reason(buf: npt.NDArray[np.uint8], pos: int, status: int, big: bool) -> str:
    if status == ST_TRUNC_HEADER:
        return f"truncated packet record header ({buf.shape[0] - pos} of 16 bytes)"
    caplen = int.from_bytes(buf[pos + 8 : pos + 12].tobytes(), "big" if big else "little")
    if status == ST_TRUNC_DATA:
        have = buf.shape[0] - pos - 16
        return f"truncated packet record ({have} of {caplen} bytes)"
    if status == ST_BAD_CAPLEN:
        return f"packet length {caplen} over the maximum of {MAX_CAPLEN} (garbage?)"
    return f"cannot index packet record (status {status})"
