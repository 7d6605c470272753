"""Learned facts: first and last seen, counts, the bound on values per kind, and the table
that holds them (a mapping of kinds to values to facts, read as copies)."""

from __future__ import annotations

import pickle
import tracemalloc
from array import array

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from monitor import facts
from monitor.facts import (
    MAX_VALUES_PER_KIND,
    Fact,
    FactCounts,
    FactJournal,
    FactTable,
    FactTally,
)


def test_a_fact_keeps_its_first_and_last_time_and_its_count() -> None:
    table = FactTable()
    assert table.record("peer", "ip:10.1.0.9", 20.0)
    assert not table.record("peer", "ip:10.1.0.9", 10.0, times=3, last=30.0)
    fact = table["peer"]["ip:10.1.0.9"]
    assert (fact.first_seen, fact.last_seen, fact.count) == (10.0, 30.0, 4)


def test_values_past_the_bound_make_room_stalest_first_and_are_counted() -> None:
    table = FactTable()
    before = facts.evicted_values
    # a device scanned from the internet: every source is a new peer
    for i in range(MAX_VALUES_PER_KIND):
        table.record("peer", f"ext:203.0.{i // 256}.{i % 256}", float(i))
    table.record("peer", "ext:198.51.100.1", 10_000.0)
    peers = table["peer"]
    dropped = MAX_VALUES_PER_KIND // 8
    assert len(peers) == MAX_VALUES_PER_KIND - dropped + 1
    assert facts.evicted_values - before == dropped
    assert "ext:203.0.0.0" not in peers  # the stalest went
    assert f"ext:203.0.{(dropped) // 256}.{dropped % 256}" in peers
    assert "ext:198.51.100.1" in peers
    assert peers["ext:198.51.100.1"] == Fact(10_000.0, 10_000.0, 1)
    # other kinds of the same device are untouched
    table.record("protocol", "tls", 1.0)
    assert set(table["protocol"]) == {"tls"}


# A model of the table: the dict of dicts of Facts it replaced.
_operations = st.lists(
    st.tuples(
        st.sampled_from(["record", "record_counts", "delete_value", "delete_kind", "assign"]),
        st.sampled_from(["peer", "ip", "protocol"]),
        st.sampled_from(["a", "b", "c", "d", "e"]),
        st.floats(min_value=0, max_value=1e6, allow_nan=False),
        st.integers(min_value=1, max_value=5),
    ),
    max_size=80,
)


def _shape(model: dict[str, dict[str, Fact]]) -> list[tuple[str, list[tuple[str, float]]]]:
    """What a reader of values and first seens sees of a table."""
    return [(k, [(v, f.first_seen) for v, f in vs.items()]) for k, vs in model.items()]


@given(_operations, st.sampled_from([facts._INDEXED_FROM, 2]))
def test_the_table_behaves_as_the_dict_of_facts_it_replaces(
    operations: list[tuple], indexed_from: int
) -> None:
    # (with kinds of two values or more found through their index as well as by a scan)
    default, facts._INDEXED_FROM = facts._INDEXED_FROM, indexed_from
    try:
        _check_against_the_model(operations)
    finally:
        facts._INDEXED_FROM = default


def _check_against_the_model(operations: list[tuple]) -> None:
    table = FactTable()
    model: dict[str, dict[str, Fact]] = {}
    for operation, kind, value, when, times in operations:
        shape, version = _shape(model), table.version
        if operation in ("record", "record_counts"):
            values = model.setdefault(kind, {})
            known = values.get(value)
            if known is None:
                values[value] = Fact(when, when, times)
            else:
                known.see(when, times)
            if operation == "record":
                assert table.record(kind, value, when, times) == (known is None)
            else:
                table.record_counts(kind, {value: times}, when)
        elif operation == "delete_value" and value in model.get(kind, {}):
            assert table[kind].pop(value) == model[kind].pop(value)
        elif operation == "delete_kind" and kind in model:
            del model[kind]
            del table[kind]
        elif operation == "assign":
            model.setdefault(kind, {})[value] = Fact(when, when + 1, times)
            table.setdefault(kind)[value] = Fact(when, when + 1, times)
        # same kinds and values, in the same order, with the same numbers
        assert list(table) == list(model)
        assert [(k, list(v.items())) for k, v in table.items()] == [
            (k, list(v.items())) for k, v in model.items()
        ]
        assert table == model
        # what was derived from the values and their first seen holds while the version does
        assert _shape(model) == shape or table.version != version
        assert table.value_count() == sum(len(v) for v in model.values())
        assert table.total_sightings() == sum(f.count for v in model.values() for f in v.values())
        newest = max((f.first_seen for v in model.values() for f in v.values()), default=None)
        assert (table.newest_first_seen() if newest is not None else None) == newest
    assert pickle.loads(pickle.dumps(table)) == table
    assert FactTable(model) == table


