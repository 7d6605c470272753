"""What is derived from window profiles across windows: cadence and volume series.

A ``WindowProfile`` (monitor.model) says what one device did in one window. This module
keeps what only a sequence of windows can tell:

- ``Cadence``: the reporting interval of one steady conversation (an HL7 feed, an MQTT
  publisher, a pump's check-in). Messages closer together than ``burst_gap`` seconds form
  one burst (one TLS record split into segments, a request and its retries); the interval is
  the gap between the starts of successive bursts. The typical interval is the **median** of
  the last ``max_gaps`` gaps, its spread the **MAD** (median absolute deviation). The last
  message time is kept, so a gap that spans a window boundary counts like any other. A
  device's cadences are rows of one ``CadenceTable``.
- ``VolumeHistory``: the per-window volume series of a device (packets and bytes each way,
  flows started, distinct peers) over a bounded number of windows, with median and MAD, and
  an hour-of-week view (per UTC hour of the week, the mean per window of that hour in each of
  the last ``seasonal_weeks`` weeks) that is used once enough weeks exist.

Promises: memory per device is bounded (ring buffers of fixed capacity, compact ``array``
storage); every value round-trips exactly through ``to_dict``/``from_dict`` (times are kept
to the microsecond, gaps to the millisecond, hourly means to 1/1000), so a baseline written
to SQLite or YAML and read back is the same baseline.
"""

from __future__ import annotations

import base64
import calendar
import functools
import math
import re
import sys
import time
from array import array
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numba
import numpy as np

from monitor.model import WindowProfile

VOLUME_FEATURES: tuple[str, ...] = (
    "tx_packets",
    "tx_bytes",
    "rx_packets",
    "rx_bytes",
    "flows",
    "peers",
)
"""The per-window volume features, in a fixed order."""

_UINT32_MAX = 2**32 - 1
_UINT64_MAX = 2**64 - 1
# an hour's sums of the volume features, then its window count: all nought (read only)
_NO_SUMS = array("Q", bytes(8 * (len(VOLUME_FEATURES) + 1)))
_EXACT_COUNT = 2**53  # the largest count a float64 holds exactly
# MAD of a normal distribution is 0.6745 sigma: scale it to be comparable with a std dev.
MAD_TO_SIGMA = 1.4826
HOURS_PER_WEEK = 168
# 1970-01-01 was a Thursday: shift so that slot 0 is Monday 00:00 UTC.
_EPOCH_WEEKDAY_OFFSET_HOURS = 3 * 24
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


class FormatError(ValueError):
    """A serialised profile or baseline that does not have the expected shape.

    The message names the field (a path like ``cadence.peer|tcp/443.gaps``), never a value.
    """


def quantize_time(t: float) -> float:
    """Round a capture time to the microsecond, so that it round-trips through ISO text."""
    return round(t * 1_000_000) / 1_000_000


@functools.lru_cache(maxsize=8192)  # facts learned in one window share its end time
def format_time(t: float) -> str:
    """``2021-03-08T15:22:15.831389Z`` for a capture time (UTC, microseconds)."""
    micros = round(t * 1_000_000)
    seconds, frac = divmod(micros, 1_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{frac:06d}Z"


_ISO = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})\.(\d{6})Z")


def parse_time(text: object, where: str) -> float:
    """The inverse of ``format_time``; raises ``FormatError`` naming ``where``."""
    if not isinstance(text, str):
        raise FormatError(f"{where}: expected a time like 2021-03-08T15:22:15.000000Z")
    value = _parse_iso(text)
    if value is None:
        raise FormatError(f"{where}: expected a valid time like 2021-03-08T15:22:15.000000Z")
    return value


@functools.lru_cache(maxsize=8192)  # a baseline repeats the same few window times
def _parse_iso(text: str) -> float | None:
    match = _ISO.fullmatch(text)
    if match is None:
        return None
    year, month, day, hour, minute, second, frac = (int(g) for g in match.groups())
    try:
        seconds = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
        if (month, day) != time.gmtime(seconds)[1:3] or hour > 23 or minute > 59 or second > 59:
            return None
    except (ValueError, OverflowError):
        return None
    return (seconds * 1_000_000 + frac) / 1_000_000


@dataclass(frozen=True, slots=True)
class RobustStats:
    """Median and MAD of a series, with how many values they come from."""

    median: float
    mad: float
    n: int

    def score(self, value: float, floor: float = 1.0, relative_floor: float = 0.1) -> float:
        """How many (MAD-scaled) standard deviations ``value`` is from the median.

        A perfectly flat history (MAD 0) would turn every small change into an infinite
        score: the spread used is at least ``floor`` (in the value's unit) and at least
        ``relative_floor`` times the median.
        """
        spread = max(self.mad * MAD_TO_SIGMA, floor, relative_floor * abs(self.median))
        return (value - self.median) / spread


