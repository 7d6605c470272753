"""Santinel offline, end to end, next to the field's tools on the same captures, in one run.

    python3 bench/offline_field.py [CAPTURE ...] [--packets 1000000] [--dense-seconds 10]
                                   [--repeat 1] [--cap 200000] [--scapy-cap 50000]
                                   [--markdown]

Without a capture it measures the public IoT Sentinel capture in ../shared and two
generated hospital captures of ``--packets`` packets (``bench/generate_traffic.py``, written
once under the temporary directory): one spread over 10 minutes, and the same mix with its
start times packed into ``--dense-seconds`` (10; the connections' own message timing
stretches that to about 30 s, one 60-s window). Their per-packet and per-flow work is the
same; what differs is the work paid once per device and closed window (the detectors,
baseline learning). Over 10 minutes a million packets are 1,600 packets/s, and each packet
carries sixty times the per-window work it would carry on a link at 100,000 packets/s, the
load this benchmark is about; the dense capture shows the rate with less of it. The table's
heading gives each capture's span and mean rate.

For each capture, side by side:

- ``tcpdump -r FILE -w /dev/null`` (the machine's reading speed);
- ``tshark -r FILE -T fields`` with five header fields, to /dev/null;
- scapy ``PcapReader`` iterating (and so dissecting) every packet;
- dpkt reading and decoding Ethernet/IP/TCP-UDP of every packet;
- nfstream (its nDPI flow meter, one meter process, no statistics);
- Santinel end to end: decode, inventory, flows, window profiles, application metadata,
  classification, and on every closed window the ``DetectorSuite`` and the
  ``BaselineStore`` learning it (``bench/harness.end_to_end``), each run in a fresh process
  whose compiled code the daemon's preload loaded, and whose signature library and
  collector were set up, before the clock starts, as a daemon does once (that start is in
  the fixed start below, and the row's note gives the rate with it inside the clock); so no
  run finds what an earlier pass over the same capture left in a cache.

Tools slower than Santinel by far run on the first ``--cap`` packets (scapy on the first
``--scapy-cap``) and their rate is extrapolated; the table says so. Ratios are Santinel's
packets/s over tcpdump's and over nfstream's. Apart: the fixed start of a fresh process
(imports, compiled-code cache, signature library) and the compile time of the numba code
with an empty cache (``NUMBA_CACHE_DIR`` pointed at an empty directory) against a warm one.

This supersedes ``bench/offline_throughput.py`` (kept, unchanged: one capture, Santinel's
pipeline without detectors, against tcpdump only).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness

REPO = harness.REPO


@dataclass
class Run:
    name: str
    packets: int  # packets the tool read (the prefix when capped)
    seconds: float
    note: str = ""

    @property
    def rate(self) -> float:
        return self.packets / self.seconds if self.seconds > 0 else float("inf")


def timed(repeat: int, action: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(repeat):
        began = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - began)
    return best


def count_packets(path: Path) -> int:
    return capture_extent(path)[0]


def capture_extent(path: Path) -> tuple[int, float]:
    """(packets, seconds of capture time from the first packet to the last)."""
    from monitor.capture.files import open_capture

    packets, first, last = 0, None, None
    for batch in open_capture(path):
        if len(batch):
            stamps = batch.timestamps_ns
            low, high = int(stamps.min()), int(stamps.max())
            first = low if first is None else min(first, low)
            last = high if last is None else max(last, high)
        packets += len(batch)
    return packets, 0.0 if first is None or last is None else (last - first) / 1e9


def prefix(path: Path, packets: int, total: int, workdir: Path) -> tuple[Path, int]:
    """The first ``packets`` packets of ``path`` as a file (``path`` itself if shorter)."""
    if total <= packets:
        return path, total
    out = workdir / f"{path.stem}-first{packets}.pcap"
    if not out.is_file():
        subprocess.run(
            ["tcpdump", "-r", str(path), "-c", str(packets), "-w", str(out)],
            check=True,
            capture_output=True,
        )
    return out, packets


def run_tcpdump(path: Path) -> None:
    subprocess.run(["tcpdump", "-r", str(path), "-w", "/dev/null"], check=True, capture_output=True)


def run_tshark(path: Path) -> None:
    fields = ["frame.number", "ip.src", "ip.dst", "tcp.srcport", "udp.srcport"]
    command = ["tshark", "-n", "-r", str(path), "-T", "fields"]
    for name in fields:
        command += ["-e", name]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def run_scapy(path: Path) -> int:
    from scapy.utils import PcapReader  # layers loaded by load_scapy, outside the clock

    count = 0
    with PcapReader(str(path)) as reader:
        for _ in reader:
            count += 1
    return count


def load_scapy() -> None:
    """Register scapy's layers so PcapReader dissects Ethernet/IP/TCP/UDP and above."""
    import scapy.all  # noqa: F401


def run_dpkt(path: Path) -> int:
    import dpkt

    count = 0
    with open(path, "rb") as handle:
        for _, buf in dpkt.pcap.Reader(handle):
            eth = dpkt.ethernet.Ethernet(buf)
            ip = eth.data
            if isinstance(ip, dpkt.ip.IP) and isinstance(ip.data, dpkt.tcp.TCP | dpkt.udp.UDP):
                count += ip.data.sport >= 0
            else:
                count += 1
    return count


