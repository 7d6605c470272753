"""What a batch costs the pipeline by its size: a live ring hands over small batches.

    python3 bench/batch_cost.py [CAPTURE] [--sizes 32,256,2048,65536] [--warm 65536]
                                [--packets 262144] [--repeat 3] [--markdown]

A file is read 65,536 frames at a time; a live interface hands over what its ring held, a
few dozen frames on a quiet wire. The same packets of the capture (the generated hospital
capture by default: ``--packets`` after ``--warm`` that warm the devices, flows and
windows up) are fed to ``Analysis.feed`` in batches of each size, in this process, timed with the
process's CPU clock; each figure is the best of ``--repeat`` runs. Per size it prints the
time per batch, packets per second, and the ratio of that rate to the largest size's in
the same run: what the work repeated per batch (its fixed cost, and the distinct devices,
flows and messages a small batch cannot share) takes away.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness

from monitor.capture import CaptureError, FrameBatch
from monitor.capture.files import open_capture
from monitor.daemon import _preload
from monitor.pipeline import Analysis


def batches_of(
    capture: Path, size: int, warm_packets: int, packets: int
) -> tuple[list[FrameBatch], list[FrameBatch]]:
    """The capture's first ``warm_packets`` and the ``packets`` after them, cut into batches
    of ``size`` frames (a file batch's last one may be shorter): every size is fed the very
    same packets."""
    warm: list[FrameBatch] = []
    measured: list[FrameBatch] = []
    read = 0
    total = warm_packets + packets
    for batch in open_capture(capture):
        at = 0
        while at < len(batch) and read < total:
            limit = warm_packets if read < warm_packets else total
            take = min(size, len(batch) - at, limit - read)
            (warm if read < warm_packets else measured).append(batch.frames(at, at + take))
            at += take
            read += take
        if read >= total:
            break
    return warm, measured


def seconds_for(
    capture: Path, size: int, warm_packets: int, packets: int
) -> tuple[float, int, int]:
    """CPU seconds to feed the measured batches, their number and their packets."""
    warm, measured = batches_of(capture, size, warm_packets, packets)
    analysis = Analysis()
    for batch in warm:
        analysis.feed(batch)
    began = time.process_time()
    for batch in measured:
        analysis.feed(batch)
    return time.process_time() - began, len(measured), sum(len(b) for b in measured)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("capture", nargs="?", type=Path)
    parser.add_argument("--sizes", default="32,256,2048,65536")
    parser.add_argument("--warm", type=int, default=65_536, help="packets before the measure")
    parser.add_argument("--packets", type=int, default=262_144, help="packets measured")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    capture: Path = args.capture or harness.generated_capture()
    if not capture.is_file():
        print(f"bench: {capture}: no such capture", file=sys.stderr)
        return 2
    sizes = sorted(int(n) for n in args.sizes.split(","))
    _preload()
    load_before = harness.load_average()
    rows = []
    for size in sizes:
        try:
            runs = [seconds_for(capture, size, args.warm, args.packets) for _ in range(args.repeat)]
        except CaptureError as error:
            print(f"bench: {error}", file=sys.stderr)
            return 2
        seconds, count, packets = min(runs)
        if count == 0 or seconds <= 0:
            print(f"bench: {capture}: no packets after the first {args.warm:,}", file=sys.stderr)
            return 2
        rows.append((size, seconds / count, packets / seconds))
    reference = rows[-1][2]
    if args.markdown:
        today = time.strftime("%Y-%m-%d")
        print(f"### What a batch costs by its size (`python3 bench/batch_cost.py`, {today})")
        print()
        print(f"Machine: {harness.machine_line(harness.machine())}.")
        print(f"Load average: {load_before} before, {harness.load_average()} after.")
        print(f"Capture: {capture.name}, {packets:,} packets after {args.warm:,}.")
        print()
        print(f"| frames per batch | ms per batch | packets/s | ÷ {sizes[-1]:,}-frame rate |")
        print("|---:|---:|---:|---:|")
        for size, per_batch, rate in rows:
            print(f"| {size:,} | {per_batch * 1000:.3f} | {rate:,.0f} | {rate / reference:.2f} |")
    else:
        for size, per_batch, rate in rows:
            print(
                f"{size} frames: {per_batch * 1000:.3f} ms/batch, {rate:,.0f} packets/s, "
                f"×{rate / reference:.2f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
