"""``santinel config check F``: validate a daemon config (and the web config it names).

Exit 0 and one ``FILE: valid`` line when the file is good; otherwise exit 2 with one
``FILE:LINE: key: message`` line per problem on stderr.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from monitor.cli import EXIT_OK, EXIT_USAGE
from monitor.config import ConfigError, load_config, privacy_key
from monitor.yamlfile import YamlModelError


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("config", help="check a daemon configuration file")
    actions = parser.add_subparsers(dest="config_action", metavar="ACTION", required=True)
    check = actions.add_parser("check", help="validate a config file; exit 2 on errors")
    check.add_argument("file", type=Path, help="the YAML config file")
    check.set_defaults(func=run_check)


def check_file(path: Path) -> list[str]:
    """Every problem of ``path`` and of the files it refers to, one line each."""
    try:
        config = load_config(path)
        privacy_key(config.privacy)
    except ConfigError as error:
        return error.errors
    if config.web.config_file is not None:
        from monitor.web import load_web_config

        try:
            load_web_config(config.web.config_file)
        except YamlModelError as error:
            return error.errors
    return []


def run_check(args: argparse.Namespace) -> int:
    errors = check_file(args.file)
    if errors:
        for line in errors:
            print(line, file=sys.stderr)
        return EXIT_USAGE
    print(f"{args.file}: valid")
    return EXIT_OK
