"""monitor/merge.py: two analyses fed disjoint halves of a real capture, split by flow as the
kernel's fanout splits a wire, merge into what one analysis of the whole capture learns.

Fields that legitimately differ (see docs/daemon.md, "Several workers"):
- ``peer_name`` facts: a DNS answer names the flows of the worker that saw it only;
- first/last seen of facts the pipeline records once per batch (address bindings, ARP): their
  times have the granularity of a batch, and the halves are cut into other batches;
- where the pipeline files a batch's ARP fact into a window (the window of the batch's last
  ARP), for the same reason;
- receive counters (of devices and windows): a worker counts a packet as received by a
  device once it has seen that device send in its own share, so they may be lower.
Everything else must be equal, and the merged counters must be the workers' summed exactly,
however many reports they came in.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from monitor.capture import FrameBatch
from monitor.capture.files import open_capture
from monitor.decode.headers import decode_headers
from monitor.facts import MAX_VALUES_PER_KIND, FactCounts
from monitor.flows import packet_flow_keys
from monitor.inventory import Inventory
from monitor.merge import (
    DeviceChanges,
    MergedAnalysis,
    WorkerReport,
    WorkerStats,
    merge_profiles,
)
from monitor.model import WindowProfile
from monitor.pipeline import Analysis
from monitor.signatures import default_signature_dirs, load_library
from tests.support.packets import BRIDGE, bridge_identified_in_its_second_window, write_capture

DEMO = Path(__file__).resolve().parent / "data" / "lab-demo" / "capture.pcap"
BATCH_GRANULAR = {"ip", "protocol"}


def share_of(batch: FrameBatch, workers: int) -> np.ndarray:
    """Which worker each frame goes to: by flow (direction-free), as fanout does."""
    table = decode_headers(batch)
    keys, _ = packet_flow_keys(table)
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


def chunks(batch: FrameBatch, size: int) -> list[np.ndarray]:
    """Masks cutting the batch into runs of ``size`` frames, in order."""
    index = np.arange(len(batch))
    return [(index >= start) & (index < start + size) for start in range(0, len(batch), size)]


def worker_report(
    worker: int, half: Analysis, changes: DeviceChanges, profiles: list[WindowProfile]
) -> WorkerReport:
    return WorkerReport(
        worker=worker,
        closed_until=float("inf") if profiles else float("-inf"),
        profiles=profiles,
        devices=changes.take(),
        stats=WorkerStats(half.packets, half.bytes, half.last_time or 0.0, 0, worker),
        decode_errors=dict(half.decode_errors),
        protocol_packets=dict(half.protocol_packets),
        first_time=half.first_time,
        last_time=half.last_time,
        tables=half.table_stats(),
    )


@pytest.fixture(scope="module")
def runs() -> tuple[
    Analysis, list[WindowProfile], MergedAnalysis, list[WindowProfile], list[Analysis]
]:
    """The whole capture in one analysis; its two halves in two, each reporting its device
    changes after every 200 frames (as a worker does once a second) and its windows last.
    All three are fed the capture in the same runs of 200 frames."""
    whole_windows: list[WindowProfile] = []
    half_windows: list[list[WindowProfile]] = [[], []]
    whole = Analysis(window_seconds=10, on_window=lambda p, a: whole_windows.extend(p))
    halves = [
        Analysis(window_seconds=10, on_window=lambda p, a, i=i: half_windows[i].extend(p))
        for i in range(2)
    ]
    changes = [DeviceChanges(half.inventory) for half in halves]
    merged = MergedAnalysis("eth0", 2)
    reports = 0
    for batch in open_capture(DEMO):
        share = share_of(batch, 2)
        for chunk in chunks(batch, 200):
            whole.feed(frames(batch, chunk))  # the same cuts: a batch's facts are batch-granular
            for i, half in enumerate(halves):
                if (chunk & (share == i)).any():
                    half.feed(frames(batch, chunk & (share == i)))
                    assert merged.apply(worker_report(i, half, changes[i], [])) == []
                    reports += 1
    whole.finish()
    for half in halves:
        half.finish()
    assert all(h.packets > 500 for h in halves), "the split must give both halves work"
    assert reports > 10, "the devices must arrive in many reports"
    released: list[WindowProfile] = []
    for i, half in enumerate(halves):
        for window in merged.apply(worker_report(i, half, changes[i], half_windows[i])):
            released.extend(window)
    return whole, whole_windows, merged, released, halves


def test_merged_devices_have_the_counters_of_their_workers_summed(runs) -> None:  # type: ignore[no-untyped-def]
    """Deltas reported many times add up to each worker's final counters, no more, no less."""
    _, _, merged, _, halves = runs
    for device_id, got in merged.devices.items():
        parts = [h.devices[device_id] for h in halves if device_id in h.devices]
        for name in ("tx_packets", "tx_bytes", "rx_packets", "rx_bytes"):
            assert getattr(got, name) == sum(getattr(d, name) for d in parts), (device_id, name)
        assert got.first_seen == min(d.first_seen for d in parts)
        assert got.last_seen == max(d.last_seen for d in parts)


def test_merged_devices_have_the_counters_of_one_analysis(runs) -> None:  # type: ignore[no-untyped-def]
    """Transmit counters are exact; a worker counts a packet received by a device once it has
    seen that device send in its own share (docs/daemon.md), so receive counters may be lower."""
    whole, _, merged, _, _ = runs
    assert set(merged.devices) == set(whole.devices)
    for device_id, device in whole.devices.items():
        got = merged.devices[device_id]
        for name in ("tx_packets", "tx_bytes", "first_seen"):
            assert getattr(got, name) == getattr(device, name), (device_id, name)
        assert got.rx_packets <= device.rx_packets and got.rx_bytes <= device.rx_bytes
        assert (got.last_seen, got.vendor, got.mac, got.local) == (
            device.last_seen,
            device.vendor,
            device.mac,
            device.local,
        )


def test_merged_facts_are_those_of_one_analysis_but_dns_names_of_other_workers(runs) -> None:  # type: ignore[no-untyped-def]
    whole, _, merged, _, _ = runs
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
    whole, _, merged, _, _ = runs
    for device_id, device in whole.devices.items():
        assert set(merged.devices[device_id].facts.get("peer", {})) == set(
            device.facts.get("peer", {})
        )


def test_merged_window_profiles_equal_one_analysis(runs) -> None:  # type: ignore[no-untyped-def]
    _, whole_windows, _, released, _ = runs
    expected = {(p.device_id, p.start): p for p in whole_windows}
    got = {(p.device_id, p.start): p for p in released}
    assert set(got) == set(expected)
    for key, want in expected.items():
        have = got[key]
        for name in (
            "end",
            "tx_packets",
            "tx_bytes",
            "flows_started",
            "peers",
            "services",
            "protocols",
            "size_histogram",
            "conversations",
        ):
            assert getattr(have, name) == getattr(want, name), (key, name)
        # received: as the devices' counters (test_merged_devices_have_the_counters_of_one_...)
        assert have.rx_packets <= want.rx_packets and have.rx_bytes <= want.rx_bytes, key
        assert isinstance(have.facts, FactCounts), key  # as one analysis's: compact
        strip = {"peer_name"}
        facts_want = {k: v for k, v in want.facts.items() if k not in strip}
        facts_have = {k: v for k, v in have.facts.items() if k not in strip}
        for facts in (facts_want, facts_have):
            if "protocol" in facts:
                facts["protocol"] = {v: c for v, c in facts["protocol"].items() if v != "arp"}
        assert facts_have == facts_want, key


def test_merged_sensor_totals_equal_one_analysis(runs) -> None:  # type: ignore[no-untyped-def]
    whole, _, merged, _, _ = runs
    assert (merged.packets, merged.bytes) == (whole.packets, whole.bytes)
    assert merged.decode_errors == whole.decode_errors
    assert merged.protocol_packets == whole.protocol_packets
    assert (merged.first_time, merged.last_time) == (whole.first_time, whole.last_time)
    totals = merged.capture_stats["eth0"]
    assert (totals.packets, totals.dropped) == (whole.packets, 1)


def test_merged_flow_tables_add_up_to_one_analysis(runs) -> None:  # type: ignore[no-untyped-def]
    """Fanout keeps each flow on one worker: their flow tables partition the whole one."""
    whole, _, merged, _, _ = runs
    mine, theirs = merged.table_stats(), whole.table_stats()
    assert (mine.flows_active, mine.flows_started) == (theirs.flows_active, theirs.flows_started)
    assert mine.flows_evicted == theirs.flows_evicted
    assert mine.devices == theirs.devices


def worker_inventory() -> tuple[Inventory, DeviceChanges]:
    inventory = Inventory()
    return inventory, DeviceChanges(inventory)


def report_of(worker: int, changes: DeviceChanges) -> WorkerReport:
    return WorkerReport(worker, float("-inf"), devices=changes.take())


