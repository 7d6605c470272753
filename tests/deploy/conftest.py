"""Shared paths and tool lookups for the deploy tests; registers the promstack fixtures."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.deploy.sample_sensor import sample_sensor  # noqa: F401  (pytest fixture)
from tests.support.promstack import (  # noqa: F401  (pytest fixtures)
    alertmanager_factory,
    prometheus_factory,
    webhook_receiver,
)

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
PROMETHEUS_DIR = DEPLOY / "prometheus"
RULES_DIR = PROMETHEUS_DIR / "rules"
ALERT_RULES = RULES_DIR / "santinel-alerts.yml"
RECORDING_RULES = RULES_DIR / "santinel-recording.yml"
ALERTMANAGER_CONFIG = DEPLOY / "alertmanager" / "alertmanager.yml"
PROMTOOL_SUITES = sorted((Path(__file__).resolve().parent / "promtool").glob("*.yml"))
RUNBOOKS = REPO / "docs" / "runbooks"
DASHBOARDS = REPO / "dashboards"


def tool(name: str, package: str) -> str:
    """The path of a command-line tool, or skip the test naming the Debian package to install."""
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"needs {name} (Debian package {package})")
    return path


@pytest.fixture(scope="session")
def promtool() -> str:
    return tool("promtool", "prometheus")


@pytest.fixture(scope="session")
def amtool() -> str:
    return tool("amtool", "prometheus-alertmanager")
