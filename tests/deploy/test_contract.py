"""The metric names the deploy files rely on are the ones DESIGN.md promises."""

from __future__ import annotations

import re

import pytest

from tests.conftest import REPO, SHARED
from tests.deploy.contract import (
    DESIGN_METRICS,
    SANTINEL_METRICS,
    WORKER_METRICS,
    design_table_metrics,
)


def test_contract_list_matches_the_design_metrics_table() -> None:
    design = SHARED / "docs" / "DESIGN.md"
    if not design.is_file():
        pytest.skip(f"needs the shared DESIGN.md at {design}, which is absent")
    assert design_table_metrics(design) == DESIGN_METRICS


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
