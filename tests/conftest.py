"""Fixtures shared by the whole suite: where the shared captures are, how to run the CLI, and
the garbage collector as each test found it."""

from __future__ import annotations

import gc
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
SHARED_PCAPS = SHARED / "data" / "pcaps"
TEST_DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture(autouse=True)
def collector_as_found() -> Iterator[None]:
    """What a test tunes of the collector is undone after it. The benchmarks' harness tunes
    it as the santinel command does (collect rarely, set every object alive aside for good):
    left so, the rest of a suite worker's tests collected no cycle for long, and the errors
    of damaged captures, each holding a descriptor until collected, ran the process out of
    descriptors."""
    threshold = gc.get_threshold()
    yield
    if gc.get_freeze_count():
        gc.unfreeze()
    if gc.get_threshold() != threshold:
        gc.set_threshold(*threshold)


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