def test_device_deltas_merge_the_same_whatever_the_order_of_the_workers() -> None:
    (a, a_changes), (b, b_changes) = worker_inventory(), worker_inventory()
    in_a, in_b = a.device_for_mac(0x00095B000001, 10.0), b.device_for_mac(0x00095B000001, 5.0)
    in_a.tx_packets, in_a.rx_bytes, in_a.last_seen = 3, 7, 20.0
    in_b.tx_packets, in_b.rx_bytes, in_b.last_seen = 4, 1, 15.0
    a.note(in_a, "peer", "x", 11.0, 2)
    b.note(in_b, "peer", "x", 9.0, 1, last=30.0)
    b.note(in_b, "protocol", "hl7", 12.0)
    reports = [report_of(0, a_changes), report_of(1, b_changes)]
    one, two = MergedAnalysis("eth0", 2), MergedAnalysis("eth0", 2)
    for report in reports:
        one.apply(report)
    for report in reversed(reports):
        two.apply(report)
    assert one.devices == two.devices
    merged = one.devices["00:09:5b:00:00:01"]
    assert (merged.tx_packets, merged.rx_bytes, merged.first_seen, merged.last_seen) == (
        7,
        8,
        5.0,
        20.0,
    )
    fact = merged.facts["peer"]["x"]
    assert (fact.first_seen, fact.last_seen, fact.count) == (9.0, 30.0, 3)
    assert merged.vendor == in_a.vendor and one.inventory.new_devices == [merged.id]


def test_a_device_is_reported_again_with_only_what_changed_since() -> None:
    inventory, changes = worker_inventory()
    merged = MergedAnalysis("eth0", 1)
    device = inventory.device_for_mac(0x00095B000001, 10.0)
    device.tx_packets = 5
    inventory.note(device, "peer", "x", 10.0)
    merged.apply(report_of(0, changes))
    assert changes.take() == [], "nothing changed: nothing to report"
    device.tx_packets, device.last_seen = 8, 12.0
    inventory.note(device, "peer", "x", 12.0, 2)
    inventory.note(device, "peer", "y", 12.0)
    (delta,) = changes.take()
    assert delta.tx_packets == 3
    assert sorted(delta.facts) == [("peer", "x", 12.0, 12.0, 2), ("peer", "y", 12.0, 12.0, 1)]
    merged.apply(WorkerReport(0, float("-inf"), devices=[delta]))
    got = merged.devices[device.id]
    assert (got.tx_packets, got.last_seen, got.facts["peer"]["x"].count) == (8, 12.0, 3)
    assert got.facts == device.facts


def test_a_device_evicted_and_seen_again_reports_its_new_counters_in_full() -> None:
    inventory, changes = worker_inventory()
    inventory.max_devices = 1
    first = inventory.device_for_mac(0x00095B000001, 10.0)
    first.tx_packets = 100
    changes.take()
    inventory.device_for_mac(0x00095B000002, 11.0)  # makes room: the first goes
    again = inventory.device_for_mac(0x00095B000001, 12.0)
    again.tx_packets = 2
    deltas = {d.id: d for d in changes.take()}
    assert deltas[again.id].tx_packets == 2, "a new device, not 2 - 100"


def test_an_address_a_worker_unbinds_leaves_the_merged_device_and_its_ownership() -> None:
    inventory, changes = worker_inventory()
    merged = MergedAnalysis("eth0", 1)
    router = inventory.device_for_mac(0x00095B000001, 10.0)
    inventory.bind(router, "10.0.0.7", 10.0, authoritative=False)
    merged.apply(report_of(0, changes))
    assert merged.inventory.ip_owner == {"10.0.0.7": router.id}
    inventory.bind(router, "203.0.113.9", 11.0, authoritative=False)  # forwards the internet
    assert router.id in inventory.routers and router.facts.values_of("ip") == []
    (delta,) = changes.take()
    assert delta.removed == [("ip", "10.0.0.7")]
    merged.apply(WorkerReport(0, float("-inf"), devices=[delta]))
    assert merged.devices[router.id].facts.values_of("ip") == []
    assert merged.inventory.ip_owner == {}
    assert router.id in merged.inventory.dirty


def test_merged_facts_are_bounded_per_kind_and_what_the_bound_drops_is_counted() -> None:
    """Two workers each within the bound can together exceed it: the merged device keeps the
    bound too, and counts what it drops."""
    workers = [worker_inventory(), worker_inventory()]
    merged = MergedAnalysis("eth0", 2)
    for number, (inventory, changes) in enumerate(workers):
        device = inventory.device_for_mac(0x00095B000001, 10.0)
        for i in range(MAX_VALUES_PER_KIND):
            inventory.note(device, "peer", f"w{number}-{i}", 10.0 + i)
        merged.apply(report_of(number, changes))
    peers = merged.devices["00:09:5b:00:00:01"].facts["peer"]
    assert len(peers) <= MAX_VALUES_PER_KIND
    assert merged.table_stats().facts_evicted == 2 * MAX_VALUES_PER_KIND - len(peers) > 0


def test_message_starts_from_two_workers_within_the_gap_are_one_message() -> None:
    first = WindowProfile("m", 0.0, 60.0, conversations={"p|udp/53": [1.0, 5.0]})
    second = WindowProfile("m", 0.0, 60.0, conversations={"p|udp/53": [1.2, 9.0]})
    assert merge_profiles([first, second]).conversations == {"p|udp/53": [1.0, 5.0, 9.0]}


