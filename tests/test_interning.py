"""Interned keys: dense ids for rows of name ids, exact whatever the hashes (interning.py)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor import interning
from monitor.interning import KeyTable, NameTable


def test_names_are_numbered_once_in_order_of_first_sight() -> None:
    names = NameTable()
    assert [names.id(n) for n in ("a", "b", "a", "c", "b")] == [0, 1, 0, 2, 1]
    assert names.names == ["a", "b", "c"]
    assert len(names) == 3


def test_looking_a_name_up_numbers_it_and_reading_does_not() -> None:
    names = NameTable()
    assert [names.ids[n] for n in ("a", "b", "a")] == [0, 1, 0]
    assert names.ids.get("c", -1) == -1 and "c" not in names.ids
    assert names.names == ["a", "b"] and len(names) == 2
    assert names.id("c") == 2 and names.names[2] == "c"


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 5), st.integers(0, 3)), max_size=300))
def test_equal_rows_share_an_id_and_ids_are_dense_in_order_of_first_sight(
    rows: list[tuple[int, int, int]],
) -> None:
    table = KeyTable(3, capacity=2)  # small, so that interning grows it many times
    expected: dict[tuple[int, int, int], int] = {}
    got: list[int] = []
    for start in range(0, len(rows), 7):  # in batches, as the pipeline interns
        chunk = rows[start : start + 7]
        got.extend(table.intern(np.array(chunk, np.int32).reshape(-1, 3)).tolist())
    for row in rows:
        expected.setdefault(row, len(expected))
    assert got == [expected[row] for row in rows]
    assert len(table) == len(expected)
    if rows:
        ids = np.arange(len(table))
        assert [tuple(r) for r in table.rows(ids).tolist()] == list(expected)
        assert table.lookup(np.array(list(expected), np.int32)).tolist() == ids.tolist()


def test_rows_that_start_probing_at_one_place_keep_their_own_ids() -> None:
    """A probe compares whole rows, so rows whose hashes meet in the index stay apart."""
    table = KeyTable(2, capacity=8)
    mask = np.uint64(len(table._index) - 1)

    def start(row: tuple[int, int]) -> int:
        h = interning._row_hash(np.array(row, np.int32))
        return int((h >> np.uint64(20)) & mask)

    first = (0, 0)
    meeting = [row for row in ((k, 1) for k in range(1000)) if start(row) == start(first)][:3]
    assert len(meeting) == 3
    rows = np.array([first, *meeting], np.int32)
    assert table.intern(rows).tolist() == [0, 1, 2, 3]
    assert table.lookup(rows[::-1]).tolist() == [3, 2, 1, 0]
    assert table.intern(rows[::-1]).tolist() == [3, 2, 1, 0]
    assert len(table) == 4


def test_a_row_never_interned_is_not_found() -> None:
    table = KeyTable(4)
    table.intern(np.array([[1, 2, 3, 4]], np.int32))
    assert table.lookup(np.array([[1, 2, 3, 5], [1, 2, 3, 4]], np.int32)).tolist() == [-1, 0]
