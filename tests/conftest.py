"""Fixtures shared by the whole suite: where the shared captures are, and how to run the CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
SHARED_PCAPS = SHARED / "data" / "pcaps"
TEST_DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture(scope="session")
def shared_pcaps() -> Path:
    """The shared capture corpus; the test skips, saying so, when it is not beside the repo."""
    if not (SHARED_PCAPS / "MANIFEST.tsv").is_file():
        pytest.skip(f"needs the shared captures at {SHARED_PCAPS}, which is absent")
    return SHARED_PCAPS


def run_santinel(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run ``santinel ARGS`` from this checkout and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "monitor", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )
