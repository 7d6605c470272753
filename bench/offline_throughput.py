"""Offline throughput of Santinel next to ``tcpdump -r FILE -w /dev/null`` in the same run.

Prints packets per second of: tcpdump reading the file; the ``santinel analyze`` command end
to end (a fresh process: start, imports, compiled-code cache, reading, decoding, inventory,
report); and the pipeline warm in this process (what a running sensor pays per packet).
Each figure is the best of ``--repeat`` runs; ratios are against tcpdump's run.

    python3 bench/offline_throughput.py [CAPTURE] [--repeat 3] [--markdown]
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

DEFAULT = REPO.parent / "shared/data/pcaps/bench/iot-sentinel-public-AB-merged.pcap"


def best_of(repeat: int, run: object) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return min(times)


def count_packets(capture: Path) -> int:
    from monitor.capture.files import open_capture

    return sum(len(batch) for batch in open_capture(capture))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("capture", nargs="?", type=Path, default=DEFAULT)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--markdown", action="store_true", help="print a RESULTS.md section")
    args = parser.parse_args()
    capture: Path = args.capture
    if not capture.is_file():
        print(f"bench: {capture}: no such capture", file=sys.stderr)
        return 2
    packets = count_packets(capture)

    def tcpdump() -> None:
        subprocess.run(
            ["tcpdump", "-r", str(capture), "-w", "/dev/null"],
            check=True,
            capture_output=True,
        )

    def command() -> None:
        subprocess.run(
            [sys.executable, "-m", "monitor", "analyze", "--format", "json", str(capture)],
            check=True,
            stdout=subprocess.DEVNULL,
            cwd=REPO,
        )

    def start_only() -> None:
        subprocess.run(
            [sys.executable, "-c", "import monitor.cli, monitor.pipeline, monitor.capture.files"],
            check=True,
            cwd=REPO,
        )

    from monitor.pipeline import analyze_captures
    from monitor.runtime import tune_garbage_collector

    tune_garbage_collector()  # as the santinel command runs

    def warm() -> None:
        analyze_captures([capture])

    warm()  # load compiled code once
    figures = {
        "tcpdump -r FILE -w /dev/null": best_of(args.repeat, tcpdump),
        "santinel analyze (fresh process)": best_of(args.repeat, command),
        "santinel pipeline (warm, in process)": best_of(args.repeat, warm),
    }
    startup = best_of(args.repeat, start_only)
    reference = figures["tcpdump -r FILE -w /dev/null"]
    rows = []
    for name, seconds in figures.items():
        rows.append((name, seconds, packets / seconds, reference / seconds))
    machine = (
        f"{platform.machine()}, {platform.processor() or 'cpu'}, Python {platform.python_version()}"
    )
    if args.markdown:
        print(f"### {capture.name}: {packets} packets ({time.strftime('%Y-%m-%d')})\n")
        print(f"Machine: {machine}; best of {args.repeat}.\n")
        print("| run | seconds | packets/s | ratio to tcpdump |")
        print("|---|---:|---:|---:|")
        for name, seconds, pps, ratio in rows:
            print(f"| {name} | {seconds:.3f} | {pps:,.0f} | {ratio:.3f} |")
        print(
            f"\nFixed start of a fresh process (imports and compiled-code cache): {startup:.2f} s."
        )
    else:
        print(f"{capture}: {packets} packets; {machine}; best of {args.repeat}")
        for name, seconds, pps, ratio in rows:
            print(f"  {name:<40} {seconds:8.3f} s {pps:12,.0f} packets/s  ratio {ratio:.3f}")
        print(f"  fixed start of a fresh process: {startup:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
