"""``santinel lab run SCENARIO --out DIR``: play a lab scenario, record it, write its truth.

Also ``santinel lab check SCENARIO`` (validate only) and ``santinel lab verify DIR`` (check a
recording against its truth with tshark; exit 1 listing the differences). Running needs root:
the lab builds network namespaces (see ``monitor.lab``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from monitor.cli import EXIT_OK, UserError


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "lab",
        help="play a clinical network scenario in network namespaces and record it",
        description="Play a ward scenario with real protocol stacks in network namespaces, "
        "record the bridge to DIR/capture.pcap and write the ground truth to DIR/truth.json.",
    )
    actions = parser.add_subparsers(dest="lab_action", metavar="ACTION", required=True)
    run = actions.add_parser("run", help="play SCENARIO and record it")
    run.add_argument("scenario", type=Path, metavar="SCENARIO", help="scenario YAML file")
    run.add_argument("--out", type=Path, required=True, metavar="DIR", help="output directory")
    run.set_defaults(func=_run)
    check = actions.add_parser("check", help="validate SCENARIO without playing it")
    check.add_argument("scenario", type=Path, metavar="SCENARIO", help="scenario YAML file")
    check.set_defaults(func=_check)
    verify = actions.add_parser("verify", help="check DIR/capture.pcap against DIR/truth.json")
    verify.add_argument("directory", type=Path, metavar="DIR", help="a lab run's output")
    verify.set_defaults(func=_verify)


def _load(path: Path) -> Any:
    from monitor.lab.scenario import ScenarioError, load_scenario

    try:
        return load_scenario(path)
    except ScenarioError as error:
        raise UserError(str(error).replace("\n", "\nsantinel: ")) from None


def _check(args: argparse.Namespace) -> int:
    scenario = _load(args.scenario)
    print(
        f"{args.scenario}: ok ({len(scenario.devices)} devices, {len(scenario.events)} events, "
        f"{scenario.wall(scenario.duration):.0f} s of wall time)"
    )
    return EXIT_OK


def _run(args: argparse.Namespace) -> int:
    from monitor.lab.netns import LabError
    from monitor.lab.runner import run_scenario
    from monitor.lab.signals import Interrupted

    scenario = _load(args.scenario)
    try:
        truth = run_scenario(scenario, args.out)
    except LabError as error:
        raise UserError(f"lab: {error}") from None
    except Interrupted as error:
        print(f"santinel: lab: interrupted by {error}; the lab was cleaned up", file=sys.stderr)
        return 130 if str(error) == "SIGINT" else 143
    print(
        f"{args.out / 'capture.pcap'}: {len(truth['devices'])} devices, "
        f"{len(truth['events'])} events; truth in {args.out / 'truth.json'}"
    )
    for problem in truth["errors"]:
        print(f"santinel: lab: {problem}")
    return EXIT_OK if not truth["errors"] else 1


def _verify(args: argparse.Namespace) -> int:
    from monitor.lab.verify import verify

    directory: Path = args.directory
    for name in ("truth.json", "capture.pcap"):
        if not (directory / name).is_file():
            raise UserError(f"{directory}: no {name} (not a lab run's output)")
    try:
        problems = verify(directory)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, StopIteration) as error:
        raise UserError(
            f"{directory / 'truth.json'}: not a lab truth file ({type(error).__name__})"
        ) from None
    except RuntimeError as error:
        raise UserError(str(error)) from None
    for problem in problems:
        print(f"{directory}: {problem}")
    if not problems:
        print(f"{directory}: capture matches truth")
    return 1 if problems else EXIT_OK