def robust_stats(values: Sequence[float] | np.ndarray[Any, Any]) -> RobustStats | None:
    """Median and MAD of ``values``; ``None`` for an empty series."""
    if len(values) <= _SMALL:
        # Plain Python beats numpy's per-call overhead on the short series baselines keep.
        ordered = sorted(float(v) for v in values)
        if not ordered:
            return None
        median = _median_of_sorted(ordered)
        mad = _median_of_sorted(sorted(abs(v - median) for v in ordered))
        return RobustStats(median, mad, len(ordered))
    median, mad = _median_and_mad(np.asarray(values, dtype=np.float64))
    return RobustStats(float(median), float(mad), len(values))


def _median_and_mad(data: np.ndarray[Any, Any]) -> tuple[Any, Any]:
    """Median and MAD along the first axis of ``data`` (float64, not empty): numbers for a
    series, one per column for rows. One sort for each median: np.median costs five times as
    much on a baseline's few hundred numbers, and a daemon asks for every device, feature
    and window."""
    data = np.sort(data, axis=0)
    median = _median_of_sorted(data)
    deviations = np.abs(data - median)
    deviations.sort(axis=0)
    return median, _median_of_sorted(deviations)


def _median_of_sorted(ordered: Any) -> Any:
    """The median of a sorted list, or along the first axis of a sorted array (not empty)."""
    n = len(ordered)
    mid = n // 2
    return ordered[mid] if n % 2 else (ordered[mid - 1] + ordered[mid]) / 2


_SMALL = 128


class Ring:
    """A fixed-capacity ring of numbers in compact storage (``array`` of ``typecode``).

    Each entry is ``width`` numbers (a row); rows are appended until the capacity is
    reached, then the oldest is overwritten. ``values(column)`` returns one column, oldest
    first. A series of several features is one ring of rows rather than a ring per feature:
    a ring costs 140 bytes before its first number, and a baseline keeps one per device.
    """

    __slots__ = ("_data", "_next", "capacity", "width")

    def __init__(self, typecode: str, capacity: int, width: int = 1) -> None:
        if capacity < 1 or width < 1:
            raise ValueError("a ring needs a capacity and a width of at least 1")
        self.capacity = capacity
        self.width = width
        self._data: array[Any] = array(typecode)
        self._next = 0  # the row the next one overwrites once full

    def append(self, value: float) -> None:
        """Append one number to a ring of width 1."""
        if len(self._data) < self.capacity:
            self._data.append(value)
        else:
            self._data[self._next] = value
            self._next = (self._next + 1) % self.capacity

    def extend(self, values: Sequence[float]) -> None:
        """``append`` each of ``values`` in turn, to a ring of width 1."""
        data, capacity = self._data, self.capacity
        room = capacity - len(data)
        if room > 0:
            data.extend(values[:room])
            values = values[room:]
        if not values:
            return
        if len(values) >= capacity:  # the newest fill it: oldest first from the start
            data[:] = array(data.typecode, values[len(values) - capacity :])
            self._next = 0
            return
        start = self._next
        to_end = min(len(values), capacity - start)
        data[start : start + to_end] = array(data.typecode, values[:to_end])
        wrapped = len(values) - to_end
        if wrapped:
            data[:wrapped] = array(data.typecode, values[to_end:])
        self._next = (start + len(values)) % capacity

    def append_row(self, row: Sequence[float]) -> None:
        width = self.width
        if len(self._data) < self.capacity * width:
            self._data.extend(row)
        else:
            start = self._next * width
            self._data[start : start + width] = array(self._data.typecode, row)
            self._next = (self._next + 1) % self.capacity

    def values(self, column: int = 0) -> list[Any]:
        data = self._data[column :: self.width].tolist()
        return data[self._next :] + data[: self._next]

    def __len__(self) -> int:
        return len(self._data) // self.width

    def stats(self, column: int = 0) -> RobustStats | None:
        if not self._data:
            return None
        if len(self) <= _SMALL:
            return robust_stats(self._data[column :: self.width])
        numbers = np.frombuffer(self._data, dtype=self._data.typecode)
        return robust_stats(numbers[column :: self.width])

    def stats_columns(self) -> list[RobustStats | None]:
        """``stats(column)`` of every column, the same numbers, from one sort of the rows
        (a volume detector asks for all of a device's features every window)."""
        if len(self) <= _SMALL:
            return [self.stats(column) for column in range(self.width)]
        rows = np.frombuffer(self._data, dtype=self._data.typecode).reshape(-1, self.width)
        medians, mads = _median_and_mad(rows.astype(np.float64))
        n = rows.shape[0]
        return [RobustStats(m, d, n) for m, d in zip(medians.tolist(), mads.tolist(), strict=True)]

    def replace(self, values: Iterable[float]) -> None:
        """Set the contents of a ring of width 1 (oldest first); keeps the newest
        ``capacity`` values."""
        self.replace_columns([list(values)])

    def replace_columns(self, columns: Sequence[Sequence[float]]) -> None:
        """Set the contents from one sequence per column, of equal length, oldest first;
        keeps the newest ``capacity`` rows."""
        if len(columns) != self.width or len({len(c) for c in columns}) > 1:
            raise ValueError("replace_columns needs one column per width, of equal length")
        width = self.width
        kept = min(len(columns[0]), self.capacity)
        data: array[Any] = array(self._data.typecode, bytes(self._data.itemsize * kept * width))
        for column, values in enumerate(columns):
            newest: array[Any] = array(self._data.typecode, values[len(values) - kept :])
            data[column::width] = newest
        self._data = data
        self._next = 0


