"""Live capture without loss: packets sent by tcpreplay vs packets Santinel counted.

Usage: ``python3 bench/live_capture.py [CAPTURE] [--rates 10000,25000,...] [--workers 1,2]
[--duration SECONDS] [--markdown]`` (as root). CAPTURE defaults to the bundled lab demo; any
pcap works (e.g. the 1,000,000-packet hospital capture of ``bench/generate_traffic.py``).

For each worker count and rate it creates a network namespace holding one end of a veth pair
(the other end stays in the host namespace), replays CAPTURE from the namespace with
``tcpreplay --pps R --loop 0 --duration D --preload-pcap``, and captures on the host end:

- 1 worker: the daemon's single-process path (``monitor.daemon_sources.LiveSource``, one
  AF_PACKET ring, feeding one ``Analysis`` in this process, ticking as the daemon does);
- N workers: ``monitor.workers.WorkerPool`` (N forked processes on N rings in one fanout
  group), their reports merged by ``monitor.merge.MergedAnalysis`` in this process, as the
  daemon does.

Either way each closed window is judged as the daemon judges it, in the loop that reads: the
signature library classifies, the detectors score the window and the baselines learn it
(``bench/harness.end_to_end_parts``). A window's close is where a sensor of many devices
spends seconds at once, while the ring fills: a run shorter than a window never shows it.

Per (workers, rate) it prints tcpreplay's own count of packets sent and its achieved rate,
the packets Santinel counted, the kernel's drops (sum over the rings), packets lost before
any ring (sent - received by the rings: the veth backlog), loss %, the CPU time (user +
system) the sender and Santinel (this process, and its workers) used in the run, and the
load average, and the longest a closed window took to judge (wall clock) with its number of
device profiles. Last, the highest loss-free rate per worker count. The sender runs on the same
machine: its CPU time is what the cores left to Santinel were short of (sending into a veth
costs the sender the kernel's work of delivering each frame, the capture rings' copy too).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import harness

from monitor.capture import RING_BYTES
from monitor.daemon import _preload
from monitor.daemon_sources import LiveSource
from monitor.merge import MergedAnalysis
from monitor.model import WindowProfile
from monitor.pipeline import Analysis
from monitor.runtime import tune_garbage_collector
from monitor.workers import WorkerPool

DEFAULT_CAPTURE = Path(__file__).resolve().parent.parent / "tests/data/lab-demo/capture.pcap"
DEFAULT_RATES = (10_000, 25_000, 50_000, 100_000, 200_000, 400_000)
TAG = "slbench"
QUIET_SECONDS = 2.0
WINDOW_SECONDS = 60.0
DRAIN_SECONDS = 60.0  # the longest a worker may report nothing once the sender is done


@dataclass
class Row:
    workers: int
    rate: int
    sent: int
    achieved: float
    received: int
    counted: int
    dropped: int
    load: tuple[float, float, float]
    sender_cpu: float = 0.0  # seconds, user + system
    santinel_cpu: float = 0.0
    longest_close: float = 0.0  # wall-clock seconds the longest window took to judge
    close_devices: int = 0  # the device profiles that window held

    @property
    def lost(self) -> int:
        return max(0, self.sent - self.counted)

    @property
    def loss(self) -> float:
        return 100.0 * self.lost / self.sent if self.sent else 0.0

    @property
    def before_ring(self) -> int:
        return max(0, self.sent - self.received)


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


class Wire:
    """A veth pair: ``sender`` in a fresh namespace, ``receiver`` in this one."""

    def __init__(self) -> None:
        uid = f"{os.getpid() % 100000}"
        self.ns, self.receiver, self.sender = f"{TAG}-{uid}", f"{TAG}{uid}a", f"{TAG}{uid}b"

    def __enter__(self) -> Wire:
        _ip("netns", "add", self.ns)
        _ip("link", "add", self.receiver, "type", "veth", "peer", "name", self.sender)
        _ip("link", "set", self.sender, "netns", self.ns)
        inside = ["ip", "netns", "exec", self.ns]
        for command in (
            ["sysctl", "-qw", f"net.ipv6.conf.{self.receiver}.disable_ipv6=1"],
            [*inside, "sysctl", "-qw", f"net.ipv6.conf.{self.sender}.disable_ipv6=1"],
        ):
            subprocess.run(command, capture_output=True)
        _ip("link", "set", self.receiver, "mtu", "65535")
        _ip("-n", self.ns, "link", "set", self.sender, "mtu", "65535")
        _ip("link", "set", self.receiver, "up")
        _ip("-n", self.ns, "link", "set", self.sender, "up")
        return self

    def __exit__(self, *exc: object) -> None:
        subprocess.run(["ip", "link", "del", self.receiver], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True)

    def replay(self, capture: Path, rate: int, duration: float) -> Replay:
        command = ["ip", "netns", "exec", self.ns, "tcpreplay", "--preload-pcap"]
        # nanosleep between packets: the default timer (gtod) spins, a core of its own at
        # any rate, which on a small machine is a core the workers do not get
        command += ["--timer=nano", f"--pps={rate}", "--loop=0", f"--duration={int(duration)}"]
        command += ["-i", self.sender, str(capture)]
        output = subprocess.PIPE
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, text=True)
        return Replay(process)


class Replay:
    """A running tcpreplay. Reaped with ``wait4`` (not ``Popen.poll``, which would reap it
    first) so that its CPU time is known; it prints its summary when done, well within a
    pipe's buffer."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.cpu: float | None = None  # user + system seconds, once done

    def done(self) -> bool:
        return self.cpu is not None or self._reap(os.WNOHANG)

    def result(self) -> tuple[int, float, float]:
        """(packets sent, achieved rate, the sender's CPU seconds), waiting for the end."""
        if self.cpu is None:
            self._reap(0)
        assert self.process.stdout is not None and self.cpu is not None
        out = self.process.stdout.read()
        match = re.search(r"Actual: (\d+) packets", out)
        rated = re.search(r"Rated: [\d.]+ Bps, [\d.]+ Mbps, ([\d.]+) pps", out)
        if match is None:
            raise SystemExit(f"tcpreplay failed: {out.strip().splitlines()[-1:]}")
        return int(match.group(1)), float(rated.group(1)) if rated else 0.0, self.cpu

    def _reap(self, options: int) -> bool:
        pid, status, usage = os.wait4(self.process.pid, options)
        if pid == 0:
            return False
        self.process.returncode = os.waitstatus_to_exitcode(status)
        self.cpu = usage.ru_utime + usage.ru_stime
        return True


