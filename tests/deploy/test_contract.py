"""The metric names the deploy files rely on are the ones DESIGN.md promises."""

from __future__ import annotations

import re

import pytest

from tests.conftest import REPO, SHARED
from tests.deploy.contract import (
    ADDED_METRICS,
    DESIGN_METRICS,
    SANTINEL_METRICS,
    WORKER_METRICS,
    design_table_metrics,
)


def test_every_metric_of_the_design_table_is_in_the_contract_with_its_labels() -> None:
    design = SHARED / "docs" / "DESIGN.md"
    if not design.is_file():
        pytest.skip(f"needs the shared DESIGN.md at {design}, which is absent")
    table = design_table_metrics(design)
    assert set(DESIGN_METRICS) <= set(table), set(DESIGN_METRICS) - set(table)
    # Rows the design adopts from docs/metrics.md must keep the labels the code exports.
    assert {name: SANTINEL_METRICS.get(name) for name in table} == table


def test_metrics_page_lists_the_design_table_and_every_added_series() -> None:
    page = design_table_metrics(REPO / "docs" / "metrics.md")
    assert page == SANTINEL_METRICS
    assert not set(ADDED_METRICS) & set(DESIGN_METRICS)


def test_the_daemon_exposition_has_every_metric_the_deploy_files_read() -> None:
    golden = REPO / "tests" / "data" / "golden" / "metrics.prom"
    if not golden.is_file():
        pytest.skip(f"needs the daemon's golden exposition {golden}, not on this branch yet")
    exported = {
        re.split(r"[{ ]", line, maxsplit=1)[0]
        for line in golden.read_text().splitlines()
        if line and not line.startswith("#")
    }
    expected = set(SANTINEL_METRICS) - WORKER_METRICS
    assert expected <= exported, expected - exported
