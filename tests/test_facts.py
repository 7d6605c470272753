"""Learned facts: first and last seen, counts, and the bound on values per kind."""

from __future__ import annotations

from monitor import facts
from monitor.facts import MAX_VALUES_PER_KIND, FactTable, record_fact


def test_a_fact_keeps_its_first_and_last_time_and_its_count() -> None:
    table: FactTable = {}
    assert record_fact(table, "peer", "ip:10.1.0.9", 20.0)
    assert not record_fact(table, "peer", "ip:10.1.0.9", 10.0, times=3, last=30.0)
    fact = table["peer"]["ip:10.1.0.9"]
    assert (fact.first_seen, fact.last_seen, fact.count) == (10.0, 30.0, 4)


def test_values_past_the_bound_make_room_stalest_first_and_are_counted() -> None:
    table: FactTable = {}
    before = facts.evicted_values
    # a device scanned from the internet: every source is a new peer
    for i in range(MAX_VALUES_PER_KIND):
        record_fact(table, "peer", f"ext:203.0.{i // 256}.{i % 256}", float(i))
    record_fact(table, "peer", "ext:198.51.100.1", 10_000.0)
    peers = table["peer"]
    dropped = MAX_VALUES_PER_KIND // 8
    assert len(peers) == MAX_VALUES_PER_KIND - dropped + 1
    assert facts.evicted_values - before == dropped
    assert "ext:203.0.0.0" not in peers  # the stalest went
    assert f"ext:203.0.{(dropped) // 256}.{dropped % 256}" in peers
    assert "ext:198.51.100.1" in peers
    # other kinds of the same device are untouched
    record_fact(table, "protocol", "tls", 1.0)
    assert set(table["protocol"]) == {"tls"}
