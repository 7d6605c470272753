"""``santinel analyze CAPTURE...``: one-shot inventory, traffic summary (and anomalies with
``--state``), as a table or JSON.

With ``--state DB`` the captures are scored by the detectors against the baselines stored
in DB (``santinel learn`` builds them), window by window and in capture time, as the
daemon would: score, then learn. The learning stays in memory; DB is only read.

Exit status: 0 when every capture was read (and, with ``--state``, no anomaly was found),
1 when anomalies were found, 2 when a capture or the state could not be read (each such
file named on stderr in one line; the other files still count).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from monitor.cli import EXIT_FINDINGS, EXIT_OK, EXIT_USAGE, UserError
from monitor.pipeline import analyze_captures
from monitor.report import analysis_record, render_table
from monitor.signatures import (
    SignatureError,
    SignatureLibrary,
    default_signature_dirs,
    load_library,
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "analyze",
        help="inventory, profiles and anomalies of capture files",
        description="Read capture files (pcap or pcapng, by magic number) and print the "
        "device inventory and a traffic summary.",
    )
    parser.add_argument("captures", nargs="+", metavar="CAPTURE", type=Path)
    parser.add_argument("--format", choices=("table", "json"), default="table")
    parser.add_argument(
        "--window", type=float, default=60.0, metavar="SECONDS", help="profile window length"
    )
    parser.add_argument(
        "--signatures",
        action="append",
        type=Path,
        metavar="DIR",
        help="signature folder (repeat for local overrides; default: the shipped library)",
    )
    parser.add_argument(
        "--state",
        metavar="DB",
        type=Path,
        help="score the captures against the baselines in this state file and print the "
        "anomalies (exit status 1 when there are any); the file is only read",
    )
    parser.set_defaults(func=run)


def load_signatures(dirs: list[Path] | None) -> SignatureLibrary:
    """The signature library, or a UserError listing every problem (FILE:LINE: message)."""
    try:
        return load_library(dirs or default_signature_dirs())
    except SignatureError as error:
        raise UserError("; ".join(error.errors[:20]) or str(error)) from None


def run(args: argparse.Namespace) -> int:
    files = [str(p) for p in args.captures]
    library = load_signatures(args.signatures)
    events = None
    if getattr(args, "state", None) is not None:
        analysis, events = _analyze_with_state(args, library)
    else:
        analysis = analyze_captures(args.captures, signatures=library, window_seconds=args.window)
    for error in analysis.file_errors:
        print(f"santinel: {error}", file=sys.stderr)
    record = analysis_record(analysis, files, anomalies=events)
    if args.format == "json":
        json.dump(record, sys.stdout, indent=2, sort_keys=False)
        sys.stdout.write("\n")
    else:
        print(render_table(record))
    if analysis.file_errors:
        return EXIT_USAGE
    return EXIT_FINDINGS if events else EXIT_OK


def _analyze_with_state(
    args: argparse.Namespace, library: SignatureLibrary
) -> tuple[Any, list[dict[str, Any]]]:
    from monitor.detectors import DetectorConfig, DetectorSuite
    from monitor.detectors.offline import replay
    from monitor.events import EventBook
    from monitor.state import State, StateError

    path: Path = args.state
    if not path.is_file():
        raise UserError(f"{path}: no such state file (santinel learn creates one)")
    try:
        with State(path, create=False) as state:
            store = state.load_store()
    except StateError as error:
        raise UserError(str(error)) from None
    book = EventBook(hold_seconds=3600.0)
    suite = DetectorSuite(book, DetectorConfig(window_seconds=args.window))
    analysis = replay(args.captures, suite, store, library, window_seconds=args.window)
    return analysis, [event.to_dict() for event in book.emitted]
