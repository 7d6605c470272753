"""Resident memory of Santinel: flat over a long replay loop, bounded under a million flows.

    python3 bench/memory.py soak [--minutes 30] [--capture FILE] [--every 5] [--markdown]
    python3 bench/memory.py bound [--flows 1000000] [--devices 100000] [--markdown]
    python3 bench/memory.py where [--flows 1000000] [--devices 100000] [--top 30] [--markdown]

``soak`` replays one capture in a loop, end to end in this process (pipeline, signatures,
detectors, baselines learning: ``bench/harness``), each loop shifted in capture time past the
end of the previous one, so windows keep closing and flows and devices keep coming back as a
live wire would bring them (default: the generated hospital capture of 100,000 packets, ten
minutes of capture time per loop). It samples the process's anonymous memory (RssAnon: the
heap; VmRSS, reported too, also counts the mapped capture file's page-cache pages) every
``--every`` seconds for ``--minutes`` of wall-clock time, and after the warm-up (the first
``--warmup`` share of the run) prints the first, median, last and largest sample, the
median of each fifth of the run and the least-squares trend (memory that creeps can stay
within the bound for a while), and whether every sample stays within 10 % of the first. In
process rather than ``santinel run --pcap`` in a loop: the daemon adds only its exporter
thread and web server, whose memory does not depend on traffic, and a process of our own can
shift capture time per loop and read its own RSS without racing a child.

``bound`` writes (once) a capture of ``--flows`` distinct flows among ``--devices`` devices
(``bench/generate_traffic.py --flows``) and runs it in a fresh child process twice: the
pipeline alone, and end to end with detectors and baselines. For each it reports the peak
resident set (VmHWM) and the largest anonymous memory sampled (RssAnon: VmHWM also counts
the pages of the mapped capture file), the tables' sizes at the end and the eviction
counters of ``Analysis.table_stats()``.

``where`` runs the same child on the same capture under ``tracemalloc`` and prints where
the memory is when the traffic has been read (before ``finish`` closes the windows and
flows): the Python heap by file and by line of allocation, largest first, with the line's
code. It is several times slower than ``bound`` and its resident figures are not comparable
(tracemalloc keeps its own record of every block), so it reports traced bytes only; the
compiled code, numpy's libraries and the interpreter are outside what it traces.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness

LIMIT = 0.10


def soak(args: argparse.Namespace) -> int:
    from monitor.capture import CaptureError
    from monitor.capture.files import open_capture
    from monitor.pipeline import Analysis

    capture: Path = args.capture or harness.generated_capture(100_000)
    if not capture.is_file():
        print(f"memory: {capture}: no such capture", file=sys.stderr)
        return 2
    library, suite, store = harness.end_to_end_parts()

    def on_window(profiles: Any, analysis: Any) -> None:
        suite.on_window(profiles, analysis, store, learn=True)

    analysis = Analysis(signatures=library, on_window=on_window)
    suite.book.keep_emitted = False  # as the daemon: a soak must not grow an event list
    load_before = harness.load_average()
    duration = args.minutes * 60.0
    began = time.perf_counter()
    samples: list[tuple[float, int, int]] = []
    next_sample = 0.0
    shift = 0
    loops = 0
    packets = 0
    try:
        while time.perf_counter() - began < duration:
            first = last = None
            for batch in open_capture(capture):
                if first is None:
                    first = int(batch.timestamps_ns[0])
                last = int(batch.timestamps_ns[-1])
                if shift:
                    batch = dataclasses.replace(batch, timestamps_ns=batch.timestamps_ns + shift)
                analysis.feed(batch)
                packets += len(batch)
                now = time.perf_counter() - began
                if now >= next_sample:
                    samples.append(
                        (now, harness.status_kib("RssAnon"), harness.status_kib("VmRSS"))
                    )
                    next_sample = now + args.every
                if now >= duration:
                    break
            loops += 1
            if first is None or last is None:
                break
            # the next loop starts one window after this one ended, in capture time
            shift += last - first + int(analysis.window_seconds * 1e9)
    except CaptureError as error:
        print(f"memory: {error}", file=sys.stderr)
        return 2
    elapsed = time.perf_counter() - began
    # The process's own memory is its anonymous memory: VmRSS also counts the pages of the
    # capture file it maps, which belong to the page cache and come and go with each loop.
    steady = [anon for when, anon, _ in samples if when >= args.warmup * elapsed]
    steady_times = [when for when, _, _ in samples if when >= args.warmup * elapsed]
    resident = [rss for when, _, rss in samples if when >= args.warmup * elapsed]
    if len(steady) < FIFTHS:
        print("memory: too few samples after the warm-up; run longer", file=sys.stderr)
        return 2
    reference = steady[0]
    # flat within a bound is not enough: memory that creeps stays within 10 % for a while,
    # so the medians along the run and the slope say whether it still moves at the end
    along = [statistics.median(part) for part in split_evenly(steady, FIFTHS)]
    slope = statistics.linear_regression(steady_times, steady).slope  # KiB per second
    worst = max(abs(rss - reference) / reference for rss in steady)
    flat = worst <= LIMIT
    rows = [
        ("capture", f"{capture.name}, replayed {loops} times ({packets:,} packets)"),
        ("wall-clock time", f"{elapsed / 60:.1f} min, a sample every {args.every:g} s"),
        (
            "warm-up left out",
            f"first {args.warmup:.0%} ({len(samples) - len(steady)} samples)",
        ),
        (
            "anonymous memory (RssAnon) first / median / last / max",
            " / ".join(
                f"{v / 1024:.0f}"
                for v in (reference, statistics.median(steady), steady[-1], max(steady))
            )
            + " MiB",
        ),
        (
            "anonymous memory along the run after the warm-up (median of each fifth)",
            " / ".join(f"{v / 1024:.0f}" for v in along) + " MiB",
        ),
        (
            "trend after the warm-up (least squares)",
            f"{slope * 3600 / 1024:+.1f} MiB per hour",
        ),
        (
            "VmRSS (with the mapped capture) first / max",
            f"{resident[0] / 1024:.0f} / {max(resident) / 1024:.0f} MiB",
        ),
        (
            "largest departure from the first",
            f"{worst:.1%} ({'within' if flat else 'NOT within'} {LIMIT:.0%})",
        ),
        (
            "devices / flows tracked at the end",
            f"{len(analysis.devices):,} / {len(analysis.flows):,}",
        ),
        ("eviction counters", evictions_text(evictions(analysis))),
        ("load average before / after", f"{load_before} / {harness.load_average()}"),
    ]
    print_rows(rows, args.markdown, f"Soak: {args.minutes:g} minutes of replay loop")
    return 0 if flat else 1


FIFTHS = 5


def split_evenly(values: list[int], parts: int) -> list[list[int]]:
    """``values`` cut into ``parts`` runs of consecutive values, as equal as they come."""
    bounds = [round(i * len(values) / parts) for i in range(parts + 1)]
    return [values[bounds[i] : bounds[i + 1]] for i in range(parts)]


def evictions(analysis: Any) -> dict[str, Any]:
    found: dict[str, Any] = {}
    if hasattr(analysis, "table_stats"):
        tables = analysis.table_stats()
        for reason, count in sorted(tables.flows_evicted.items()):
            found[f"flows evicted ({reason})"] = count
        found["devices evicted"] = tables.devices_evicted
        found["fact values evicted"] = tables.facts_evicted
        return found
    for owner_name, owner in (
        ("analysis", analysis),
        ("inventory", getattr(analysis, "inventory", None)),
    ):
        if owner is None:
            continue
        for name in dir(owner):
            if "evict" in name.lower() and not name.startswith("__"):
                value = getattr(owner, name, None)
                if not callable(value):
                    found[f"{owner_name}.{name}"] = (
                        value if isinstance(value, int | float) else str(value)
                    )
    return found


def evictions_text(found: dict[str, Any]) -> str:
    if not found:
        return "n/a (the analysis exposes no eviction counter yet)"
    return ", ".join(f"{k} = {v}" for k, v in sorted(found.items()))


BOUND_CHILD = """
import json, sys, threading, time
sys.path.insert(0, {bench!r})
import harness, memory
from pathlib import Path
if {trace!r}:
    import tracemalloc
    from monitor.pipeline import Analysis
    held = {{}}
    finish = Analysis.finish
    def finish_after_a_snapshot(self, *args, **kwargs):
        # the state the traffic built, before finish() closes the windows and ends the flows
        held["snapshot"] = tracemalloc.take_snapshot()
        return finish(self, *args, **kwargs)
    Analysis.finish = finish_after_a_snapshot
    tracemalloc.start()
