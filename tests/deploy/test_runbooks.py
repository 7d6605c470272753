"""Every alert has a runbook page with the four on-call sections; no page without an alert."""

from __future__ import annotations

import re

import pytest
import yaml

from tests.deploy.conftest import ALERT_RULES, RUNBOOKS

SECTIONS = ("## What it means", "## How to check", "## What to do", "## Whom to call")


def alert_names() -> list[str]:
    groups = yaml.safe_load(ALERT_RULES.read_text())["groups"]
    return sorted({r["alert"] for g in groups for r in g["rules"] if "alert" in r})


@pytest.mark.parametrize("name", alert_names())
def test_runbook_page_has_the_on_call_sections_in_order(name: str) -> None:
    text = (RUNBOOKS / f"{name}.md").read_text()
    assert text.startswith(f"# {name}\n")
    positions = [text.find(section) for section in SECTIONS]
    assert all(p >= 0 for p in positions), (
        f"missing: {[s for s, p in zip(SECTIONS, positions, strict=True) if p < 0]}"
    )
    assert positions == sorted(positions)
    for start, end in zip(positions, [*positions[1:], len(text)], strict=True):
        body = text[start:end].split("\n", 1)[1]
        assert len(body.split()) >= 5, "each section says something"


def test_no_runbook_page_without_an_alert_and_the_index_lists_them_all() -> None:
    pages = {p.stem for p in RUNBOOKS.glob("Santinel*.md")}
    assert pages == set(alert_names())
    index = (RUNBOOKS / "README.md").read_text()
    assert set(re.findall(r"\[(Santinel\w+)\]\(\1\.md\)", index)) == set(alert_names())
