"""Tests of monitor/profiles.py: cadence across windows, robust statistics, volume series."""

from __future__ import annotations

import base64
import random
import statistics
import tracemalloc
from array import array
from unittest.mock import patch

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor import profiles
from monitor.model import WindowProfile
from monitor.profiles import (
    VOLUME_FEATURES,
    Cadence,
    CadenceTable,
    FormatError,
    Ring,
    VolumeHistory,
    format_time,
    hour_of_week,
    parse_time,
    quantize_time,
    robust_stats,
    slot_name,
)

MONDAY = 1615161600.0  # 2021-03-08T00:00:00Z, a Monday


@given(st.floats(min_value=0, max_value=4e9, allow_nan=False))
def test_times_round_trip_through_iso_text_exactly_once_quantized(t: float) -> None:
    q = quantize_time(t)
    assert parse_time(format_time(q), "t") == q
    assert abs(q - t) <= 0.5e-6 + 1e-6 * abs(t) * 1e-9


def test_format_time_is_utc_with_microseconds() -> None:
    assert format_time(1615216935.831389) == "2021-03-08T15:22:15.831389Z"


@pytest.mark.parametrize(
    "text", ["2021-03-08 15:22:15", "2021-02-30T00:00:00.000000Z", "yesterday", 5, None]
)
def test_parse_time_refuses_anything_but_the_export_format(text: object) -> None:
    with pytest.raises(FormatError, match=r"^t: "):
        parse_time(text, "t")


def test_robust_stats_match_the_textbook_median_and_mad() -> None:
    values = [3, 7, 7, 8, 9, 10, 250]
    stats = robust_stats(values)
    assert stats is not None
    median = statistics.median(values)
    assert stats.median == median
    assert stats.mad == statistics.median([abs(v - median) for v in values])
    assert stats.n == 7
    assert robust_stats([]) is None


@given(
    st.one_of(
        st.lists(st.integers(0, 2**32 - 1), min_size=129, max_size=600).map(
            lambda v: np.array(v, np.uint32)  # a ring's volumes
        ),
        st.lists(st.floats(-1e12, 1e12), min_size=129, max_size=600).map(
            lambda v: np.array(v, np.float64)
        ),
    )
)
@settings(max_examples=100, deadline=None)
def test_robust_stats_of_long_series_equal_numpy_median_and_mad(data: np.ndarray) -> None:  # type: ignore[type-arg]
    """Series longer than 128 (a ring of a few hundred windows) take the sorted-array path:
    the same numbers as numpy's median of the values and of their deviations, to the bit."""
    values = data.tolist()
    stats = robust_stats(data)
    assert stats is not None
    as_float = data.astype(np.float64)
    median = float(np.median(as_float))
    assert (stats.median, stats.mad, stats.n) == (
        median,
        float(np.median(np.abs(as_float - median))),
        len(values),
    )


def test_cadence_measures_the_gap_between_burst_starts() -> None:
    cadence = Cadence(burst_gap=1.0)
    times = []
    for k in range(20):  # a check-in every 30 s, each one three segments within 50 ms
        base = 1000.0 + 30.0 * k
        times += [base, base + 0.02, base + 0.05]
    cadence.observe(times)
    stats = cadence.stats()
    assert stats is not None
    assert stats.median == 30.0 and stats.mad == 0.0 and stats.n == 19
    assert cadence.messages == 60 and cadence.bursts == 20


def test_cadence_gaps_across_window_boundaries_count_like_any_other() -> None:
    rng = random.Random(3)
    times = sorted(1000.0 + 7.0 * k + rng.uniform(0, 0.3) for k in range(200))
    whole = Cadence()
    whole.observe(times)
    split = Cadence()
    for start in range(1000, 2500, 60):  # 60 s windows, each observed on its own
        split.observe([t for t in times if start <= t < start + 60])
    assert split.gaps() == whole.gaps()
    assert split.to_dict() == whole.to_dict()
    stats = split.stats()
    assert stats is not None and abs(stats.median - 7.0) < 0.3


def test_cadence_ignores_messages_older_than_the_last_one_seen() -> None:
    cadence = Cadence()
    cadence.observe([100.0, 110.0])
    cadence.observe([105.0, 120.0])  # 105 arrives late: no negative gap, no false burst
    assert cadence.gaps() == [10.0, 10.0]


def test_cadence_keeps_a_bounded_number_of_recent_gaps() -> None:
    cadence = Cadence(max_gaps=8)
    cadence.observe([10.0 * k for k in range(50)] + [500.0 + 20.0 * k for k in range(8)])
    assert cadence.gaps() == [10.0] + [20.0] * 7


