"""``santinel signatures check|test [DIR...]``: validate the signature library, run its samples.

``check`` validates every file and prints every error as ``FILE:LINE: message`` (exit 2 if
any). ``test`` also runs each entry's positive and negative samples through the real
classifier, rule and policy evaluation and prints the failures (exit 1 if any fails).
Without DIR, the shipped library is used; several DIRs are loaded in order, later ones
overriding earlier ones (local overrides).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from monitor.cli import EXIT_FINDINGS, EXIT_OK, EXIT_USAGE
from monitor.signatures import (
    SignatureError,
    SignatureLibrary,
    default_signature_dirs,
    load_library,
)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "signatures",
        help="validate the signature library or run its samples",
        description="Validate the signature library (check) or run every entry's positive and "
        "negative samples (test). Several DIRs are loaded in order, later ones overriding "
        "earlier ones. Exit status: 0 ok, 1 a sample failed, 2 the library has errors.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, help_text in (
        ("check", "validate every file; print each error as FILE:LINE: message"),
        ("test", "validate, then run every entry's positive and negative samples"),
    ):
        action = actions.add_parser(name, help=help_text, description=help_text)
        action.add_argument(
            "dirs",
            metavar="DIR",
            nargs="*",
            type=Path,
            help="signature folders or files, later ones overriding earlier ones "
            "(default: the shipped library)",
        )
        action.add_argument("-v", "--verbose", action="store_true", help="list every sample")
        action.set_defaults(func=run)


def _load(dirs: list[Path]) -> SignatureLibrary | None:
    try:
        return load_library(dirs)
    except SignatureError as error:
        for line in error.errors:
            print(line, file=sys.stderr)
        print(f"santinel: {error}", file=sys.stderr)
        return None


def run(args: argparse.Namespace) -> int:
    dirs: list[Path] = args.dirs or default_signature_dirs()
    library = _load(dirs)
    if library is None:
        return EXIT_USAGE
    counts = (
        f"{len(library.fingerprints)} fingerprints, {len(library.rules)} rules, "
        f"{len(library.policies)} policies"
    )
    if args.action == "check":
        disabled = f", {len(library.disabled)} disabled" if library.disabled else ""
        print(f"ok: {counts}{disabled}")
        return EXIT_OK

    from monitor.signature_samples import run_samples

    failures = 0
    passed = 0
    skipped = 0
    for _kind, entry in library.entries():
        for result in run_samples(entry, library):
            if result.skipped:
                skipped += 1
            elif result.ok:
                passed += 1
            else:
                failures += 1
            if args.verbose or not (result.ok or result.skipped):
                origin = library.origins.get(entry.id, "?")
                print(f"{origin}: {result.describe()}")
    print(f"{counts}: {passed} samples passed, {failures} failed, {skipped} skipped")
    return EXIT_FINDINGS if failures else EXIT_OK
