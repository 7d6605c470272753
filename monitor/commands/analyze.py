"""``santinel analyze CAPTURE...``: one-shot inventory, traffic summary (and anomalies with
``--state``), as a table or JSON.

Exit status: 0 when every capture was read, 2 when one could not be (each such file named
on stderr in one line; the other files still count).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from monitor.cli import EXIT_OK, EXIT_USAGE, UserError
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
    analysis = analyze_captures(args.captures, signatures=library, window_seconds=args.window)
    for error in analysis.file_errors:
        print(f"santinel: {error}", file=sys.stderr)
    record = analysis_record(analysis, files)
    if args.format == "json":
        json.dump(record, sys.stdout, indent=2, sort_keys=False)
        sys.stdout.write("\n")
    else:
        print(render_table(record))
    return EXIT_USAGE if analysis.file_errors else EXIT_OK