def run_nfstream(path: Path) -> int:
    from nfstream import NFStreamer

    flows = 0
    for _ in NFStreamer(source=str(path), n_meters=1, statistical_analysis=False):
        flows += 1
    return flows


SANTINEL_SCRIPT = """
import json, sys, time
sys.path.insert(0, {bench!r})
import harness
from pathlib import Path
from monitor.daemon import _preload
_preload()  # compiled code loaded as the daemon loads it, outside the clock
began = time.perf_counter()
parts = harness.end_to_end_parts()  # the daemon's start too: signature library, collector
started = time.perf_counter()
analysis, suite, store = harness.end_to_end([Path({capture!r})], parts=parts)
print(json.dumps({{"seconds": time.perf_counter() - started, "start": started - began,
                   "devices": len(analysis.devices),
                   "flows": analysis.table_stats().flows_started,
                   "events": len(suite.book.emitted), "baselines": len(store)}}))
"""


def run_santinel(path: Path) -> tuple[float, float, dict[str, int]]:
    """Santinel end to end over ``path`` in a fresh process whose compiled code is loaded:
    each run starts with empty caches, as a first pass over a capture does (a second pass in
    one process would find the decoded messages and parsed addresses of the first). Returns
    the seconds of the run, those of the start before it (signature library and collector
    set-up, as the daemon does once), and what it found."""
    script = SANTINEL_SCRIPT.format(bench=str(REPO / "bench"), capture=str(path))
    done = subprocess.run(
        [sys.executable, "-c", script], check=True, capture_output=True, text=True, cwd=REPO
    )
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    seconds, start = float(figures.pop("seconds")), float(figures.pop("start"))
    return seconds, start, {k: int(v) for k, v in figures.items()}


STARTUP_SCRIPT = """
import json, sys, time
began = time.perf_counter()
sys.path.insert(0, {bench!r})
import harness
from monitor.detectors.offline import replay
imported = time.perf_counter()
library, suite, store = harness.end_to_end_parts()
loaded = time.perf_counter()
replay([{capture!r}], suite, store, library)
done = time.perf_counter()
print(json.dumps({{"imports": imported - began, "signatures": loaded - imported,
                   "first_capture": done - loaded}}))
"""


def startup(small_capture: Path, cache_dir: str | None) -> dict[str, float]:
    """A fresh interpreter: imports, signature library, then a small capture end to end
    (which compiles or loads from cache the numba code). ``cache_dir`` empty means cold."""
    env = dict(os.environ)
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = cache_dir
    script = STARTUP_SCRIPT.format(bench=str(REPO / "bench"), capture=str(small_capture))
    began = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", script],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
    )
    total = time.perf_counter() - began
    figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    figures["process"] = total
    return figures


def measure(
    capture: Path, args: argparse.Namespace, workdir: Path
) -> tuple[int, float, list[Run], dict[str, int]]:
    total, span = capture_extent(capture)
    cap = total if args.full else args.cap
    scapy_cap = total if args.full else args.scapy_cap
    capped, capped_n = prefix(capture, cap, total, workdir)
    scapy_file, scapy_n = prefix(capture, scapy_cap, total, workdir)

    def note(n: int) -> str:
        return "" if n == total else f"first {n:,} packets, extrapolated"

    load_scapy()
    runs = [
        Run("tcpdump -r FILE -w /dev/null", total, timed(args.repeat, lambda: run_tcpdump(capture)))
    ]
    runs.append(
        Run(
            "tshark -T fields (5 fields)",
            capped_n,
            timed(args.repeat, lambda: run_tshark(capped)),
            note(capped_n),
        )
    )
    runs.append(
        Run("scapy PcapReader", scapy_n, timed(1, lambda: run_scapy(scapy_file)), note(scapy_n))
    )
    optional: list[tuple[str, str, Callable[[Path], int]]] = [
        ("dpkt (Ethernet/IP/L4)", "dpkt", run_dpkt),
        ("nfstream (nDPI, 1 meter)", "nfstream", run_nfstream),
    ]
    for label, module, run in optional:
        if harness._module_version(module) != "absent":
            runs.append(
                Run(label, capped_n, timed(1, functools.partial(run, capped)), note(capped_n))
            )
    summary: dict[str, int] = {}
    best, best_start = float("inf"), 0.0
    for _ in range(args.repeat):
        seconds, start, summary = run_santinel(capture)
        if seconds < best:
            best, best_start = seconds, start
    with_start = total / (best + best_start)
    runs.append(
        Run(
            "Santinel end to end (fresh analysis, compiled code loaded)",
            total,
            best,
            f"start apart (signature library, collector): {best_start:.3f} s; "
            f"with it {with_start:,.0f} packets/s",
        )
    )
    return total, span, runs, summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("captures", nargs="*", type=Path)
    parser.add_argument("--packets", type=int, default=1_000_000, help="generated capture size")
    parser.add_argument(
        "--dense-seconds",
        type=float,
        default=10.0,
        help="start times of the second generated capture's traffic fall within this span",
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="best of N (tcpdump, tshark, Santinel)"
    )
    parser.add_argument(
        "--cap", type=int, default=200_000, help="packets for tshark, dpkt, nfstream"
    )
    parser.add_argument("--scapy-cap", type=int, default=50_000)
    parser.add_argument("--full", action="store_true", help="no cap: every tool reads every packet")
    parser.add_argument("--markdown", action="store_true", help="print a RESULTS.md section")
    args = parser.parse_args()
    captures: list[Path] = args.captures or [
        harness.SHARED_CAPTURE,
        harness.generated_capture(args.packets),
        harness.generated_capture(args.packets, seconds=args.dense_seconds),
    ]
    for capture in captures:
        if not capture.is_file():
            print(f"offline_field: {capture}: no such capture", file=sys.stderr)
            return 2
    info = harness.machine()
    load_before = harness.load_average()

    smallest = min(captures, key=lambda p: p.stat().st_size)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        small, _ = prefix(smallest, 5000, count_packets(smallest), workdir)
        results = [(capture, *measure(capture, args, workdir)) for capture in captures]
        warm = startup(small, None)
        cold_dir = workdir / "numba-cold"
        cold_dir.mkdir()
        cold = startup(small, str(cold_dir))
    load_after = harness.load_average()
    report(args.markdown, info, results, warm, cold, (load_before, load_after))
    return 0


