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


def test_a_row_whose_hash_collides_with_another_gets_its_own_id() -> None:
    """A probe compares whole rows, not only hashes."""
    other = KeyTable(2)
    other.intern(np.array([[7, 9]], np.int32))
    table = KeyTable(2)
    table.intern(np.array([[1, 2]], np.int32))
    # give row [1, 2] the hash of row [7, 9], as a 64-bit collision would
    table._hashes[0] = other._hashes[0]
    table._index[:] = interning.EMPTY
    interning._reindex(table._index, table._hashes, len(table))
    assert table.lookup(np.array([[7, 9]], np.int32)).tolist() == [-1]
    assert table.intern(np.array([[7, 9], [7, 9]], np.int32)).tolist() == [1, 1]
    assert table.rows(np.array([0, 1])).tolist() == [[1, 2], [7, 9]]


def test_a_row_never_interned_is_not_found() -> None:
    table = KeyTable(4)
    table.intern(np.array([[1, 2, 3, 4]], np.int32))
    assert table.lookup(np.array([[1, 2, 3, 5], [1, 2, 3, 4]], np.int32)).tolist() == [-1, 0]
