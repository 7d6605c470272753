"""``santinel run``: the sensor daemon (see ``monitor.daemon``).

    santinel run [--config.file F] [--state DB] [--interface IF | --pcap F [--replay-speed X]]

Exit 0 after SIGTERM/SIGINT (state flushed), 2 when it cannot start (bad config, interface
or listen address), with one line per problem on stderr.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from monitor.cli import EXIT_USAGE


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "run", help="run the sensor daemon (live interface or capture replay)"
    )
    parser.add_argument(
        "--config.file",
        dest="config_file",
        type=Path,
        help="YAML config (see docs/configuration.md)",
    )
    parser.add_argument("--state", type=Path, help="state file (overrides state.path)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--interface", help="capture on this interface")
    source.add_argument("--pcap", type=Path, help="replay this capture file")
    parser.add_argument(
        "--replay-speed",
        type=float,
        dest="replay_speed",
        help="1 = real time, 0 = as fast as possible (with --pcap)",
    )
    parser.add_argument(
        "--exit-after-pcap",
        action="store_true",
        help="exit when the capture file ends instead of serving on",
    )
    parser.add_argument("--user", help="switch to this user after opening the capture")
    parser.add_argument(
        "--web.listen-address",
        dest="listen_address",
        help="HOST:PORT for /metrics (overrides web.listen_address)",
    )
    parser.add_argument(
        "--web.config.file",
        dest="web_config_file",
        type=Path,
        help="TLS/basic-auth web config (exporter-toolkit format)",
    )
    parser.add_argument("--log.level", dest="log_level", choices=["debug", "info", "warn", "error"])
    parser.add_argument("--log.format", dest="log_format", choices=["logfmt", "json"])
    parser.add_argument(
        "--no-drop-privileges", dest="drop_privileges", action="store_false", help=argparse.SUPPRESS
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from monitor.daemon import Daemon, DaemonError, Options

    if args.replay_speed is not None and args.replay_speed < 0:
        print("santinel: --replay-speed must be 0 or more", file=sys.stderr)
        return EXIT_USAGE
    options = Options(
        config_file=args.config_file,
        state=args.state,
        interface=args.interface,
        pcap=args.pcap,
        replay_speed=args.replay_speed,
        exit_after_pcap=args.exit_after_pcap,
        user=args.user,
        listen_address=args.listen_address,
        web_config_file=args.web_config_file,
        log_level=args.log_level,
        log_format=args.log_format,
        drop_privileges=args.drop_privileges,
    )
    try:
        return Daemon(options).run()
    except DaemonError as error:
        for line in str(error).splitlines():
            print(f"santinel: {line}", file=sys.stderr)
        return EXIT_USAGE
