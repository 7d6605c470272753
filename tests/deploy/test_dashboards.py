"""Dashboard lint (the grafana/dashboard-linter rules that matter, without Grafana) and every
panel query run against a real Prometheus scraping a sensor-shaped exposition."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import DASHBOARDS, DEPLOY, PROMETHEUS_DIR, RECORDING_RULES
from tests.deploy.contract import (
    PROMETHEUS_METRICS,
    SANTINEL_METRICS,
    recorded_metrics_in,
    santinel_metrics_in,
)
from tests.deploy.dashboards_support import (
    dashboard_files,
    load,
    panels,
    queries,
    queries_without_data,
    substitute,
    variable_query,
    variables,
)
from tests.support.promstack import Prometheus, prometheus_config, scrape_job, wait_until

STABLE_UIDS = {
    "santinel-anomalies.json": "santinel-anomalies",
    "santinel-device.json": "santinel-device",
    "santinel-fleet.json": "santinel-fleet",
    "santinel-sensor-health.json": "santinel-sensor-health",
}
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
DASHBOARD_IDS = [p.name for p in dashboard_files()]


@pytest.fixture(params=dashboard_files(), ids=DASHBOARD_IDS)
def dashboard(request: pytest.FixtureRequest) -> dict[str, Any]:
    return load(request.param)


def all_keys(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield key
            yield from all_keys(value)
    elif isinstance(node, list):
        for item in node:
            yield from all_keys(item)


def recording_rules() -> set[str]:
    groups = yaml.safe_load(RECORDING_RULES.read_text())["groups"]
    return {r["record"] for g in groups for r in g["rules"]}


def test_committed_dashboards_are_exactly_what_the_generator_writes(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(DASHBOARDS / "generate.py"), str(tmp_path)], check=True, timeout=60
    )
    generated = {p.name: p.read_text() for p in tmp_path.glob("*.json")}
    committed = {p.name: p.read_text() for p in dashboard_files()}
    assert generated.keys() == committed.keys()
    stale = [name for name in generated if generated[name] != committed[name]]
    assert not stale, f"run python3 dashboards/generate.py: stale {stale}"


def test_uids_are_stable_unique_and_short() -> None:
    uids = {p.name: load(p)["uid"] for p in dashboard_files()}
    assert uids == STABLE_UIDS
    assert all(len(uid) <= 40 for uid in uids.values())
    titles = [load(p)["title"] for p in dashboard_files()]
    assert len(set(titles)) == len(titles)


def test_no_import_only_inputs_and_not_editable(dashboard: dict[str, Any]) -> None:
    assert "__inputs" not in set(all_keys(dashboard))
    assert "${DS_" not in str(dashboard)
    assert dashboard["editable"] is False


def test_one_datasource_variable_used_by_every_panel_target_and_variable(
    dashboard: dict[str, Any],
) -> None:
    ds_vars = [v for v in dashboard["templating"]["list"] if v["type"] == "datasource"]
    assert len(ds_vars) == 1
    assert ds_vars[0]["name"] == "datasource" and ds_vars[0]["query"] == "prometheus"
    for panel in panels(dashboard):
        assert panel["datasource"] == DATASOURCE, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]
    for variable in variables(dashboard):
        assert variable["datasource"] == DATASOURCE, variable["name"]


def test_every_panel_has_title_description_unit_and_a_query(dashboard: dict[str, Any]) -> None:
    for panel in panels(dashboard):
        assert panel["title"] and panel["description"], panel
        assert panel["fieldConfig"]["defaults"].get("unit"), panel["title"]
        assert panel["targets"], panel["title"]


def test_rates_and_increases_use_the_rate_interval(dashboard: dict[str, Any]) -> None:
    for title, expr in queries(dashboard):
        for window in re.findall(r"\[([^\]]*)\]", expr):
            assert window == "$__rate_interval", f"{title}: [{window}]"
        assert "irate(" not in expr, title


def test_counters_are_only_read_through_rate_or_increase(dashboard: dict[str, Any]) -> None:
    for title, expr in queries(dashboard):
        counters = re.findall(r"(?<![\w:])santinel_\w+_total\b", expr)
        wrapped = re.findall(r"(?:rate|increase)\(\s*santinel_\w+_total\b", expr)
        assert len(counters) == len(wrapped), f"{title}: {expr}"


def test_queries_read_only_contract_metrics_and_recording_rules(
    dashboard: dict[str, Any],
) -> None:
    recorded = recording_rules()
    exprs = [expr for _, expr in queries(dashboard)]
    exprs += [variable_query(v) for v in variables(dashboard)]
    for expr in exprs:
        assert santinel_metrics_in(expr) <= set(SANTINEL_METRICS), expr
        assert recorded_metrics_in(expr) <= recorded, expr
        for name in re.findall(r"(?<![\w:])(up|scrape_\w+)(?=\{)", expr):
            assert name in PROMETHEUS_METRICS, expr


def test_every_query_parses_as_promql(promtool: str, tmp_path: Path) -> None:
    values = {"ward": ".*", "instance": ".+", "device": "pump-1"}
    rules = [
        {"record": f"dashboard:check:{i}", "expr": substitute(expr, values, rate_interval="1m")}
        for i, (_, expr) in enumerate(q for p in dashboard_files() for q in queries(load(p)))
    ]
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout


def test_provisioning_points_grafana_at_the_dashboards_and_prometheus() -> None:
    provisioning = DEPLOY / "grafana" / "provisioning"
    sources = yaml.safe_load((provisioning / "datasources" / "santinel.yml").read_text())
    prometheus = [d for d in sources["datasources"] if d["type"] == "prometheus"]
    assert len(prometheus) == 1 and prometheus[0]["isDefault"] is True
    scrape = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    assert prometheus[0]["jsonData"]["timeInterval"] == scrape["global"]["scrape_interval"]
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "santinel.yml").read_text())[
        "providers"
    ]
    assert provider["type"] == "file" and provider["allowUiUpdates"] is False
    assert provider["options"]["path"]


# ----------------------------------------------------------------------------------------------
# Every query against a real Prometheus


def test_every_dashboard_query_returns_data_from_a_sensor(
    prometheus_factory: Callable[..., Prometheus], sample_sensor: str
) -> None:
    shipped = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())["scrape_configs"][0]
    job = scrape_job("santinel", [sample_sensor], labels=shipped["static_configs"][0]["labels"])
    prom = prometheus_factory(prometheus_config([job], rule_files=[RECORDING_RULES]))
    # Enough scrapes for rates over the rate interval, and the recording rules evaluated.
    wait_until(
        lambda: prom.query("instance_class_criticality:santinel_device_info:count")
        and len(prom.query_range("up", start=_now() - 30, end=_now(), step=1)[0]["values"]) >= 5,
        timeout=30,
        message="5 scrapes and recording rules",
    )
    empty = [
        query
        for path in dashboard_files()
        for query in queries_without_data(prom, load(path), rate_interval="10s")
    ]
    assert not empty, "\n".join(empty)

    # The check itself can fail: a panel reading a series the sensor does not have is caught.
    broken = load(dashboard_files()[0])
    broken["panels"][0]["targets"][0]["expr"] = 'santinel_devices{device_class="toaster"}'
    assert len(queries_without_data(prom, broken, rate_interval="10s")) == 1


def _now() -> float:
    return time.time()
