"""Merging what several analyses learned from disjoint shares of one wire.

With ``capture.workers`` > 1, each worker process runs its own ``Analysis`` over the flows
the kernel's fanout gives it. This module folds their results into one view:

- ``DeviceChanges`` (in a worker): what changed about each device since the worker's last
  report, as a ``DeviceDelta``: its traffic counters since then, first and last seen, and
  the fact sightings and removals its inventory journaled (``monitor.facts.FactJournal``).
  A report costs what changed, not everything the worker knows: at 100,000 devices, whole
  devices once a second kept the daemon busier than the workers;
- ``merge_profiles``: one ``WindowProfile`` per (device, window); volumes, flow starts,
  histograms, services, protocols and fact counts summed, peers united, message times of
  each conversation interleaved in time order (and bounded as the pipeline bounds them);
- ``MergedAnalysis``: the parent's view of the whole wire, shaped like the part of
  ``monitor.pipeline.Analysis`` that the exporter, detectors, baselines and state read
  (``devices``, ``inventory``, ``capture_stats``, ``decode_errors``, ``protocol_packets``,
  ``packets``, ``bytes``, ``first_time``, ``last_time``, ``signatures``, ``table_stats()``).
  It takes one ``WorkerReport`` at a time, adds its device deltas to one ``Device`` per id
  (counters summed, first seen the earliest, last seen the latest, per fact value the
  earliest first seen, the latest last seen and the counts summed), and hands back the
  windows that every worker has closed.

Promises: the merged devices do not depend on the order of the reports (within the bound
that follows); a merged device's facts are bounded per kind as a worker's are
(``monitor.facts.MAX_VALUES_PER_KIND``, counted in ``table_stats().facts_evicted``); a window
is handed out once every worker's clock (packets or quiet-wire ticks) is past its end, and
profiles that arrive for a window already handed out are handed out again on their own (the
single-process pipeline does the same with a window reopened by a late packet). What can
legitimately differ from one ``Analysis`` over the whole wire is in ``docs/daemon.md``
("Several workers").
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from monitor import facts as learned_facts
from monitor.facts import FactCounts, FactJournal
from monitor.inventory import Inventory
from monitor.model import Device, TableStats, WindowProfile
from monitor.pipeline import MAX_MESSAGES_PER_WINDOW, MESSAGE_GAP_SECONDS


def merge_profiles(parts: Iterable[WindowProfile]) -> WindowProfile:
    """One profile from the profiles of one device and window made by several workers."""
    profiles = list(parts)
    first = profiles[0]
    merged = WindowProfile(first.device_id, first.start, first.end)
    facts: dict[str, dict[str, int]] = {}
    for p in profiles:
        merged.tx_packets += p.tx_packets
        merged.tx_bytes += p.tx_bytes
        merged.rx_packets += p.rx_packets
        merged.rx_bytes += p.rx_bytes
        merged.flows_started += p.flows_started
        merged.peers |= p.peers
        for key, count in p.services.items():
            merged.services[key] = merged.services.get(key, 0) + count
        for key, count in p.protocols.items():
            merged.protocols[key] = merged.protocols.get(key, 0) + count
        merged.size_histogram = [
            a + b for a, b in zip(merged.size_histogram, p.size_histogram, strict=True)
        ]
        for kind, values in p.facts.items():
            into = facts.setdefault(kind, {})
            for value, count in values.items():
                into[value] = into.get(value, 0) + count
        for conversation, times in p.conversations.items():
            merged.conversations.setdefault(conversation, []).extend(times)
        for address, (packets, last) in p.address_use.items():
            before = merged.address_use.get(address)
            if before is not None:
                packets, last = packets + before[0], max(last, before[1])
            merged.address_use[address] = (packets, last)
    merged.facts = FactCounts(facts)
    if len(profiles) > 1:
        for conversation, times in merged.conversations.items():
            merged.conversations[conversation] = _message_starts(sorted(times))
    return merged


def _message_starts(times: list[float]) -> list[float]:
    """Message starts of one conversation seen by several workers: a start closer than the
    pipeline's message gap to the one before it continued that message."""
    starts = times[:1]
    for before, now in itertools.pairwise(times):
        if now - before > MESSAGE_GAP_SECONDS:
            starts.append(now)
    return starts[:MAX_MESSAGES_PER_WINDOW]


