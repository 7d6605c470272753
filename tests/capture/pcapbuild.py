"""Byte-level builders of pcap and pcapng files for the capture tests, and a tshark reader.

The builders write exactly what the format specifications say (both byte orders, every
packet block type, interface options), so the tests can make variants that ordinary tools do
not write. ``tshark_frames`` reads any file with Wireshark's own reader, the independent
reference the tests compare against.
"""

from __future__ import annotations

import os
import struct
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from monitor.capture import CaptureError, FrameBatch
from monitor.capture.files import open_capture


@dataclass(frozen=True)
class Frame:
    """One frame to write: timestamp in ns, bytes, wire length (``None``: ``len(data)``)."""

    ts_ns: int
    data: bytes
    wirelen: int | None = None

    @property
    def wire(self) -> int:
        return len(self.data) if self.wirelen is None else self.wirelen


def _order(big: bool) -> str:
    return ">" if big else "<"


# --- classic pcap -------------------------------------------------------------------------


def pcap_bytes(
    frames: Iterable[Frame],
    linktype: int = 1,
    *,
    big: bool = False,
    nano: bool = False,
    snaplen: int = 262144,
) -> bytes:
    o = _order(big)
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = [struct.pack(o + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)]
    div = 1 if nano else 1000
    for f in frames:
        sec, frac = divmod(f.ts_ns, 1_000_000_000)
        out.append(struct.pack(o + "IIII", sec, frac // div, len(f.data), f.wire))
        out.append(f.data)
    return b"".join(out)


# --- pcapng -------------------------------------------------------------------------------


def _pad(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 4)


def block(btype: int, body: bytes, *, big: bool = False) -> bytes:
    """A pcapng block of type ``btype`` around ``body`` (padded to 32 bits)."""
    o = _order(big)
    body = _pad(body)
    total = 12 + len(body)
    return struct.pack(o + "II", btype, total) + body + struct.pack(o + "I", total)


def option(code: int, value: bytes, *, big: bool = False) -> bytes:
    return struct.pack(_order(big) + "HH", code, len(value)) + _pad(value)


def end_of_options(*, big: bool = False) -> bytes:
    return struct.pack(_order(big) + "HH", 0, 0)


def shb(*, big: bool = False, options: bytes = b"") -> bytes:
    o = _order(big)
    body = struct.pack(o + "IHHq", 0x1A2B3C4D, 1, 0, -1) + options
    return block(0x0A0D0D0A, body, big=big)


def idb(
    linktype: int,
    *,
    big: bool = False,
    snaplen: int = 0,
    tsresol: int | None = None,
    tsoffset: int | None = None,
    name: str | None = None,
) -> bytes:
    o = _order(big)
    opts = b""
    if name is not None:
        opts += option(2, name.encode(), big=big)
    if tsresol is not None:
        opts += option(9, bytes([tsresol]), big=big)
    if tsoffset is not None:
        opts += option(14, struct.pack(o + "q", tsoffset), big=big)
    if opts:
        opts += end_of_options(big=big)
    return block(1, struct.pack(o + "HHI", linktype, 0, snaplen) + opts, big=big)


def epb(
    ifid: int, ts_units: int, data: bytes, *, wirelen: int | None = None, big: bool = False
) -> bytes:
    o = _order(big)
    wire = len(data) if wirelen is None else wirelen
    head = struct.pack(o + "IIIII", ifid, ts_units >> 32, ts_units & 0xFFFFFFFF, len(data), wire)
    return block(6, head + data, big=big)


def pb(
    ifid: int, ts_units: int, data: bytes, *, wirelen: int | None = None, big: bool = False
) -> bytes:
    o = _order(big)
    wire = len(data) if wirelen is None else wirelen
    head = struct.pack(
        o + "HHIIII", ifid, 0, ts_units >> 32, ts_units & 0xFFFFFFFF, len(data), wire
    )
    return block(2, head + data, big=big)


def spb(data: bytes, *, wirelen: int | None = None, big: bool = False) -> bytes:
    wire = len(data) if wirelen is None else wirelen
    return block(3, struct.pack(_order(big) + "I", wire) + data, big=big)


def isb(ifid: int, *, big: bool = False) -> bytes:
    """An interface statistics block (no options): something a reader must skip."""
    return block(5, struct.pack(_order(big) + "III", ifid, 0, 0), big=big)


def nrb(*, big: bool = False) -> bytes:
    """A name resolution block with one IPv4 record."""
    o = _order(big)
    rec = struct.pack(o + "HH", 1, 4 + 10) + _pad(bytes([192, 0, 2, 1]) + b"host.test\0")
    return block(4, rec + struct.pack(o + "HH", 0, 0), big=big)


# --- frames -------------------------------------------------------------------------------


def ether_frame(i: int, size: int = 60) -> bytes:
    """A recognisable Ethernet frame numbered ``i`` (IPv4 ethertype, filler payload)."""
    head = bytes.fromhex("02000000000102000000000208 00".replace(" ", ""))
    body = i.to_bytes(4, "big") + bytes((i + k) & 0xFF for k in range(max(0, size - 18)))
    return (head + body)[:size]


# --- reading ------------------------------------------------------------------------------


@dataclass
class ReadResult:
    timestamps: list[int]
    caplens: list[int]
    wirelens: list[int]
    linktypes: list[int]
    frames: list[bytes]
    error: CaptureError | None
    batches: int


def read_all(path: str | os.PathLike[str], batch_frames: int = 65536) -> ReadResult:
    """Everything ``open_capture`` yields, and the ``CaptureError`` it ends with, if any."""
    batches: list[FrameBatch] = []
    error: CaptureError | None = None
    try:
        for b in open_capture(path, batch_frames=batch_frames):
            batches.append(b)
    except CaptureError as exc:
        error = exc
    ts = [int(t) for b in batches for t in b.timestamps_ns]
    return ReadResult(
        timestamps=ts,
        caplens=[int(c) for b in batches for c in b.caplens],
        wirelens=[int(c) for b in batches for c in b.wirelens],
        linktypes=[int(c) for b in batches for c in b.linktypes],
        frames=[b.frame(i) for b in batches for i in range(len(b))],
        error=error,
        batches=len(batches),
    )


def parse_epoch_ns(text: str) -> int:
    """``"1258531220.093410000"`` → nanoseconds, exactly (no float on the way)."""
    neg = text.startswith("-")
    sec, _, frac = text.lstrip("-").partition(".")
    ns = int(sec) * 1_000_000_000 + int((frac + "000000000")[:9])
    return -ns if neg else ns


def tshark_frames(
    path: str | os.PathLike[str],
) -> tuple[list[tuple[int | None, int, int]], str]:
    """``(timestamp ns, caplen, wirelen)`` per frame as tshark reads ``path``, and its stderr.

    The timestamp is ``None`` for a frame that has none (a pcapng Simple Packet Block).
    """
    proc = subprocess.run(
        [
            "tshark",
            "-n",
            "-r",
            os.fspath(path),
            "-T",
            "fields",
            "-e",
            "frame.time_epoch",
            "-e",
            "frame.cap_len",
            "-e",
            "frame.len",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "LC_ALL": "C"},
    )
    rows: list[tuple[int | None, int, int]] = []
    for line in proc.stdout.splitlines():
        t, c, w = line.split("\t")
        rows.append((parse_epoch_ns(t) if t else None, int(c), int(w)))
    return rows, proc.stderr


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def as_rows(r: ReadResult) -> list[tuple[int, int, int]]:
    return list(zip(r.timestamps, r.caplens, r.wirelens, strict=True))
