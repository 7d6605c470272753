"""Read the generated Grafana dashboards and run their queries the way Grafana would.

Grafana is not needed: template variables are resolved against Prometheus's label-values API
(exactly what ``label_values(selector, label)`` does in Grafana), ``$__rate_interval`` is given
the value Grafana would compute for the scrape interval, and every panel query is sent to
Prometheus's query API.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.deploy.conftest import DASHBOARDS
from tests.support.promstack import Prometheus

_LABEL_VALUES = re.compile(r"^label_values\((.*),\s*(\w+)\)$")


def dashboard_files() -> list[Path]:
    return sorted(DASHBOARDS.glob("*.json"))


def load(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, also those nested in collapsed rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(panel title, PromQL) for every target of every panel."""
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]


def variables(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [v for v in dashboard["templating"]["list"] if v["type"] == "query"]


def variable_query(variable: dict[str, Any]) -> str:
    query = variable["query"]
    return str(query["query"] if isinstance(query, dict) else query)


def substitute(expr: str, values: dict[str, str], *, rate_interval: str) -> str:
    expr = expr.replace("$__rate_interval", rate_interval)
    return re.sub(r"\$(\w+)", lambda m: values[m.group(1)], expr)


def resolve_variables(prometheus: Prometheus, dashboard: dict[str, Any]) -> dict[str, list[str]]:
    """Candidate values per query variable: its "All" value when it has one (Grafana's default
    for these dashboards), else every value the label-values query returns."""
    resolved: dict[str, list[str]] = {}
    for variable in variables(dashboard):
        match = _LABEL_VALUES.match(variable_query(variable))
        assert match, f"unsupported variable query: {variable_query(variable)}"
        selector = re.sub(r"\$(\w+)", lambda m: resolved[m.group(1)][0], match.group(1))
        label = match.group(2)
        values: list[str] = prometheus.api(f"label/{label}/values", **{"match[]": selector})
        if variable.get("includeAll"):
            resolved[variable["name"]] = [variable["allValue"]]
        else:
            resolved[variable["name"]] = sorted(values)
    return resolved


def queries_without_data(
    prometheus: Prometheus, dashboard: dict[str, Any], *, rate_interval: str
) -> list[str]:
    """Panel queries that return no series for ANY choice of the single-value variables."""
    resolved = resolve_variables(prometheus, dashboard)
    names = sorted(resolved)
    empty = []
    for title, expr in queries(dashboard):
        for choice in itertools.product(*(resolved[n] for n in names)):
            values = dict(zip(names, choice, strict=True))
            if prometheus.query(substitute(expr, values, rate_interval=rate_interval)):
                break
        else:
            empty.append(f"{dashboard['uid']} / {title}: {expr}")
    return empty
