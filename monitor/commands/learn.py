"""``santinel learn CAPTURE... --state DB``: build baselines from known-good traffic.

The captures are read in time order (by their first packet) through the same pipeline as
``analyze`` and ``run``; every closed window is learned into the device's baseline, and the
state is checkpointed every ``--checkpoint-interval`` seconds of capture time.

Crash safety and re-runs: learning a window is idempotent (a window that ends no later than
the device's last learned window is skipped), and the inventory is written, merged into the
stored one, only when a capture has been read to its end, in the same transaction that marks
the capture as learned. So a ``kill -9`` loses at most one checkpoint interval of learning,
running the same command again resumes without counting anything twice, and a capture
already learned is skipped (recognised by its size and the hash of its first MiB).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import math
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from monitor.baseline import BaselineConfig, BaselineStore
from monitor.capture import CaptureError
from monitor.cli import EXIT_OK, EXIT_USAGE, UserError
from monitor.facts import FactTable
from monitor.model import Device, WindowProfile
from monitor.state import State, StateError


def duration(text: str) -> float:
    """An argparse type: seconds, or a duration like ``90s``, ``5m``, ``1h30m``, ``7d``."""
    from monitor.config import parse_duration

    try:
        value = float(text) if _is_number(text) else float(parse_duration(text))
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError("a duration must be a finite number >= 0")
    return value


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "learn",
        help="learn device baselines from known-good captures",
        description="Read capture files in time order and learn each device's baseline into "
        "the state file. Safe to interrupt and run again.",
    )
    parser.add_argument("captures", nargs="+", metavar="CAPTURE", type=Path)
    parser.add_argument("--state", required=True, metavar="DB", help="state file")
    parser.add_argument(
        "--window", type=duration, default=60.0, metavar="SECONDS", help="profile window length"
    )
    parser.add_argument(
        "--checkpoint-interval",
        type=duration,
        default=300.0,
        metavar="SECONDS",
        help="capture time between checkpoints (default 300)",
    )
    parser.add_argument(
        "--min-duration",
        type=duration,
        metavar="SECONDS",
        help="capture time a device needs before enforcing",
    )
    parser.add_argument(
        "--min-windows",
        type=int,
        metavar="N",
        help="active windows a device needs before enforcing",
    )
    parser.add_argument(
        "--fact-ttl", type=duration, metavar="SECONDS", help="forget facts not seen for this long"
    )
    parser.add_argument("--quiet", action="store_true", help="no per-device summary")
    parser.set_defaults(func=run)


def capture_identity(path: Path) -> str:
    """Size and SHA-256 of the first MiB: recognises a capture again under another name."""
    with path.open("rb") as handle:
        head = handle.read(1 << 20)
        size = handle.seek(0, 2)
    return f"{size}:{hashlib.sha256(head).hexdigest()}"


def first_packet_time(path: Path) -> float:
    from monitor.capture.files import open_capture

    for batch in open_capture(path):
        if len(batch):
            return float(batch.timestamps_ns[0]) / 1e9
    return float("inf")


def merge_fact_tables(base: FactTable, fresh: FactTable) -> FactTable:
    merged = FactTable(base)
    merged.absorb(fresh)
    return merged


def merge_devices(base: Mapping[str, Device], fresh: Mapping[str, Device]) -> dict[str, Device]:
    """The stored inventory plus what this run saw: totals add up, facts unite, the newer
    classification wins. Only devices this run saw are returned (the others are unchanged)."""
    out: dict[str, Device] = {}
    for device_id, new in fresh.items():
        old = base.get(device_id)
        if old is None:
            out[device_id] = dataclasses.replace(
                new, facts=merge_fact_tables(FactTable(), new.facts)
            )
            continue
        out[device_id] = dataclasses.replace(
            new,
            first_seen=min(old.first_seen, new.first_seen),
            last_seen=max(old.last_seen, new.last_seen),
            facts=merge_fact_tables(old.facts, new.facts),
            tx_packets=old.tx_packets + new.tx_packets,
            tx_bytes=old.tx_bytes + new.tx_bytes,
            rx_packets=old.rx_packets + new.rx_packets,
            rx_bytes=old.rx_bytes + new.rx_bytes,
            classification=new.classification or old.classification,
            vendor=new.vendor or old.vendor,
        )
    return out


def _config(state: State, args: argparse.Namespace) -> BaselineConfig:
    stored = dataclasses.asdict(state.baseline_config())
    for name in ("min_duration", "min_windows", "fact_ttl"):
        value = getattr(args, name)
        if value is not None:
            stored[name] = value
    try:
        return BaselineConfig(**stored)
    except ValueError as error:
        raise UserError(f"bad learning option: {error}") from None


def run(args: argparse.Namespace) -> int:
    from monitor.pipeline import Analysis

    if args.window <= 0 or args.checkpoint_interval <= 0:
        raise UserError("--window and --checkpoint-interval must be positive")
    try:
        state = State(args.state)
    except StateError as error:
        raise UserError(str(error)) from None
    with state:
        try:
            return learn_into(state, args, Analysis)
        except StateError as error:
            raise UserError(str(error)) from None


CheckpointHook = Callable[[int, BaselineStore], None]


def learn_into(
    state: State,
    args: argparse.Namespace,
    analysis_type: Any,
    on_checkpoint: CheckpointHook | None = None,
) -> int:
    """The command's work on an open state; ``on_checkpoint(number, store)`` is called after
    each committed checkpoint (tests compare a killed run with a straight one through it)."""
    config = _config(state, args)
    window = state.meta("window_seconds")
    if isinstance(window, int | float) and window != args.window:
        # volumes per window of another length are not comparable with these
        raise UserError(
            f"{state.path}: its baselines were learned with {window:g} s windows, not "
            f"{args.window:g} s (use --window {window:g}, or a new state file)"
        )
    store = state.load_store(config)
    base_devices = state.load_devices()
    learned: dict[str, str] = dict(state.meta("learned_captures", {}) or {})
    status = EXIT_OK

    todo: list[tuple[float, str, Path]] = []
    for path in args.captures:
        try:
            identity = capture_identity(path)
            if identity in learned:
                print(f"santinel: {path}: already learned, skipped", file=sys.stderr)
                continue
            todo.append((first_packet_time(path), identity, path))
        except OSError as error:
            print(f"santinel: {path}: cannot read ({error.strerror})", file=sys.stderr)
            status = EXIT_USAGE
        except CaptureError as error:
            print(f"santinel: {error}", file=sys.stderr)
            status = EXIT_USAGE
    todo.sort(key=lambda item: (item[0], str(item[2])))

    # Checkpoints fall on multiples of the interval of capture time, so a re-run after a
    # crash checkpoints at the same moments as an uninterrupted run would.
    last_bucket: list[int | None] = [None]

    def checkpoint(devices: Mapping[str, Device], meta: Mapping[str, Any] | None = None) -> None:
        number = state.checkpoint(store, devices, {**(meta or {}), "window_seconds": args.window})
        if on_checkpoint is not None:
            on_checkpoint(number, store)

    def on_window(profiles: list[WindowProfile], analysis: Any) -> None:
        store.learn_window(profiles, analysis)
        if store.now is None:
            return
        bucket = int(store.now // args.checkpoint_interval)
        if last_bucket[0] is not None and bucket != last_bucket[0]:
            # Baselines only: the inventory is written when a capture is complete.
            checkpoint({})
        last_bucket[0] = bucket

    from monitor.capture.files import open_capture

    analysis = analysis_type(window_seconds=args.window, on_window=on_window)
    for _, identity, path in todo:
        try:
            for batch in open_capture(path):
                analysis.feed(batch)
        except CaptureError as error:
            # Frames before the damage were learned; the file is not marked as learned.
            print(f"santinel: {error}", file=sys.stderr)
            status = EXIT_USAGE
            continue
        learned[identity] = path.name
        checkpoint(merge_devices(base_devices, analysis.devices), {"learned_captures": learned})
    analysis.finish()  # closes the last window; the inventory was written per capture
    checkpoint({})
    if not args.quiet:
        sys.stdout.write(summary(store, analysis.devices))
    return status


def summary(store: BaselineStore, seen: Mapping[str, Device]) -> str:
    """One line per device seen in this run: learning state, progress, main cadence."""
    lines = [f"{'DEVICE':<20} {'STATE':<10} {'PROGRESS':>8} {'WINDOWS':>8}  CADENCE"]
    for device_id in sorted(seen):
        baseline = store.get(device_id)
        if baseline is None:
            continue
        expected = baseline.expected_interval()
        cadence = "-" if expected is None else f"{expected[1].median:.3f} s  {expected[0]}"
        lines.append(
            f"{device_id:<20} {baseline.state:<10} {baseline.progress:>8.0%} "
            f"{baseline.windows:>8}  {cadence}"
        )
    return "\n".join(lines) + "\n"