@given(
    st.lists(st.tuples(st.integers(0, 120), st.floats(0, 1e6)), max_size=150),
    st.dictionaries(st.integers(0, 160), st.integers(1, 5), max_size=40),
    st.floats(0, 1e6),
)
# a kind past _INDEXED_FROM values (found through its index), then new values and known ones
@example([(v, float(v)) for v in range(60)], {5: 2, 200: 1, 201: 3}, 1e5)
def test_counts_recorded_at_once_are_as_recorded_one_by_one(
    before: list[tuple[int, float]], counts: dict[int, int], when: float
) -> None:
    # a baseline learns a window's facts a kind at a time; a kind of many values is looked
    # up once for all of them
    tables = FactTable(), FactTable()
    for table in tables:
        table.record("protocol", "tls", 1.0)
        for value, seen in before:
            table.record("peer", f"p{value}", seen)
        table.record("ip", "10.0.0.1", 1.0)
    at_once, one_by_one = tables
    one_by_one.setdefault("peer")  # (recording counts makes the kind, even with none)
    for again in (0.0, 1.0):  # the second time, every value is known (looked up, not added)
        at_once.record_counts("peer", {f"p{v}": n for v, n in counts.items()}, when + again)
        for value, times in counts.items():
            one_by_one.record("peer", f"p{value}", when + again, times)
        assert [(k, v.items()) for k, v in at_once.items()] == [
            (k, v.items()) for k, v in one_by_one.items()
        ]
        for value in {f"p{v}" for v in counts} | {f"p{v}" for v, _ in before}:
            assert at_once["peer"][value] == one_by_one["peer"][value], "found where it is"


def test_a_value_recorded_before_a_kind_left_empty_keeps_the_kinds_apart() -> None:
    table = FactTable()
    table.record("ip", "10.0.0.1", 1.0)
    table.record("peer", "a", 1.0)
    del table["peer"]["a"]  # the last kind, empty
    table.setdefault("hostname")  # and another
    table.record("ip", "10.0.0.2", 2.0)
    table.record("peer", "b", 3.0)
    assert {k: list(v) for k, v in table.items()} == {
        "ip": ["10.0.0.1", "10.0.0.2"], "peer": ["b"], "hostname": []
    }  # fmt: skip


_changes = st.lists(
    st.tuples(
        st.sampled_from(["record", "take_back", "pop", "setdefault", "absorb"]),
        st.sampled_from(["peer", "ip", "hostname"]),
        st.sampled_from(["a", "b", "c", "d", "e"]),
        st.integers(min_value=0, max_value=20),
        st.integers(min_value=1, max_value=3),
    ),
    max_size=60,
)


def _changed(model: dict[str, dict[str, Fact]], change: tuple, table: FactTable) -> None:
    """Make one change to the table and to its model, a dict of dicts of Facts."""
    operation, kind, value, when, times = change
    values = model.get(kind, {})
    if operation == "record":
        if value in values:
            values[value].see(float(when), times)
        else:
            model.setdefault(kind, {})[value] = Fact(float(when), float(when), times)
        table.record(kind, value, float(when), times)
    elif operation == "take_back":
        if value in values:
            values[value].count -= times
            if values[value].count <= 0:
                del values[value]
                if not values:
                    del model[kind]
        table.take_back(kind, value, times)
    elif operation == "pop" and value in values:
        assert table[kind].pop(value) == values.pop(value)
    elif operation == "setdefault":
        model.setdefault(kind, {})
        table.setdefault(kind)
    elif operation == "absorb":
        fact = Fact(float(when), float(when) + 1, times)
        if value in values:
            known = values[value]
            known.first_seen = min(known.first_seen, fact.first_seen)
            known.last_seen = max(known.last_seen, fact.last_seen)
            known.count += times
        else:
            model.setdefault(kind, {})[value] = fact
        table.absorb({kind: {value: fact}})


