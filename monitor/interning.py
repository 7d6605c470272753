"""Interned keys: dense integer ids for tuples of names, held in arrays rather than objects.

The pipeline sums a batch's packets by integer, per side of each flow: by accounting key
(device, peer, service, protocol) and by conversation key (device, peer, service). A million
flows bring up to four million such keys. As Python tuples in a dict they cost about 160
bytes each; here a name is interned once (``NameTable``), a key is one row of its names'
ids in an int32 array, and a compiled open-addressing index (int32 ids, at most half full)
finds a row's id from its hash: 20 to 40 bytes per key, interned a whole batch at a time.

Promises: equal rows get the same id and different rows different ids (a probe compares
whole rows, so hash collisions cost only time); ids are dense, 0 to ``len(table) - 1``, in
order of first sight; ``rows(ids)`` gives the rows back. Nothing here ever holds a packet's
content: names are device ids, peer labels, services and protocol names.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
import numpy.typing as npt

from monitor.flows import _mix

EMPTY = -1


class _Numbering(dict[str, int]):
    """name -> number, where a name not yet numbered gets the next one when it is looked up
    (``numbering[name]``: a hit costs a dict lookup, not a call)."""

    __slots__ = ("names",)

    def __init__(self, names: list[str]) -> None:
        super().__init__()
        self.names = names

    def __missing__(self, name: str) -> int:
        number = self[name] = len(self.names)
        self.names.append(name)
        return number


class NameTable:
    """Each distinct name once, numbered in order of first sight: ``ids[name]`` numbers a
    name, new or not (``ids.get`` and ``in`` only read); ``names[number]`` gives it back."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.ids: dict[str, int] = _Numbering(self.names)

    def __len__(self) -> int:
        return len(self.names)

    def id(self, name: str) -> int:
        return self.ids[name]


class KeyTable:
    """Rows of ``width`` name ids, each with a dense id."""

    def __init__(self, width: int, capacity: int = 1024) -> None:
        self.width = width
        capacity = 1 << max(0, capacity - 1).bit_length()  # the index's mask needs a power of 2
        self._count = 0
        self._rows = np.zeros((capacity, width), np.int32)
        self._index = np.full(2 * capacity, EMPTY, np.int32)

    def __len__(self) -> int:
        return self._count

    def intern(self, rows: npt.NDArray[np.integer[Any]]) -> npt.NDArray[np.int64]:
        """The id of each row of ``rows`` (shape ``(n, width)``), new rows numbered next."""
        rows = np.ascontiguousarray(rows, np.int32).reshape(-1, self.width)
        self._make_room(rows.shape[0])
        ids = np.empty(rows.shape[0], np.int64)
        self._count = _intern(self._index, self._rows, self._count, rows, ids)
        return ids

    def lookup(self, rows: npt.NDArray[np.integer[Any]]) -> npt.NDArray[np.int64]:
        """The id of each row of ``rows``, or -1 for a row never interned."""
        rows = np.ascontiguousarray(rows, np.int32).reshape(-1, self.width)
        ids = np.empty(rows.shape[0], np.int64)
        _lookup(self._index, self._rows, rows, ids)
        return ids

    def rows(self, ids: npt.NDArray[np.int64]) -> npt.NDArray[np.int32]:
        """The rows of ``ids``, shape ``(len(ids), width)``."""
        return self._rows[: self._count][ids]

    def _make_room(self, incoming: int) -> None:
        needed = self._count + incoming
        capacity = self._rows.shape[0]
        if needed <= capacity:
            return
        while capacity < needed:
            capacity *= 2
        rows = np.zeros((capacity, self.width), np.int32)
        rows[: self._count] = self._rows[: self._count]
        self._rows = rows
        self._index = np.empty(0, np.int32)  # the old index goes before the new one is made
        # at most half full, so a probe meets an empty place soon
        self._index = np.full(2 * capacity, EMPTY, np.int32)
        _reindex(self._index, self._rows, self._count)


@numba.njit(cache=True, inline="always")  # type: ignore[misc]
def _row_hash(row: npt.NDArray[np.int32]) -> np.uint64:
    h = np.uint64(0x243F6A8885A308D3)
    for value in row:
        h = _mix(h, np.uint64(np.uint32(value)))
    return h


@numba.njit(cache=True, inline="always")  # type: ignore[misc]
def _place(
    index: npt.NDArray[np.int32], table_rows: npt.NDArray[np.int32], row: npt.NDArray[np.int32]
) -> np.uint64:
    """Where ``row`` is in the linear-probing index, or the empty place it would take."""
    mask = np.uint64(index.shape[0] - 1)
    p = (_row_hash(row) >> np.uint64(20)) & mask
    while True:
        found = index[p]
        if found == EMPTY:
            return p
        same = True
        for k in range(row.shape[0]):
            if table_rows[found, k] != row[k]:
                same = False
                break
        if same:
            return p
        p = (p + np.uint64(1)) & mask


@numba.njit(cache=True)  # type: ignore[misc]
def _intern(
    index: npt.NDArray[np.int32],
    table_rows: npt.NDArray[np.int32],
    count: int,
    rows: npt.NDArray[np.int32],
    out: npt.NDArray[np.int64],
) -> int:
    for i in range(rows.shape[0]):
        p = _place(index, table_rows, rows[i])
        if index[p] == EMPTY:
            index[p] = count
            table_rows[count] = rows[i]
            count += 1
        out[i] = index[p]
    return count


@numba.njit(cache=True)  # type: ignore[misc]
def _lookup(
    index: npt.NDArray[np.int32],
    table_rows: npt.NDArray[np.int32],
    rows: npt.NDArray[np.int32],
    out: npt.NDArray[np.int64],
) -> None:
    for i in range(rows.shape[0]):
        out[i] = index[_place(index, table_rows, rows[i])]


@numba.njit(cache=True)  # type: ignore[misc]
def _reindex(index: npt.NDArray[np.int32], table_rows: npt.NDArray[np.int32], count: int) -> None:
    mask = np.uint64(index.shape[0] - 1)
    for found in range(count):
        p = (_row_hash(table_rows[found]) >> np.uint64(20)) & mask
        while index[p] != EMPTY:
            p = (p + np.uint64(1)) & mask
        index[p] = found


def warm_up() -> None:
    """Load the compiled helpers (see ``monitor.flows.warm_up``)."""
    table = KeyTable(2, capacity=1)
    table.intern(np.zeros((2, 2), np.int32))
    table.intern(np.ones((1, 2), np.int32))  # grows: the index is rebuilt
    table.lookup(np.zeros((1, 2), np.int32))