def _cpu_since(began: os.times_result, sender_cpu: float) -> float:
    """CPU seconds this process and its reaped children used since ``began``, the sender's
    apart: Santinel's, with its workers."""
    now = os.times()
    own = now.user - began.user + now.system - began.system
    children = now.children_user - began.children_user + now.children_system
    children -= began.children_system
    return own + children - sender_cpu


class Judge:
    """What the daemon does with each closed window, called as ``on_window``: the detectors
    score it, then the baselines learn it. ``library`` is the signature library that
    classifies the devices."""

    def __init__(self) -> None:
        self.library, self.suite, self.store = harness.end_to_end_parts(WINDOW_SECONDS)
        self.suite.book.keep_emitted = False  # the daemon publishes events and keeps none
        # the longest judging (wall clock) and its window's device profiles: the burst the
        # ring must outlast (the daemon exports each as santinel_window_judge_*)
        self.longest = 0.0
        self.longest_devices = 0

    def __call__(self, profiles: list[WindowProfile], analysis: Any) -> None:
        started = time.perf_counter()
        self.suite.on_window(profiles, analysis, self.store, learn=True)
        took = time.perf_counter() - started
        if took > self.longest:
            self.longest, self.longest_devices = took, len(profiles)


def run_single(wire: Wire, capture: Path, rate: int, duration: float, buffer: int) -> Row:
    source = LiveSource(wire.receiver, buffer_bytes=buffer)
    judge = Judge()
    analysis = Analysis(window_seconds=WINDOW_SECONDS, signatures=judge.library, on_window=judge)
    began = os.times()
    replay = wire.replay(capture, rate, duration)
    quiet_since = time.monotonic()
    next_tick = 0.0
    while True:
        batch = source.read(0.1)
        now = time.monotonic()
        if batch is not None and len(batch):
            analysis.feed(batch)
            quiet_since = now
        if now >= next_tick:
            analysis.tick(time.time())
            next_tick = now + 1.0
        if replay.done() and now - quiet_since > QUIET_SECONDS:
            break
    sent, achieved, sender_cpu = replay.result()
    santinel_cpu = _cpu_since(began, sender_cpu)
    received, dropped, _ = source._capture.stats()
    source.close()
    return Row(
        1, rate, sent, achieved, received, analysis.packets, dropped, os.getloadavg(),
        sender_cpu, santinel_cpu, judge.longest, judge.longest_devices,
    )  # fmt: skip


def run_pool(
    wire: Wire, capture: Path, rate: int, duration: float, buffer: int, workers: int
) -> Row:
    began = os.times()
    pool = WorkerPool(wire.receiver, workers, buffer_bytes=buffer)
    pool.start()
    judge = Judge()
    merged = MergedAnalysis(wire.receiver, workers, signatures=judge.library)
    replay = wire.replay(capture, rate, duration)
    last_count = -1
    quiet_since = time.monotonic()
    try:
        while True:
            for report in pool.reports(0.2):
                # as the daemon's _merge: each window the reports complete is judged
                for profiles in merged.apply(report):
                    merged.classify_as_of(profiles)
                    judge(profiles, merged)
            merged.classify()
            now = time.monotonic()
            if merged.packets != last_count:
                last_count = merged.packets
                quiet_since = now
            # done when every frame the rings took has been counted (or dropped): a worker
            # busy closing a minute's windows reports nothing for seconds, but is not done
            drained = all(s.packets + s.dropped >= s.received for s in merged.worker_stats)
            quiet = now - quiet_since
            settled = drained or quiet > DRAIN_SECONDS
            if replay.done() and quiet > QUIET_SECONDS + 1.0 and settled:
                break
    finally:
        for report in pool.stop():
            report.profiles = []
            merged.apply(report)
    sent, achieved, sender_cpu = replay.result()
    santinel_cpu = _cpu_since(began, sender_cpu)  # the workers were reaped by stop()
    received = sum(s.received for s in merged.worker_stats)
    dropped = sum(s.dropped for s in merged.worker_stats)
    return Row(
        workers, rate, sent, achieved, received, merged.packets, dropped, os.getloadavg(),
        sender_cpu, santinel_cpu, judge.longest, judge.longest_devices,
    )  # fmt: skip


