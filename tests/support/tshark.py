"""tshark as the reference decoder for differential tests."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

FlowTuple = tuple[str, str, int, int, int]

_FIELDS = (
    "ip.src",
    "ip.dst",
    "ipv6.src",
    "ipv6.dst",
    "ip.proto",
    "ipv6.nxt",
    "tcp.srcport",
    "tcp.dstport",
    "udp.srcport",
    "udp.dstport",
    "icmpv6.type",
)


def require_tshark() -> str:
    path = shutil.which("tshark")
    if path is None:
        pytest.skip("tshark is not installed (deploy/install.sh --dev installs it)")
    return path


@dataclass(frozen=True)
class TsharkView:
    """What tshark reads in a file: per frame (timestamp ns or None, caplen, wirelen), the
    packets per flow tuple, and its stderr."""

    frames: list[tuple[int | None, int, int]]
    flows: Counter[FlowTuple]
    stderr: str


def _epoch_ns(text: str) -> int:
    negative = text.startswith("-")
    seconds, _, fraction = text.lstrip("-").partition(".")
    ns = int(seconds) * 1_000_000_000 + int((fraction + "000000000")[:9])
    return -ns if negative else ns


@functools.cache
def tshark_view(capture: Path) -> TsharkView:
    """One tshark pass over ``capture`` (cached for the test session: the corpus tests of the
    capture reader and of the header decoder share it).

    Flows count the outermost IP header (``occurrence=f``), with ports only where that header
    carries TCP or UDP itself, so the header quoted inside an ICMP error does not count as
    traffic. Fragments are not reassembled, as the sensor does not reassemble them.
    """
    frame_fields = ("frame.time_epoch", "frame.cap_len", "frame.len")
    command = [require_tshark(), "-n", "-r", str(capture), "-T", "fields"]
    command += ["-E", "occurrence=f", "-E", "separator=\t"]
    command += ["-o", "ip.defragment:FALSE", "-o", "ipv6.defragment:FALSE"]
    for field in (*frame_fields, *_FIELDS):
        command += ["-e", field]
    proc = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "LC_ALL": "C"},
    )
    frames: list[tuple[int | None, int, int]] = []
    counts: Counter[FlowTuple] = Counter()
    width = len(frame_fields) + len(_FIELDS)
    for line in proc.stdout.splitlines():
        values = line.split("\t") + [""] * width
        stamp, caplen, wirelen = values[:3]
        frames.append((_epoch_ns(stamp) if stamp else None, int(caplen), int(wirelen)))
        flow = _flow(values[3:width])
        if flow is not None:
            counts[flow] += 1
    return TsharkView(frames, counts, proc.stderr)


def tshark_flow_counts(capture: Path) -> Counter[FlowTuple]:
    """Packets per (src IP, dst IP, IP protocol, src port, dst port) as tshark decodes them."""
    return tshark_view(capture).flows


def _flow(values: list[str]) -> FlowTuple | None:
    src4, dst4, src6, dst6, proto4, next6, tsp, tdp, usp, udp_, icmp6 = values[: len(_FIELDS)]
    if src4:
        src, dst, proto = src4, dst4, int(proto4.split(",")[0] or 0)
    elif src6:
        src, dst = src6, dst6
        if icmp6:
            proto = 58
        elif tsp:
            proto = 6
        elif usp:
            proto = 17
        else:
            proto = int(next6.split(",")[0] or 0)
    else:
        return None
    sport = dport = 0
    if proto == 6 and tsp:
        sport, dport = int(tsp), int(tdp)
    elif proto == 17 and usp:
        sport, dport = int(usp), int(udp_)
    return (src, dst, proto, sport, dport)