_NONE = math.nan  # a row's last message or burst start before its first message
# a row: last message, last burst start, messages, bursts (counts are exact up to 2**53)
_LAST_MESSAGE, _LAST_BURST, _MESSAGES, _BURSTS = range(4)
_ROW = 4


class CadenceTable:
    """The cadences of one device's conversations, one row each, in one array.

    A device of a large site has thousands of conversations, and most send once in a while:
    as an object each, a conversation's cadence cost about 130 bytes before its first gap;
    as a row of four numbers it costs 32, beside its key. A row's gaps live in a ``Ring``
    made at its first gap. Rows of forgotten conversations are used again.

    A mapping from conversation key to a ``Cadence`` (a view of its row): ``len``, ``in``,
    iteration over the keys, ``get``, ``[key]``, ``items``, ``del``; ``[key] = cadence``
    copies one in. ``observe(key, times)`` learns a window's messages of one conversation.
    """

    __slots__ = ("_data", "_free", "_gaps", "_rows", "burst_gap", "max_gaps")

    def __init__(self, burst_gap: float = 1.0, max_gaps: int = 64) -> None:
        if max_gaps < 1:
            raise ValueError("a cadence needs room for at least 1 gap")
        self.burst_gap = burst_gap
        self.max_gaps = max_gaps
        self._rows: dict[str, int] = {}
        self._data: array[float] = array("d")
        # made when first needed: most devices have a few conversations and no gap yet
        self._gaps: dict[int, Ring] | None = None
        self._free: list[int] | None = None

    # --- the mapping ------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._rows)

    def __iter__(self) -> Iterator[str]:
        return iter(self._rows)

    def __contains__(self, key: object) -> bool:
        return key in self._rows

    def get(self, key: str) -> Cadence | None:
        row = self._rows.get(key)
        return None if row is None else Cadence(_table=self, _row=row)

    def __getitem__(self, key: str) -> Cadence:
        return Cadence(_table=self, _row=self._rows[key])

    def items(self) -> list[tuple[str, Cadence]]:
        return [(key, Cadence(_table=self, _row=row)) for key, row in self._rows.items()]

    def __delitem__(self, key: str) -> None:
        row = self._rows.pop(key)
        if self._gaps is not None:
            self._gaps.pop(row, None)
        if self._free is None:
            self._free = []
        self._free.append(row)

    def __setitem__(self, key: str, cadence: Cadence) -> None:
        row = self._rows.get(key)
        if row is None:
            row = self._rows[key] = self._new_row()
        source, at = cadence._table, cadence._row * _ROW
        gaps = source._ring(cadence._row)
        kept = None if gaps is None else gaps.values()  # before: the source may be this row
        self._data[row * _ROW : row * _ROW + _ROW] = source._data[at : at + _ROW]
        if self._gaps is not None:
            self._gaps.pop(row, None)
        if kept:
            self._new_ring(row).replace(kept)

    # --- learning ---------------------------------------------------------------------------
    def observe(self, key: str, times: Iterable[float]) -> None:
        """Learn the messages of conversation ``key`` in one window (capture times, any
        order); gaps are measured between burst starts, across windows."""
        row = self._rows.get(key)
        if row is None:
            row = self._rows[key] = self._new_row()
        self._observe_row(row, times)

    def observe_all(self, conversations: Mapping[str, Sequence[float]]) -> None:
        """``observe(key, times)`` for each conversation of one window, its messages
        walked in one compiled pass when there are enough of them to pay for it."""
        rows_of = self._rows
        rows: list[int] = []
        lengths: list[int] = []
        timelines: list[Sequence[float]] = []
        for key, times in conversations.items():
            if not times:
                continue
            row = rows_of.get(key)
            if row is None:
                row = rows_of[key] = self._new_row()
            rows.append(row)
            lengths.append(len(times))
            timelines.append(times)
        total = sum(lengths)
        if total < _COMPILED_FROM:
            for row, times in zip(rows, timelines, strict=True):
                self._observe_row(row, times)
            return
        flat = np.fromiter(chain.from_iterable(timelines), np.float64, total)
        data = np.frombuffer(self._data, np.float64)
        try:
            gaps, gap_bounds = _observe_rows(
                data, np.array(rows, np.int64), np.array(lengths, np.int64), flat, self.burst_gap
            )
        finally:
            del data  # the array cannot grow while a view of it is alive
        starts = gap_bounds.tolist()
        for i, row in enumerate(rows):
            start, end = starts[i], starts[i + 1]
            if start != end:
                ring = self._ring(row)
                if ring is None:
                    ring = self._new_ring(row)
                ring.extend(gaps[start:end].tolist())

    def keep_latest(self, most: int) -> None:
        """Forget all but the ``most`` conversations that sent last (ties: by key)."""
        if len(self._rows) <= most:
            return
        data = self._data
        ranked = sorted(
            self._rows.items(),
            key=lambda kv: (_or_zero(data[kv[1] * _ROW + _LAST_MESSAGE]), kv[0]),
        )
        for key, _ in ranked[: len(ranked) - most]:
            del self[key]

    def forget_silent(self, limit: float, now: float) -> tuple[int, float]:
        """Forget the conversations whose last message is before ``limit`` (one with no
        message yet counts as sending ``now``); returns how many went and the oldest last
        message of those kept (``inf`` when none is)."""
        data = self._data
        gone, oldest = 0, math.inf
        for key, row in list(self._rows.items()):
            last = data[row * _ROW + _LAST_MESSAGE]
            if last != last:  # NaN: no message yet
                last = now
            if last < limit:
                del self[key]
                gone += 1
            elif last < oldest:
                oldest = last
        return gone, oldest

    def _ring(self, row: int) -> Ring | None:
        return None if self._gaps is None else self._gaps.get(row)

    def _new_ring(self, row: int) -> Ring:
        if self._gaps is None:
            self._gaps = {}
        ring = self._gaps[row] = Ring("I", self.max_gaps)
        return ring

    def _new_row(self) -> int:
        if self._free:
            row = self._free.pop()
            self._data[row * _ROW : row * _ROW + _ROW] = array("d", (_NONE, _NONE, 0.0, 0.0))
            return row
        self._data.extend((_NONE, _NONE, 0.0, 0.0))
        return len(self._data) // _ROW - 1

    def _observe_row(self, row: int, times: Iterable[float]) -> None:
        ordered = sorted(times)
        data = self._data
        at = row * _ROW
        # locals, quantize_time inlined, and the window's gaps added to the ring at once:
        # this runs for every message of every window
        last: float | None = data[at + _LAST_MESSAGE]
        burst: float | None = data[at + _LAST_BURST]
        if last != last:
            last = None
        if burst != burst:
            burst = None
        burst_gap = self.burst_gap
        bursts = 0
        new_gaps: list[int] = []
        for raw in ordered:
            t = round(raw * 1_000_000) / 1_000_000
            if last is not None:
                if t < last:
                    # A message older than one already seen (reordered capture): it cannot
                    # start a new burst, and counting it would make a negative gap.
                    continue
                if t - last <= burst_gap:
                    last = t
                    continue
            if burst is not None:
                gap = round((t - burst) * 1000)
                new_gaps.append(gap if gap < _UINT32_MAX else _UINT32_MAX)
            burst = t
            bursts += 1
            last = t
        if new_gaps:
            gaps = self._ring(row)
            if gaps is None:
                gaps = self._new_ring(row)
            gaps.extend(new_gaps)
        data[at + _MESSAGES] += len(ordered)
        data[at + _BURSTS] += bursts
        data[at + _LAST_MESSAGE] = _NONE if last is None else last
        data[at + _LAST_BURST] = _NONE if burst is None else burst