def machine() -> str:
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    memory = int(Path("/proc/meminfo").read_text().split()[1]) // (1024 * 1024)
    tcpreplay = subprocess.run(["tcpreplay", "--version"], capture_output=True, text=True)
    found = re.search(r"tcpreplay version: (\S+)", tcpreplay.stdout + tcpreplay.stderr)
    version = found.group(1) if found else "(unknown version)"
    return (
        f"{os.cpu_count()} cores ({model}), {memory} GiB, Linux {platform.release()}, "
        f"Python {platform.python_version()}, tcpreplay {version}"
    )


def table(rows: list[Row]) -> str:
    lines = [
        "| workers | rate asked (pps) | achieved (pps) | sent | counted | kernel drops "
        "| lost before the ring | loss % | CPU s: sender | CPU s: Santinel "
        "| longest close s (devices) | load avg (1/5 min) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.workers} | {r.rate:,} | {r.achieved:,.0f} | {r.sent:,} | {r.counted:,} "
            f"| {r.dropped:,} | {r.before_ring:,} | {r.loss:.3f} "
            f"| {r.sender_cpu:.1f} | {r.santinel_cpu:.1f} "
            f"| {r.longest_close:.2f} ({r.close_devices:,}) "
            f"| {r.load[0]:.2f} / {r.load[1]:.2f} |"
        )
    return "\n".join(lines)


def best_rates(rows: list[Row]) -> dict[int, int | None]:
    best: dict[int, int | None] = {}
    for workers in sorted({r.workers for r in rows}):
        clean = [r.rate for r in rows if r.workers == workers and r.lost == 0 and r.dropped == 0]
        best[workers] = max(clean) if clean else None
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("capture", nargs="?", type=Path, default=DEFAULT_CAPTURE)
    parser.add_argument("--rates", default=",".join(str(r) for r in DEFAULT_RATES))
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--buffer-bytes", type=int, default=RING_BYTES)
    parser.add_argument("--markdown", action="store_true", help="print a bench/RESULTS.md section")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("live_capture: needs root (network namespaces, packet sockets)", file=sys.stderr)
        return 2
    if not args.capture.is_file():
        print(f"live_capture: {args.capture}: no such file", file=sys.stderr)
        return 2
    try:
        rates = [int(r) for r in args.rates.split(",")]
        worker_counts = [int(w) for w in args.workers.split(",")]
    except ValueError:
        print("live_capture: --rates and --workers are comma-separated integers", file=sys.stderr)
        return 2
    _preload()  # compile before forking: the workers inherit the compiled code
    tune_garbage_collector()  # as the santinel command runs (the workers inherit it too)
    description = machine()
    print(f"machine: {description}", flush=True)
    rows: list[Row] = []
    for workers in worker_counts:
        for rate in rates:
            with Wire() as wire:
                if workers == 1:
                    row = run_single(wire, args.capture, rate, args.duration, args.buffer_bytes)
                else:
                    row = run_pool(
                        wire, args.capture, rate, args.duration, args.buffer_bytes, workers
                    )
            rows.append(row)
            print(
                f"workers={row.workers} rate={row.rate} achieved={row.achieved:.0f} "
                f"sent={row.sent} counted={row.counted} kernel_drops={row.dropped} "
                f"before_ring={row.before_ring} loss={row.loss:.3f}% "
                # to the millisecond: a slow replay's sender uses a few of them
                f"cpu_sender={row.sender_cpu:.3f}s cpu_santinel={row.santinel_cpu:.3f}s "
                f"longest_close={row.longest_close:.3f}s close_devices={row.close_devices} "
                f"load={row.load[0]:.2f}/{row.load[1]:.2f}",
                flush=True,
            )
    best = best_rates(rows)
    for workers, rate in best.items():
        print(f"highest loss-free rate with {workers} worker(s): {rate if rate else 'none'}")
    if args.markdown:
        print()
        print(f"## Live capture (`python3 bench/live_capture.py --duration {args.duration:g}`)")
        print()
        print(f"Machine: {description}. Capture replayed: `{args.capture.name}`, ")
        print(f"{args.duration:g} s per rate, tcpreplay on the same machine.")
        print()
        print(table(rows))
        print()
        for workers, rate in best.items():
            shown = f"{rate:,} packets/s" if rate else "none of the rates tried"
            print(f"- highest loss-free rate with {workers} worker(s): {shown}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
