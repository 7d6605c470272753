"""The whole alert path with real servers and a sensor-shaped endpoint: shipped rules (``for:``
removed) on Prometheus, shipped routing on Alertmanager, notifications at a webhook receiver.

This runs without the daemon (see ``test_end_to_end.py`` for the replayed lab capture): the
sample sensor's pump is silent for 200 s against a 30 s cadence and holds a new-external-peer
anomaly; it is life-sustaining, so both alerts must page the clinical pager, with labels and
annotations rendered, and nothing may page about the other device.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.conftest import PROMETHEUS_DIR, RECORDING_RULES
from tests.deploy.sample_sensor import PUMP, UNKNOWN
from tests.deploy.stacks import fast_alert_rules, fast_alertmanager_config
from tests.support.promstack import (
    Alertmanager,
    Prometheus,
    WebhookReceiver,
    prometheus_config,
    scrape_job,
    wait_until,
)


def test_shipped_rules_and_routes_page_the_clinical_pager_for_a_life_sustaining_pump(
    tmp_path: Path,
    prometheus_factory: Callable[..., Prometheus],
    alertmanager_factory: Callable[..., Alertmanager],
    webhook_receiver: WebhookReceiver,
    sample_sensor: str,
) -> None:
    am = alertmanager_factory(fast_alertmanager_config(webhook_receiver.url("/")))
    shipped = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())["scrape_configs"][0]
    labels = shipped["static_configs"][0]["labels"]
    prometheus_factory(
        prometheus_config(
            [scrape_job("santinel", [sample_sensor], labels=labels)],
            rule_files=[RECORDING_RULES, fast_alert_rules(tmp_path / "alerts.yml")],
            alertmanagers=[am.address],
        )
    )

    def paged(alertname: str) -> list[dict[str, Any]]:
        return [
            a
            for a in webhook_receiver.alerts(path="/clinical-pager")
            if a["labels"]["alertname"] == alertname
        ]

    silent = wait_until(lambda: paged("SantinelDeviceSilent"), timeout=30)[0]
    assert silent["labels"] == {
        "alertname": "SantinelDeviceSilent",
        "severity": "critical",
        "criticality": "life_sustaining",
        "device_class": "infusion_pump",
        "device": PUMP,
        "job": "santinel",
        "instance": sample_sensor,
        **labels,
    }
    assert silent["annotations"]["description"].startswith(
        f"infusion_pump {PUMP} (life_sustaining) on sensor {sample_sensor} has sent nothing for"
    )
    external = wait_until(lambda: paged("SantinelNewExternalDestination"), timeout=30)[0]
    assert external["labels"] == {
        "alertname": "SantinelNewExternalDestination",
        "severity": "critical",
        "criticality": "life_sustaining",
        "device_class": "infusion_pump",
        "detector": "new_external_peer",
        "device": PUMP,
        "job": "santinel",
        "instance": sample_sensor,
        **labels,
    }
    assert external["annotations"]["runbook_url"].endswith(
        "/docs/runbooks/SantinelNewExternalDestination.md"
    )
    # The dead man's switch gets the Watchdog; the unknown device pages nobody (this
    # Prometheus has no history of the sensor, so it is not "new").
    wait_until(lambda: webhook_receiver.alerts(path="/deadmans-switch"), timeout=30)
    assert not [a for a in webhook_receiver.alerts() if a["labels"].get("device") == UNKNOWN]
