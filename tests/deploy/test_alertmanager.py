"""Alertmanager side: config check, a routing table covering every route, inhibition and the
maintenance window, the last two on a real Alertmanager."""

from __future__ import annotations

import datetime
import re
import subprocess
import time
from collections.abc import Callable, Mapping
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import ALERTMANAGER_CONFIG
from tests.deploy.stacks import fast_alertmanager_config
from tests.support.promstack import Alertmanager, WebhookReceiver, wait_until

# labels -> the receiver the shipped routing tree must pick.
ROUTES: list[tuple[dict[str, str], str]] = [
    ({"alertname": "SantinelWatchdog", "severity": "none"}, "deadmans-switch"),
    (
        {"alertname": "SantinelAnomalyWarning", "severity": "info", "criticality": "high"},
        "blackhole",
    ),
    (
        {
            "alertname": "SantinelDeviceSilent",
            "severity": "critical",
            "criticality": "life_sustaining",
            "device": "pump-1",
        },
        "clinical-pager",
    ),
    (
        {
            "alertname": "SantinelNewExternalDestination",
            "severity": "warning",
            "criticality": "life_sustaining",
        },
        "clinical-pager",
    ),
    ({"alertname": "SantinelSensorDown", "severity": "critical"}, "it-oncall-pager"),
    ({"alertname": "SantinelSensorBlind", "severity": "critical"}, "it-oncall-pager"),
    ({"alertname": "SantinelCaptureLoss", "severity": "warning"}, "it-ops-ticket"),
    ({"alertname": "SantinelCaptureLagging", "severity": "warning"}, "it-ops-ticket"),
    ({"alertname": "SantinelWindowJudgingSlow", "severity": "warning"}, "it-ops-ticket"),
    ({"alertname": "SantinelConfigReloadFailed", "severity": "warning"}, "it-ops-ticket"),
    ({"alertname": "SantinelDeviceCapReached", "severity": "warning"}, "it-ops-ticket"),
    (
        {"alertname": "SantinelDeviceSilent", "severity": "critical", "criticality": "high"},
        "biomed-oncall-pager",
    ),
    (
        {"alertname": "SantinelAnomalyCritical", "severity": "critical", "criticality": "medium"},
        "biomed-oncall-pager",
    ),
    (
        {"alertname": "SantinelPolicyViolation", "severity": "warning", "criticality": "medium"},
        "biomed-ticket",
    ),
    (
        {"alertname": "SantinelNewUnknownDevice", "severity": "warning", "criticality": ""},
        "biomed-ticket",
    ),
    ({"alertname": "SomethingElse", "severity": "unknown"}, "biomed-ticket"),
]


