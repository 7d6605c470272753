"""The process-wide collector settings a long analysis runs with."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from monitor.runtime import YOUNG_GENERATION_THRESHOLD, tune_garbage_collector


@pytest.fixture
def restored_collector() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


def test_tuning_collects_rarely_and_sets_start_up_objects_aside(restored_collector: None) -> None:
    gc.unfreeze()
    tune_garbage_collector()
    assert gc.get_threshold()[0] == YOUNG_GENERATION_THRESHOLD
    assert gc.get_freeze_count() > 1000  # the modules and objects of the test process


def test_memory_is_still_reclaimed_after_tuning(restored_collector: None) -> None:
    tune_garbage_collector()

    class Node:
        def __init__(self) -> None:
            self.other: Node | None = None

    a, b = Node(), Node()
    a.other, b.other = b, a  # a cycle only the collector can free
    del a, b
    assert gc.collect() >= 2