@given(
    _changes,
    st.integers(min_value=0, max_value=21),
    st.sampled_from([facts._INDEXED_FROM, 2]),
    st.sampled_from([facts._FEW_LATE, 0]),  # late values cut out one by one, or in one pass
)
def test_a_view_as_of_a_time_is_the_table_without_what_was_first_seen_since(
    changes: list[tuple], end: int, indexed_from: int, few_late: int
) -> None:
    default, facts._INDEXED_FROM = facts._INDEXED_FROM, indexed_from
    default_few, facts._FEW_LATE = facts._FEW_LATE, few_late
    try:
        table, model = FactTable(), {}  # type: ignore[var-annotated]
        for change in changes:
            _changed(model, change, table)
            view = table.first_seen_before(end)
            kept = {
                k: {v: f for v, f in vs.items() if f.first_seen < end} for k, vs in model.items()
            }
            kept = {k: vs for k, vs in kept.items() if vs}
            assert [(k, list(v.items())) for k, v in view.items()] == [
                (k, list(v.items())) for k, v in kept.items()
            ]
            assert view.counts_of(["peer", "ip", "dns_query"]) == tuple(
                len(kept.get(k, {})) for k in ["peer", "ip", "dns_query"]
            )
            assert [view.has(k, v) for k in ("peer", "ip") for v in "abcde"] == [
                v in kept.get(k, {}) for k in ("peer", "ip") for v in "abcde"
            ]
            assert table.first_seen_since(end) == [
                (k, v) for k, vs in model.items() for v, f in vs.items() if f.first_seen >= end
            ]
    finally:
        facts._INDEXED_FROM = default
        facts._FEW_LATE = default_few


def test_the_version_moves_when_values_come_go_or_were_seen_earlier_and_only_then() -> None:
    table = FactTable()
    versions = [table.version]

    def moved() -> bool:
        versions.append(table.version)
        return versions[-1] != versions[-2]

    table.record("peer", "a", 10.0)
    assert moved()
    table.record("peer", "a", 20.0, 3)  # a later sighting: the values read the same
    table.record_counts("peer", {"a": 2}, 30.0)
    table.absorb({"peer": {"a": Fact(15.0, 40.0, 1)}})
    assert not moved()
    table.record("peer", "a", 5.0)  # seen earlier than thought: a view as of 8.0 shows it
    assert moved()
    table.absorb({"peer": {"a": Fact(4.0, 4.0, 1)}})
    assert moved()
    table.record_counts("protocol", {"tls": 1}, 50.0)
    assert moved()
    del table["protocol"]["tls"]
    assert moved()
    table.setdefault("ip")["10.0.0.1"] = Fact(1.0, 2.0, 1)
    assert moved()
    del table["ip"]
    assert moved()
    # a view as of a time names its table and shares its version; its value count tells
    # which view
    view = table.first_seen_before(4.5)
    assert view.source is table and table.source is table
    assert view.version == table.version and view.value_count() == 1


def test_shrinks_moves_when_a_value_goes_or_its_numbers_are_replaced_and_only_then() -> None:
    """While ``shrinks`` stands still values only come, and first seen only moves earlier:
    the rules detector trusts that a kind with as many values has the same ones."""
    table = FactTable()
    table.record("peer", "a", 10.0)
    table.record("peer", "a", 5.0)
    table.record_counts("peer", {"b": 2}, 30.0)
    table.absorb({"peer": {"c": Fact(1.0, 2.0, 1), "a": Fact(4.0, 4.0, 1)}})
    assert table.shrinks == 0
    table["peer"]["a"] = Fact(20.0, 30.0, 1)  # replaced: its first seen moved later
    assert table.shrinks == 1
    del table["peer"]["a"]
    assert table.shrinks == 2
    table["ip"] = {"10.0.0.1": Fact(1.0, 1.0, 1)}
    assert table.shrinks == 2
    table["ip"] = {"10.0.0.2": Fact(1.0, 1.0, 1)}  # a kind replaced
    assert table.shrinks == 3
    for n in range(MAX_VALUES_PER_KIND + 1):  # past the bound, the stalest make room
        table.record("dns_query", f"n{n}", float(n))
    assert table.shrinks == 3 + MAX_VALUES_PER_KIND // 8
    view = table.first_seen_before(4.5)
    assert view.shrinks == table.shrinks