# Below this many messages in a window, a device's conversations are walked in Python: the
# compiled pass costs a few microseconds to set up (measured: see bench/RESULTS.md)
_COMPILED_FROM = 16


@numba.njit(cache=True)  # type: ignore[misc]
def _observe_rows(
    data: Any, rows: Any, lengths: Any, times: Any, burst_gap: float
) -> tuple[Any, Any]:
    """``CadenceTable._observe_row`` for many rows of ``data`` at once: row ``rows[i]``
    learns the next ``lengths[i]`` of ``times``. Returns the new gaps (ms) and where each
    row's begin: row ``i``'s are ``gaps[gap_bounds[i]:gap_bounds[i + 1]]``. The same
    arithmetic, step for step: rounding half to even like Python's ``round``, NaN for a
    time not yet seen."""
    gaps = np.empty(times.shape[0], np.int64)
    gap_bounds = np.empty(rows.shape[0] + 1, np.int64)
    written = 0
    begin = 0
    for i in range(rows.shape[0]):
        at = rows[i] * _ROW
        ordered = np.sort(times[begin : begin + lengths[i]])
        begin += lengths[i]
        last = data[at + _LAST_MESSAGE]
        burst = data[at + _LAST_BURST]
        bursts = 0
        gap_bounds[i] = written
        for raw in ordered:
            t = np.rint(raw * 1_000_000.0) / 1_000_000.0
            if last == last:
                if t < last:
                    continue
                if t - last <= burst_gap:
                    last = t
                    continue
            if burst == burst:
                gap = np.rint((t - burst) * 1000.0)
                gaps[written] = gap if gap < _UINT32_MAX else _UINT32_MAX
                written += 1
            burst = t
            bursts += 1
            last = t
        data[at + _MESSAGES] += ordered.shape[0]
        data[at + _BURSTS] += bursts
        data[at + _LAST_MESSAGE] = last
        data[at + _LAST_BURST] = burst
    gap_bounds[rows.shape[0]] = written
    return gaps, gap_bounds


