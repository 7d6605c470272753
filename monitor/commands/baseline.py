"""``santinel baseline show|export|import|approve|reset|freeze|unfreeze``: baselines as code.

``export`` writes reviewable YAML (one device per document, sorted, counts and approvals
kept) to stdout; ``import`` reads it back into the state (export → import → export gives the
same bytes); ``approve`` turns a reported deviation into a baseline fact with who and why;
``reset`` starts a device over; ``show`` prints one device's baseline for a person.
Every subcommand takes ``--state DB``; errors are one line and exit 2.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from monitor.baseline import Baseline, export_yaml, import_yaml
from monitor.cli import EXIT_OK, UserError
from monitor.facts import FACT_KINDS
from monitor.profiles import VOLUME_FEATURES, FormatError, format_time
from monitor.state import State, StateError

DEFAULT_STATE = "/var/lib/santinel/state.db"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "baseline",
        help="show, export, import, approve or reset device baselines",
        description="Baselines as code: review them as YAML, approve deviations, start over.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    def action(
        name: str, help_text: str, device: str | None = "required"
    ) -> argparse.ArgumentParser:
        sub = actions.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("--state", default=DEFAULT_STATE, metavar="DB", help="state file")
        if device == "required":
            sub.add_argument("--device", required=True, metavar="ID", help="device id")
        elif device == "optional":
            sub.add_argument("--device", metavar="ID", help="only this device")
        return sub

    show = action("show", "print one device's baseline")
    show.set_defaults(func=run_show)
    export = action("export", "write baselines as YAML to stdout", device="optional")
    export.set_defaults(func=run_export)
    imp = action("import", "replace baselines with those of a YAML file", device=None)
    imp.add_argument("file", metavar="FILE", help="YAML written by 'baseline export'")
    imp.set_defaults(func=run_import)
    approve = action("approve", "make a reported deviation part of the baseline")
    approve.add_argument("--kind", required=True, choices=sorted(FACT_KINDS), metavar="KIND")
    approve.add_argument("--value", required=True, metavar="VALUE")
    approve.add_argument("--by", required=True, metavar="WHO", help="who approves it")
    approve.add_argument("--why", required=True, metavar="TEXT", help="why it is normal")
    approve.set_defaults(func=run_approve)
    reset = action("reset", "forget a device's baseline: it learns again from scratch")
    reset.set_defaults(func=run_reset)
    freeze = action("freeze", "stop learning for a device (it is still enforced)")
    freeze.set_defaults(func=run_freeze, frozen=True)
    unfreeze = action("unfreeze", "resume learning for a device")
    unfreeze.set_defaults(func=run_freeze, frozen=False)


def _open(path: str, create: bool = False) -> State:
    try:
        return State(path, create=create)
    except StateError as error:
        raise UserError(str(error)) from None


def _one(state: State, device: str) -> Baseline:
    try:
        baseline = state.load_baseline(device)
    except StateError as error:
        raise UserError(str(error)) from None
    if baseline is None:
        raise UserError(f"{state.path}: no baseline for device {device[:60]}")
    return baseline


def run_export(args: argparse.Namespace) -> int:
    with _open(args.state) as state:
        if args.device is not None:
            baselines = [_one(state, args.device)]
        else:
            try:
                baselines = list(state.load_store().baselines.values())
            except StateError as error:
                raise UserError(str(error)) from None
    sys.stdout.write(export_yaml(baselines))
    return EXIT_OK


def run_import(args: argparse.Namespace) -> int:
    path = Path(args.file)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or "not UTF-8 text"
        raise UserError(f"{path}: cannot read ({reason})") from None
    with _open(args.state, create=True) as state:
        try:
            store = state.load_store()
            baselines = import_yaml(text, str(path), store.config)
            for baseline in baselines:
                store.edit({"op": "put", "baseline": baseline.to_dict(derived=False)})
            state.checkpoint(store)
        except (FormatError, StateError) as error:
            raise UserError(str(error)) from None
    print(f"imported {len(baselines)} baseline(s) into {args.state}", file=sys.stderr)
    return EXIT_OK


def run_approve(args: argparse.Namespace) -> int:
    with _open(args.state) as state:
        try:
            store = state.load_store()
            store.edit(
                {
                    "op": "approve",
                    "device": args.device,
                    "kind": args.kind,
                    "value": args.value,
                    "by": args.by,
                    "why": args.why,
                    "at": time.time(),
                }
            )
            state.checkpoint(store)
            fact = store.baselines[args.device].facts[args.kind][args.value]
        except ValueError as error:
            raise UserError(str(error)) from None
        except StateError as error:
            raise UserError(str(error)) from None
    print(
        f"approved {args.kind} {args.value[:80]} for {args.device} (count {fact.count})",
        file=sys.stderr,
    )
    return EXIT_OK


def run_reset(args: argparse.Namespace) -> int:
    with _open(args.state) as state:
        try:
            store = state.load_store()
            if store.get(args.device) is None:
                raise UserError(f"{state.path}: no baseline for device {args.device[:60]}")
            store.edit({"op": "reset", "device": args.device})
            state.checkpoint(store)
        except StateError as error:
            raise UserError(str(error)) from None
    print(f"reset the baseline of {args.device}: it learns again from scratch", file=sys.stderr)
    return EXIT_OK


def run_freeze(args: argparse.Namespace) -> int:
    with _open(args.state) as state:
        try:
            store = state.load_store()
            if store.get(args.device) is None:
                raise UserError(f"{state.path}: no baseline for device {args.device[:60]}")
            store.edit({"op": "freeze", "device": args.device, "frozen": args.frozen})
            state.checkpoint(store)
        except StateError as error:
            raise UserError(str(error)) from None
    return EXIT_OK


def run_show(args: argparse.Namespace) -> int:
    with _open(args.state) as state:
        baseline = _one(state, args.device)
    sys.stdout.write(render(baseline))
    return EXIT_OK


def _when(t: float | None) -> str:
    return "-" if t is None else format_time(t)[:19].replace("T", " ")


def render(baseline: Baseline) -> str:
    """A person's view of one baseline."""
    b = baseline
    lines = [f"device {b.device_id}"]
    state = b.state
    if b.enforcing:
        state += f" since {_when(b.enforcing_since)}"
    else:
        cfg = b.config
        state += (
            f", {b.progress:.0%} done ({b.windows}/{cfg.min_windows} windows, "
            f"{b.duration / 3600:.1f}/{cfg.min_duration / 3600:.1f} h)"
        )
    lines.append(f"  state     {state}{' (frozen: not learning)' if b.frozen else ''}")
    lines.append(
        f"  learned   {b.windows} windows, {_when(b.first_window_start)} .. "
        f"{_when(b.last_window_end)} UTC"
    )
    expected = b.expected_interval()
    if expected is not None:
        main_key, main = expected
        lines.append(f"  reports   every {main.median:.3f} s ({main_key})")
    for title, table, approvals in (
        ("facts", b.facts, True),
        ("pending (seen while enforcing, not approved)", b.pending, False),
    ):
        lines.append(f"  {title}:")
        if not table:
            lines.append("    (none)")
        for kind in sorted(table):
            for value in sorted(table[kind]):
                fact = table[kind][value]
                line = (
                    f"    {kind:<24} {value:<40} x{fact.count:<6} "
                    f"{_when(fact.first_seen)} .. {_when(fact.last_seen)}"
                )
                approval = b.approvals.get((kind, value)) if approvals else None
                if approval is not None:
                    line += f"  approved by {approval.by}: {approval.why}"
                lines.append(line)
    lines.append("  cadence (interval between bursts of messages):")
    if not b.cadence:
        lines.append("    (none)")
    for key in sorted(b.cadence):
        cadence = b.cadence[key]
        stats = cadence.stats()
        if stats is None:
            lines.append(f"    {key:<48} {cadence.messages} message(s), no interval yet")
        else:
            lines.append(
                f"    {key:<48} every {stats.median:10.3f} s  MAD {stats.mad:8.3f} s  "
                f"({stats.n} gaps)"
            )
    lines.append(f"  volume per window (last {len(b.volumes)} windows):    median        MAD")
    for feature in VOLUME_FEATURES:
        vstats = b.volumes.stats(feature)
        if vstats is not None:
            lines.append(f"    {feature:<36} {vstats.median:12.1f} {vstats.mad:10.1f}")
    return "\n".join(lines) + "\n"