def test_sightings_taken_back_lower_the_count_and_the_last_one_takes_the_value() -> None:
    """A peer first named by its address is renamed once its device is known: each flow's
    sighting is taken back; what others saw of the value stays, with its times."""
    table = FactTable()
    table.record("peer", "ip:10.0.0.9", 10.0, 3, last=30.0)
    table.record("peer", "dev-b", 12.0)
    version, shrinks = table.version, table.shrinks
    assert not table.take_back("peer", "ip:10.0.0.9", 2)
    assert table["peer"]["ip:10.0.0.9"] == Fact(10.0, 30.0, 1)
    assert (table.version, table.shrinks) == (version, shrinks)  # the values read the same
    assert not table.take_back("peer", "unknown") and not table.take_back("ip", "10.0.0.9")
    assert table.take_back("peer", "ip:10.0.0.9")
    assert table == FactTable({"peer": {"dev-b": Fact(12.0, 12.0, 1)}})
    assert table.version > version and table.shrinks > shrinks
    assert table.take_back("peer", "dev-b")
    assert "peer" not in table and table.value_count() == 0 and table.total_sightings() == 0


def test_the_values_first_seen_since_a_time_are_those_its_view_leaves_out() -> None:
    table = FactTable()
    for kind, value, when in (("peer", "a", 1.0), ("peer", "b", 5.0), ("ip", "10.0.0.1", 6.0)):
        table.record(kind, value, when)
    table.record("peer", "a", 9.0)  # seen again later: still first seen at 1.0
    assert table.first_seen_since(5.0) == [("peer", "b"), ("ip", "10.0.0.1")]
    assert table.first_seen_since(9.5) == []
    del table["peer"]["b"]  # a freed cell is never seen
    assert table.first_seen_since(0.0) == [("peer", "a"), ("ip", "10.0.0.1")]
    view = table.first_seen_before(5.0)
    assert {(k, v) for k in view for v in view[k]} | set(table.first_seen_since(5.0)) == {
        (k, v) for k in table for v in table[k]
    }


def test_counts_of_kinds_are_their_values_in_the_table_or_in_its_view() -> None:
    table = FactTable()
    for value, when in (("a", 1.0), ("b", 5.0), ("c", 9.0)):
        table.record("peer", value, when)
    table.record("ip", "10.0.0.1", 6.0)
    assert table.counts_of(("peer", "ip", "dns_query")) == (3, 1, 0)
    assert table.first_seen_before(5.5).counts_of(("peer", "ip", "dns_query")) == (2, 0, 0)
    assert [table.count_of(kind) for kind in ("peer", "ip", "dns_query")] == [3, 1, 0]
    assert table.first_seen_before(5.5).count_of("peer") == 2


def test_a_fact_read_from_the_table_is_a_copy() -> None:
    table = FactTable({"ip": {"10.0.0.1": Fact(1.0, 2.0, 3)}})
    fact = table["ip"]["10.0.0.1"]
    fact.see(9.0)
    assert table["ip"]["10.0.0.1"] == Fact(1.0, 2.0, 3)


def test_merging_tables_takes_the_earliest_first_the_latest_last_and_adds_counts() -> None:
    merged = FactTable({"ip": {"10.0.0.1": Fact(5.0, 6.0, 2)}})
    merged.absorb(FactTable({"ip": {"10.0.0.1": Fact(1.0, 4.0, 3), "10.0.0.2": Fact(7.0, 7.0, 1)}}))
    assert merged == {"ip": {"10.0.0.1": Fact(1.0, 6.0, 5), "10.0.0.2": Fact(7.0, 7.0, 1)}}


