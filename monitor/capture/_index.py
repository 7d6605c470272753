"""Compiled loops that index packet records in a mapped capture file.

These kernels walk the record (pcap) or block (pcapng) headers of a file that is already in
memory and write, per frame, where its bytes start, its captured and wire lengths, its
timestamp in nanoseconds and its link type into preallocated numpy arrays. They never copy
packet bytes and never build Python objects per packet, which is what makes file reading run
at memory speed.

Promise: a kernel never raises and never reads outside ``buf``. It stops at the first record
it cannot index and says why through a status code; the caller turns that into a
``CaptureError`` after handing out the frames indexed so far. Timestamp arithmetic wraps on
overflow (hostile input gets a wrong timestamp, never an exception).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numba import njit


def _jit(**options: Any) -> Callable[[Any], Any]:
    """``njit`` with an on-disk cache where one can be written.

    Without a writable cache location (a read-only install run by a user without a home,
    as a hardened service is) numba refuses ``cache=True`` at import; compile in memory then.
    """

    def wrap(fn: Any) -> Any:
        try:
            return njit(cache=True, **options)(fn)
        except RuntimeError:
            return njit(**options)(fn)

    return wrap


# Status codes returned by the kernels.
ST_END = 0  # clean end of file
ST_FULL = 1  # output arrays full; call again from the returned position
ST_SHB = 2  # pcapng: section header block at pos, the caller parses it
ST_IDB = 3  # pcapng: interface description block at pos, the caller parses it
ST_TRUNC_HEADER = 4  # partial record/block header at the end of the file
ST_TRUNC_DATA = 5  # record/block runs past the end of the file
ST_BAD_CAPLEN = 6  # captured length over the maximum
ST_BAD_BLOCK_LEN = 7  # pcapng block length impossible or inconsistent
ST_BAD_IFACE = 8  # pcapng packet on an interface not described (yet)

# Frames longer than this are garbage: libpcap's and Wireshark's own limit for the link types
# we read.
MAX_CAPLEN = 262144

_INT32_MAX = 2147483647
_NS = np.int64(1_000_000_000)
_U_NS = np.uint64(1_000_000_000)
# Above this many time units per second, rem * 1e9 could overflow 64 bits.
_U_EXACT_LIMIT = np.uint64(18446744073)

PCAPNG_SHB = 0x0A0D0D0A
PCAPNG_IDB = 1
PCAPNG_PB = 2
PCAPNG_SPB = 3
PCAPNG_EPB = 6


@_jit(inline="always")
def _u32(buf: np.ndarray, p: Any, big: bool) -> np.int64:
    if big:
        return (
            (np.int64(buf[p]) << 24)
            | (np.int64(buf[p + 1]) << 16)
            | (np.int64(buf[p + 2]) << 8)
            | np.int64(buf[p + 3])
        )
    return (
        (np.int64(buf[p + 3]) << 24)
        | (np.int64(buf[p + 2]) << 16)
        | (np.int64(buf[p + 1]) << 8)
        | np.int64(buf[p])
    )


@_jit(inline="always")
def _u16(buf: np.ndarray, p: Any, big: bool) -> np.int64:
    if big:
        return (np.int64(buf[p]) << 8) | np.int64(buf[p + 1])
    return (np.int64(buf[p + 1]) << 8) | np.int64(buf[p])


@_jit()
def index_pcap(
    buf: np.ndarray,
    pos: Any,
    big: bool,
    nano: bool,
    linktype: int,
    offsets: np.ndarray,
    caplens: np.ndarray,
    wirelens: np.ndarray,
    timestamps: np.ndarray,
    linktypes: np.ndarray,
    n: int,
) -> tuple[Any, Any, Any]:
    """Index classic pcap records from ``pos``; returns ``(frames, pos, status)``."""
    end = buf.shape[0]
    max_n = offsets.shape[0]
    frac_mul = np.int64(1) if nano else np.int64(1000)
    while n < max_n:
        if pos == end:
            return n, pos, ST_END
        if pos + 16 > end:
            return n, pos, ST_TRUNC_HEADER
        sec = _u32(buf, pos, big)
        frac = _u32(buf, pos + 4, big)
        cap = _u32(buf, pos + 8, big)
        wire = _u32(buf, pos + 12, big)
        if cap > MAX_CAPLEN:
            return n, pos, ST_BAD_CAPLEN
        if pos + 16 + cap > end:
            return n, pos, ST_TRUNC_DATA
        offsets[n] = pos + 16
        caplens[n] = cap
        wirelens[n] = min(wire, _INT32_MAX)
        timestamps[n] = sec * _NS + frac * frac_mul
        linktypes[n] = linktype
        n += 1
        pos += 16 + cap
    return n, pos, ST_FULL


@_jit()
def index_pcapng(
    buf: np.ndarray,
    pos: Any,
    big: bool,
    if_linktype: np.ndarray,
    if_supported: np.ndarray,
    if_units: np.ndarray,
    if_offset_ns: np.ndarray,
    if_snaplen: np.ndarray,
    if_skipped: np.ndarray,
    offsets: np.ndarray,
    caplens: np.ndarray,
    wirelens: np.ndarray,
    timestamps: np.ndarray,
    linktypes: np.ndarray,
    n: int,
    last_ts: int,
) -> tuple[Any, Any, Any, Any]:
    """Index pcapng packet blocks from ``pos`` within one section.

    Returns ``(frames, pos, status, last_ts)``. Stops at a section header or interface
    description block (``ST_SHB``/``ST_IDB``) so the caller can parse it, since those change
    the byte order or the interface table. Frames on interfaces whose link type is not
    supported are counted in ``if_skipped`` instead of being indexed.
    """
    end = buf.shape[0]
    max_n = offsets.shape[0]
    n_if = if_linktype.shape[0]
    ts = np.int64(last_ts)
    while n < max_n:
        if pos == end:
            return n, pos, ST_END, ts
        if pos + 12 > end:
            return n, pos, ST_TRUNC_HEADER, ts
        btype = _u32(buf, pos, big)
        if btype == PCAPNG_SHB:
            return n, pos, ST_SHB, ts
        if btype == PCAPNG_IDB:
            return n, pos, ST_IDB, ts
        blen = _u32(buf, pos + 4, big)
        if blen < 12 or blen % 4 != 0:
            return n, pos, ST_BAD_BLOCK_LEN, ts
        if pos + blen > end:
            return n, pos, ST_TRUNC_DATA, ts
        if _u32(buf, pos + blen - 4, big) != blen:
            return n, pos, ST_BAD_BLOCK_LEN, ts
        if btype in (PCAPNG_EPB, PCAPNG_PB):
            if blen < 32:
                return n, pos, ST_BAD_BLOCK_LEN, ts
            # The obsolete Packet Block has a 16-bit interface id and a 16-bit drop count.
            ifid = _u32(buf, pos + 8, big) if btype == PCAPNG_EPB else _u16(buf, pos + 8, big)
            if ifid >= n_if:
                return n, pos, ST_BAD_IFACE, ts
            cap = _u32(buf, pos + 20, big)
            wire = _u32(buf, pos + 24, big)
            if cap > MAX_CAPLEN:
                return n, pos, ST_BAD_CAPLEN, ts
            if 32 + cap > blen:
                return n, pos, ST_BAD_BLOCK_LEN, ts
            t = (np.uint64(_u32(buf, pos + 12, big)) << np.uint64(32)) | np.uint64(
                _u32(buf, pos + 16, big)
            )
            units = np.uint64(if_units[ifid])
            sec = t // units
            rem = t % units
            frac_ns = (rem * _U_NS) // units if units <= _U_EXACT_LIMIT else rem // (units // _U_NS)
            ts = np.int64(sec) * _NS + np.int64(frac_ns) + if_offset_ns[ifid]
            if if_supported[ifid]:
                offsets[n] = pos + 28
                caplens[n] = cap
                wirelens[n] = min(wire, _INT32_MAX)
                timestamps[n] = ts
                linktypes[n] = if_linktype[ifid]
                n += 1
            else:
                if_skipped[ifid] += 1
        elif btype == PCAPNG_SPB:
            if blen < 16:
                return n, pos, ST_BAD_BLOCK_LEN, ts
            if n_if == 0:
                return n, pos, ST_BAD_IFACE, ts
            wire = _u32(buf, pos + 8, big)
            # The block has no captured length: the data fills the block up to the padding.
            cap = blen - 16
            if cap > wire:
                cap = wire
            snap = if_snaplen[0]
            if snap != 0 and cap > snap:
                cap = snap
            if cap > MAX_CAPLEN:
                return n, pos, ST_BAD_CAPLEN, ts
            if if_supported[0]:
                offsets[n] = pos + 12
                caplens[n] = cap
                wirelens[n] = min(wire, _INT32_MAX)
                # No timestamp in the format: keep time monotone with the previous packet.
                timestamps[n] = ts
                linktypes[n] = if_linktype[0]
                n += 1
            else:
                if_skipped[0] += 1
        pos += blen
    return n, pos, ST_FULL, ts
