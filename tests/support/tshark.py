"""tshark as the reference decoder for differential tests."""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter
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


def tshark_flow_counts(capture: Path) -> Counter[FlowTuple]:
    """Packets per (src IP, dst IP, IP protocol, src port, dst port) as tshark decodes them.

    The outermost IP header counts (``occurrence=f``); ports only where that header carries
    TCP or UDP itself, so the header quoted inside an ICMP error does not count as traffic.
    Fragments are not reassembled, as the sensor does not reassemble them.
    """
    command = [require_tshark(), "-n", "-r", str(capture), "-T", "fields"]
    command += ["-E", "occurrence=f", "-E", "separator=\t"]
    command += ["-o", "ip.defragment:FALSE", "-o", "ipv6.defragment:FALSE"]
    for field in _FIELDS:
        command += ["-e", field]
    out = subprocess.run(command, capture_output=True, text=True, timeout=600).stdout
    counts: Counter[FlowTuple] = Counter()
    for line in out.splitlines():
        values = line.split("\t") + [""] * len(_FIELDS)
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
            continue
        sport = dport = 0
        if proto == 6 and tsp:
            sport, dport = int(tsp), int(tdp)
        elif proto == 17 and usp:
            sport, dport = int(usp), int(udp_)
        counts[(src, dst, proto, sport, dport)] += 1
    return counts
