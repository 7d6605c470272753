"""The metric names the deploy files rely on are the ones DESIGN.md promises."""

from __future__ import annotations

import pytest

from tests.conftest import SHARED
from tests.deploy.contract import DESIGN_METRICS, design_table_metrics


def test_contract_list_matches_the_design_metrics_table() -> None:
    design = SHARED / "docs" / "DESIGN.md"
    if not design.is_file():
        pytest.skip(f"needs the shared DESIGN.md at {design}, which is absent")
    assert design_table_metrics(design) == DESIGN_METRICS