def test_values_first_seen_before_a_time_are_kept_and_emptied_kinds_dropped() -> None:
    table = FactTable({"ip": {"10.0.0.1": Fact(1.0, 9.0, 2)}, "peer": {"x": Fact(5.0, 5.0, 1)}})
    as_of = table.first_seen_before(3.0)
    assert as_of == {"ip": {"10.0.0.1": Fact(1.0, 9.0, 2)}}
    assert (as_of.newest_first_seen(), as_of.total_sightings(), as_of.value_count()) == (1.0, 2, 1)
    assert table.newest_first_seen() == 5.0
    # a view shares the table's numbers: writing to it would change the table
    with pytest.raises(TypeError, match="read-only"):
        as_of.record("ip", "10.0.0.1", 2.0)
    with pytest.raises(TypeError, match="read-only"):
        as_of["ip"]["10.0.0.1"] = Fact(0.0, 0.0, 1)
    with pytest.raises(TypeError, match="read-only"):
        del as_of["ip"]
    assert table["ip"]["10.0.0.1"] == Fact(1.0, 9.0, 2)


def test_a_view_with_nothing_newer_shares_the_values_and_one_with_newer_ones_copies() -> None:
    """At a window's close most devices have nothing first seen since its end: the view holds
    their values without a copy (detectors take a view per device and window, 100,000 of them
    at a large site)."""
    table = FactTable()
    for value, when in (("a", 1.0), ("b", 5.0), ("c", 9.0)):
        table.record("peer", value, when)
    table.record("ip", "10.0.0.1", 2.0)
    table.record("dns_query", "late.example", 8.0)
    table.setdefault("hostname")  # a kind with no value stays out of a view
    table.record("tls_sni", "gone.example", 1.0)
    del table["tls_sni"]["gone.example"]  # a value gone is not a late one
    view = table.first_seen_before(6)  # (an int end too)
    assert view == {
        "peer": {"a": Fact(1.0, 1.0, 1), "b": Fact(5.0, 5.0, 1)},
        "ip": {"10.0.0.1": Fact(2.0, 2.0, 1)},
    }
    assert list(view) == ["peer", "ip"]
    assert view._values is not table._values and view._numbers is not table._numbers
    everything = table.first_seen_before(9.5)
    assert list(everything) == ["peer", "ip", "dns_query"]  # the empty kinds left out
    assert everything._values is table._values and everything._numbers is table._numbers
    assert everything == {k: v for k, v in table.items() if v}
    # what it shares stays the table's: a write through the view fails before it lands
    for as_of in (view, everything):
        with pytest.raises(TypeError, match="read-only"):
            as_of["ip"]["10.0.0.9"] = Fact(7.0, 7.0, 1)
        with pytest.raises(TypeError, match="read-only"):
            del as_of["ip"]["10.0.0.1"]
        with pytest.raises(TypeError, match="read-only"):
            as_of.take_back("ip", "10.0.0.1")
        with pytest.raises(TypeError, match="read-only"):
            as_of.record_counts("ip", {"10.0.0.1": 1}, 7.0)
    assert table.values_of("ip") == ["10.0.0.1"]
    assert table.first_seen_before(1.0) == {}


def test_a_table_that_shrank_gives_its_cells_back() -> None:
    table = FactTable()
    for i in range(1000):
        table.record("peer", f"p{i}", float(i))
    for i in range(990):
        del table["peer"][f"p{i}"]
    assert len(table._numbers) <= 3 * 20
    assert table["peer"]["p995"] == Fact(995.0, 995.0, 1)


def test_a_value_made_room_for_is_recorded_right_when_making_room_renumbers_the_cells() -> None:
    table = FactTable()
    for i in range(MAX_VALUES_PER_KIND):
        table.record("dns_query", f"q{i}", float(i))
        table.record("peer", f"p{i}", float(i), times=2)
    for i in range(1000):  # most of the peers go: the next room made renumbers every cell
        del table["peer"][f"p{i}"]
    assert table.record("dns_query", "new", 5000.0, times=7)
    assert table["dns_query"]["new"] == Fact(5000.0, 5000.0, 7)
    assert table["dns_query"][f"q{MAX_VALUES_PER_KIND - 1}"] == Fact(1023.0, 1023.0, 1)
    assert table["peer"]["p1000"] == Fact(1000.0, 1000.0, 2)
    assert len(table._numbers) == 3 * table.value_count()


