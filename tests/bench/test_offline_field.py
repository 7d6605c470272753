"""bench/offline_field.py and the generated captures it measures: the dense capture is the
same mix in less capture time, kept apart from the 10-minute one, and each table's heading
says how dense its capture is."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))

import harness  # noqa: E402
import offline_field  # noqa: E402

PACKETS = 3000


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the default capture, the dense one) of PACKETS packets, in a directory of their own."""
    keep = harness.GENERATED_DIR
    harness.GENERATED_DIR = tmp_path_factory.mktemp("generated")
    try:
        return (
            harness.generated_capture(PACKETS),
            harness.generated_capture(PACKETS, seconds=10.0),
        )
    finally:
        harness.GENERATED_DIR = keep


def test_the_dense_capture_is_a_file_of_its_own_with_the_same_packets_in_less_time(
    generated: tuple[Path, Path],
) -> None:
    spread, dense = generated
    assert spread != dense and spread.parent == dense.parent
    spread_packets, spread_span = offline_field.capture_extent(spread)
    dense_packets, dense_span = offline_field.capture_extent(dense)
    assert spread_packets == dense_packets == PACKETS
    # the 10-minute capture spans its 10 minutes (and the connections' tails a little more)
    assert 600 * 0.9 <= spread_span <= 600 * 1.2
    assert dense_span < spread_span / 5


def test_a_generated_capture_is_written_once_and_kept(generated: tuple[Path, Path]) -> None:
    _, dense = generated
    written = dense.stat().st_mtime_ns
    keep = harness.GENERATED_DIR
    harness.GENERATED_DIR = dense.parent
    try:
        assert harness.generated_capture(PACKETS, seconds=10.0) == dense
    finally:
        harness.GENERATED_DIR = keep
    assert dense.stat().st_mtime_ns == written


def test_the_heading_gives_the_span_in_fitting_units_and_the_mean_rate() -> None:
    assert offline_field.density(1_000_000, 30.04) == (
        " over 30 s of capture time (33,289 packets/s)"
    )
    assert offline_field.density(1_000_000, 624.2) == (
        " over 10 min of capture time (1,602 packets/s)"
    )
    assert offline_field.density(65_615, 12_940_297.2) == (
        " over 150 days of capture time (0.005 packets/s)"
    )
    assert offline_field.density(10, 0.0) == ""