def test_cadence_round_trips_through_its_dict_form() -> None:
    cadence = Cadence()
    cadence.observe([1.123456, 61.5, 121.987654, 122.0])
    again = Cadence.from_dict(cadence.to_dict(), "c")
    assert again.to_dict() == cadence.to_dict()
    assert again.last_message == cadence.last_message


def test_cadence_from_dict_names_the_field_at_fault() -> None:
    data = Cadence().to_dict()
    data["gaps"] = [1.0, -3.0]
    with pytest.raises(FormatError, match=r"^x\.gaps: "):
        Cadence.from_dict(data, "x")
    data = Cadence().to_dict()
    data["surprise"] = 1
    with pytest.raises(FormatError, match="unknown key"):
        Cadence.from_dict(data, "x")


def test_a_row_of_a_table_learns_as_a_cadence_of_its_own_does() -> None:
    rng = random.Random(5)
    table = CadenceTable(burst_gap=0.5, max_gaps=16)
    alone = {key: Cadence(burst_gap=0.5, max_gaps=16) for key in ("a|tcp/1", "b|udp/2", "c|tcp/3")}
    for start in range(0, 3600, 60):  # windows of 60 s; the conversations interleave
        for key, cadence in alone.items():
            times = [start + rng.uniform(0, 60) for _ in range(rng.randint(0, 4))]
            if times:
                table.observe(key, times)
                cadence.observe(times)
    assert sorted(table) == sorted(alone) and len(table) == 3
    for key, cadence in alone.items():
        assert table[key].to_dict() == cadence.to_dict()
        assert table[key].gaps() == cadence.gaps() and len(cadence.gaps()) == 16


_WINDOW_TIMES = st.floats(min_value=1.6e9, max_value=1.6e9 + 1e7)  # gaps past 49.7 days too


@given(
    st.sampled_from([0.5, 1.0, 30.0]),
    st.integers(min_value=1, max_value=5),
    st.lists(
        st.dictionaries(
            st.sampled_from(["a|tcp/1", "b|udp/2", "c|tcp/3", "d|tcp/4"]),
            st.lists(
                _WINDOW_TIMES
                | st.integers(0, 10**13).map(lambda us: 1.6e9 + us / 2e6)
                | st.integers(0, 40).map(lambda quarter: 1.6e9 + quarter / 4)  # = burst gap
            ),
            max_size=4,
        ),
        max_size=6,
    ),
)
@settings(max_examples=150, deadline=None)
def test_a_window_s_conversations_learned_at_once_are_learned_as_one_by_one(
    burst_gap: float, max_gaps: int, windows: list[dict[str, list[float]]]
) -> None:
    """The compiled pass (forced for any number of messages) against ``observe`` per key:
    the same rows, numbers and gaps, whatever the order, ties at half a microsecond, late
    messages, gaps of exactly the burst gap and gaps too long for the ring's numbers."""
    at_once = CadenceTable(burst_gap, max_gaps)
    one_by_one = CadenceTable(burst_gap, max_gaps)
    with patch.object(profiles, "_COMPILED_FROM", 0):
        for conversations in windows:
            at_once.observe_all(conversations)
            for key, times in conversations.items():
                if times:
                    one_by_one.observe(key, times)
    assert list(at_once) == list(one_by_one)
    for key in at_once:
        assert at_once[key].to_dict() == one_by_one[key].to_dict()


def test_a_window_with_few_messages_is_learned_in_python_and_with_many_compiled() -> None:
    """Both ways are taken, each where it is the cheaper (bench/RESULTS.md)."""
    table = CadenceTable()
    with patch.object(profiles, "_observe_rows", wraps=profiles._observe_rows) as compiled:
        table.observe_all({"a|tcp/1": [1.0, 3.0], "b|udp/2": []})
        assert compiled.call_count == 0
        table.observe_all({"a|tcp/1": [5.0 + 2 * i for i in range(profiles._COMPILED_FROM)]})
        assert compiled.call_count == 1
    assert table["a|tcp/1"].messages == 2 + profiles._COMPILED_FROM
    assert "b|udp/2" not in table  # a conversation without messages makes no row


