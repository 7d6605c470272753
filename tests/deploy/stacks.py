"""Test copies of the shipped Prometheus/Alertmanager files, made fast and pointed at loopback.

The shipped files are production-shaped (30 s group waits, 2-10 minute ``for:``, a webhook
relay on 127.0.0.1:9095). Tests run them for real but cannot wait that long, so these helpers
rewrite *only* timings and receiver URLs and leave matchers, grouping, inhibition and expressions
as shipped.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.conftest import ALERT_RULES, ALERTMANAGER_CONFIG

SHIPPED_WEBHOOK_BASE = "http://127.0.0.1:9095"


def fast_alertmanager_config(
    webhook_base: str, *, source: Path = ALERTMANAGER_CONFIG
) -> dict[str, Any]:
    """The shipped Alertmanager config with every webhook sent to ``webhook_base`` (same paths,
    so the path names the receiver) and group waits/intervals cut to 0-1 s."""
    config: dict[str, Any] = yaml.safe_load(source.read_text())
    for receiver in config["receivers"]:
        for webhook in receiver.get("webhook_configs", []):
            assert webhook["url"].startswith(SHIPPED_WEBHOOK_BASE)
            webhook["url"] = webhook_base.rstrip("/") + webhook["url"][len(SHIPPED_WEBHOOK_BASE) :]

    def speed_up(route: dict[str, Any]) -> None:
        if "group_wait" in route or route is config["route"]:
            route["group_wait"] = "0s"
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
