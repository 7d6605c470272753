"""monitor/merge.py: two analyses fed disjoint halves of a real capture, split by flow as the
kernel's fanout splits a wire, merge into what one analysis of the whole capture learns.

Fields that legitimately differ (see docs/daemon.md, "Several workers"):
- ``peer_name`` facts: a DNS answer names the flows of the worker that saw it only;
- first/last seen of facts the pipeline records once per batch (address bindings, ARP): their
  times have the granularity of a batch, and the halves are cut into other batches;
- where the pipeline files a batch's ARP fact into a window (the window of the batch's last
  ARP), for the same reason.
Everything else must be equal.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from monitor.capture import FrameBatch
from monitor.capture.files import open_capture
from monitor.decode.headers import decode_headers
from monitor.flows import flow_keys
from monitor.merge import (
    MergedAnalysis,
    WorkerReport,
    WorkerStats,
    merge_devices,
    merge_facts,
    merge_profiles,
)
from monitor.model import Device, WindowProfile
from monitor.pipeline import Analysis

DEMO = Path(__file__).resolve().parent / "data" / "lab-demo" / "capture.pcap"
BATCH_GRANULAR = {"ip", "protocol"}


def share_of(batch: FrameBatch, workers: int) -> np.ndarray:
    """Which worker each frame goes to: by flow (direction-free), as fanout does."""
    table = decode_headers(batch)
    n = len(batch)
    keys = np.empty(n, np.uint64)
    direction = np.empty(n, np.uint8)
    flow_keys(
        table.ip_version,
        table.src_ip_hi,
        table.src_ip_lo,
        table.dst_ip_hi,
        table.dst_ip_lo,
        table.protocol,
        table.src_port,
        table.dst_port,
        keys,
        direction,
    )
    no_flow = keys == 0
    keys[no_flow] = table.src_mac[no_flow] ^ table.dst_mac[no_flow]
    return (keys >> np.uint64(7)) % np.uint64(workers)


def frames(batch: FrameBatch, mask: np.ndarray) -> FrameBatch:
    return dataclasses.replace(
        batch,
        offsets=batch.offsets[mask],
        caplens=batch.caplens[mask],
        wirelens=batch.wirelens[mask],
        timestamps_ns=batch.timestamps_ns[mask],
        linktypes=batch.linktypes[mask],
    )


@pytest.fixture(scope="module")
def runs() -> tuple[Analysis, list[WindowProfile], MergedAnalysis, list[WindowProfile]]:
    whole_windows: list[WindowProfile] = []
    half_windows: list[list[WindowProfile]] = [[], []]
    whole = Analysis(window_seconds=10, on_window=lambda p, a: whole_windows.extend(p))
    halves = [
        Analysis(window_seconds=10, on_window=lambda p, a, i=i: half_windows[i].extend(p))
        for i in range(2)
    ]
    for batch in open_capture(DEMO):
        whole.feed(batch)
        share = share_of(batch, 2)
        for i, half in enumerate(halves):
            if (share == i).any():
                half.feed(frames(batch, share == i))
    whole.finish()
    for half in halves:
        half.finish()
    assert all(h.packets > 500 for h in halves), "the split must give both halves work"
    merged = MergedAnalysis("eth0", 2)
    released: list[WindowProfile] = []
    for i, half in enumerate(halves):
        report = WorkerReport(
            worker=i,
            closed_until=float("inf"),
            profiles=half_windows[i],
            devices=list(half.devices.values()),
            stats=WorkerStats(half.packets, half.bytes, half.last_time or 0.0, 0, i),
            decode_errors=dict(half.decode_errors),
            protocol_packets=dict(half.protocol_packets),
            first_time=half.first_time,
            last_time=half.last_time,
            tables=half.table_stats(),
        )
        for window in merged.apply(report):
            released.extend(window)
    return whole, whole_windows, merged, released


def test_merged_devices_have_the_counters_of_one_analysis(runs) -> None:  # type: ignore[no-untyped-def]
    whole, _, merged, _ = runs
    assert set(merged.devices) == set(whole.devices)
    for device_id, device in whole.devices.items():
        got = merged.devices[device_id]
        for name in ("tx_packets", "tx_bytes", "rx_packets", "rx_bytes", "first_seen"):
            assert getattr(got, name) == getattr(device, name), (device_id, name)
        assert (got.last_seen, got.vendor, got.mac, got.local) == (
            device.last_seen,
            device.vendor,
            device.mac,
            device.local,
        )


def test_merged_facts_are_those_of_one_analysis_but_dns_names_of_other_workers(runs) -> None:  # type: ignore[no-untyped-def]
    whole, _, merged, _ = runs
    for device_id, device in whole.devices.items():
        got = merged.devices[device_id].facts
        for kind, values in device.facts.items():
            if kind == "peer_name":
                assert set(got.get(kind, {})) <= set(values)
                continue
            assert set(got[kind]) == set(values), (device_id, kind)
            for value, fact in values.items():
                assert got[kind][value].count == fact.count, (device_id, kind, value)
                if kind not in BATCH_GRANULAR:
                    assert (got[kind][value].first_seen, got[kind][value].last_seen) == (
                        fact.first_seen,
                        fact.last_seen,
                    ), (device_id, kind, value)
        assert set(got) - set(device.facts) == set()


def test_merged_peers_are_those_of_one_analysis(runs) -> None:  # type: ignore[no-untyped-def]
    whole, _, merged, _ = runs
    for device_id, device in whole.devices.items():
        assert set(merged.devices[device_id].facts.get("peer", {})) == set(
            device.facts.get("peer", {})
        )


def test_merged_window_profiles_equal_one_analysis(runs) -> None:  # type: ignore[no-untyped-def]
    _, whole_windows, _, released = runs
    expected = {(p.device_id, p.start): p for p in whole_windows}
    got = {(p.device_id, p.start): p for p in released}
    assert set(got) == set(expected)
    for key, want in expected.items():
        have = got[key]
        for name in (
            "end",
            "tx_packets",
            "tx_bytes",
            "rx_packets",
            "rx_bytes",
            "flows_started",
            "peers",
            "services",
            "protocols",
            "size_histogram",
            "conversations",
        ):
            assert getattr(have, name) == getattr(want, name), (key, name)
        strip = {"peer_name"}
        facts_want = {k: v for k, v in want.facts.items() if k not in strip}
        facts_have = {k: v for k, v in have.facts.items() if k not in strip}
        for facts in (facts_want, facts_have):
            if "protocol" in facts:
                facts["protocol"] = {v: c for v, c in facts["protocol"].items() if v != "arp"}
        assert facts_have == facts_want, key


def test_merged_sensor_totals_equal_one_analysis(runs) -> None:  # type: ignore[no-untyped-def]
    whole, _, merged, _ = runs
    assert (merged.packets, merged.bytes) == (whole.packets, whole.bytes)
    assert merged.decode_errors == whole.decode_errors
    assert merged.protocol_packets == whole.protocol_packets
    assert (merged.first_time, merged.last_time) == (whole.first_time, whole.last_time)
    totals = merged.capture_stats["eth0"]
    assert (totals.packets, totals.dropped) == (whole.packets, 1)


def test_merged_flow_tables_add_up_to_one_analysis(runs) -> None:  # type: ignore[no-untyped-def]
    """Fanout keeps each flow on one worker: their flow tables partition the whole one."""
    whole, _, merged, _ = runs
    mine, theirs = merged.table_stats(), whole.table_stats()
    assert (mine.flows_active, mine.flows_started) == (theirs.flows_active, theirs.flows_started)
    assert mine.flows_evicted == theirs.flows_evicted
    assert mine.devices == theirs.devices


def device(device_id: str, **counters: int) -> Device:
    return Device(device_id, device_id, False, None, 10.0, 20.0, **counters)  # type: ignore[arg-type]


def test_merge_is_independent_of_worker_order_and_leaves_inputs_alone() -> None:
    a, b = device("m", tx_packets=3, rx_bytes=7), device("m", tx_packets=4, rx_bytes=1)
    b.first_seen, b.last_seen = 5.0, 15.0
    a.facts.record("peer", "x", 11.0, 2)
    b.facts.record("peer", "x", 9.0, 1, last=30.0)
    b.facts.record("protocol", "hl7", 12.0)
    one, two = merge_devices([a, b]), merge_devices([b, a])
    assert dataclasses.asdict(one) == dataclasses.asdict(two)
    assert (one.tx_packets, one.rx_bytes, one.first_seen, one.last_seen) == (7, 8, 5.0, 20.0)
    fact = one.facts["peer"]["x"]
    assert (fact.first_seen, fact.last_seen, fact.count) == (9.0, 30.0, 3)
    assert a.facts["peer"]["x"].count == 2 and "protocol" not in a.facts
    assert merge_facts([]) == {}


def test_message_starts_from_two_workers_within_the_gap_are_one_message() -> None:
    first = WindowProfile("m", 0.0, 60.0, conversations={"p|udp/53": [1.0, 5.0]})
    second = WindowProfile("m", 0.0, 60.0, conversations={"p|udp/53": [1.2, 9.0]})
    assert merge_profiles([first, second]).conversations == {"p|udp/53": [1.0, 5.0, 9.0]}


def test_a_window_waits_for_every_worker_and_late_profiles_come_out_alone() -> None:
    merged = MergedAnalysis("eth0", 2)
    early = WindowProfile("m", 0.0, 60.0, tx_packets=1)
    assert merged.apply(WorkerReport(0, 60.0, [early])) == []
    other = WindowProfile("m", 0.0, 60.0, tx_packets=2)
    out = merged.apply(WorkerReport(1, 60.0, [other]))
    assert [[p.tx_packets for p in window] for window in out] == [[3]]
    late = WindowProfile("m", 0.0, 60.0, tx_packets=5)
    assert [[p.tx_packets for p in w] for w in merged.apply(WorkerReport(0, 61.0, [late]))] == [[5]]
