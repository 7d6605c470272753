"""The event book at scale: the cost of one window's events as the number of open events grows.

    python3 bench/event_book.py [--devices 1000,10000,50000] [--windows 5] [--markdown]

Each of N devices has one standing finding, reported again every window (the daemon's
steady state for, e.g., a fleet of pumps that always speak cleartext HL7): every window
submits N events to an ``EventBook`` that holds N open events. Per N it prints the time per
window and per event (CPU time of this process) and the ratio of the per-event cost to that
of the smallest N: near 1 means the book scales linearly with the events submitted; it used
to scan every open event for every event submitted, a cost per event that grew with N.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness

from monitor.events import EventBook, make_event
from monitor.model import Device

T0 = 1_790_000_000.0
WINDOW = 60.0


def seconds_per_window(devices: int, windows: int) -> float:
    fleet = [
        Device(id=f"dev-{i}", mac=None, locally_administered=False, vendor=None,
               first_seen=T0, last_seen=T0)
        for i in range(devices)
    ]  # fmt: skip
    book = EventBook(hold_seconds=3600.0)
    book.keep_emitted = False
    spent = 0.0
    for w in range(windows):
        end = T0 + WINDOW * (w + 1)
        found = [
            make_event(d.id, d, "cleartext_clinical_data", "warning", "standing finding",
                       end - 1e-3 * (i % 1000), {}, {})
            for i, d in enumerate(fleet)
        ]  # fmt: skip
        began = time.process_time()
        book.submit(found, end)
        book.expire(end)
        spent += time.process_time() - began
    assert len(book.open) == devices
    return spent / windows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", default="1000,10000,50000")
    parser.add_argument("--windows", type=int, default=5)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    sizes = sorted(int(n) for n in args.devices.split(","))
    load_before = harness.load_average()
    rows = []
    smallest: float | None = None
    for n in sizes:
        per_window = seconds_per_window(n, args.windows)
        per_event = per_window / n
        smallest = smallest or per_event
        rows.append((n, per_window, per_event, per_event / smallest))
    if args.markdown:
        today = time.strftime("%Y-%m-%d")
        print(f"### The event book at scale (`python3 bench/event_book.py`, {today})")
        print()
        print(f"Machine: {harness.machine_line(harness.machine())}.")
        print(f"Load average: {load_before} before, {harness.load_average()} after.")
        print()
        print("| open events | seconds per window | µs per event | per-event cost ÷ smallest |")
        print("|---:|---:|---:|---:|")
        for n, per_window, per_event, ratio in rows:
            print(f"| {n:,} | {per_window:.3f} | {per_event * 1e6:.1f} | {ratio:.2f} |")
    else:
        for n, per_window, per_event, ratio in rows:
            print(f"{n}: {per_window:.3f} s/window, {per_event * 1e6:.1f} µs/event, ×{ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