def warm_up() -> None:
    """Load the compiled pass (from numba's cache, or compile it): see
    ``monitor.flows.warm_up``."""
    table = CadenceTable()
    table.observe_all({"warm-up": [float(i) for i in range(_COMPILED_FROM)]})


def _or_zero(t: float) -> float:
    return 0.0 if t != t else t


class Cadence:
    """The reporting interval of one conversation of one device: a row of a
    ``CadenceTable``, or, made as ``Cadence(burst_gap, max_gaps)``, a conversation of its
    own.

    ``observe(times)`` takes the capture times of the messages the device sent in one window
    (any order); gaps are measured between burst starts, across windows. A view reads its row
    as it is when asked: take it again after the table forgot its conversation.
    """

    __slots__ = ("_row", "_table")

    def __init__(
        self,
        burst_gap: float = 1.0,
        max_gaps: int = 64,
        *,
        _table: CadenceTable | None = None,
        _row: int = 0,
    ) -> None:
        if _table is None:
            _table = CadenceTable(burst_gap, max_gaps)
            _row = _table._new_row()
        self._table = _table
        self._row = _row

    def _number(self, field: int) -> float:
        return self._table._data[self._row * _ROW + field]

    @property
    def last_message(self) -> float | None:
        t = self._number(_LAST_MESSAGE)
        return None if t != t else t

    @property
    def last_burst(self) -> float | None:
        t = self._number(_LAST_BURST)
        return None if t != t else t

    @property
    def messages(self) -> int:
        return int(self._number(_MESSAGES))

    @property
    def bursts(self) -> int:
        return int(self._number(_BURSTS))

    def observe(self, times: Iterable[float]) -> None:
        self._table._observe_row(self._row, times)

    def gaps(self) -> list[float]:
        """The recent gaps between burst starts, in seconds, oldest first."""
        ring = self._table._ring(self._row)
        if ring is None:
            return []
        return [ms / 1000 for ms in ring.values()]

    def stats(self) -> RobustStats | None:
        """Median and MAD of the recent gaps, in seconds; ``None`` before the first gap."""
        ring = self._table._ring(self._row)
        raw = ring.stats() if ring is not None else None
        if raw is None:
            return None
        return RobustStats(raw.median / 1000, raw.mad / 1000, raw.n)

    def to_dict(self, derived: bool = True) -> dict[str, Any]:
        """``derived``: include the interval and MAD (for review; recomputed on reading)."""
        stats = self.stats() if derived else None
        out: dict[str, Any] = {}
        if stats is not None:
            out["interval"] = round(stats.median, 3)
            out["mad"] = round(stats.mad, 3)
        out["messages"] = self.messages
        out["bursts"] = self.bursts
        out["last_message"] = (
            format_time(self.last_message) if self.last_message is not None else None
        )
        out["last_burst"] = format_time(self.last_burst) if self.last_burst is not None else None
        out["gaps"] = self.gaps()
        return out

    @classmethod
    def from_dict(
        cls, data: object, where: str, burst_gap: float = 1.0, max_gaps: int = 64
    ) -> Cadence:
        fields = read_mapping(data, where)
        check_keys(
            fields,
            where,
            required={"messages", "bursts", "last_message", "last_burst", "gaps"},
            optional={"interval", "mad"},
        )
        cadence = cls(burst_gap, max_gaps)
        numbers, at = cadence._table._data, cadence._row * _ROW
        for name, field in (("messages", _MESSAGES), ("bursts", _BURSTS)):
            count = read_count(fields[name], f"{where}.{name}")
            if count > _EXACT_COUNT:
                raise FormatError(f"{where}.{name}: a count is out of range")
            numbers[at + field] = count
        for name, field in (("last_message", _LAST_MESSAGE), ("last_burst", _LAST_BURST)):
            value = fields[name]
            numbers[at + field] = _NONE if value is None else parse_time(value, f"{where}.{name}")
        gaps = read_number_list(fields["gaps"], f"{where}.gaps")
        gaps_ms = [round(g * 1000) for g in gaps]
        if any(ms < 0 or ms > _UINT32_MAX for ms in gaps_ms):
            raise FormatError(f"{where}.gaps: a gap is out of range")
        if gaps_ms:
            cadence._table._new_ring(cadence._row).replace(gaps_ms)
        return cadence


def hour_of_week(t: float) -> int:
    """0 for Monday 00:00–00:59 UTC … 167 for Sunday 23:00–23:59 UTC."""
    hours = math.floor(t / 3600)
    return (hours + _EPOCH_WEEKDAY_OFFSET_HOURS) % HOURS_PER_WEEK


def slot_name(slot: int) -> str:
    """``"Mon 08"`` for slot 8: the readable key of an hour-of-week slot."""
    return f"{_DAYS[slot // 24]} {slot % 24:02d}"