@dataclass(slots=True)
class WorkerStats:
    """One worker's capture counters, cumulative since it started."""

    packets: int = 0
    bytes: int = 0
    last_packet_time: float = 0.0
    received: int = 0  # kernel: passed the filter (dropped ones included)
    dropped: int = 0  # kernel: no room in the ring
    lag: float | None = None


@dataclass(slots=True)
class DeviceDelta:
    """What one worker learned about one device since its last report."""

    id: str
    mac: str | None
    locally_administered: bool
    vendor: str | None
    first_seen: float
    last_seen: float
    local: bool
    # traffic since the last report (the worker's counters minus those it last reported)
    tx_packets: int = 0
    tx_bytes: int = 0
    rx_packets: int = 0
    rx_bytes: int = 0
    # (kind, value, first seen, last seen, count) of the values seen since the last report
    facts: list[tuple[str, str, float, float, int]] = field(default_factory=list)
    # (kind, value) the worker removed since (a router's addresses learned from traffic);
    # applied before ``facts``
    removed: list[tuple[str, str]] = field(default_factory=list)


class DeviceChanges:
    """A worker's side of the device reports: ``take`` returns a ``DeviceDelta`` for each
    device whose counters, times or facts changed since the last ``take``, looking only at
    the devices the journal names (made, counted or given a fact since), not at every one.

    It journals the inventory's facts from its creation on (create it before the first
    packet). A device evicted by the worker and seen again starts from zero, as the worker's
    new ``Device`` does: its delta is then everything the new one holds.
    """

    def __init__(self, inventory: Inventory) -> None:
        self._inventory = inventory
        self._journal = inventory.journal = FactJournal()
        # device id -> (the Device reported, tx packets, tx bytes, rx packets, rx bytes,
        # first seen, last seen) as last reported
        self._marks: dict[str, tuple[Device, int, int, int, int, float, float]] = {}

    def take(self) -> list[DeviceDelta]:
        seen, removed, touched = self._journal.take()
        facts_of: dict[str, list[tuple[str, str, float, float, int]]] = {}
        for (device_id, kind, value), (first, last, count) in seen.items():
            facts_of.setdefault(device_id, []).append((kind, value, first, last, int(count)))
        removed_of: dict[str, list[tuple[str, str]]] = {}
        for device_id, kind, value in sorted(removed):
            removed_of.setdefault(device_id, []).append((kind, value))
        devices = self._inventory.devices
        marks = self._marks
        out = []
        for device_id in touched.union(facts_of, removed_of):
            device = devices.get(device_id)
            if device is None:
                continue  # evicted since, to make room for another
            now = (
                device.tx_packets,
                device.tx_bytes,
                device.rx_packets,
                device.rx_bytes,
                device.first_seen,
                device.last_seen,
            )
            mark = marks.get(device_id)
            if mark is None or mark[0] is not device:
                before: tuple[Any, ...] = (0, 0, 0, 0)
            elif mark[1:] == now and device_id not in facts_of and device_id not in removed_of:
                continue
            else:
                before = mark[1:5]
            marks[device_id] = (device, *now)
            out.append(
                DeviceDelta(
                    device_id,
                    device.mac,
                    device.locally_administered,
                    device.vendor,
                    device.first_seen,
                    device.last_seen,
                    device.local,
                    now[0] - before[0],
                    now[1] - before[1],
                    now[2] - before[2],
                    now[3] - before[3],
                    facts_of.get(device_id, []),
                    removed_of.get(device_id, []),
                )
            )
        if len(marks) > len(devices):  # devices the worker evicted: forget them
            for device_id in [d for d in marks if d not in devices]:
                del marks[device_id]
        return out


@dataclass(slots=True)
class WorkerReport:
    """What a worker sends about once a second (see ``monitor.workers``)."""

    worker: int
    # every window whose end is at or before this capture time is closed in the worker
    closed_until: float
    profiles: list[WindowProfile] = field(default_factory=list)
    devices: list[DeviceDelta] = field(default_factory=list)  # changed since the last report
    stats: WorkerStats = field(default_factory=WorkerStats)
    decode_errors: dict[str, int] = field(default_factory=dict)  # cumulative
    protocol_packets: dict[str, int] = field(default_factory=dict)  # cumulative
    first_time: float | None = None
    last_time: float | None = None
    tables: TableStats = field(default_factory=TableStats)  # the worker's flow/device tables


