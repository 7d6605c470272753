"""Test copies of the shipped Prometheus/Alertmanager files, made fast and pointed at loopback.

The shipped files are production-shaped (30 s group waits, 2-10 minute ``for:``, a webhook
relay on 127.0.0.1:9095). Tests run them for real but cannot wait that long, so these helpers
rewrite *only* timings and receiver URLs and leave matchers, grouping, inhibition and expressions
as shipped.
"""

from __future__ import annotations

import contextlib
import copy
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import REPO
from tests.deploy.conftest import ALERT_RULES, ALERTMANAGER_CONFIG
from tests.support.promstack import free_port

SHIPPED_WEBHOOK_BASE = "http://127.0.0.1:9095"
FAST_GROUP_WAIT = "1s"


def fast_alertmanager_config(
    webhook_base: str, *, source: Path = ALERTMANAGER_CONFIG, keep_time_intervals: bool = False
) -> dict[str, Any]:
    """The shipped Alertmanager config with every webhook sent to ``webhook_base`` (same paths,
    so the path names the receiver), group waits cut to 1 s (0 s where the file has 0 s) and
    group intervals to 1 s.

    Mute/active time intervals are dropped from the routes unless ``keep_time_intervals``: a
    test must not depend on the weekday it runs on (the maintenance-window test keeps them).
    """
    config: dict[str, Any] = yaml.safe_load(source.read_text())
    for receiver in config["receivers"]:
        for webhook in receiver.get("webhook_configs", []):
            assert webhook["url"].startswith(SHIPPED_WEBHOOK_BASE)
            webhook["url"] = webhook_base.rstrip("/") + webhook["url"][len(SHIPPED_WEBHOOK_BASE) :]

    def speed_up(route: dict[str, Any]) -> None:
        if not keep_time_intervals:
            route.pop("mute_time_intervals", None)
            route.pop("active_time_intervals", None)
        if "group_wait" in route or route is config["route"]:
            # A second, not none: group_wait is what lets an inhibiting alert reach the
            # inhibitor before its targets are flushed (the inhibitor learns sources on its own
            # goroutine). At 0s the pumps behind a down sensor, whose silence the sensor's alert
            # inhibits, were paged now and then.
            shipped_wait = route.get("group_wait", "30s")
            route["group_wait"] = "0s" if shipped_wait == "0s" else FAST_GROUP_WAIT
        if "group_interval" in route or route is config["route"]:
            route["group_interval"] = "1s"
        for child in route.get("routes", []):
            speed_up(child)

    speed_up(config["route"])
    return config


def fast_alert_rules(destination: Path, *, source: Path = ALERT_RULES) -> Path:
    """The shipped alert rules with every ``for:`` removed (alerts fire on the first evaluation
    that matches), written to ``destination``."""
    rules = copy.deepcopy(yaml.safe_load(source.read_text()))
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule.pop("for", None)
    destination.write_text(yaml.safe_dump(rules, sort_keys=False))
    return destination


def shorten_windows(expr: str, window: str) -> str:
    """Replace every ``[5m]``-style range in a PromQL expression by ``window``."""
    return re.sub(r"\[\d+[smhd]\]", f"[{window}]", expr)


@contextlib.contextmanager
def santinel_run(
    capture: Path,
    workdir: Path,
    *,
    replay_speed: str,
    config: dict[str, Any] | None = None,
) -> Iterator[str]:
    """``python -m monitor run --pcap CAPTURE`` from this checkout, exporting on a free
    loopback port; yields ``host:port``. SIGTERM (then SIGKILL) when the block ends. The
    daemon's log is ``workdir/santinel.log``."""
    address = f"127.0.0.1:{free_port()}"
    settings: dict[str, Any] = {
        "web": {"listen_address": address},
        "state": {"path": str(workdir / "state.db")},
        **(config or {}),
    }
    config_path = workdir / "santinel.yml"
    config_path.write_text(yaml.safe_dump(settings))
    with (workdir / "santinel.log").open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "monitor",
                "run",
                f"--config.file={config_path}",
                f"--pcap={capture}",
                f"--replay-speed={replay_speed}",
            ],
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield address
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
