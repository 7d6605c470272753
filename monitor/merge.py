"""Merging what several analyses learned from disjoint shares of one wire.

With ``capture.workers`` > 1, each worker process runs its own ``Analysis`` over the flows
the kernel's fanout gives it. This module folds their results into one view:

- ``merge_devices``: one ``Device`` per id; traffic counters summed, first seen the earliest,
  last seen the latest, facts united (per value: earliest first seen, latest last seen,
  counts summed);
- ``merge_profiles``: one ``WindowProfile`` per (device, window); volumes, flow starts,
  histograms, services, protocols and fact counts summed, peers united, message times of
  each conversation interleaved in time order (and bounded as the pipeline bounds them);
- ``MergedAnalysis``: the parent's view of the whole wire, shaped like the part of
  ``monitor.pipeline.Analysis`` that the exporter, detectors, baselines and state read
  (``devices``, ``inventory``, ``capture_stats``, ``decode_errors``, ``protocol_packets``,
  ``packets``, ``bytes``, ``first_time``, ``last_time``, ``signatures``, ``table_stats()``).
  It takes one ``WorkerReport`` at a time and hands back the windows that every worker has
  closed.

Promises: merging never mutates its inputs; the result does not depend on the order of the
workers; a window is handed out once every worker's clock (packets or quiet-wire ticks) is
past its end, and profiles that arrive for a window already handed out are handed out again
on their own (the single-process pipeline does the same with a window reopened by a late
packet). What can legitimately differ from one ``Analysis`` over the whole wire is in
``docs/daemon.md`` ("Several workers").
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from monitor.facts import FactTable
from monitor.inventory import Inventory
from monitor.model import Device, TableStats, WindowProfile
from monitor.pipeline import MAX_MESSAGES_PER_WINDOW, MESSAGE_GAP_SECONDS


def merge_facts(tables: Iterable[FactTable]) -> FactTable:
    merged = FactTable()
    for table in tables:
        merged.absorb(table)
    return merged


def merge_devices(parts: Iterable[Device]) -> Device:
    """One device from its parts (same id); classification is left to the caller."""
    devices = list(parts)
    first = devices[0]
    return Device(
        id=first.id,
        mac=first.mac,
        locally_administered=first.locally_administered,
        vendor=next((d.vendor for d in devices if d.vendor is not None), None),
        first_seen=min(d.first_seen for d in devices),
        last_seen=max(d.last_seen for d in devices),
        facts=merge_facts(d.facts for d in devices),
        tx_packets=sum(d.tx_packets for d in devices),
        tx_bytes=sum(d.tx_bytes for d in devices),
        rx_packets=sum(d.rx_packets for d in devices),
        rx_bytes=sum(d.rx_bytes for d in devices),
        classification=None,
        local=all(d.local for d in devices),
    )


def merge_profiles(parts: Iterable[WindowProfile]) -> WindowProfile:
    """One profile from the profiles of one device and window made by several workers."""
    profiles = list(parts)
    first = profiles[0]
    merged = WindowProfile(first.device_id, first.start, first.end)
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
            into = merged.facts.setdefault(kind, {})
            for value, count in values.items():
                into[value] = into.get(value, 0) + count
        for conversation, times in p.conversations.items():
            merged.conversations.setdefault(conversation, []).extend(times)
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
class WorkerReport:
    """What a worker sends about once a second (see ``monitor.workers``)."""

    worker: int
    # every window whose end is at or before this capture time is closed in the worker
    closed_until: float
    profiles: list[WindowProfile] = field(default_factory=list)
    devices: list[Device] = field(default_factory=list)  # changed since the last report
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
        # devices restored from a checkpoint: the history the workers add to
        self.restored: dict[str, Device] = {}
        self._parts: list[dict[str, Device]] = [{} for _ in range(workers)]
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
            facts_evicted=sum(t.facts_evicted for t in self._tables),
        )

    # ------------------------------------------------------------------ reports
    def restore(self, devices: Mapping[str, Device]) -> None:
        """Devices of the last checkpoint: merged under what the workers report from now."""
        self.restored = dict(devices)
        for device_id, device in devices.items():
            self.devices[device_id] = device
            for address in device.facts.get("ip", {}):
                self.inventory.ip_owner.setdefault(address, device_id)

    def apply(self, report: WorkerReport) -> list[list[WindowProfile]]:
        """Take one report; return the windows now closed by every worker, oldest first,
        each as its merged profiles sorted by device id."""
        w = report.worker
        self._merge_devices(w, report.devices)
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

    def _merge_devices(self, worker: int, devices: Iterable[Device]) -> None:
        parts = self._parts[worker]
        for device in devices:
            parts[device.id] = device
            pieces = [p[device.id] for p in self._parts if device.id in p]
            base = self.restored.get(device.id)
            if base is not None:
                pieces.insert(0, base)
            merged = merge_devices(pieces)
            old = self.devices.get(device.id)
            if old is not None and _fact_keys(old) == _fact_keys(merged):
                merged.classification = old.classification
            else:
                self.inventory.dirty.add(device.id)
            if old is None:
                self.inventory.new_devices.append(device.id)
            self.devices[device.id] = merged
            for address, fact in merged.facts.get("ip", {}).items():
                owner = self.inventory.ip_owner.get(address)
                if owner is None or owner == device.id:
                    self.inventory.ip_owner[address] = device.id
                    continue
                current = self.devices.get(owner)
                owner_fact = current.facts.get("ip", {}).get(address) if current else None
                if owner_fact is None or fact.last_seen >= owner_fact.last_seen:
                    self.inventory.ip_owner[address] = device.id

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


def _fact_keys(device: Device) -> set[tuple[str, str]]:
    return {(kind, value) for kind, values in device.facts.items() for value in values}
