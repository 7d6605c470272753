"""Per-device series: inventory info, last seen, traffic, peers, learning state.

Which devices get series (``select_devices``): the devices seen within ``device_ttl`` of the
sensor clock, most clinically critical first, then in order of first sighting, then by id.
First sightings never change, so the kept set is stable from scrape to scrape: a new device
never pushes out an older one of the same criticality, and a device leaves only when it ages
out. Each device refused a series is counted once in ``santinel_devices_overflow_total``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from monitor.exporter import Learning, Sensor, label_text, pseudonym
from monitor.model import Device

CRITICALITY_RANK = {"life_sustaining": 0, "high": 1, "medium": 2, "low": 3}
UNCLASSIFIED_RANK = 4


def _rank(device: Device) -> tuple[int, float, str]:
    c = device.classification
    criticality = CRITICALITY_RANK.get(c.criticality, UNCLASSIFIED_RANK) if c else UNCLASSIFIED_RANK
    return (criticality, device.first_seen, device.id)


def live_devices(devices: Mapping[str, Device], now: float, ttl: float) -> list[Device]:
    """Devices seen within ``ttl`` seconds of ``now`` (capture time)."""
    return [d for d in devices.values() if now - d.last_seen <= ttl]


def select_devices(live: list[Device], max_devices: int) -> tuple[list[Device], list[Device]]:
    """(kept, refused): the ``max_devices`` devices that get series, and the rest."""
    ordered = sorted(live, key=_rank)
    return ordered[:max_devices], ordered[max_devices:]


def _latest(device: Device, kind: str) -> str:
    values = device.facts.get(kind)
    if not values:
        return ""
    return max(values.items(), key=lambda item: (item[1].last_seen, item[0]))[0]


@dataclass(frozen=True, slots=True)
class _Row:
    id: str
    mac: str
    ip: str
    vendor: str
    device_class: str
    model: str
    criticality: str
    hostname: str
    last_seen: float
    tx_bytes: int
    rx_bytes: int
    tx_packets: int
    rx_packets: int
    peers: int | None
    learning: Learning | None


class DevicesCollector(Collector):
    def __init__(self, sensor: Sensor) -> None:
        self.sensor = sensor
        self._overflow_lock = threading.Lock()
        self._refused: set[str] = set()
        self._overflow_total = 0

    def _count_refused(self, refused: list[Device], inventory: Mapping[str, Device]) -> int:
        with self._overflow_lock:
            for device in refused:
                if device.id not in self._refused:
                    self._refused.add(device.id)
                    self._overflow_total += 1
            # forget devices gone from the inventory so the set stays bounded by it
            if len(self._refused) > 2 * len(inventory) + 64:
                self._refused = {i for i in self._refused if i in inventory}
            return self._overflow_total

    def collect(self) -> Iterator[Metric]:
        sensor = self.sensor
        settings = sensor.settings
        with sensor.lock:
            inventory = sensor.analysis.devices
            live = live_devices(inventory, sensor.now, settings.device_ttl)
            kept, refused = select_devices(live, settings.max_devices)
            baselines = sensor.baselines
            by_state: dict[tuple[str, str], int] = {}
            for device in live:
                learning = baselines.learning(device.id) if baselines else None
                state = learning.state if learning else "learning"
                key = (device.device_class, state)
                by_state[key] = by_state.get(key, 0) + 1
            rows = [self._row(d, sensor) for d in kept]
            overflow = self._count_refused(refused, inventory)
        yield from self._families(rows, by_state, overflow, settings.pseudonym_key)

    @staticmethod
    def _row(device: Device, sensor: Sensor) -> _Row:
        c = device.classification
        learning = sensor.baselines.learning(device.id) if sensor.baselines else None
        return _Row(
            id=device.id,
            mac=device.mac or "",
            ip=_latest(device, "ip"),
            vendor=label_text(c.vendor if c and c.vendor else device.vendor),
            device_class=device.device_class,
            model=label_text(c.model if c else None),
            criticality=c.criticality if c else "",
            hostname=label_text(_latest(device, "hostname")),
            last_seen=device.last_seen,
            tx_bytes=device.tx_bytes,
            rx_bytes=device.rx_bytes,
            tx_packets=device.tx_packets,
            rx_packets=device.rx_packets,
            peers=sensor.peers_last_window.get(device.id),
            learning=learning,
        )

    @staticmethod
    def _families(
        rows: list[_Row],
        by_state: dict[tuple[str, str], int],
        overflow: int,
        key: bytes | None,
    ) -> Iterator[Metric]:
        devices = GaugeMetricFamily(
            "santinel_devices",
            "Devices seen within exporter.device_ttl, by class and learning state "
            "(all of them, also those over the max_devices cap).",
            labels=["device_class", "state"],
        )
        for (device_class, state), count in sorted(by_state.items()):
            devices.add_metric([device_class, state], count)
        yield devices
        yield CounterMetricFamily(
            "santinel_devices_overflow",
            "Devices refused per-device series because of exporter.max_devices, each counted once.",
            value=overflow,
        )
        info = GaugeMetricFamily(
            "santinel_device_info",
            "Device inventory metadata, constant 1; join on the device label.",
            labels=[
                "device",
                "mac",
                "ip",
                "vendor",
                "device_class",
                "model",
                "criticality",
                "hostname",
            ],
        )
        last_seen = GaugeMetricFamily(
            "santinel_device_last_seen_timestamp_seconds",
            "Capture time of the device's last packet.",
            labels=["device"],
        )
        interval = GaugeMetricFamily(
            "santinel_device_expected_interval_seconds",
            "Learned reporting cadence of the device (absent until learned).",
            labels=["device"],
        )
        tx_bytes = CounterMetricFamily(
            "santinel_device_transmit_bytes", "Bytes the device sent.", labels=["device"]
        )
        rx_bytes = CounterMetricFamily(
            "santinel_device_receive_bytes", "Bytes sent to the device.", labels=["device"]
        )
        tx_packets = CounterMetricFamily(
            "santinel_device_transmit_packets", "Packets the device sent.", labels=["device"]
        )
        rx_packets = CounterMetricFamily(
            "santinel_device_receive_packets", "Packets sent to the device.", labels=["device"]
        )
        peers = GaugeMetricFamily(
            "santinel_device_peers",
            "Distinct peers of the device in the last closed window.",
            labels=["device"],
        )
        ready = GaugeMetricFamily(
            "santinel_device_baseline_ready",
            "1 when the device's baseline is learned and enforced, 0 while learning.",
            labels=["device"],
        )
        for row in sorted(rows, key=lambda r: r.id):
            device = pseudonym(key, row.id)
            info.add_metric(
                [
                    device,
                    pseudonym(key, row.mac),
                    pseudonym(key, row.ip),
                    row.vendor,
                    row.device_class,
                    row.model,
                    row.criticality,
                    pseudonym(key, row.hostname),
                ],
                1,
            )
            last_seen.add_metric([device], row.last_seen)
            if row.learning is not None and row.learning.expected_interval is not None:
                interval.add_metric([device], row.learning.expected_interval)
            tx_bytes.add_metric([device], row.tx_bytes)
            rx_bytes.add_metric([device], row.rx_bytes)
            tx_packets.add_metric([device], row.tx_packets)
            rx_packets.add_metric([device], row.rx_packets)
            if row.peers is not None:
                peers.add_metric([device], row.peers)
            enforcing = row.learning is not None and row.learning.state == "enforcing"
            ready.add_metric([device], 1 if enforcing else 0)
        yield info
        yield last_seen
        yield interval
        yield tx_bytes
        yield rx_bytes
        yield tx_packets
        yield rx_packets
        yield peers
        yield ready


def kept_device_ids(sensor: Sensor) -> set[str]:
    """Ids of the devices that get per-device series now (call with ``sensor.lock`` held)."""
    settings = sensor.settings
    live = live_devices(sensor.analysis.devices, sensor.now, settings.device_ttl)
    return {d.id for d in select_devices(live, settings.max_devices)[0]}