def test_a_forgotten_conversation_leaves_nothing_in_the_row_the_next_one_takes() -> None:
    table = CadenceTable()
    table.observe("old|tcp/1", [10.0, 40.0, 70.0])
    table.observe("kept|tcp/1", [5.0])
    del table["old|tcp/1"]
    assert "old|tcp/1" not in table and table.get("old|tcp/1") is None
    table.observe("new|tcp/1", [100.0])
    fresh = table["new|tcp/1"]
    assert (fresh.messages, fresh.bursts, fresh.gaps()) == (1, 1, [])
    assert fresh.last_message == fresh.last_burst == 100.0
    assert (
        table["kept|tcp/1"].to_dict()
        == Cadence.from_dict(table["kept|tcp/1"].to_dict(), "c").to_dict()
    )
    assert len(table._data) == 2 * 4  # the row was used again


def test_a_cadence_set_into_a_table_is_copied() -> None:
    alone = Cadence()
    alone.observe([1.0, 31.0, 61.0])
    table = CadenceTable()
    table["x|tcp/1"] = alone
    assert table["x|tcp/1"].to_dict() == alone.to_dict()
    alone.observe([91.0])
    assert table["x|tcp/1"].gaps() == [30.0, 30.0] and alone.gaps() == [30.0, 30.0, 30.0]
    table["x|tcp/1"] = table["x|tcp/1"]  # onto itself: nothing lost
    assert table["x|tcp/1"].gaps() == [30.0, 30.0] and table["x|tcp/1"].messages == 3
    table["x|tcp/1"] = Cadence()  # replacing it leaves none of the old gaps behind
    assert table["x|tcp/1"].gaps() == [] and table["x|tcp/1"].last_message is None


def test_a_table_keeps_the_conversations_that_sent_last() -> None:
    table = CadenceTable()
    for key, last in (("a", 50.0), ("b", 10.0), ("c", 50.0), ("d", 30.0)):
        table.observe(key, [last])
    table.keep_latest(2)
    assert sorted(table) == ["a", "c"]  # b and d sent before them
    table.keep_latest(1)
    assert list(table) == ["c"]  # the same time: the key decides, as it did before


def test_a_table_forgets_the_silent_and_says_how_many_and_the_oldest_kept() -> None:
    table = CadenceTable()
    for key, last in (("a", 100.0), ("b", 200.0), ("c", 300.0)):
        table.observe(key, [last])
    assert table.forget_silent(limit=150.0, now=400.0) == (1, 200.0)
    assert sorted(table) == ["b", "c"]
    assert table.forget_silent(limit=1000.0, now=400.0) == (2, float("inf"))
    assert len(table) == 0


def test_a_conversation_without_a_gap_yet_costs_a_row_and_no_ring_of_gaps() -> None:
    # Most conversations of a large site send once in a while: their cadence must stay small
    # (a baseline holds one per conversation of every device). As an object each, with its
    # dict entry, a cadence cost 133 bytes; as a row of a device's table, 84.
    keys = [f"10.0.{k // 256}.{k % 256}|tcp/2575" for k in range(1000)]
    table = CadenceTable()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for k, key in enumerate(keys):
            table.observe(key, [1000.0 + k])
        per_conversation = (tracemalloc.get_traced_memory()[0] - before) / len(keys)
    finally:
        tracemalloc.stop()
    assert per_conversation < 100
    assert all(c.gaps() == [] and c.stats() is None for _, c in table.items())
    again = Cadence.from_dict(table[keys[0]].to_dict(), "c")
    again.observe([1060.0])
    assert again.gaps() == [60.0]


@given(
    st.integers(min_value=1, max_value=6),
    st.integers(min_value=1, max_value=9),
    st.lists(st.integers(min_value=0, max_value=2**32 - 1), max_size=120),
)
def test_a_ring_of_rows_keeps_the_newest_rows_and_gives_each_column_oldest_first(
    width: int, capacity: int, numbers: list[int]
) -> None:
    rows = [numbers[i : i + width] for i in range(0, len(numbers) - width + 1, width)]
    ring = Ring("I", capacity, width)
    for row in rows:
        ring.append_row(row)
    kept = rows[-capacity:]
    assert len(ring) == len(kept)
    for column in range(width):
        expected = [row[column] for row in kept]
        assert ring.values(column) == expected
        stats = ring.stats(column)
        assert stats == robust_stats(expected)
    again = Ring("I", capacity, width)
    again.replace_columns([ring.values(c) for c in range(width)])
    assert [again.values(c) for c in range(width)] == [ring.values(c) for c in range(width)]