def test_address_use_from_two_workers_adds_up_to_the_latest_sighting() -> None:
    first = WindowProfile("m", 0.0, 60.0, address_use={"10.0.0.5": (3, 20.0)})
    second = WindowProfile(
        "m", 0.0, 60.0, address_use={"10.0.0.5": (2, 31.0), "10.0.0.6": (1, 4.0)}
    )
    assert merge_profiles([first, second]).address_use == {
        "10.0.0.5": (5, 31.0),
        "10.0.0.6": (1, 4.0),
    }


def test_address_packets_since_a_time_are_those_of_the_windows_waiting_from_then() -> None:
    merged = MergedAnalysis("eth0", 2)
    for start, packets in ((0.0, 4), (60.0, 3), (120.0, 2)):
        window = WindowProfile("m", start, start + 60.0, address_use={"10.0.0.5": (packets, 1.0)})
        assert merged.apply(WorkerReport(0, start + 60.0, [window])) == []
    assert merged.address_packets_since("m", "10.0.0.5", 60.0) == 5
    assert merged.address_packets_since("m", "10.0.0.6", 60.0) == 0
    assert merged.address_packets_since("other", "10.0.0.5", 0.0) == 0


def test_a_window_waits_for_every_worker_and_late_profiles_come_out_alone() -> None:
    merged = MergedAnalysis("eth0", 2)
    early = WindowProfile("m", 0.0, 60.0, tx_packets=1)
    assert merged.apply(WorkerReport(0, 60.0, [early])) == []
    other = WindowProfile("m", 0.0, 60.0, tx_packets=2)
    out = merged.apply(WorkerReport(1, 60.0, [other]))
    assert [[p.tx_packets for p in window] for window in out] == [[3]]
    late = WindowProfile("m", 0.0, 60.0, tx_packets=5)
    assert [[p.tx_packets for p in w] for w in merged.apply(WorkerReport(0, 61.0, [late]))] == [[5]]


def test_a_device_whose_traffic_moved_without_a_new_fact_is_reported(tmp_path: Path) -> None:
    """Packets deep in a known flow count for their devices but note nothing: the pipeline
    names those devices to the journal, or their counters would wait for their next fact."""
    client, server = "00:09:fb:00:00:01", "00:09:fb:00:00:02"
    forth = Ether(src=client, dst=server) / IP(src="10.0.0.1", dst="10.0.0.2")
    back = Ether(src=server, dst=client) / IP(src="10.0.0.2", dst="10.0.0.1")
    opening = [
        forth / TCP(sport=40000, dport=2575, flags="S", seq=1),
        back / TCP(sport=2575, dport=40000, flags="SA", seq=1, ack=2),
        forth / TCP(sport=40000, dport=2575, flags="A", seq=2, ack=2),
    ]
    data = [forth / TCP(sport=40000, dport=2575, flags="A", seq=2 + i, ack=2) for i in range(4)]
    analysis = Analysis(window_seconds=60)
    changes = DeviceChanges(analysis.inventory)
    for batch in open_capture(write_capture(tmp_path / "opening.pcap", opening)):
        analysis.feed(batch)
    changes.take()
    later = write_capture(tmp_path / "data.pcap", data, start=1_700_000_001.0)
    for batch in open_capture(later):
        analysis.feed(batch)
    deltas = {d.id: d for d in changes.take()}
    assert deltas[client].tx_packets == 4 and deltas[server].rx_packets == 4


def test_a_window_merged_from_workers_is_judged_with_the_classes_of_its_end(
    tmp_path: Path,
) -> None:
    """Workers report what they saw after a window's end with it (their next report, the
    next window's packets). Classified as of the window's end before it is judged, the
    bridge is not yet identified in its first window, as one analysis judges it."""
    capture = bridge_identified_in_its_second_window(tmp_path / "bridge.pcap")
    halves = [Analysis() for _ in range(2)]
    changes = [DeviceChanges(half.inventory) for half in halves]
    closed: list[list[WindowProfile]] = [[], []]
    for i, half in enumerate(halves):
        half.on_window = lambda p, a, i=i: closed[i].extend(p)
    for batch in open_capture(capture):
        share = share_of(batch, 2)
        for i, half in enumerate(halves):
            if (share == i).any():
                half.feed(frames(batch, share == i))
    merged = MergedAnalysis("eth0", 2, signatures=load_library(default_signature_dirs()))
    judged: list[str] = []
    for i, half in enumerate(halves):
        half.finish()
        for window in merged.apply(worker_report(i, half, changes[i], closed[i])):
            merged.classify_as_of(window)
            judged.append(merged.devices[BRIDGE].device_class)
    assert judged == ["unknown", "cgm_gateway", "cgm_gateway"]