def amtool_config_routes_test(amtool: str, labels: Mapping[str, str], receiver: str) -> int:
    args = [f"{k}={v}" for k, v in labels.items()]
    result = subprocess.run(
        [
            amtool,
            "config",
            "routes",
            "test",
            f"--config.file={ALERTMANAGER_CONFIG}",
            f"--verify.receivers={receiver}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return result.returncode


def test_amtool_accepts_the_config(amtool: str) -> None:
    result = subprocess.run(
        [amtool, "check-config", str(ALERTMANAGER_CONFIG)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.parametrize(("labels", "receiver"), ROUTES, ids=lambda v: str(v))
def test_amtool_routes_the_labels_to_the_expected_receiver(
    amtool: str, labels: dict[str, str], receiver: str
) -> None:
    assert amtool_config_routes_test(amtool, labels, receiver) == 0


def test_amtool_route_test_fails_on_a_wrong_receiver(amtool: str) -> None:
    labels = {"alertname": "SantinelSensorDown", "severity": "critical"}
    assert amtool_config_routes_test(amtool, labels, "biomed-ticket") != 0


# A small model of Alertmanager's routing (first matching child, depth first; no `continue` is
# used in the shipped file) to know WHICH route each table row exercises.
_MATCHER = re.compile(r'^\s*([a-zA-Z_]\w*)\s*(=~|!~|!=|=)\s*"(.*)"\s*$')


def matches(matcher: str, labels: Mapping[str, str]) -> bool:
    parsed = _MATCHER.match(matcher)
    assert parsed, f"unsupported matcher syntax in the test model: {matcher}"
    name, op, value = parsed.groups()
    actual = labels.get(name, "")
    if op == "=":
        return actual == value
    if op == "!=":
        return actual != value
    found = re.fullmatch(value, actual) is not None
    return found if op == "=~" else not found


def route_for(
    route: dict[str, Any], labels: Mapping[str, str], path: tuple[int, ...] = ()
) -> tuple[tuple[int, ...], str]:
    assert not route.get("continue"), "the model does not follow `continue`"
    for index, child in enumerate(route.get("routes", [])):
        if all(matches(m, labels) for m in child.get("matchers", [])):
            found_path, receiver = route_for(child, labels, (*path, index))
            return found_path, receiver or route["receiver"]
    return path, route["receiver"]


def all_routes(route: dict[str, Any], path: tuple[int, ...] = ()) -> set[tuple[int, ...]]:
    paths = {path}
    for index, child in enumerate(route.get("routes", [])):
        paths |= all_routes(child, (*path, index))
    return paths


def test_the_routing_table_exercises_every_route_of_the_tree() -> None:
    tree = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())["route"]
    exercised = set()
    for labels, receiver in ROUTES:
        path, modelled_receiver = route_for(tree, labels)
        # The model agrees with amtool's answer, checked by the parametrized test above.
        assert modelled_receiver == receiver, labels
        exercised.add(path)
    assert exercised == all_routes(tree), f"routes without a case: {all_routes(tree) - exercised}"


def alert(**labels: str) -> dict[str, Any]:
    return {
        "labels": {"job": "santinel", **labels},
        "annotations": {"summary": "test"},
        "startsAt": datetime.datetime.now(datetime.UTC).isoformat(),
    }


def test_a_down_or_blind_sensor_mutes_the_silence_of_its_own_devices_only_and_silence_pages_once(
    alertmanager_factory: Callable[..., Alertmanager], webhook_receiver: WebhookReceiver
) -> None:
    am = alertmanager_factory(fast_alertmanager_config(webhook_receiver.url("/")))
    silent = dict(
        alertname="SantinelDeviceSilent", severity="critical", criticality="life_sustaining"
    )
    # The sensor alerts first, as in real life (the sensor fails, then its devices look
    # silent): Alertmanager only inhibits with sources it already holds.
    am.post_alerts(
        [
            alert(alertname="SantinelSensorDown", severity="critical", instance="a:10575"),
            alert(
                alertname="SantinelSensorBlind",
                severity="critical",
                instance="c:10575",
                interface="eth1",
            ),
        ]
    )
    wait_until(lambda: len(am.alerts()) == 2, timeout=10)
    am.post_alerts(
        [
            alert(**silent, instance="a:10575", device="pump-a"),
            alert(**silent, instance="c:10575", device="pump-c"),
            # Another sensor's device: its silence is real.
            alert(**silent, instance="b:10575", device="pump-b"),
            # The detector's own silence event on a device Prometheus already reports silent,
            # and on a blind sensor: muted; a silence event alone still goes out.
            alert(
                alertname="SantinelAnomalyCritical",
                severity="critical",
                criticality="high",
                detector="silence_app",
                instance="b:10575",
                device="pump-b",
            ),
            alert(
                alertname="SantinelAnomalyWarning",
                severity="warning",
                criticality="medium",
                detector="silence_gone",
                instance="c:10575",
                device="mon-c",
            ),
            alert(
                alertname="SantinelAnomalyWarning",
                severity="warning",
                criticality="medium",
                detector="silence_gone",
                instance="b:10575",
                device="mon-b",
            ),
            # The down sensor's other alerts are not muted.
            alert(
                alertname="SantinelNewExternalDestination",
                severity="critical",
                criticality="life_sustaining",
                instance="a:10575",
                device="pump-a",
            ),
        ]
    )

    def state() -> dict[tuple[str, str], list[str]]:
        return {
            (a["labels"]["alertname"], a["labels"].get("device", a["labels"]["instance"])): a[
                "status"
            ]["inhibitedBy"]
            for a in am.alerts()
        }

    seen = wait_until(lambda: state() if len(state()) == 9 else None, timeout=10)
    inhibited = {key for key, by in seen.items() if by}
    assert inhibited == {
        ("SantinelDeviceSilent", "pump-a"),
        ("SantinelDeviceSilent", "pump-c"),
        ("SantinelAnomalyCritical", "pump-b"),
        ("SantinelAnomalyWarning", "mon-c"),
    }

    # Notifications: pump-b pages the clinical pager; the muted ones never reach anybody.
    wait_until(
        lambda: any(
            a["labels"].get("device") == "pump-b"
            for a in webhook_receiver.alerts(path="/clinical-pager")
        ),
        timeout=15,
        message="pump-b paged",
    )
    wait_until(lambda: webhook_receiver.alerts(path="/it-oncall-pager"), timeout=15)
    time.sleep(2)
    delivered = {
        (a["labels"]["alertname"], a["labels"].get("device", "")) for a in webhook_receiver.alerts()
    }
    assert ("SantinelDeviceSilent", "pump-a") not in delivered
    assert ("SantinelDeviceSilent", "pump-c") not in delivered
    assert ("SantinelNewExternalDestination", "pump-a") in delivered


# What a sensor says about its own capture and judging: noise once the sensor is down.
SENSOR_HEALTH = (
    "SantinelSensorBlind",
    "SantinelCaptureLoss",
    "SantinelCaptureLagging",
    "SantinelWindowJudgingSlow",
)


def test_a_down_sensor_mutes_its_own_capture_and_judging_alerts_not_another_s(
    alertmanager_factory: Callable[..., Alertmanager], webhook_receiver: WebhookReceiver
) -> None:
    am = alertmanager_factory(fast_alertmanager_config(webhook_receiver.url("/")))
    am.post_alerts([alert(alertname="SantinelSensorDown", severity="critical", instance="a:10575")])
    wait_until(lambda: len(am.alerts()) == 1, timeout=10)
    am.post_alerts(
        [
            alert(alertname=name, severity="warning", instance=instance)
            for name in SENSOR_HEALTH
            for instance in ("a:10575", "b:10575")
        ]
    )

    def inhibited() -> dict[tuple[str, str], bool] | None:
        held = {
            (a["labels"]["alertname"], a["labels"]["instance"]): bool(a["status"]["inhibitedBy"])
            for a in am.alerts()
        }
        return held if len(held) == 1 + 2 * len(SENSOR_HEALTH) else None

    seen = wait_until(inhibited, timeout=10)
    assert {key for key, muted in seen.items() if muted} == {
        (name, "a:10575") for name in SENSOR_HEALTH
    }


@pytest.mark.parametrize("in_window", [True, False], ids=["inside", "outside"])
def test_the_maintenance_window_mutes_biomed_tickets_but_never_pages(
    alertmanager_factory: Callable[..., Alertmanager],
    webhook_receiver: WebhookReceiver,
    in_window: bool,
) -> None:
    config = fast_alertmanager_config(webhook_receiver.url("/"), keep_time_intervals=True)
    # Same route and interval name as shipped; only the window moves to (or away from) now.
    today = datetime.datetime.now(datetime.UTC)
    day = today if in_window else today + datetime.timedelta(days=3)
    (window,) = config["time_intervals"]
    window["time_intervals"] = [{"weekdays": [day.strftime("%A").lower()], "location": "UTC"}]
    am = alertmanager_factory(config)
    am.post_alerts(
        [
            alert(
                alertname="SantinelPolicyViolation",
                severity="warning",
                criticality="medium",
                instance="a",
                device="pacs-1",
            ),
            alert(
                alertname="SantinelAnomalyCritical",
                severity="critical",
                criticality="medium",
                instance="a",
                device="pacs-1",
            ),
            alert(
                alertname="SantinelAnomalyWarning",
                severity="warning",
                criticality="life_sustaining",
                instance="a",
                device="pump-1",
            ),
        ]
    )
    wait_until(lambda: webhook_receiver.alerts(path="/biomed-oncall-pager"), timeout=15)
    wait_until(lambda: webhook_receiver.alerts(path="/clinical-pager"), timeout=15)
    if in_window:
        time.sleep(3)
        assert webhook_receiver.alerts(path="/biomed-ticket") == []
    else:
        wait_until(lambda: webhook_receiver.alerts(path="/biomed-ticket"), timeout=15)
