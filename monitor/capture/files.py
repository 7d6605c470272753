"""Capture files: open any pcap or pcapng file, chosen by magic number, as ``FrameBatch``es.

A file of 16 MiB or more is memory-mapped; a smaller one, or one that cannot be mapped
(e.g. a pipe), is read whole into memory, and a gzip-compressed one decompressed (as
Wireshark also reads those). The name and the extension of the file play no part in
choosing the reader. The mapped pages of frames already handed out are given back as the
reading goes on, so reading a capture of many GiB does not grow the resident set by the
file's size.

Promise: ``open_capture`` and the iterator it returns raise nothing but ``CaptureError``,
whose one-line message names the file and, where there is one, the byte offset; a
``CaptureError`` about damage comes after every good frame before the damage was yielded.
Messages never quote packet or file content.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import stat
import zlib
from collections.abc import Iterator

import numpy as np
import numpy.typing as npt

from monitor.capture import BATCH_FRAMES, CaptureError, FrameBatch
from monitor.capture import pcap as _pcap
from monitor.capture import pcapng as _pcapng
from monitor.capture.linktypes import describe, linktype_name

__all__ = ["describe", "linktype_name", "open_capture", "read_buffer"]

_GZIP_MAGIC = b"\x1f\x8b"
# Alexey Kuznetzov's patched libpcap (and SuSE 6.3's): longer record headers, 1999-era.
_MODIFIED_PCAP_MAGICS = (b"\x34\xcd\xb2\xa1", b"\xa1\xb2\xcd\x34")
# A decompressed capture larger than this is refused rather than exhausting memory.
_MAX_DECOMPRESSED = 8 << 30
# The mapped pages behind the reader are given back once this many bytes have been read.
RELEASE_BYTES = 16 << 20
# A file smaller than this is read into memory rather than mapped. A mapping holds a
# descriptor of the file open for as long as any batch of it lives, and so does the error of
# a damaged file (its traceback holds the buffer) until a garbage collection: a process
# reading thousands of small captures ran out of descriptors (select() refuses those past
# 1,024). Pages of a larger file are given back behind the reader, so mapping it keeps the
# resident set small.
MAP_FROM_BYTES = 16 << 20


def open_capture(
    path: str | os.PathLike[str], batch_frames: int = BATCH_FRAMES
) -> Iterator[FrameBatch]:
    """Open the capture file ``path`` and return an iterator over its frames.

    The file is opened and its format recognised now (a ``CaptureError`` here means nothing
    can be read); frames are indexed lazily, ``batch_frames`` at most per batch.
    """
    source = str(path)
    if batch_frames < 1:
        raise ValueError("batch_frames must be at least 1")
    buf, mapped = _load(source)
    frames = read_buffer(buf, source, batch_frames, allow_gzip=True)
    if mapped is not None and buf.shape[0] > RELEASE_BYTES:
        frames = _released_behind(frames, mapped)
    return _guarded(frames, source)


def read_buffer(
    buf: npt.NDArray[np.uint8],
    source: str,
    batch_frames: int = BATCH_FRAMES,
    allow_gzip: bool = False,
) -> Iterator[FrameBatch]:
    """Frames of a capture held in memory, format chosen by its magic number."""
    if buf.shape[0] == 0:
        raise CaptureError(source, "empty file")
    head = buf[:4].tobytes()
    if head in _pcap.MAGICS:
        return _pcap.read_pcap(buf, source, batch_frames)
    if head == _pcapng.MAGIC:
        return _pcapng.read_pcapng(buf, source, batch_frames)
    if allow_gzip and head[:2] == _GZIP_MAGIC:
        return read_buffer(_gunzip(buf, source), source, batch_frames)
    if len(head) < 4:
        raise CaptureError(source, "too short to be a capture file", 0)
    if head in _MODIFIED_PCAP_MAGICS:
        raise CaptureError(source, "modified (Kuznetzov) pcap format not supported", 0)
    raise CaptureError(source, "not a pcap or pcapng capture (unknown magic number)", 0)


def _guarded(frames: Iterator[FrameBatch], source: str) -> Iterator[FrameBatch]:
    """Keep the promise of raising only ``CaptureError``, whatever goes wrong below."""
    try:
        yield from frames
    except CaptureError:
        raise
    except Exception as exc:  # a bug must not become a traceback quoting the input
        raise CaptureError(source, f"internal error while reading ({type(exc).__name__})") from None


def _released_behind(frames: Iterator[FrameBatch], mapped: mmap.mmap) -> Iterator[FrameBatch]:
    """Give back the mapped pages of the batches handed out before the one being read.

    Safe whatever still refers to them: the mapping is a read-only view of the file, so a
    page given back is read again from the page cache (or the file) if it is touched again.
    """
    released = 0
    for batch in frames:
        yield batch
        if len(batch) == 0:
            continue
        done = int(batch.offsets[-1]) // mmap.PAGESIZE * mmap.PAGESIZE
        if done - released >= RELEASE_BYTES:
            # only a saving: a kernel that refuses must not stop the reading
            with contextlib.suppress(OSError):
                mapped.madvise(mmap.MADV_DONTNEED, released, done - released)
            released = done


def _load(source: str) -> tuple[npt.NDArray[np.uint8], mmap.mmap | None]:
    """The file's bytes, and the mapping they are a view of (None when read into memory)."""
    try:
        with open(source, "rb") as f:
            st = os.fstat(f.fileno())
            if stat.S_ISDIR(st.st_mode):
                raise CaptureError(source, "is a directory, not a capture file")
            if stat.S_ISREG(st.st_mode):
                if st.st_size == 0:
                    raise CaptureError(source, "empty file")
                if st.st_size < MAP_FROM_BYTES:
                    return np.frombuffer(f.read(), dtype=np.uint8), None
                mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
                # The array keeps the mapping alive for as long as any batch refers to it.
                return np.frombuffer(mapped, dtype=np.uint8), mapped
            return np.frombuffer(f.read(), dtype=np.uint8), None
    except CaptureError:
        raise
    except IsADirectoryError:
        raise CaptureError(source, "is a directory, not a capture file") from None
    except OSError as exc:
        raise CaptureError(source, f"cannot read: {exc.strerror or type(exc).__name__}") from None
    except (ValueError, OverflowError) as exc:
        raise CaptureError(source, f"cannot map: {type(exc).__name__}") from None


def _gunzip(buf: npt.NDArray[np.uint8], source: str) -> npt.NDArray[np.uint8]:
    out = bytearray()
    d = zlib.decompressobj(wbits=31)
    try:
        data = buf.tobytes()
        while data:
            out += d.decompress(data, 1 << 24)
            if len(out) > _MAX_DECOMPRESSED:
                raise CaptureError(source, "gzip-compressed capture too large to decompress")
            data = d.unconsumed_tail
            if d.eof and d.unused_data:
                # Another gzip member follows, as `cat a.gz b.gz` makes.
                data = d.unused_data
                d = zlib.decompressobj(wbits=31)
    except zlib.error:
        raise CaptureError(source, "damaged gzip compression") from None
    return np.frombuffer(bytes(out), dtype=np.uint8)
