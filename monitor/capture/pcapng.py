"""pcapng capture files: sections, interfaces, timestamp resolution and offset.

Each section has its own byte order and interface table; each interface its own link type,
``if_tsresol`` (a power of 10 or of 2) and ``if_tsoffset``. Enhanced, Simple and obsolete
Packet blocks carry frames; every other block type is skipped by its length. Section and
interface blocks (rare) are parsed here in Python; packet blocks (all the rest) are indexed by
a compiled loop, and every ``FrameBatch`` is a zero-copy view of the file bytes.

A Simple Packet Block has no timestamp: its frame gets the timestamp of the packet before it
in the file (0 if none), which keeps capture time monotone.

Promise: ``read_pcapng`` yields every good frame, in file order, in batches of at most
``batch_frames``. Frames on an interface whose link type the decoder cannot read are left out
and, after all other frames, reported in one ``CaptureError`` naming the link type. A damaged
file (truncated block, impossible block length, absurd packet length) raises
``CaptureError`` with the byte offset after every good frame before it. Nothing else is raised.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from monitor.capture import BATCH_FRAMES, CaptureError, FrameBatch
from monitor.capture._index import (
    MAX_CAPLEN,
    ST_BAD_BLOCK_LEN,
    ST_BAD_CAPLEN,
    ST_BAD_IFACE,
    ST_END,
    ST_FULL,
    ST_IDB,
    ST_SHB,
    ST_TRUNC_DATA,
    ST_TRUNC_HEADER,
    index_pcapng,
)
from monitor.capture.linktypes import describe, is_supported

MAGIC = b"\x0a\x0d\x0d\x0a"
_BOM_BE = b"\x1a\x2b\x3c\x4d"
_BOM_LE = b"\x4d\x3c\x2b\x1a"

_OPT_ENDOFOPT = 0
_OPT_IF_TSRESOL = 9
_OPT_IF_TSOFFSET = 14
_DEFAULT_TSRESOL = 6  # microseconds


_Out = tuple[
    npt.NDArray[np.int64],
    npt.NDArray[np.int32],
    npt.NDArray[np.int32],
    npt.NDArray[np.int64],
    npt.NDArray[np.int32],
]


@dataclass
class _Section:
    """The interface table of the current section, as arrays for the compiled loop."""

    big: bool
    linktype: list[int] = field(default_factory=list)
    units: list[int] = field(default_factory=list)
    offset_ns: list[int] = field(default_factory=list)
    snaplen: list[int] = field(default_factory=list)
    skipped: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))

    def arrays(
        self,
    ) -> tuple[
        npt.NDArray[np.int32],
        npt.NDArray[np.bool_],
        npt.NDArray[np.uint64],
        npt.NDArray[np.int64],
        npt.NDArray[np.int64],
    ]:
        return (
            np.array(self.linktype, np.int32),
            np.array([is_supported(lt) for lt in self.linktype], np.bool_),
            np.array(self.units, np.uint64),
            np.array(self.offset_ns, np.int64),
            np.array(self.snaplen, np.int64),
        )


class _Reader:
    def __init__(self, buf: npt.NDArray[np.uint8], source: str) -> None:
        self.buf = buf
        self.source = source
        self.end = int(buf.shape[0])
        # Frames left out per unsupported link type, over all sections.
        self.skipped: dict[int, int] = {}

    def error(self, reason: str, offset: int) -> CaptureError:
        return CaptureError(self.source, reason, offset)

    def u16(self, pos: int, big: bool) -> int:
        return int.from_bytes(self.buf[pos : pos + 2].tobytes(), "big" if big else "little")

    def u32(self, pos: int, big: bool) -> int:
        return int.from_bytes(self.buf[pos : pos + 4].tobytes(), "big" if big else "little")

    def block_length(self, pos: int, big: bool, minimum: int) -> int:
        """The checked total length of the block at ``pos``."""
        if pos + 12 > self.end:
            raise self.error("truncated block header", pos)
        blen = self.u32(pos + 4, big)
        if blen < minimum or blen % 4 != 0:
            raise self.error(f"bad block length {blen}", pos)
        if pos + blen > self.end:
            raise self.error(f"truncated block ({self.end - pos} of {blen} bytes)", pos)
        if self.u32(pos + blen - 4, big) != blen:
            raise self.error(f"block length {blen} does not match its trailer", pos)
        return blen

    def section(self, pos: int) -> tuple[_Section, int]:
        """Parse the section header block at ``pos``; returns the section and the next pos."""
        if pos + 12 > self.end:
            raise self.error("truncated section header block", pos)
        bom = self.buf[pos + 8 : pos + 12].tobytes()
        if bom == _BOM_BE:
            big = True
        elif bom == _BOM_LE:
            big = False
        else:
            raise self.error("bad byte-order magic in section header block", pos)
        blen = self.block_length(pos, big, 28)
        major = self.u16(pos + 12, big)
        if major != 1:
            raise self.error(f"unsupported pcapng version {major}", pos)
        return _Section(big=big), pos + blen

    def interface(self, section: _Section, pos: int) -> int:
        """Parse the interface description block at ``pos`` into ``section``; next pos."""
        big = section.big
        blen = self.block_length(pos, big, 20)
        linktype = self.u16(pos + 8, big)
        snaplen = self.u32(pos + 12, big)
        tsresol = _DEFAULT_TSRESOL
        tsoffset = 0
        opt = pos + 16
        opts_end = pos + blen - 4
        # Options are read leniently: a malformed option list ends the list.
        while opt + 4 <= opts_end:
            code = self.u16(opt, big)
            length = self.u16(opt + 2, big)
            if code == _OPT_ENDOFOPT or opt + 4 + length > opts_end:
                break
            if code == _OPT_IF_TSRESOL and length >= 1:
                tsresol = int(self.buf[opt + 4])
            elif code == _OPT_IF_TSOFFSET and length == 8:
                tsoffset = int.from_bytes(
                    self.buf[opt + 4 : opt + 12].tobytes(),
                    "big" if big else "little",
                    signed=True,
                )
            opt += 4 + ((length + 3) & ~3)
        exponent = tsresol & 0x7F
        if tsresol & 0x80:
            if exponent > 63:
                raise self.error(f"interface timestamp resolution 2^-{exponent} too fine", pos)
            units = 1 << exponent
        else:
            if exponent > 19:
                raise self.error(f"interface timestamp resolution 10^-{exponent} too fine", pos)
            units = 10**exponent
        section.linktype.append(linktype)
        section.units.append(units)
        # Wrap like the compiled loop would rather than fail on an absurd offset.
        offset_ns = (tsoffset * 1_000_000_000 + 2**63) % 2**64 - 2**63
        section.offset_ns.append(offset_ns)
        section.snaplen.append(snaplen)
        section.skipped = np.concatenate([section.skipped, np.zeros(1, np.int64)])
        return pos + blen

    def close_section(self, section: _Section) -> None:
        for lt, count in zip(section.linktype, section.skipped.tolist(), strict=True):
            if count:
                self.skipped[lt] = self.skipped.get(lt, 0) + int(count)

    def frames(self, batch_frames: int) -> Iterator[FrameBatch]:
        section, pos = self.section(0)
        tables = section.arrays()
        n = 0
        last_ts = 0
        out = _alloc(batch_frames)
        while True:
            offsets, caplens, wirelens, timestamps, linktypes = out
            n, pos, status, last_ts = index_pcapng(
                self.buf,
                pos,
                section.big,
                *tables,
                section.skipped,
                offsets,
                caplens,
                wirelens,
                timestamps,
                linktypes,
                n,
                last_ts,
            )
            if status in (ST_SHB, ST_IDB):
                try:
                    if status == ST_SHB:
                        self.close_section(section)
                        section, pos = self.section(pos)
                    else:
                        pos = self.interface(section, pos)
                except CaptureError:
                    if n:
                        yield self.batch(out, n)
                    raise
                tables = section.arrays()
                continue
            if n:
                yield self.batch(out, n)
                n = 0
                out = _alloc(batch_frames)
            if status == ST_FULL:
                continue
            if status != ST_END:
                reason = self.reason(section, pos, status)
                self.close_section(section)
                raise self.error("; ".join([reason, *self.unsupported()]), pos)
            break
        self.close_section(section)
        if self.skipped:
            raise CaptureError(self.source, "; ".join(self.unsupported()))

    def unsupported(self) -> list[str]:
        return [
            f"unsupported link type {describe(lt)} ({count} frames left out)"
            for lt, count in sorted(self.skipped.items())
        ]

    def batch(self, out: _Out, n: int) -> FrameBatch:
        offsets, caplens, wirelens, timestamps, linktypes = out
        return FrameBatch(
            buffer=self.buf,
            offsets=offsets[:n],
            caplens=caplens[:n],
            wirelens=wirelens[:n],
            timestamps_ns=timestamps[:n],
            linktypes=linktypes[:n],
            source=self.source,
        )

    def reason(self, section: _Section, pos: int, status: int) -> str:
        big = section.big
        if status == ST_TRUNC_HEADER:
            return f"truncated block header ({self.end - pos} of at least 12 bytes)"
        blen = self.u32(pos + 4, big)
        if status == ST_TRUNC_DATA:
            return f"truncated block ({self.end - pos} of {blen} bytes)"
        if status == ST_BAD_BLOCK_LEN:
            return f"bad or inconsistent block length {blen}"
        if status == ST_BAD_CAPLEN:
            caplen = self.u32(pos + 20, big)
            return f"packet length {caplen} over the maximum of {MAX_CAPLEN} (garbage?)"
        if status == ST_BAD_IFACE:
            return f"packet on an undescribed interface (section has {len(section.linktype)})"
        return f"cannot index block (status {status})"


def _alloc(batch_frames: int) -> _Out:
    return (
        np.empty(batch_frames, np.int64),
        np.empty(batch_frames, np.int32),
        np.empty(batch_frames, np.int32),
        np.empty(batch_frames, np.int64),
        np.empty(batch_frames, np.int32),
    )


def read_pcapng(
    buf: npt.NDArray[np.uint8], source: str, batch_frames: int = BATCH_FRAMES
) -> Iterator[FrameBatch]:
    """Frames of the pcapng file held in ``buf`` (see the module promise)."""
    if buf.shape[0] < 4 or buf[:4].tobytes() != MAGIC:
        raise CaptureError(source, "not a pcapng file", 0)
    yield from _Reader(buf, source).frames(batch_frames)
