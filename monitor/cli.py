"""The ``santinel`` command: parses arguments and dispatches to ``monitor.commands.*``.

Every module in ``monitor/commands/`` is one subcommand and exposes
``register(subparsers)``; it is found by discovery, so adding a command is adding a file.

Promise: no traceback ever reaches the user. Expected failures (``UserError``, bad input)
print one line and exit 2; anything unexpected prints one line naming the error type only
(its message might quote input, which can be patient data) and exits 70.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

from monitor import __version__, commands
from monitor.runtime import tune_garbage_collector

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 70


class UserError(Exception):
    """Bad usage or bad input: the message is one line for the user, without patient data."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="santinel",
        description="Passive network monitor for medical devices.",
    )
    parser.add_argument("--version", action="version", version=f"santinel {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    tune_garbage_collector()
    try:
        result: int = args.func(args)
        return result
    except UserError as error:
        print(f"santinel: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except Exception as error:  # the last line of defence: never a traceback
        print(
            f"santinel: internal error ({type(error).__name__}); please report it",
            file=sys.stderr,
        )
        return EXIT_INTERNAL