# What a device of a large site holds: (kind, how many values), 37 values in all.
_TWO_KINDS = (("peer", 30), ("service_used", 7))
_EIGHT_KINDS = (
    ("peer", 20), ("service_used", 6), ("protocol", 3), ("ip", 1), ("hostname", 1),
    ("dns_query", 3), ("tls_sni", 2), ("dhcp_param_list", 1),
)  # fmt: skip


def _bytes_per_value(make_table, record, layout=_TWO_KINDS) -> float:  # type: ignore[no-untyped-def]
    # one table per device, the value strings shared (device ids, services), one time object
    # per sighting as the pipeline has
    shared = {kind: [f"{kind}-{d:02x}-{k:02x}" for d in range(256) for k in range(n)]
              for kind, n in layout}  # fmt: skip
    values = sum(n for _, n in layout)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tables = []
        for d in range(2000):
            table = make_table()
            when = 1.7e9 + d
            for kind, n in layout:
                for k in range(n):
                    record(table, kind, shared[kind][(d % 256) * n + k], when + k / 7)
            tables.append(table)
        return (tracemalloc.get_traced_memory()[0] - before) / (2000 * values)
    finally:
        tracemalloc.stop()


def _record_in_dicts(table: dict[str, dict[str, Fact]], kind: str, value: str, when: float) -> None:
    table.setdefault(kind, {})[value] = Fact(when, when, 1)


class _DictPerKind:
    """What the table was before: a dict per kind from each value to its numbers' place."""

    def __init__(self) -> None:
        self.cells: dict[str, dict[str, int]] = {}
        self.numbers = array("d")

    def record(self, kind: str, value: str, when: float) -> None:
        self.cells.setdefault(kind, {})[value] = len(self.numbers) // 3
        self.numbers.extend((when, when, 1))


def test_a_value_costs_far_less_than_an_object_per_fact() -> None:
    compact = _bytes_per_value(FactTable, FactTable.record)
    objects = _bytes_per_value(dict, _record_in_dicts)
    assert compact < 0.6 * objects, (compact, objects)


@pytest.mark.parametrize("layout", [_TWO_KINDS, _EIGHT_KINDS], ids=["two kinds", "eight kinds"])
def test_a_value_costs_less_than_a_dict_per_kind_would(layout: tuple[tuple[str, int], ...]) -> None:
    # most kinds of a device have a few values, and a dict costs more than those few
    compact = _bytes_per_value(FactTable, FactTable.record, layout)
    per_kind = _bytes_per_value(_DictPerKind, _DictPerKind.record, layout)
    assert compact < 0.8 * per_kind, (compact, per_kind)


def test_the_journal_sums_sightings_since_the_last_take_and_lists_removals() -> None:
    journal = FactJournal()
    journal.record("m", "peer", "x", 12.0, 2)
    journal.record("m", "peer", "x", 10.0, 1, last=15.0)
    journal.record("m", "ip", "10.0.0.7", 11.0)
    journal.remove("m", "ip", "10.0.0.7")
    journal.remove("m", "ip", "10.0.0.8")
    journal.record("m", "ip", "10.0.0.8", 13.0)  # removed, then seen again
    journal.touched.add("n")
    seen, removed, touched = journal.take()
    assert seen == {("m", "peer", "x"): [10.0, 15.0, 3], ("m", "ip", "10.0.0.8"): [13.0, 13.0, 1]}
    assert removed == {("m", "ip", "10.0.0.7"), ("m", "ip", "10.0.0.8")}
    assert touched == {"n"}
    assert journal.take() == ({}, set(), set()), "a take starts the journal again"


# kind -> value -> count, as a window's profile has them: kinds of FACT_KINDS and others, a
# kind left empty (a sighting taken back), values shared between kinds, kinds past the index
_window_counts = st.dictionaries(
    st.sampled_from(["peer", "protocol", "ip", "dns_query", "a kind of a test", "another"]),
    st.dictionaries(
        st.sampled_from([f"v{i}" for i in range(40)]) | st.text(max_size=4),
        st.integers(min_value=0, max_value=2**40),
        max_size=30,
    ),
)