@given(
    st.integers(min_value=1, max_value=9),
    st.lists(st.lists(st.integers(min_value=0, max_value=2**32 - 1), max_size=25), max_size=6),
)
def test_a_ring_extended_by_several_numbers_holds_what_appending_each_would(
    capacity: int, batches: list[list[int]]
) -> None:
    """Batches that fit, that fill the ring, that wrap past its end, and that are longer
    than the ring, after any earlier ones."""
    extended, appended = Ring("I", capacity), Ring("I", capacity)
    for batch in batches:
        extended.extend(batch)
        for number in batch:
            appended.append(number)
        assert extended.values() == appended.values()
    appended.append(7)
    extended.extend([7])  # and the place of the next overwrite is the same
    assert extended.values() == appended.values()


@given(
    st.integers(min_value=1, max_value=6),
    st.integers(min_value=100, max_value=300),
    st.integers(min_value=0, max_value=400),
    st.randoms(use_true_random=False),
)
@settings(max_examples=60, deadline=None)
def test_a_ring_s_stats_of_all_columns_at_once_are_each_column_s(
    width: int, capacity: int, rows: int, rng: random.Random
) -> None:
    """Short rings and rings of over 128 rows (one sort of all columns): the same numbers as
    asking column by column."""
    ring = Ring("I", capacity, width)
    for _ in range(rows):
        # mostly distinct numbers, some ties
        ring.append_row(
            [rng.choice((7, *(rng.randrange(2**32) for _ in range(3)))) for _ in range(width)]
        )
    assert ring.stats_columns() == [ring.stats(column) for column in range(width)]


def test_all_expected_volumes_at_once_are_each_feature_s_seasonal_or_recent() -> None:
    history = VolumeHistory(capacity=512, seasonal_weeks=4, seasonal_min_weeks=2)
    rng = random.Random(5)
    # every fourth hour for two weeks, then Monday 08:00 and 09:00: an hour-of-week view at
    # 08:00, none at 13:00 (the recent windows then)
    for week in range(3):
        for hour in range(0, 168, 4) if week < 2 else (8, 9):
            for minute in range(0, 60, 20):
                start = MONDAY + week * 7 * 86400 + hour * 3600 + minute * 60
                history.add(profile(start, rng.randrange(5, 5000)))
    assert len(history) > 128 and len(history) % 2 == 0  # the median of an even count
    seasonal, recent = MONDAY + 21 * 86400 + 8 * 3600 + 60, MONDAY + 21 * 86400 + 13 * 3600
    assert history.seasonal_stats("tx_packets", seasonal) is not None
    assert history.seasonal_stats("tx_packets", recent) is None
    for when in (seasonal, recent):
        expected = {f: history.expected(f, when) for f in VOLUME_FEATURES}
        assert history.expected_all(when) == expected
    assert history.expected_all(seasonal) != history.expected_all(recent)


def test_hour_of_week_starts_on_monday_utc() -> None:
    assert hour_of_week(MONDAY) == 0
    assert hour_of_week(MONDAY + 8.5 * 3600) == 8
    assert slot_name(hour_of_week(MONDAY + 6 * 86400 + 23 * 3600)) == "Sun 23"


def profile(start: float, tx: int, window: float = 60.0) -> WindowProfile:
    return WindowProfile("d", start, start + window, tx_packets=tx, tx_bytes=100 * tx)


def test_volume_history_is_bounded_and_robust_to_a_burst() -> None:
    history = VolumeHistory(capacity=100)
    for i in range(300):
        history.add(profile(MONDAY + 60 * i, 1000 if i == 299 else 10 + i % 3))
    assert len(history) == 100
    stats = history.stats("tx_packets")
    assert stats is not None and stats.median == 11.0 and stats.mad == 1.0


def test_hour_of_week_view_is_used_once_enough_weeks_exist() -> None:
    history = VolumeHistory(capacity=64, seasonal_weeks=4, seasonal_min_weeks=2)
    busy = MONDAY + 8 * 3600  # Mondays 08:00: 100 packets a window; other hours: 5
    for week in range(3):
        for hour in (7, 8, 9):
            for minute in range(0, 60, 10):
                start = MONDAY + week * 7 * 86400 + hour * 3600 + minute * 60
                history.add(profile(start, 100 if hour == 8 else 5))
        if week == 0:
            # after one week of Monday 08:00 the slot is not trusted yet
            assert history.seasonal_stats("tx_packets", busy + 7 * 86400) is None
    when = busy + 3 * 7 * 86400 + 600
    seasonal = history.seasonal_stats("tx_packets", when)
    assert seasonal is not None and seasonal.median == 100.0 and seasonal.n == 3
    assert history.expected("tx_packets", when) == seasonal
    overall = history.expected("tx_packets", MONDAY + 12 * 3600)
    assert overall == history.stats("tx_packets")
    assert overall is not None and overall.median == 5.0


