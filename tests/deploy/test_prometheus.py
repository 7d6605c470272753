"""Prometheus side of the deploy files: promtool checks, unit tests, alert conventions."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import (
    ALERT_RULES,
    PROMETHEUS_DIR,
    PROMTOOL_SUITES,
    RECORDING_RULES,
    RULES_DIR,
    RUNBOOKS,
)
from tests.deploy.contract import (
    PROMETHEUS_METRICS,
    SANTINEL_METRICS,
    recorded_metrics_in,
    santinel_metrics_in,
)

RUNBOOK_BASE = "https://santinel.invalid/docs/runbooks/"
SEVERITIES = {"critical", "warning", "none"}


def load_rules(path: Path) -> list[dict[str, Any]]:
    groups = yaml.safe_load(path.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def alert_rules() -> list[dict[str, Any]]:
    return [r for r in load_rules(ALERT_RULES) if "alert" in r]


def alert_names() -> set[str]:
    return {r["alert"] for r in alert_rules()}


def recording_names() -> set[str]:
    return {r["record"] for r in load_rules(RECORDING_RULES)}


def run(*command: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=cwd)


def test_promtool_accepts_every_rule_file_with_all_lints_fatal(promtool: str) -> None:
    files = sorted(str(p) for p in RULES_DIR.glob("*.yml"))
    result = run(promtool, "check", "rules", "--lint=all", "--lint-fatal", *files)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(files)


@pytest.mark.parametrize("config", ["prometheus.yml", "prometheus-multi.yml"])
def test_promtool_accepts_the_scrape_configs_and_their_rule_files(
    promtool: str, config: str
) -> None:
    result = run(
        promtool, "check", "config", "--lint=all", "--lint-fatal", config, cwd=PROMETHEUS_DIR
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 rule files found" in result.stdout


@pytest.mark.parametrize("suite", PROMTOOL_SUITES, ids=lambda p: p.stem)
def test_promtool_unit_suite_passes(promtool: str, suite: Path) -> None:
    result = run(promtool, "test", "rules", str(suite))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_fail_on_a_wrong_expectation(promtool: str, tmp_path: Path) -> None:
    """Guards the wrapper above: a suite expecting the wrong severity must fail."""
    suite = yaml.safe_load((PROMTOOL_SUITES[0].parent / "sensor.yml").read_text())
    suite["rule_files"] = [str(ALERT_RULES)]
    down = suite["tests"][0]["alert_rule_test"][1]["exp_alerts"][0]["exp_labels"]
    down["severity"] = "warning"
    broken = tmp_path / "broken.yml"
    broken.write_text(yaml.safe_dump(suite))
    result = run(promtool, "test", "rules", str(broken))
    assert result.returncode != 0
    assert "SantinelSensorDown" in result.stdout + result.stderr


def unit_cases() -> list[tuple[str, bool]]:
    """(alertname, fires) for every alert_rule_test of every suite."""
    cases = []
    for suite in PROMTOOL_SUITES:
        for test in yaml.safe_load(suite.read_text())["tests"]:
            for case in test.get("alert_rule_test", []):
                cases.append((case["alertname"], bool(case.get("exp_alerts"))))
    return cases


# The dead man's switch fires by definition; its cases can only show it firing.
ALWAYS_FIRING = {"SantinelWatchdog"}


def test_every_alert_has_a_firing_and_a_not_firing_unit_case() -> None:
    cases = set(unit_cases())
    missing = sorted(
        f"{name} ({'firing' if fires else 'not firing'})"
        for name in alert_names()
        for fires in (True, False)
        if (name, fires) not in cases and not (name in ALWAYS_FIRING and not fires)
    )
    assert not missing, f"alerts without a promtool case: {missing}"
    unknown = {name for name, _ in cases} - alert_names()
    assert not unknown, f"unit cases for alerts that do not exist: {unknown}"


def test_every_recording_rule_has_a_unit_case() -> None:
    tested = {
        case["expr"]
        for suite in PROMTOOL_SUITES
        for test in yaml.safe_load(suite.read_text())["tests"]
        for case in test.get("promql_expr_test", [])
    }
    assert recording_names() <= tested, recording_names() - tested


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda r: r["alert"])
def test_alert_follows_the_mixin_conventions(rule: dict[str, Any]) -> None:
    name = rule["alert"]
    assert re.fullmatch(r"Santinel(?:[A-Z][a-z]+)+", name), "CamelCase with the Santinel prefix"
    annotations = rule["annotations"]
    assert annotations["summary"][0].isupper() and annotations["summary"].endswith(".")
    assert annotations["description"].strip()
    assert annotations["runbook_url"] == f"{RUNBOOK_BASE}{name}.md"
    assert (RUNBOOKS / f"{name}.md").is_file(), "every alert has a runbook page"
    severity = rule.get("labels", {}).get("severity")
    if severity is None:
        # Anomaly alerts keep the severity the detector gave the series.
        assert "santinel_anomaly_active" in rule["expr"]
    else:
        assert severity in SEVERITIES


def device_alerts() -> list[dict[str, Any]]:
    """Alerts about one device: they read a per-device series (label ``device``)."""
    per_device = {m for m, labels in SANTINEL_METRICS.items() if "device" in labels}
    return [r for r in alert_rules() if santinel_metrics_in(r["expr"]) & per_device]


def test_the_device_alerts_are_recognised() -> None:
    assert {r["alert"] for r in device_alerts()} == {
        "SantinelDeviceSilent",
        "SantinelNewUnknownDevice",
        "SantinelNewExternalDestination",
        "SantinelPolicyViolation",
        "SantinelAnomalyCritical",
        "SantinelAnomalyWarning",
    }


@pytest.mark.parametrize("rule", device_alerts(), ids=lambda r: r["alert"])
def test_device_alerts_carry_the_clinical_criticality(rule: dict[str, Any]) -> None:
    expr = rule["expr"]
    joined = re.search(r"group_left\s*\(([^)]*)\)\s*santinel_device_info", expr)
    if joined:
        assert "criticality" in joined.group(1)
    else:
        # The alert is about the info series itself, which has the label.
        assert expr.lstrip("( \n").startswith("santinel_device_info")


@pytest.mark.parametrize("path", [ALERT_RULES, RECORDING_RULES], ids=lambda p: p.name)
def test_rules_read_only_metrics_of_the_contract(path: Path) -> None:
    for rule in load_rules(path):
        expr = rule["expr"]
        unknown = santinel_metrics_in(expr) - set(SANTINEL_METRICS)
        assert not unknown, f"{rule.get('alert') or rule.get('record')}: {unknown}"
        assert recorded_metrics_in(expr) <= recording_names()
        for word in re.findall(r"(?<![\w:])(up|scrape_\w+)(?=\{)", expr):
            assert word in PROMETHEUS_METRICS


def test_silence_has_no_absent_tricks() -> None:
    for rule in alert_rules():
        assert "absent(" not in rule["expr"], rule["alert"]
