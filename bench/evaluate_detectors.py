"""Evaluate the detectors: learn on benign traffic, run on incidents, count what is found.

Three kinds of input, each replayed through the same pipeline and ``DetectorSuite`` as the
daemon (score each closed window, then learn it):

1. **Lab incident recordings** (``santinel lab run ... --out DIR``: ``capture.pcap`` +
   ``truth.json``). Windows and time thresholds are scaled by the scenario's ``time_scale``;
   baselines learn until the first injected event. An injected event is *detected* when the
   detector meant for it (truth's ``anomaly``) fires on the truth's device between one window
   before its start and two windows after its end (for silence: two windows after the
   earliest moment it can be seen, k x the learned interval after the last message).
2. **Shared attack captures** (``../shared/data/pcaps``): network attacks that need no
   baseline, with the detector meant for each.
3. **Benign traffic**: the lab's benign-ward recording (learn on its first third) and the
   week-long IoT captures of ``tj-oconnor-iot-dataset`` (learn the first day: 24 h and at
   least 10 active windows, since a battery camera wakes for only a few windows a day).
   Every event raised after learning is a false event; the rate is per device-hour of real
   (scenario) time.

    python3 bench/evaluate_detectors.py [--lab DIR ...] [--benign-lab DIR ...]
                                        [--shared DIR] [--no-long]

Prints, per detector and overall: detected / injected, time to detect, and false events per
device-hour on benign traffic.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from monitor.baseline import BaselineConfig, BaselineStore  # noqa: E402
from monitor.detectors import DetectorConfig, DetectorSuite  # noqa: E402
from monitor.detectors.evaluation import evaluate_lab  # noqa: E402
from monitor.detectors.offline import replay  # noqa: E402
from monitor.events import EventBook  # noqa: E402
from monitor.signatures import default_signature_dirs, load_library  # noqa: E402

SHARED = REPO.parent / "shared" / "data" / "pcaps"

# (capture, detector meant for it, window seconds, device expected or None)
ATTACKS: list[tuple[str, str, float, str | None]] = [
    ("chrissanders-packets/arppoison.pcapng", "arp_spoofing", 60.0, "00:25:b3:bf:91:ee"),
    ("zeek/nmap-vsn.pcap", "host_scan", 60.0, None),
    ("ndpi/tcp_scan.pcapng", "port_scan", 60.0, None),
    ("stopddos/amp.UDP.isakmp.pcap", "flood", 1.0, None),  # a 0.4 s sample of a flood
    ("zeek/dhcp_dhcp_flood.pcap", "dhcp_starvation", 60.0, None),
]
LONG_BENIGN = [
    "tj-oconnor-iot-dataset/blink-cam-01.pcap",
    "tj-oconnor-iot-dataset/schlage-lock-01.pcap",
]
# Standing exposures the rules report once about a device (not anomalies of behaviour).
STANDING = frozenset({"cleartext_clinical_data", "remote_admin_exposure", "vulnerable_service"})


@dataclass
class Tally:
    injected: int = 0
    detected: int = 0
    delays: list[float] = field(default_factory=list)  # seconds of real (scenario) time
    delays_windows: list[float] = field(default_factory=list)
    missed: list[str] = field(default_factory=list)


def run(paths: list[Path], window: float, store: BaselineStore, config: DetectorConfig,
        hold: float, library: Any) -> tuple[DetectorSuite, Any]:  # fmt: skip
    suite = DetectorSuite(EventBook(hold_seconds=hold), config)
    suite.record_detections = True
    analysis = replay(paths, suite, store, library, window_seconds=window)
    return suite, analysis


def lab_incidents(directory: Path, library: Any, tallies: dict[str, Tally]) -> None:
    started = time.monotonic()
    result = evaluate_lab(directory, library)
    scale, window = result.time_scale, result.window
    took = time.monotonic() - started
    print(f"\n## lab incidents: {directory} ({result.scenario}, x{scale:g}, "
          f"{len(result.outcomes)} events, replayed in {took:.1f} s)")  # fmt: skip
    for outcome in result.outcomes:
        tally = tallies.setdefault(outcome.anomaly, Tally())
        tally.injected += 1
        if outcome.delay is None:
            tally.missed.append(f"{directory.name}:{outcome.name}")
            print(f"  MISSED  {outcome.anomaly:<24} {outcome.name}")
            continue
        tally.detected += 1
        tally.delays.append(outcome.delay * scale)
        tally.delays_windows.append(outcome.delay / window)
        due = ""
        if outcome.due > outcome.start:
            late = (outcome.start + outcome.delay - outcome.due) / window
            due = f"; {late:+.1f} windows from when k x its cadence had passed"
        minutes, windows = outcome.delay * scale / 60, outcome.delay / window
        print(f"  found   {outcome.anomaly:<24} {outcome.name:<10} after "
              f"{minutes:5.1f} min ({windows:4.1f} windows{due})")  # fmt: skip
    extra = Counter(e.detector for e in result.events if e.time >= result.learned_until)
    print(f"  events after learning (all, deduplicated): {sum(extra.values())} "
          f"({', '.join(f'{k} {v}' for k, v in sorted(extra.items()))})")  # fmt: skip


def attacks(shared: Path, library: Any, tallies: dict[str, Tally]) -> None:
    print(f"\n## shared attack captures ({shared})")
    for name, detector, window, device in ATTACKS:
        path = shared / name
        if not path.is_file():
            print(f"  (absent) {name}")
            continue
        store = BaselineStore(BaselineConfig())
        suite, analysis = run([path], window, store, DetectorConfig(window_seconds=window),
                              3600.0, library)  # fmt: skip
        tally = tallies.setdefault(detector, Tally())
        tally.injected += 1
        hits = [d for d in suite.detections
                if d.detector == detector and (device is None or d.device == device)]  # fmt: skip
        other = Counter(e.detector for e in suite.book.emitted if e.detector != detector)
        if hits:
            delay = min(d.time for d in hits) - (analysis.first_time or 0.0)
            tally.detected += 1
            tally.delays.append(delay)
            tally.delays_windows.append(delay / window)
            print(f"  found   {detector:<16} {name} (after {delay:.1f} s; other events: "
                  f"{dict(other) or 'none'})")  # fmt: skip
        else:
            tally.missed.append(name)
            print(f"  MISSED  {detector:<16} {name} (other events: {dict(other) or 'none'})")


def benign(paths: list[Path], window: float, store: BaselineStore, config: DetectorConfig,
           hold: float, library: Any, learn_end: float | None, scale: float,
           label: str) -> tuple[int, int, float]:  # fmt: skip
    """(events, standing findings, device-hours) after learning."""
    started = time.monotonic()
    suite, analysis = run(paths, window, store, config, hold, library)
    first, last = analysis.first_time or 0.0, analysis.last_time or 0.0
    if learn_end is None:  # when the baselines started enforcing
        since = [b.enforcing_since for b in store.baselines.values() if b.enforcing_since]
        learn_end = min(since) if since else last
    events = [e for e in suite.book.emitted if e.time >= learn_end]
    standing = [e for e in events if e.detector in STANDING]
    anomalies = [e for e in events if e.detector not in STANDING]
    hours = 0.0  # each local device from when it is watched (after learning) to the end
    for device in analysis.devices.values():
        if device.local and device.last_seen >= learn_end:
            hours += max(0.0, last - max(learn_end, device.first_seen)) * scale / 3600.0
    rate = len(anomalies) / hours * 100 if hours else float("nan")
    print(f"  {label}: {len(anomalies)} false events in {hours:.1f} device-hours "
          f"= {rate:.2f} per 100 device-hours (+{len(standing)} standing rule findings); "
          f"{(last - first) * scale / 3600:.1f} h of traffic, learned until "
          f"+{(learn_end - first) * scale / 3600:.1f} h; replayed in "
          f"{time.monotonic() - started:.1f} s")  # fmt: skip
    for event in anomalies[:15]:
        print(f"      {event.detector:<20} {event.device:<18} {event.summary[:110]}")
    if standing:
        print(f"      standing: {Counter(e.detector for e in standing)}")
    return len(anomalies), len(standing), hours


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--lab",
        type=Path,
        action="append",
        default=[],
        help="a lab incident recording (default: tests/data/lab-demo)",
    )
    parser.add_argument(
        "--benign-lab",
        type=Path,
        action="append",
        default=[],
        help="a lab recording of the benign-ward scenario",
    )
    parser.add_argument("--shared", type=Path, default=SHARED)
    parser.add_argument("--no-long", action="store_true", help="skip the week-long captures")
    args = parser.parse_args()  # fmt: skip
    library = load_library(default_signature_dirs())
    tallies: dict[str, Tally] = {}
    for directory in args.lab or [REPO / "tests" / "data" / "lab-demo"]:
        lab_incidents(directory, library, tallies)
    if args.shared.is_dir():
        attacks(args.shared, library, tallies)

    print("\n## benign traffic: false events after learning")
    totals = [0, 0, 0.0]
    for directory in args.benign_lab:
        truth = json.loads((directory / "truth.json").read_text())
        scale = float(truth["time_scale"])
        learn = (truth["end"] - truth["start"]) / 3
        store = BaselineStore(BaselineConfig(min_duration=0.8 * learn, min_windows=3))
        n, s, h = benign([directory / "capture.pcap"], 60.0 / scale, store,
                         DetectorConfig().scaled(scale), 3600.0 / scale, library,
                         truth["start"] + learn, scale, f"lab {truth['scenario']}")  # fmt: skip
        totals = [totals[0] + n, totals[1] + s, totals[2] + h]
    if not args.no_long and args.shared.is_dir():
        for name in LONG_BENIGN:
            path = args.shared / name
            if path.is_file():
                # a day of learning; battery devices wake for few windows a day, so the
                # window count is not what should hold them back
                store = BaselineStore(BaselineConfig(min_duration=86400.0, min_windows=10))
                n, s, h = benign([path], 60.0, store, DetectorConfig(), 3600.0, library, None,
                                 1.0, name)  # fmt: skip
                totals = [totals[0] + n, totals[1] + s, totals[2] + h]

    print("\n## per detector")
    print(f"  {'detector':<26} {'detected/injected':>18} {'median delay':>14} {'max delay':>12}")
    detected = injected = 0
    for name, tally in sorted(tallies.items()):
        detected += tally.detected
        injected += tally.injected
        median = statistics.median(tally.delays_windows) if tally.delays_windows else float("nan")
        worst = max(tally.delays_windows) if tally.delays_windows else float("nan")
        print(f"  {name:<26} {tally.detected:>8}/{tally.injected:<9} {median:>8.1f} windows "
              f"{worst:>6.1f} windows" + (f"  missed: {', '.join(tally.missed)}"
                                            if tally.missed else ""))  # fmt: skip
    print(f"  {'overall':<26} {detected:>8}/{injected:<9}")
    if totals[2]:
        print(f"  benign: {totals[0]} false events in {totals[2]:.0f} device-hours = "
              f"{totals[0] / totals[2] * 100:.2f} per 100 device-hours "
              f"(+{totals[1]} standing rule findings)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