@given(_window_counts)
def test_counts_read_as_the_dict_of_dicts_they_were_made_from(
    made_from: dict[str, dict[str, int]],
) -> None:
    counts = FactCounts(made_from)
    assert counts == made_from and len(counts) == len(made_from)
    assert list(counts) == list(made_from), "kinds keep their order"
    assert [(kind, dict(values)) for kind, values in counts.items()] == list(made_from.items())
    for kind, values in made_from.items():
        assert kind in counts and counts.get(kind) == values and counts[kind] == values
        assert list(counts[kind]) == list(values), "values keep their order"
        assert list(counts[kind].items()) == list(values.items())
        assert len(counts[kind]) == len(values) and bool(counts[kind]) == bool(values)
        for value, count in values.items():
            assert value in counts[kind] and counts[kind][value] == count
            assert counts[kind].get(value, -1) == count
        for other in ("v39", "v0", "", "peer"):
            if other not in values:
                assert other not in counts[kind] and counts[kind].get(other, -1) == -1
                with pytest.raises(KeyError):
                    counts[kind][other]
    for missing in ("hostname", "never a kind"):
        assert missing not in counts and counts.get(missing, {}) == {}
        with pytest.raises(KeyError):
            counts[missing]
    copied = pickle.loads(pickle.dumps(counts))
    assert isinstance(copied, FactCounts) and copied == made_from
    assert list(copied) == list(made_from)
    as_dicts = counts.as_dicts()
    assert [(kind, list(values.items())) for kind, values in as_dicts.items()] == [
        (kind, list(values.items())) for kind, values in made_from.items()
    ], "as dicts: the same kinds and values, in their order, a kind left empty kept"
    for values in as_dicts.values():
        values["a value the caller adds"] = 1
    assert counts == made_from, "the dicts are the caller's: changing them changes nothing"


def test_counts_pickle_as_kind_names_not_as_this_process_s_numbering() -> None:
    # a worker numbers the kinds outside FACT_KINDS in the order it meets them; the process
    # that merges its profiles may have met others first
    counts = FactCounts({"a kind only this test has": {"x": 2}})
    wire = pickle.dumps(counts)
    assert b"a kind only this test has" in wire
    assert pickle.loads(wire) == {"a kind only this test has": {"x": 2}}


def test_a_window_s_counts_cost_a_third_of_the_dicts_they_were_made_from() -> None:
    # a closing window holds every device's counts at once: a few values of a few kinds each
    shared = [f"peer-{k:03d}" for k in range(256)]

    def one(d: int) -> dict[str, dict[str, int]]:
        return {
            "peer": {shared[d % 256]: 3, shared[(d + 1) % 256]: 1},
            "protocol": {"udp": 4},
            "service_used": {"udp/2575": 4},
            "ip": {shared[(d + 2) % 256]: 4},
        }

    def bytes_each(make) -> float:  # type: ignore[no-untyped-def]
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            held = [make(one(d)) for d in range(2000)]
            return (tracemalloc.get_traced_memory()[0] - before) / len(held)
        finally:
            tracemalloc.stop()

    compact = bytes_each(FactCounts)
    dicts = bytes_each(lambda made: {kind: dict(values) for kind, values in made.items()})
    assert compact < dicts / 3, (compact, dicts)


# a window's sightings of a device: counted (a value, a kind, how many times) or taken back
_sightings = st.lists(
    st.tuples(
        st.sampled_from([True, True, False]),
        st.sampled_from(["peer", "protocol", "ip", "a kind of a test"]),
        st.sampled_from([f"v{i}" for i in range(24)]),
        st.integers(min_value=0, max_value=3),
    ),
    max_size=160,
)


@given(_sightings)
def test_a_tally_counts_as_the_dict_of_dicts_the_same_sightings_make(
    sightings: list[tuple[bool, str, str, int]],
) -> None:
    # the open window counted in a dict per kind before the tally: the same sightings must
    # hand over the same counts, in the same order (a baseline learns them in that order)
    tally, made = FactTally(), dict[str, dict[str, int]]()
    for counted, kind, value, times in sightings:
        if counted:
            tally.add(kind, value, times)
            of_kind = made.setdefault(kind, {})
            of_kind[value] = of_kind.get(value, 0) + times
        else:
            tally.take_back(kind, value)
            of_kind = made.get(kind, {})
            if value in of_kind:
                if of_kind[value] > 1:
                    of_kind[value] -= 1
                else:
                    del of_kind[value]
    counts = tally.counts()
    assert isinstance(counts, FactCounts)
    assert [(kind, list(values.items())) for kind, values in counts.items()] == [
        (kind, list(values.items())) for kind, values in made.items()
    ]


