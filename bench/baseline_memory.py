"""Memory and disk cost of baselines: learn N devices × P peers, report RSS and state size.

Builds, for ``--windows`` windows, one window profile per device with ``--peers`` distinct
peers (internal and external), a few DNS names and ``--conversations`` steady conversations,
learns them into a ``BaselineStore`` (score-free: this measures learning), checkpoints the
store into a fresh state file, then reloads it. Reports resident memory from
``/proc/self/status`` (VmRSS now, VmHWM peak), the per-device increase, the state-file size
per device, and how long learning, the checkpoint and the reload took.

    python3 bench/baseline_memory.py [--devices 10000] [--peers 50] [--windows 8]
                                     [--hours 0] [--markdown]

``--hours H`` adds H hourly windows first, so the hour-of-week view has H slots filled (the
steady state of a device watched for a week is ``--hours 168``).
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from monitor.baseline import BaselineConfig, BaselineStore  # noqa: E402
from monitor.model import WindowProfile  # noqa: E402
from monitor.state import State  # noqa: E402

T0 = 1_700_000_000.0


def status_kib(field: str) -> int:
    """A ``kB`` line of /proc/self/status (VmRSS, VmHWM), in KiB."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def device_id(d: int) -> str:
    return f"02:00:{d >> 24 & 255:02x}:{d >> 16 & 255:02x}:{d >> 8 & 255:02x}:{d & 255:02x}"


def profiles(
    devices: int, peers: int, conversations: int, start: float, window: float
) -> list[WindowProfile]:
    out = []
    for d in range(devices):
        peer_set = {f"ext:10.{d % 250}.{p // 250}.{p % 250}" for p in range(peers)}
        out.append(
            WindowProfile(
                device_id(d),
                start,
                start + window,
                tx_packets=100 + d % 17,
                tx_bytes=9000 + d % 1000,
                rx_packets=90,
                rx_bytes=12000,
                flows_started=3,
                peers=peer_set,
                protocols={"tls": 80, "dns": 4},
                facts={
                    "dns_query": {f"svc{k}.vendor{d % 100}.example": 1 for k in range(3)},
                    "service_used": {"tcp/443": 3, "udp/53": 4},
                },
                conversations={
                    f"ext:10.{d % 250}.0.{c}|tcp/443": [start + 1.0 + c, start + 31.0 + c]
                    for c in range(conversations)
                },
            )
        )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--peers", type=int, default=50)
    parser.add_argument("--conversations", type=int, default=4)
    parser.add_argument("--windows", type=int, default=8)
    parser.add_argument("--hours", type=int, default=0)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()

    gc.collect()
    rss_start = status_kib("VmRSS")
    store = BaselineStore(BaselineConfig())
    learn_seconds = 0.0
    starts = [T0 + 3600.0 * h for h in range(args.hours)]
    starts += [T0 + 3600.0 * args.hours + 60.0 * w for w in range(args.windows)]
    for start in starts:
        batch = profiles(args.devices, args.peers, args.conversations, start, 60.0)
        began = time.perf_counter()
        store.learn_window(batch)
        learn_seconds += time.perf_counter() - began
        del batch
    gc.collect()
    rss_learned = status_kib("VmRSS")

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "state.db")
        began = time.perf_counter()
        with State(path) as state:
            state.checkpoint(store)
        checkpoint_seconds = time.perf_counter() - began
        size = os.path.getsize(path) + sum(
            os.path.getsize(path + s) for s in ("-wal", "-shm") if os.path.exists(path + s)
        )
        del store
        gc.collect()
        began = time.perf_counter()
        with State(path) as state:
            reloaded = state.load_store()
        reload_seconds = time.perf_counter() - began
        assert len(reloaded) == args.devices
    peak = status_kib("VmHWM")

    per_device = (rss_learned - rss_start) * 1024 / args.devices
    rows = [
        ("devices × peers", f"{args.devices} × {args.peers}"),
        ("windows learned", f"{len(starts)} ({args.hours} hourly + {args.windows} minute)"),
        ("RSS before / after learning", f"{rss_start / 1024:.0f} / {rss_learned / 1024:.0f} MiB"),
        ("resident memory per device", f"{per_device / 1024:.1f} KiB"),
        ("peak RSS (VmHWM)", f"{peak / 1024:.0f} MiB"),
        ("state file", f"{size / 2**20:.1f} MiB"),
        ("state file per device", f"{size / args.devices / 1024:.1f} KiB"),
        ("learning", f"{learn_seconds / len(starts) * 1000:.0f} ms per window of all devices"),
        ("checkpoint (all devices dirty)", f"{checkpoint_seconds:.2f} s"),
        ("reload", f"{reload_seconds:.2f} s"),
    ]
    if args.markdown:
        print("| measure | value |\n|---|---|")
        for name, value in rows:
            print(f"| {name} | {value} |")
    else:
        width = max(len(name) for name, _ in rows)
        for name, value in rows:
            print(f"{name:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