peak_anon = [0]
def sample_anon():  # the kernel keeps no high-water mark of anonymous memory alone
    while True:
        peak_anon[0] = max(peak_anon[0], harness.status_kib("RssAnon"))
        time.sleep(0.05)
threading.Thread(target=sample_anon, daemon=True).start()
began = time.perf_counter()
if {end_to_end!r}:
    parts = harness.end_to_end_parts()
    parts[1].book.keep_emitted = False  # as the daemon: it keeps counts, not every event
    analysis, suite, store = harness.end_to_end([Path({capture!r})], parts=parts)
else:
    from monitor.capture.files import open_capture
    from monitor.pipeline import DEFAULT_MAX_FLOWS, Analysis
    from monitor.runtime import tune_garbage_collector
    tune_garbage_collector()  # as the santinel command runs
    analysis = Analysis(max_flows={max_flows!r} or DEFAULT_MAX_FLOWS)
    for batch in open_capture(Path({capture!r})):
        analysis.feed(batch)
    analysis.finish()
print(json.dumps({{
    "seconds": time.perf_counter() - began,
    "peak_kib": harness.status_kib("VmHWM"),
    "peak_anon_kib": max(peak_anon[0], harness.status_kib("RssAnon")),
    "end_kib": harness.status_kib("VmRSS"),
    "devices": len(analysis.devices),
    "flows": analysis.table_stats().flows_started,
    "packets": analysis.packets,
    "evictions": memory.evictions(analysis),
    "where": memory.where_from(held["snapshot"], tracemalloc.get_traced_memory()[1], {top!r})
    if {trace!r} else None,
}}))
"""


def where_from(snapshot: Any, traced_peak: int, top: int) -> dict[str, Any]:
    """What a tracemalloc snapshot holds, by file and by line, largest first."""
    import linecache

    def site(stat: Any, with_code: bool) -> dict[str, Any]:
        frame = stat.traceback[0]
        found = {"where": short_path(frame.filename), "bytes": stat.size, "blocks": stat.count}
        if with_code:
            found["where"] += f":{frame.lineno}"
            found["code"] = linecache.getline(frame.filename, frame.lineno).strip()
        return found

    return {
        "traced": sum(stat.size for stat in snapshot.statistics("filename")),
        "traced_peak": traced_peak,
        "files": [site(stat, False) for stat in snapshot.statistics("filename")[:top]],
        "lines": [site(stat, True) for stat in snapshot.statistics("lineno")[:top]],
    }


def short_path(filename: str) -> str:
    """A file as the reader knows it: in the repository, or the library it belongs to."""
    path = Path(filename)
    if path.is_relative_to(harness.REPO):
        return str(path.relative_to(harness.REPO))
    parts = path.parts
    if "site-packages" in parts:
        return "/".join(parts[parts.index("site-packages") + 1 :])
    return path.name


def flood_capture(flows: int, devices: int) -> Path:
    """The capture of ``flows`` distinct flows among ``devices`` devices, written once."""
    return harness.generated_once(
        f"flows-{flows}-devices-{devices}.pcap",
        ["--flows", str(flows), "--devices", str(devices)],
    )


def run_child(path: Path, end_to_end: bool, max_flows: int | None, top: int = 0) -> Any:
    """The figures of one fresh child process over ``path`` (traced when ``top``), or the
    last line of its error output when it failed."""
    script = BOUND_CHILD.format(
        bench=str(harness.REPO / "bench"),
        capture=str(path),
        end_to_end=end_to_end,
        max_flows=max_flows,
        trace=top > 0,
        top=top,
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=harness.REPO
    )
    if done.returncode != 0:
        return (done.stderr.strip().splitlines() or ["?"])[-1]
    return json.loads(done.stdout.strip().splitlines()[-1])


def modes(args: argparse.Namespace) -> list[tuple[str, bool]]:
    bound_flows = f"max_flows {args.max_flows:,}" if args.max_flows else "default max_flows"
    found = [(f"pipeline alone ({bound_flows})", False)]
    if not args.pipeline_only:
        found.append(("end to end (detectors, baselines)", True))
    return found


def bound(args: argparse.Namespace) -> int:
    path = flood_capture(args.flows, args.devices)
    load_before = harness.load_average()
    rows: list[tuple[str, str]] = [
        ("capture", f"{path.name} ({path.stat().st_size / 2**20:.0f} MiB)")
    ]
    worst = 0
    for label, end_to_end in modes(args):
        figures = run_child(path, end_to_end, args.max_flows)
        if isinstance(figures, str):
            rows.append((label, f"failed: {figures}"))
            worst = 2
            continue
        peak = figures["peak_kib"] / 2**20
        anon = figures["peak_anon_kib"] / 2**20
        rows.append(
            (
                label,
                f"peak RSS {peak:.2f} GiB ({'under' if peak < 1 else 'NOT under'} 1 GiB; "
                "the largest anonymous memory (the heap, RssAnon sampled every 50 ms) "
                f"{anon:.2f} GiB; "
                "VmHWM also counts the mapped capture file's pages), "
                f"{figures['seconds']:.0f} s for {figures['packets']:,} packets; at the end "
                f"{figures['devices']:,} devices, {figures['flows']:,} flows started; "
                f"eviction counters: {evictions_text(figures['evictions'])}",
            )
        )
        worst = max(worst, 0 if peak < 1 else 1)
    rows.append(("load average before / after", f"{load_before} / {harness.load_average()}"))
    print_rows(rows, args.markdown, f"Bound: {args.flows:,} flows among {args.devices:,} devices")
    return worst


def where(args: argparse.Namespace) -> int:
    path = flood_capture(args.flows, args.devices)
    rows: list[tuple[str, str]] = [
        ("capture", f"{path.name} ({path.stat().st_size / 2**20:.0f} MiB)")
    ]
    failed = False
    for label, end_to_end in modes(args):
        figures = run_child(path, end_to_end, args.max_flows, top=args.top)
        if isinstance(figures, str):
            rows.append((label, f"failed: {figures}"))
            failed = True
            continue
        held = figures["where"]
        rows.append(
            (
                label,
                f"{held['traced'] / 2**20:.1f} MiB traced when the traffic was read (the "
                f"traced peak {held['traced_peak'] / 2**20:.1f} MiB); "
                f"{figures['devices']:,} devices, {figures['flows']:,} flows started",
            )
        )
        for site in held["files"]:
            rows.append((f"{label}: file {site['where']}", mebibytes(site)))
        for site in held["lines"]:
            code = f": `{site['code']}`" if site["code"] else ""  # frozen modules show none
            rows.append((f"{label}: line {site['where']}", mebibytes(site) + code))
    title = f"Where: {args.flows:,} flows among {args.devices:,} devices"
    print_rows(rows, args.markdown, title)
    return 2 if failed else 0


def mebibytes(site: dict[str, Any]) -> str:
    return f"{site['bytes'] / 2**20:.1f} MiB in {site['blocks']:,} blocks"


def print_rows(rows: list[tuple[str, str]], markdown: bool, title: str) -> None:
    if markdown:
        print(f"### {title} (`python3 bench/memory.py`, {time.strftime('%Y-%m-%d')})\n")
        print(f"Machine: {harness.machine_line(harness.machine())}.\n")
        print("| measure | value |\n|---|---|")
        for name, value in rows:
            print(f"| {name} | {value} |")
    else:
        print(title)
        width = max(len(name) for name, _ in rows)
        for name, value in rows:
            print(f"  {name:<{width}}  {value}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    soak_parser = sub.add_parser("soak", help="RSS over a replay loop")
    soak_parser.add_argument("--minutes", type=float, default=30.0)
    soak_parser.add_argument(
        "--capture", type=Path, help="default: the generated hospital capture, 100,000 packets"
    )
    soak_parser.add_argument("--every", type=float, default=5.0, help="seconds between samples")
    soak_parser.add_argument("--warmup", type=float, default=0.2, help="share of the run left out")
    soak_parser.add_argument("--markdown", action="store_true")
    bound_parser = sub.add_parser("bound", help="peak RSS with many flows and devices")
    where_parser = sub.add_parser("where", help="where the heap is, on the same flood")
    for flood_parser in (bound_parser, where_parser):
        flood_parser.add_argument("--flows", type=int, default=1_000_000)
        flood_parser.add_argument("--devices", type=int, default=100_000)
        flood_parser.add_argument("--pipeline-only", action="store_true")
        flood_parser.add_argument(
            "--max-flows", type=int, help="the pipeline's tables.max_flows (default: its default)"
        )
        flood_parser.add_argument("--markdown", action="store_true")
    where_parser.add_argument("--top", type=int, default=30, help="files and lines shown")
    args = parser.parse_args()
    if args.command == "where" and args.top < 1:
        parser.error("--top: at least 1")
    run = {"soak": soak, "bound": bound, "where": where}[args.command]
    return run(args)


if __name__ == "__main__":
    raise SystemExit(main())
