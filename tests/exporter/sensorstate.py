"""A fixed sensor state for the exporter tests: devices, capture stats, baselines, anomalies."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from monitor.exporter import ExporterSettings, Learning, Sensor, WindowJudging
from monitor.exporter.anomalies import AnomalyBook
from monitor.model import Classification, Device, TableStats

NOW = 1_790_000_000.0


@dataclass
class Stats:
    packets: int
    bytes: int
    last_packet_time: float | None
    dropped: int


@dataclass
class FakeAnalysis:
    """What the exporter reads of monitor.pipeline.Analysis."""

    devices: dict[str, Device] = field(default_factory=dict)
    capture_stats: dict[str, Stats] = field(default_factory=dict)
    decode_errors: Counter[str] = field(default_factory=Counter)
    tables: TableStats = field(default_factory=TableStats)

    def table_stats(self) -> TableStats:
        return self.tables


class FixedBaselines:
    def __init__(self, states: dict[str, Learning]) -> None:
        self.states = states

    def learning(self, device_id: str) -> Learning | None:
        return self.states.get(device_id)


def make_device(mac: str, first: float, last: float, **kw: object) -> Device:
    device = Device(
        id=mac, mac=mac, locally_administered=False, vendor=None, first_seen=first, last_seen=last
    )
    for name, value in kw.items():
        setattr(device, name, value)
    return device


def fixed_sensor() -> Sensor:
    pump = make_device(
        "00:1b:63:aa:bb:01",
        NOW - 7200,
        NOW - 5,
        vendor="Apple, Inc.",
        tx_packets=120,
        tx_bytes=48000,
        rx_packets=80,
        rx_bytes=9600,
    )
    pump.classification = Classification(
        signature="bbraun-spacecom",
        vendor="B. Braun",
        device_class="infusion_pump",
        model="SpaceCom 2",
        criticality="life_sustaining",
        confidence=0.9,
    )
    pump.facts.record("ip", "10.1.2.3", NOW - 7200)
    pump.facts.record("ip", "10.1.2.30", NOW - 60)
    pump.facts.record("hostname", "pump-icu-3", NOW - 7000)
    monitor_dev = make_device(
        "00:09:fb:00:00:02",
        NOW - 3600,
        NOW - 1,
        vendor="Philips",
        tx_packets=5000,
        tx_bytes=2_000_000,
        rx_packets=10,
        rx_bytes=640,
    )
    monitor_dev.facts.record("ip", "10.1.2.4", NOW - 3600)
    stale = make_device(
        "00:00:5e:00:53:99", NOW - 30 * 86400, NOW - 10 * 86400, tx_packets=1, tx_bytes=60
    )
    analysis = FakeAnalysis(
        devices={d.id: d for d in (pump, monitor_dev, stale)},
        capture_stats={"eth1": Stats(5210, 2_058_240, NOW - 1, 3)},
        decode_errors=Counter({"ipv4_truncated": 2, "hl7_no_msh": 1}),
        tables=TableStats(
            flows_active=412,
            flows_started=9_311,
            flows_evicted={"idle": 8_899},
            devices=3,
            devices_evicted=0,
            facts_evicted=17,
        ),
    )
    book = AnomalyBook(hold_seconds=600)
    book.record(
        {"device": pump.id, "detector": "new_external_peer", "severity": "critical"}, NOW - 100
    )
    book.record(
        {"device": pump.id, "detector": "new_external_peer", "severity": "critical"}, NOW - 50
    )
    book.record({"device": monitor_dev.id, "detector": "volume", "severity": "warning"}, NOW - 3000)
    book.record(
        {
            "device": monitor_dev.id,
            "detector": "signature_rule",
            "severity": "warning",
            "signature": "telnet-to-clinical",
        },
        NOW - 2000,
    )
    return Sensor(
        analysis=analysis,
        settings=ExporterSettings(max_devices=10, device_ttl=7 * 86400),
        now=NOW,
        baselines=FixedBaselines(
            {pump.id: Learning("enforcing", 30.0), monitor_dev.id: Learning("learning")}
        ),
        findings=book,
        peers_last_window={pump.id: 2},
        processing_lag={"eth1": 0.25},
        judging=WindowJudging(windows=41, seconds=12.5, last_seconds=0.375, last_devices=2),
    )
