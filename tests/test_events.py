"""Events: severity from the detector and the device's criticality, deduplication and hold,
JSON lines, and the exporter's anomaly series filled from the book (checked with promtool)."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import tracemalloc
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from monitor.events import SEVERITY_ORDER, Event, EventBook, make_event, severity_for
from monitor.exporter import Sensor
from monitor.exporter.registry import build_registry
from monitor.model import Classification, Device, TableStats

T = 1_790_000_000.0


def _device(mac: str, criticality: str | None, device_class: str = "infusion_pump") -> Device:
    device = Device(id=mac, mac=mac, locally_administered=False, vendor=None,
                    first_seen=T - 100, last_seen=T)  # fmt: skip
    if criticality is not None:
        device.classification = Classification(
            signature="fp.test", vendor="Test", device_class=device_class, model=None,
            criticality=criticality, confidence=0.9,
        )  # fmt: skip
    return device


def _event(device: Device, detector: str, when: float, base: str = "warning") -> Event:
    return make_event(device.id, device, detector, base, "test summary", when, {"x": 1}, {})


@pytest.mark.parametrize(
    ("base", "criticality", "expected"),
    [
        ("warning", "life_sustaining", "critical"),
        ("warning", "high", "high"),
        ("warning", "medium", "warning"),
        ("warning", "low", "info"),
        ("warning", None, "warning"),
        ("info", "low", "info"),
        ("critical", "life_sustaining", "critical"),
        ("high", "high", "critical"),
    ],
)
def test_severity_comes_from_detector_and_criticality(
    base: str, criticality: str | None, expected: str
) -> None:
    assert severity_for(base, criticality) == expected


def test_events_clear_exactly_when_nothing_refreshed_them_for_the_hold_time() -> None:
    # The book finds what expires from the earliest event on; this checks it against the
    # definition (every open event not refreshed for hold_seconds clears) on a random stream
    # with refreshes, escalations, refresh-only detections and times out of order.
    rng = random.Random(9)
    devices = [
        _device(f"00:00:00:00:00:0{i}", rng.choice(["low", "medium", "high"])) for i in range(5)
    ]
    book = EventBook(hold_seconds=300)
    reference: dict[tuple[str, str], tuple[float, int]] = {}  # key -> (last_seen, severity)
    now = T
    for _ in range(400):
        now += rng.choice([0.0, 10.0, 60.0, 120.0, 400.0])
        batch = []
        for _ in range(rng.randint(0, 4)):
            event = _event(
                rng.choice(devices),
                rng.choice(["silence_gone", "port_scan", "new_peer"]),
                now - rng.choice([0.0, 0.0, 5.0, 30.0]),
                rng.choice(["info", "warning", "high"]),
            )
            event.refresh_only = rng.random() < 0.3
            batch.append(event)
        book.submit(batch, now)
        for event in sorted(batch, key=lambda e: (e.time, e.device, e.detector)):
            at = max(now, event.time)
            for key in [k for k, (seen, _) in reference.items() if at - seen >= 300]:
                del reference[key]
            key = (event.device, event.detector)
            severity = SEVERITY_ORDER.index(event.severity)
            held = reference.get(key)
            if held is None and event.refresh_only:
                continue
            if held is not None and (event.refresh_only or severity <= held[1]):
                reference[key] = (max(held[0], event.time), held[1])
            else:
                reference[key] = (event.time, severity)
        for key in [k for k, (seen, _) in reference.items() if now - seen >= 300]:
            del reference[key]
        book.expire(now)
        assert {k: e.last_seen for k, e in book.open.items()} == {
            k: seen for k, (seen, _) in reference.items()
        }


def test_the_same_finding_on_a_pump_is_more_severe_than_on_an_office_pc() -> None:
    pump = _event(_device("00:00:00:00:00:01", "life_sustaining"), "new_external_peer", T)
    pc = _event(_device("00:00:00:00:00:02", "low", "generic_it"), "new_external_peer", T)
    assert (pump.severity, pump.criticality) == ("critical", "life_sustaining")
    assert (pc.severity, pc.criticality) == ("info", "low")


def test_one_open_event_per_device_and_detector_until_it_clears() -> None:
    pump = _device("00:00:00:00:00:01", "medium")
    book = EventBook(hold_seconds=600)
    assert len(book.submit([_event(pump, "silence_gone", T)])) == 1
    # the condition keeps firing: refreshed, not repeated
    for k in range(1, 10):
        assert book.submit([_event(pump, "silence_gone", T + 60 * k)]) == []
    held = book.open[(pump.id, "silence_gone")]
    assert held.occurrences == 10 and held.last_seen == T + 540
    # another detector on the same device is its own event
    assert len(book.submit([_event(pump, "port_scan", T + 600)])) == 1
    # quiet for the hold time: it clears, and the next detection is a new event
    assert book.submit([], T + 540 + 600) == []
    assert (pump.id, "silence_gone") not in book.open
    assert len(book.submit([_event(pump, "silence_gone", T + 2000)])) == 1
    assert book.anomaly_counts()[(pump.id, "silence_gone", "warning")] == 2


def test_the_book_holds_an_open_event_in_a_few_hundred_bytes_whatever_its_evidence() -> None:
    # A site of 100,000 devices holds an open event or more each for the hold time: the book
    # keeps what deduplication reads, not the summary and evidence it already wrote.
    book = EventBook(hold_seconds=3600)
    book.keep_emitted = False  # as the daemon
    devices = [_device(f"00:00:00:00:{k // 256:02x}:{k % 256:02x}", "high") for k in range(500)]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        events = [
            make_event(d.id, d, "new_external_peer", "warning", f"{d.id}: " + "x" * 300, T,
                       {"peers": [f"ext:203.0.113.{v} from {d.id}" for v in range(20)]})
            for d in devices
        ]  # fmt: skip
        assert len(book.submit(events, T)) == len(devices)
        del events
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(book.open) == len(devices)
    assert held < len(devices) * 400, f"{held / len(devices):.0f} bytes per open event"


def test_the_book_counts_events_and_matches_per_device_detector_severity_and_signature() -> None:
    pump, monitor = _device("00:00:00:00:00:01", "high"), _device("00:00:00:00:00:02", None)
    book = EventBook(hold_seconds=600)

    def found(device: Device, detector: str, when: float, base: str, rule: str) -> Event:
        event = _event(device, detector, when, base)
        event.signature = rule
        return event

    book.submit([found(pump, "cleartext_clinical_data", T, "info", "rule.mqtt"),
                 found(monitor, "cleartext_clinical_data", T, "info", "rule.mqtt"),
                 found(monitor, "remote_admin_exposure", T, "warning", "rule.mirth")])  # fmt: skip
    # the pump's escalates (a new event, counted under its own severity); the monitor's
    # repeats within the hold time (absorbed: not counted)
    book.submit(
        [
            found(pump, "cleartext_clinical_data", T + 60, "critical", "rule.mqtt"),
            found(monitor, "cleartext_clinical_data", T + 60, "info", "rule.mqtt"),
        ]
    )
    assert book.anomaly_counts() == {
        (pump.id, "cleartext_clinical_data", "warning"): 1,  # "info" on a high pump: a rank up
        (pump.id, "cleartext_clinical_data", "critical"): 1,
        (monitor.id, "cleartext_clinical_data", "info"): 1,
        (monitor.id, "remote_admin_exposure", "warning"): 1,
    }
    assert book.signature_matches() == {
        (pump.id, "rule.mqtt"): 2,
        (monitor.id, "rule.mqtt"): 1,
        (monitor.id, "rule.mirth"): 1,
    }


def test_the_book_counts_a_signature_s_event_in_under_300_bytes() -> None:
    # 100,000 devices with a standing finding each (cleartext MQTT, an exposed admin port):
    # its counts under a (device, detector, severity) key and a (device, signature) key
    # cost 385 bytes an event with the open event itself.
    devices = [f"00:00:00:{k >> 16:02x}:{(k >> 8) & 255:02x}:{k & 255:02x}" for k in range(5000)]
    events = [
        make_event(device, None, "cleartext_clinical_data", "warning", "s", T + 0.001 * k,
                   signature="rule.cleartext-mqtt-from-clinical-device")
        for k, device in enumerate(devices)
    ]  # fmt: skip
    book = EventBook(hold_seconds=3600)
    book.keep_emitted = False  # as the daemon
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        assert len(book.submit(events, T)) == len(devices)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert held / len(devices) < 300


def test_a_more_severe_detection_reopens_the_event() -> None:
    pump = _device("00:00:00:00:00:01", None)
    book = EventBook(hold_seconds=600)
    book.submit([_event(pump, "volume_high", T, "info")])
    assert len(book.submit([_event(pump, "volume_high", T + 10, "high")])) == 1
    assert book.submit([_event(pump, "volume_high", T + 20, "warning")]) == []


def test_events_are_written_as_json_lines_in_the_design_schema(tmp_path: Path) -> None:
    pump = _device("00:00:00:00:00:01", "life_sustaining")
    path = tmp_path / "sub" / "events.jsonl"
    book = EventBook(hold_seconds=600, events_file=path)
    book.submit([_event(pump, "new_external_peer", T), _event(pump, "new_external_peer", T + 1)])
    book.submit([_event(pump, "port_scan", T + 2)])
    book.close()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["detector"] for line in lines] == ["new_external_peer", "port_scan"]
    assert set(lines[0]) == {"time", "device", "device_class", "criticality", "detector",
                             "severity", "summary", "evidence", "references"}  # fmt: skip
    assert lines[0]["time"] == "2026-09-21T14:13:20.000Z"
    assert lines[0]["evidence"] == {"observed": {"x": 1}, "baseline": {}}
    assert lines[0]["device_class"] == "infusion_pump" and lines[0]["severity"] == "critical"


def test_exporter_shows_counts_and_held_anomalies_from_the_book() -> None:
    pump = _device("00:00:00:00:00:01", "life_sustaining")

    class Analysis:
        def __init__(self) -> None:
            self.devices = {pump.id: pump}
            self.capture_stats: dict[str, object] = {}
            self.decode_errors: dict[str, int] = {}

        def table_stats(self) -> TableStats:
            return TableStats()

    book = EventBook(hold_seconds=600)
    book.submit([_event(pump, "new_external_peer", T)])
    book.submit([_event(pump, "port_scan", T - 1000, "info")], T - 1000)
    sensor = Sensor(analysis=Analysis(), findings=book, now=T + 10)
    text = generate_latest(build_registry(sensor)).decode()
    labels = 'detector="new_external_peer",device="00:00:00:00:00:01",severity="critical"'
    assert f"santinel_anomalies_total{{{labels}}} 1.0" in text
    assert f"santinel_anomaly_active{{{labels}}} 1.0" in text
    # "high" is acted on in working hours: the alerting scale calls it warning
    scan = 'detector="port_scan",device="00:00:00:00:00:01",severity="warning"'
    assert f"santinel_anomaly_active{{{scan}}} 0.0" in text  # cleared: held 600 s only
    if shutil.which("promtool"):
        check = subprocess.run(["promtool", "check", "metrics"], input=text, text=True,
                               capture_output=True)  # fmt: skip
        assert "error" not in (check.stdout + check.stderr).lower(), check.stderr