def test_volume_history_round_trips_through_its_dict_form() -> None:
    history = VolumeHistory(capacity=16)
    for i in range(200):
        history.add(profile(MONDAY + 60 * i, i % 7))
    again = VolumeHistory.from_dict(history.to_dict(), "v", capacity=16)
    assert again.to_dict() == history.to_dict()
    again.add(profile(MONDAY + 60 * 200, 3))
    history.add(profile(MONDAY + 60 * 200, 3))
    assert again.to_dict() == history.to_dict()  # including the hour being accumulated


def a_week_of_history(weeks: int = 4) -> VolumeHistory:
    history = VolumeHistory(capacity=32, seasonal_weeks=weeks)
    for h in range(3 * 168 + 5):  # three weeks and a bit, one window an hour
        history.add(profile(MONDAY + 3600 * h + 60, h % 11))
    return history


def test_the_compact_state_form_round_trips_exactly() -> None:
    history = a_week_of_history()
    again = VolumeHistory.from_dict(history.to_dict(compact=True), "v", capacity=32)
    assert again.to_dict() == history.to_dict()
    assert len(history.to_dict()["hour_of_week"]) == 168


def test_the_compact_state_form_holds_each_feature_s_history_in_turn() -> None:
    # The layout of the state file: one feature's windows, oldest first, then the next's.
    history = VolumeHistory(capacity=3)
    for i in range(5):  # windows 2, 3 and 4 are kept
        history.add(
            WindowProfile(
                "d",
                MONDAY + 60 * i,
                MONDAY + 60 * i + 60,
                tx_packets=i,
                tx_bytes=10 * i,
                rx_packets=100 + i,
                flows_started=7,
            )
        )
    data = history.to_dict(compact=True)
    assert data["windows"] == 3
    series = array("I", base64.b64decode(data["series"])).tolist()
    by_feature = {name: series[3 * f : 3 * f + 3] for f, name in enumerate(VOLUME_FEATURES)}
    assert by_feature["tx_packets"] == [2, 3, 4]
    assert by_feature["tx_bytes"] == [20, 30, 40]
    assert by_feature["rx_packets"] == [102, 103, 104]
    assert by_feature["flows"] == [7, 7, 7]


def test_the_compact_form_follows_a_change_of_seasonal_weeks() -> None:
    history = a_week_of_history(weeks=4)
    fewer = VolumeHistory.from_dict(
        history.to_dict(compact=True), "v", capacity=32, seasonal_weeks=2, seasonal_min_weeks=1
    )
    slot = fewer.to_dict()["hour_of_week"]["Mon 00"]
    assert slot == {k: v[-2:] for k, v in history.to_dict()["hour_of_week"]["Mon 00"].items()}


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("series", "!!!", "not base64"),
        ("series", "AAAA", "wrong length"),
        ("windows", -1, "count"),
    ],
)
def test_the_compact_form_is_checked(field: str, value: object, message: str) -> None:
    data = a_week_of_history().to_dict(compact=True)
    data[field] = value
    with pytest.raises(FormatError, match=message):
        VolumeHistory.from_dict(data, "v", capacity=32)


def test_the_hour_being_summed_is_checked() -> None:
    data = a_week_of_history().to_dict(compact=True)
    data["current_hour"]["sums"]["tx_bytes"] = 2**64  # beyond what a sum can hold
    with pytest.raises(FormatError, match=r"v\.current_hour: a sum is out of range"):
        VolumeHistory.from_dict(data, "v", capacity=32)


def test_a_volume_history_of_one_window_costs_under_500_bytes() -> None:
    # One per device: 100,000 devices that each sent in one window. With the hour's sums in
    # a list (each number past 256 an object of its own), a history cost 560 bytes.
    profiles = [
        WindowProfile("d", MONDAY, MONDAY + 60, tx_packets=300 + k % 50, tx_bytes=123_456 + k,
                      rx_packets=280, rx_bytes=654_321 + k, flows_started=10, peers={"a"})
        for k in range(2000)
    ]  # fmt: skip
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        histories = []
        for window in profiles:
            history = VolumeHistory()
            history.add(window)
            histories.append(history)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert held / len(histories) < 500