def _slot_from_name(name: object, where: str) -> int:
    if isinstance(name, str) and len(name) == 6 and name[:3] in _DAYS and name[3] == " ":
        hour = name[4:]
        if hour.isdigit() and int(hour) < 24:
            return _DAYS.index(name[:3]) * 24 + int(hour)
    raise FormatError(f"{where}: an hour-of-week slot must look like 'Mon 08'")


def volume_vector(profile: WindowProfile) -> tuple[int, ...]:
    """The volume features of one window profile, in ``VOLUME_FEATURES`` order."""
    return (
        profile.tx_packets,
        profile.tx_bytes,
        profile.rx_packets,
        profile.rx_bytes,
        profile.flows_started,
        len(profile.peers),
    )


class VolumeHistory:
    """The per-window volume series of one device, with a global and an hour-of-week view.

    The global view is the last ``capacity`` windows in which the device was active. The
    hour-of-week view keeps, per UTC hour of the week, the mean per active window of that
    hour, for each of the last ``seasonal_weeks`` weeks; ``expected`` uses it once the slot
    has ``seasonal_min_weeks`` weeks, and the global view before that. It lives in one
    float32 array (168 slots × weeks × features), allocated when the first hour closes.
    """

    __slots__ = (
        "_current",
        "_current_hour",
        "_filled",
        "_next",
        "_seasonal",
        "_series",
        "capacity",
        "seasonal_min_weeks",
        "seasonal_weeks",
    )

    def __init__(
        self, capacity: int = 512, seasonal_weeks: int = 4, seasonal_min_weeks: int = 2
    ) -> None:
        if not 1 <= seasonal_weeks <= 255:
            raise ValueError("seasonal_weeks must be between 1 and 255")
        self.capacity = capacity
        self.seasonal_weeks = seasonal_weeks
        self.seasonal_min_weeks = seasonal_min_weeks
        self._series = Ring("I", capacity, len(VOLUME_FEATURES))
        # slot-major: [slot][week ring position][feature]
        self._seasonal: array[float] | None = None
        self._filled: bytearray | None = None  # weeks held per slot
        self._next: bytearray | None = None  # ring position of the next week per slot
        # The hour being accumulated (absolute hour number) and its sums + window count.
        self._current_hour: int | None = None
        # an array, not a list: a list of seven sums costs about 250 bytes, its numbers
        # past 256 each an object of its own, and a site has one per device
        self._current = array("Q", _NO_SUMS)

    def add(self, profile: WindowProfile) -> None:
        vector = volume_vector(profile)
        self._series.append_row([min(value, _UINT32_MAX) for value in vector])
        hour = math.floor(profile.start / 3600)
        if self._current_hour is not None and hour != self._current_hour:
            self._close_hour()
        self._current_hour = hour
        for i, value in enumerate(vector):
            self._current[i] += value
        self._current[-1] += 1

    def _slot_push(self, slot: int, means: Sequence[float]) -> None:
        nf = len(VOLUME_FEATURES)
        if self._seasonal is None or self._filled is None or self._next is None:
            self._seasonal = array("f", bytes(4 * HOURS_PER_WEEK * self.seasonal_weeks * nf))
            self._filled = bytearray(HOURS_PER_WEEK)
            self._next = bytearray(HOURS_PER_WEEK)
        position = self._next[slot]
        base = (slot * self.seasonal_weeks + position) * nf
        self._seasonal[base : base + nf] = array("f", means)
        self._next[slot] = (position + 1) % self.seasonal_weeks
        self._filled[slot] = min(self._filled[slot] + 1, self.seasonal_weeks)

    def _slot_values(self, slot: int, feature: int) -> list[float]:
        """The weekly means of one slot and feature, oldest first, rounded as stored."""
        if self._seasonal is None or self._filled is None or self._next is None:
            return []
        filled, weeks, nf = self._filled[slot], self.seasonal_weeks, len(VOLUME_FEATURES)
        order = (
            range(filled)
            if filled < weeks
            else [(self._next[slot] + k) % weeks for k in range(weeks)]
        )
        return [round(self._seasonal[(slot * weeks + k) * nf + feature], 3) for k in order]

    def _close_hour(self) -> None:
        windows = self._current[-1]
        if self._current_hour is not None and windows:
            slot = (self._current_hour + _EPOCH_WEEKDAY_OFFSET_HOURS) % HOURS_PER_WEEK
            self._slot_push(slot, [round(total / windows, 3) for total in self._current[:-1]])
        self._current[:] = _NO_SUMS

    def __len__(self) -> int:
        return len(self._series)

    def stats(self, feature: str) -> RobustStats | None:
        """Median and MAD of the feature over the recent windows."""
        return self._series.stats(VOLUME_FEATURES.index(feature))

    def seasonal_stats(self, feature: str, when: float) -> RobustStats | None:
        """Median and MAD of the hour-of-week view for the hour of ``when``, if it has enough
        weeks; ``None`` otherwise."""
        values = self._slot_values(hour_of_week(when), VOLUME_FEATURES.index(feature))
        if len(values) < self.seasonal_min_weeks:
            return None
        return robust_stats(values)

    def expected(self, feature: str, when: float) -> RobustStats | None:
        """What the feature normally is at ``when``: hour-of-week if known, else global."""
        return self.seasonal_stats(feature, when) or self.stats(feature)

    def expected_all(self, when: float) -> dict[str, RobustStats | None]:
        """``expected(feature, when)`` of every feature (``VOLUME_FEATURES``), the recent
        windows' stats of all of them worked out together."""
        recent: list[RobustStats | None] | None = None
        out: dict[str, RobustStats | None] = {}
        for column, feature in enumerate(VOLUME_FEATURES):
            stats = self.seasonal_stats(feature, when)
            if stats is None:
                if recent is None:
                    recent = self._series.stats_columns()
                stats = recent[column]
            out[feature] = stats
        return out

    def to_dict(self, derived: bool = True, compact: bool = False) -> dict[str, Any]:
        """``derived``: include median and MAD (for review; recomputed on reading).
        ``compact``: the arrays as base64 little-endian bytes (the state file's form: a week
        of hour-of-week history is 4,000 numbers, too slow as JSON lists at 10,000 devices).
        """
        if compact:
            return self._to_compact()
        out: dict[str, Any] = {}
        for f, name in enumerate(VOLUME_FEATURES):
            stats = self._series.stats(f) if derived else None
            entry: dict[str, Any] = {}
            if stats is not None:
                entry["median"] = stats.median
                entry["mad"] = stats.mad
            entry["history"] = self._series.values(f)
            out[name] = entry
        filled = self._filled or bytearray(HOURS_PER_WEEK)
        out["hour_of_week"] = {
            slot_name(slot): {
                name: self._slot_values(slot, f) for f, name in enumerate(VOLUME_FEATURES)
            }
            for slot in range(HOURS_PER_WEEK)
            if filled[slot]
        }
        out["current_hour"] = self._current_to_dict()
        return out

    def _current_to_dict(self) -> dict[str, Any] | None:
        if self._current_hour is None:
            return None
        return {
            "start": format_time(self._current_hour * 3600.0),
            "windows": self._current[-1],
            "sums": dict(zip(VOLUME_FEATURES, self._current, strict=False)),
        }

    def _to_compact(self) -> dict[str, Any]:
        series = array("I")
        for f in range(len(VOLUME_FEATURES)):
            series.extend(self._series.values(f))
        seasonal = None
        if self._seasonal is not None and self._filled is not None and self._next is not None:
            seasonal = {
                "weeks": self.seasonal_weeks,
                "means": _b64(self._seasonal),
                "filled": base64.b64encode(bytes(self._filled)).decode(),
                "next": base64.b64encode(bytes(self._next)).decode(),
            }
        return {
            "windows": len(self),
            "series": _b64(series),
            "seasonal": seasonal,
            "current_hour": self._current_to_dict(),
        }

    def _from_compact(self, fields: Mapping[str, Any], where: str) -> None:
        check_keys(fields, where, required={"windows", "series", "seasonal", "current_hour"})
        n = read_count(fields["windows"], f"{where}.windows")
        series = _from_b64(fields["series"], "I", len(VOLUME_FEATURES) * n, f"{where}.series")
        self._series.replace_columns(
            [series[f * n : (f + 1) * n] for f in range(len(VOLUME_FEATURES))]
        )
        seasonal = fields["seasonal"]
        if seasonal is None:
            return
        at = f"{where}.seasonal"
        data = read_mapping(seasonal, at)
        check_keys(data, at, required={"weeks", "means", "filled", "next"})
        weeks = read_count(data["weeks"], f"{at}.weeks")
        if not 1 <= weeks <= 255:
            raise FormatError(f"{at}.weeks: out of range")
        nf = len(VOLUME_FEATURES)
        means = _from_b64(data["means"], "f", HOURS_PER_WEEK * weeks * nf, f"{at}.means")
        filled = _from_b64(data["filled"], "B", HOURS_PER_WEEK, f"{at}.filled")
        positions = _from_b64(data["next"], "B", HOURS_PER_WEEK, f"{at}.next")
        if any(v > weeks for v in filled) or any(v >= weeks for v in positions):
            raise FormatError(f"{at}: week positions out of range")
        if weeks == self.seasonal_weeks:
            self._seasonal = means
            self._filled = bytearray(filled.tobytes())
            self._next = bytearray(positions.tobytes())
            return
        for slot in range(HOURS_PER_WEEK):  # the config changed: replay the weeks kept
            order = (
                range(filled[slot])
                if filled[slot] < weeks
                else [(positions[slot] + k) % weeks for k in range(weeks)]
            )
            for k in order:
                base = (slot * weeks + k) * nf
                self._slot_push(slot, [round(v, 3) for v in means[base : base + nf]])

    @classmethod
    def from_dict(
        cls,
        data: object,
        where: str,
        capacity: int = 512,
        seasonal_weeks: int = 4,
        seasonal_min_weeks: int = 2,
    ) -> VolumeHistory:
        fields = read_mapping(data, where)
        history = cls(capacity, seasonal_weeks, seasonal_min_weeks)
        if "series" in fields:
            history._from_compact(fields, where)
            history._read_current(fields["current_hour"], where)
            return history
        check_keys(fields, where, required={*VOLUME_FEATURES, "hour_of_week", "current_hour"})
        histories: list[list[int]] = []
        for name in VOLUME_FEATURES:
            entry = read_mapping(fields[name], f"{where}.{name}")
            check_keys(entry, f"{where}.{name}", required={"history"}, optional={"median", "mad"})
            values = read_count_list(entry["history"], f"{where}.{name}.history")
            histories.append([min(v, _UINT32_MAX) for v in values[-capacity:]])
        if len({len(column) for column in histories}) > 1:
            raise FormatError(f"{where}: the feature histories have different lengths")
        history._series.replace_columns(histories)
        slots = read_mapping(fields["hour_of_week"], f"{where}.hour_of_week")
        for name, slot_data in slots.items():
            slot_where = f"{where}.hour_of_week.{name}"
            slot = _slot_from_name(name, slot_where)
            slot_fields = read_mapping(slot_data, slot_where)
            check_keys(slot_fields, slot_where, required=set(VOLUME_FEATURES))
            columns = [
                read_number_list(slot_fields[feature], f"{slot_where}.{feature}")[-seasonal_weeks:]
                for feature in VOLUME_FEATURES
            ]
            if len({len(c) for c in columns}) != 1 or not columns[0]:
                raise FormatError(f"{slot_where}: the features need the same number of weeks")
            for week in zip(*columns, strict=True):
                history._slot_push(slot, [round(v, 3) for v in week])
        history._read_current(fields["current_hour"], where)
        return history

    def _read_current(self, current: object, where: str) -> None:
        history = self
        if current is not None:
            cur = read_mapping(current, f"{where}.current_hour")
            check_keys(cur, f"{where}.current_hour", required={"start", "windows", "sums"})
            start = parse_time(cur["start"], f"{where}.current_hour.start")
            if start % 3600:
                raise FormatError(f"{where}.current_hour.start: not the start of an hour")
            history._current_hour = int(start // 3600)
            sums = read_mapping(cur["sums"], f"{where}.current_hour.sums")
            check_keys(sums, f"{where}.current_hour.sums", required=set(VOLUME_FEATURES))
            counts = [
                read_count(sums[name], f"{where}.current_hour.sums.{name}")
                for name in VOLUME_FEATURES
            ] + [read_count(cur["windows"], f"{where}.current_hour.windows")]
            if max(counts) > _UINT64_MAX:
                raise FormatError(f"{where}.current_hour: a sum is out of range")
            history._current = array("Q", counts)


def _b64(values: array[Any]) -> str:
    if sys.byteorder == "big":  # the file is little-endian on every machine
        values = array(values.typecode, values)
        values.byteswap()
    return base64.b64encode(values.tobytes()).decode()


def _from_b64(text: object, typecode: str, count: int, where: str) -> array[Any]:
    if not isinstance(text, str):
        raise FormatError(f"{where}: expected base64 text")
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError:
        raise FormatError(f"{where}: not base64") from None
    values = array(typecode)
    if len(raw) != count * values.itemsize:
        raise FormatError(f"{where}: wrong length")
    values.frombytes(raw)
    if sys.byteorder == "big":
        values.byteswap()
    if typecode == "f" and not all(math.isfinite(v) and v >= 0 for v in values):
        raise FormatError(f"{where}: numbers must be finite and >= 0")
    return values


# --- strict readers for serialised data (hostile input: YAML files, state rows) -------------


def read_mapping(data: object, where: str) -> Mapping[str, Any]:
    # Keys are checked where they are used (check_keys, or the caller's own test).
    if not isinstance(data, dict):
        raise FormatError(f"{where}: expected a mapping")
    return data


def check_keys(
    data: Mapping[str, Any],
    where: str,
    required: set[str],
    optional: set[str] | frozenset[str] = frozenset(),
) -> None:
    missing = required - data.keys()
    if missing:
        raise FormatError(f"{where}: missing {', '.join(sorted(missing))}")
    unknown = data.keys() - required - optional
    if unknown:
        # Keys are the file's own text: name at most a few, shortened.
        shown = ", ".join(sorted(str(k)[:40] for k in unknown)[:3])
        raise FormatError(f"{where}: unknown key(s) {shown}")


def read_count(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise FormatError(f"{where}: expected a count (an integer >= 0)")
    return value


def read_count_list(value: object, where: str) -> list[int]:
    if not isinstance(value, list):
        raise FormatError(f"{where}: expected a list of counts")
    return [read_count(v, where) for v in value]


def read_number_list(value: object, where: str) -> list[float]:
    if not isinstance(value, list):
        raise FormatError(f"{where}: expected a list of numbers")
    out: list[float] = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
            raise FormatError(f"{where}: expected numbers >= 0")
        out.append(float(v))
    return out