def density(packets: int, span: float) -> str:
    """`` over 10 s of capture time (100,000 packets/s)``: how dense the capture is."""
    if span <= 0:
        return ""
    if span >= 2 * 86400:
        over = f"{span / 86400:,.0f} days"
    elif span >= 120:
        over = f"{span / 60:,.0f} min"
    else:
        over = f"{span:,.0f} s"
    rate = packets / span
    return f" over {over} of capture time ({rate:,.{0 if rate >= 10 else 3}f} packets/s)"


def report(
    markdown: bool,
    info: dict[str, str],
    results: list[tuple[Path, int, float, list[Run], dict[str, int]]],
    warm: dict[str, float],
    cold: dict[str, float],
    load: tuple[str, str],
) -> None:
    compile_seconds = cold["process"] - warm["process"]
    out: list[str] = []
    if markdown:
        out.append(
            "## Offline, end to end, against the field "
            f"(`python3 bench/offline_field.py --markdown`, {time.strftime('%Y-%m-%d')})\n"
        )
        out.append(f"Machine: {harness.machine_line(info)}.")
        out.append(f"Load average (1, 5, 15 min): {load[0]} before, {load[1]} after.\n")
    else:
        out.append(harness.machine_line(info))
        out.append(f"load average before {load[0]}, after {load[1]}")
    for capture, total, span, runs, summary in results:
        reference = runs[0].rate
        nf = next((r.rate for r in runs if r.name.startswith("nfstream")), None)
        santinel = runs[-1].rate
        head = f"{capture.name}: {total:,} packets{density(total, span)}"
        if summary:
            head += (
                f"; Santinel found {summary['devices']:,} devices, {summary['flows']:,} flows, "
                f"{summary['events']:,} events, {summary['baselines']:,} baselines"
            )
        if markdown:
            out.append(f"### {head}\n")
            out.append(
                "| tool | packets read | seconds | packets/s | Santinel ÷ tool (packets/s) | note |"
            )
            out.append("|---|---:|---:|---:|---:|---|")
            for r in runs:
                ratio = "" if r is runs[-1] else f"{santinel / r.rate:.2f}"
                out.append(
                    f"| {r.name} | {r.packets:,} | {r.seconds:.3f} | {r.rate:,.0f} "
                    f"| {ratio} | {r.note} |"
                )
            out.append("")
            line = f"Santinel / tcpdump = **{santinel / reference:.3f}**"
            if nf is not None:
                line += f"; Santinel / nfstream = **{santinel / nf:.1f}×**"
            out.append(line + ".\n")
        else:
            out.append(head)
            for r in runs:
                extra = f"  ({r.note})" if r.note else ""
                out.append(
                    f"  {r.name:<42} {r.packets:>10,} pkts {r.seconds:9.3f} s "
                    f"{r.rate:>13,.0f} packets/s{extra}"
                )
            line = f"  Santinel/tcpdump {santinel / reference:.3f}"
            if nf is not None:
                line += f", Santinel/nfstream {santinel / nf:.1f}x"
            out.append(line)
    start = (
        "Fixed start of a fresh process (warm compiled-code cache): "
        f"{warm['process']:.2f} s in all "
        f"(imports {warm['imports']:.2f} s, signature library {warm['signatures']:.2f} s, "
        f"first 5,000 packets end to end including the cache load {warm['first_capture']:.2f} s). "
        f"With an empty numba cache the same takes {cold['process']:.2f} s: "
        f"JIT compile time {compile_seconds:.2f} s, paid once and cached."
    )
    out.append(start)
    print("\n".join(out))


if __name__ == "__main__":
    raise SystemExit(main())