@dataclass(slots=True)
class SourceTotals:
    """Sensor health of one interface, summed over its workers (exporter view)."""

    packets: int = 0
    bytes: int = 0
    last_packet_time: float = 0.0
    dropped: int = 0


class MergedAnalysis:
    """The whole wire, merged from the reports of ``workers`` workers (module docstring)."""

    def __init__(self, interface: str, workers: int, signatures: Any = None) -> None:
        self.interface = interface
        self.signatures = signatures
        self.inventory = Inventory()
        self.devices: dict[str, Device] = self.inventory.devices
        self.flows: dict[Any, Any] = {}  # flows stay in the workers
        self.file_errors: list[Any] = []
        self._facts_evicted = 0  # values the merged devices' bound dropped here
        self.worker_stats: list[WorkerStats] = [WorkerStats() for _ in range(workers)]
        self._decode_errors: list[dict[str, int]] = [{} for _ in range(workers)]
        self._protocols: list[dict[str, int]] = [{} for _ in range(workers)]
        self._tables: list[TableStats] = [TableStats() for _ in range(workers)]
        self._closed_until = [float("-inf")] * workers
        self._first: list[float | None] = [None] * workers
        self._last: list[float | None] = [None] * workers
        self._pending: dict[float, dict[str, list[WindowProfile]]] = {}
        self._released_until = float("-inf")
        self.capture_stats: dict[str, SourceTotals] = {interface: SourceTotals()}
        self.decode_errors: Counter[str] = Counter()
        self.protocol_packets: Counter[str] = Counter()

    # ------------------------------------------------------------------ derived totals
    @property
    def packets(self) -> int:
        return sum(s.packets for s in self.worker_stats)

    @property
    def bytes(self) -> int:
        return sum(s.bytes for s in self.worker_stats)

    @property
    def first_time(self) -> float | None:
        known = [t for t in self._first if t is not None]
        return min(known) if known else None

    @property
    def last_time(self) -> float | None:
        known = [t for t in self._last if t is not None]
        return max(known) if known else None

    def table_stats(self) -> TableStats:
        """Flow tables summed over the workers (each tracks its own share of the flows);
        devices as merged here, evictions as the workers made them."""
        evicted: Counter[str] = Counter()
        for tables in self._tables:
            evicted.update(tables.flows_evicted)
        return TableStats(
            flows_active=sum(t.flows_active for t in self._tables),
            flows_started=sum(t.flows_started for t in self._tables),
            flows_evicted=dict(evicted),
            devices=len(self.devices),
            devices_evicted=sum(t.devices_evicted for t in self._tables),
            facts_evicted=sum(t.facts_evicted for t in self._tables) + self._facts_evicted,
        )

    def address_packets_since(self, device_id: str, address: str, end: float) -> int:
        """What the windows from ``end`` on that some worker closed add to the device's
        ``ip`` fact. The windows no worker closed yet are in the workers: what their reports
        already counted there is not known here (the ARP detector's verdict may then differ
        from one analysis of the whole wire)."""
        return sum(
            profile.address_use.get(address, (0, 0.0))[0]
            for start, window in self._pending.items()
            if start >= end
            for profile in window.get(device_id, ())
        )

    # ------------------------------------------------------------------ reports
    def restore(self, devices: Mapping[str, Device]) -> None:
        """Devices of the last checkpoint: what the workers report from now adds to them."""
        for device_id, device in devices.items():
            self.devices[device_id] = device
            for address in device.facts.get("ip", {}):
                self.inventory.ip_owner.setdefault(address, device_id)

    def apply(self, report: WorkerReport) -> list[list[WindowProfile]]:
        """Take one report; return the windows now closed by every worker, oldest first,
        each as its merged profiles sorted by device id."""
        w = report.worker
        self._add_devices(report.devices)
        self.worker_stats[w] = report.stats
        self._decode_errors[w] = report.decode_errors
        self._protocols[w] = report.protocol_packets
        self._tables[w] = report.tables
        self._first[w] = report.first_time
        self._last[w] = report.last_time
        self._update_totals()
        late: list[list[WindowProfile]] = []
        late_by_start: dict[float, list[WindowProfile]] = {}
        for profile in report.profiles:
            if profile.end <= self._released_until:
                late_by_start.setdefault(profile.start, []).append(profile)
            else:
                window = self._pending.setdefault(profile.start, {})
                window.setdefault(profile.device_id, []).append(profile)
        for start in sorted(late_by_start):
            late.append(sorted(late_by_start[start], key=lambda p: p.device_id))
        self._closed_until[w] = max(self._closed_until[w], report.closed_until)
        return late + self._release(min(self._closed_until))

    def _release(self, until: float) -> list[list[WindowProfile]]:
        ready = sorted(
            start
            for start, window in self._pending.items()
            if next(iter(window.values()))[0].end <= until
        )
        released = []
        for start in ready:
            window = self._pending.pop(start)
            released.append([merge_profiles(window[d]) for d in sorted(window)])
        self._released_until = max(self._released_until, until)
        return released

    def flush(self) -> list[list[WindowProfile]]:
        """Every pending window, as merged so far (the workers are gone)."""
        return self._release(float("inf"))

    def _add_devices(self, deltas: Iterable[DeviceDelta]) -> None:
        inventory = self.inventory
        evicted_before = learned_facts.evicted_values
        for delta in deltas:
            device = self.devices.get(delta.id)
            if device is None:
                device = self.devices[delta.id] = Device(
                    id=delta.id,
                    mac=delta.mac,
                    locally_administered=delta.locally_administered,
                    vendor=delta.vendor,
                    first_seen=delta.first_seen,
                    last_seen=delta.last_seen,
                    local=delta.local,
                )
                inventory.new_devices.append(delta.id)
                inventory.dirty.add(delta.id)
            else:
                device.first_seen = min(device.first_seen, delta.first_seen)
                device.last_seen = max(device.last_seen, delta.last_seen)
                if device.vendor is None:
                    device.vendor = delta.vendor
                device.local = device.local and delta.local
            device.tx_packets += delta.tx_packets
            device.tx_bytes += delta.tx_bytes
            device.rx_packets += delta.rx_packets
            device.rx_bytes += delta.rx_bytes
            facts = device.facts
            for kind, value in delta.removed:
                values = facts.get(kind)
                if values is not None and values.pop(value, None) is not None:
                    inventory.dirty.add(delta.id)
                    if kind == "ip" and inventory.ip_owner.get(value) == delta.id:
                        del inventory.ip_owner[value]
            for kind, value, first, last, count in delta.facts:
                if facts.record(kind, value, first, count, last):
                    inventory.dirty.add(delta.id)
                if kind == "ip":
                    self._bind(device, value)
        self._facts_evicted += learned_facts.evicted_values - evicted_before

    def _bind(self, device: Device, address: str) -> None:
        """The address's owner: the device that used it last (as ``Inventory.bind``)."""
        owners = self.inventory.ip_owner
        owner = owners.get(address)
        if owner is None or owner == device.id:
            owners[address] = device.id
            return
        current = self.devices.get(owner)
        theirs = current.facts.get("ip", {}).get(address) if current else None
        mine = device.facts.get("ip", {}).get(address)
        if theirs is None or (mine is not None and mine.last_seen >= theirs.last_seen):
            owners[address] = device.id

    def _update_totals(self) -> None:
        totals = SourceTotals(
            packets=sum(s.packets for s in self.worker_stats),
            bytes=sum(s.bytes for s in self.worker_stats),
            last_packet_time=max(s.last_packet_time for s in self.worker_stats),
            dropped=sum(s.dropped for s in self.worker_stats),
        )
        self.capture_stats[self.interface] = totals
        self.decode_errors = Counter()
        for errors in self._decode_errors:
            self.decode_errors.update(errors)
        self.protocol_packets = Counter()
        for protocols in self._protocols:
            self.protocol_packets.update(protocols)

    # ------------------------------------------------------------------ classification
    def classify(self) -> None:
        """Re-run the signature matcher on merged devices whose facts changed."""
        self.inventory.classify_dirty(self.signatures)

    def classify_as_of(self, profiles: list[WindowProfile]) -> None:
        """Before a closed window is judged: its devices classified on what was known at its
        end, as one analysis does (workers report facts seen after it)."""
        self.classify()
        if profiles:
            self.inventory.classify_as_of(
                (p.device_id for p in profiles), profiles[0].end, self.signatures
            )