def test_a_tally_finds_a_value_counted_under_two_kinds_in_each() -> None:
    tally = FactTally()
    tally.add("ip", "10.0.0.7")
    tally.add("peer", "10.0.0.7", 2)
    tally.add("ip", "10.0.0.7")
    tally.take_back("peer", "10.0.0.7")
    assert tally.counts() == {"ip": {"10.0.0.7": 2}, "peer": {"10.0.0.7": 1}}


def test_a_tally_of_a_server_s_many_peers_finds_them_after_one_is_taken_back() -> None:
    # past _COUNTS_INDEXED_FROM values a tally finds a value through an index, whose
    # positions a value taken back to nothing moves
    tally = FactTally()
    peers = [f"10.0.{k // 250}.{k % 250}" for k in range(40)]
    for peer in peers:
        tally.add("peer", peer)
        tally.add("ip", peer)
    tally.add("peer", peers[39], 5)  # counted past the index's making
    tally.take_back("peer", peers[3])
    for peer in peers:
        tally.add("peer", peer, 2)
    tally.take_back("ip", peers[39])
    tally.add("ip", peers[38])
    counts = tally.counts()
    assert list(counts) == ["peer", "ip"]
    assert counts["peer"] == {peer: {peers[3]: 2, peers[39]: 8}.get(peer, 3) for peer in peers}
    assert list(counts["peer"])[-1] == peers[3], "counted again, it comes last"
    assert counts["ip"] == {peer: 2 if peer == peers[38] else 1 for peer in peers[:39]}


def test_a_window_s_tally_costs_under_half_of_a_dict_per_kind() -> None:
    # an open window holds a tally per device it saw: a few values of a few kinds each
    shared = [f"peer-{k:03d}" for k in range(256)]

    def sightings(d: int) -> list[tuple[str, str, int]]:
        return [
            ("peer", shared[d % 256], 3),
            ("protocol", "udp", 4),
            ("peer", shared[(d + 1) % 256], 1),
            ("service_used", "udp/2575", 4),
            ("ip", shared[(d + 2) % 256], 4),
        ]

    def in_a_tally(d: int) -> FactTally:
        tally = FactTally()
        for kind, value, times in sightings(d):
            tally.add(kind, value, times)
        return tally

    def in_dicts(d: int) -> dict[str, dict[str, int]]:
        made: dict[str, dict[str, int]] = {}
        for kind, value, times in sightings(d):
            of_kind = made.setdefault(kind, {})
            of_kind[value] = of_kind.get(value, 0) + times
        return made

    def bytes_each(make) -> float:  # type: ignore[no-untyped-def]
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            held = [make(d) for d in range(2000)]
            return (tracemalloc.get_traced_memory()[0] - before) / len(held)
        finally:
            tracemalloc.stop()

    tally, dicts = bytes_each(in_a_tally), bytes_each(in_dicts)
    assert tally < dicts / 2, (tally, dicts)


def test_the_shared_empty_fact_table_refuses_to_be_written() -> None:
    # The baselines with no pending fact share it: a value written there would be every
    # device's.
    writes = [
        lambda: facts.NO_FACTS.record("peer", "10.0.0.1", 1.0),
        lambda: facts.NO_FACTS.record_counts("peer", {"10.0.0.1": 1}, 1.0),
        lambda: facts.NO_FACTS.setdefault("peer"),
        lambda: facts.NO_FACTS.absorb({"peer": {"10.0.0.1": Fact(1.0, 1.0, 1)}}),
    ]
    for write in writes:
        with pytest.raises(TypeError, match="read-only"):
            write()
    assert facts.NO_FACTS == {} and not facts.NO_FACTS.has("peer", "10.0.0.1")
