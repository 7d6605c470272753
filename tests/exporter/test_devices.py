"""Per-device series: the max_devices cap with its overflow counter, ageing out, privacy."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from monitor.exporter import ExporterSettings, Sensor, pseudonym
from monitor.exporter.registry import build_registry
from tests.exporter.sensorstate import NOW, FakeAnalysis, Stats, fixed_sensor, make_device


@pytest.fixture
def sensor() -> Sensor:
    return fixed_sensor()


PER_DEVICE = (
    "santinel_device_info",
    "santinel_device_last_seen_timestamp_seconds",
    "santinel_device_transmit_bytes",
    "santinel_device_receive_bytes",
    "santinel_device_transmit_packets",
    "santinel_device_receive_packets",
    "santinel_device_baseline_ready",
)


Samples = dict[str, list[tuple[dict[str, str], float]]]


def scrape(sensor: Sensor, registry: CollectorRegistry | None = None) -> Samples:
    text = generate_latest(registry or build_registry(sensor)).decode()
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        out[family.name] = [(s.labels, s.value) for s in family.samples]
    return out


def many_devices(n: int) -> FakeAnalysis:
    devices = {}
    for i in range(n):
        mac = f"02:00:00:00:{i >> 8:02x}:{i & 0xFF:02x}"
        devices[mac] = make_device(mac, NOW - 1000 + i, NOW - (i % 7), tx_packets=i + 1)
    return FakeAnalysis(devices=devices, capture_stats={"eth0": Stats(10, 600, NOW, 0)})


def test_cap_keeps_at_most_max_devices_series_and_counts_the_rest_as_overflow() -> None:
    n = 25
    sensor = Sensor(
        analysis=many_devices(10 * n), settings=ExporterSettings(max_devices=n), now=NOW
    )
    metrics = scrape(sensor)
    for name in PER_DEVICE:
        assert len(metrics[name]) == n, name
    total_series = sum(len(samples) for samples in metrics.values())
    # budget: n series per per-device metric, plus a small fixed number of others
    assert total_series <= len(PER_DEVICE) * n + 20
    assert metrics["santinel_devices_overflow"] == [({}, 9 * n)]
    # all devices are still counted in the bounded-label gauge
    assert sum(v for _, v in metrics["santinel_devices"]) == 10 * n


def test_overflow_counter_counts_each_refused_device_once_across_scrapes() -> None:
    sensor = Sensor(analysis=many_devices(30), settings=ExporterSettings(max_devices=10), now=NOW)
    registry = build_registry(sensor)
    first = scrape(sensor, registry)["santinel_devices_overflow"][0][1]
    second = scrape(sensor, registry)["santinel_devices_overflow"][0][1]
    assert first == second == 20


def test_kept_devices_are_the_oldest_and_a_new_device_does_not_displace_them() -> None:
    analysis = many_devices(30)
    sensor = Sensor(analysis=analysis, settings=ExporterSettings(max_devices=10), now=NOW)
    registry = build_registry(sensor)
    before = {lab["device"] for lab, _ in scrape(sensor, registry)["santinel_device_info"]}
    expected = {f"02:00:00:00:00:{i:02x}" for i in range(10)}
    assert before == expected
    newcomer = make_device("02:00:00:00:ff:ff", NOW, NOW, tx_packets=1_000_000)
    analysis.devices[newcomer.id] = newcomer
    after = scrape(sensor, registry)
    assert {lab["device"] for lab, _ in after["santinel_device_info"]} == expected
    assert after["santinel_devices_overflow"][0][1] == 21


def test_devices_not_seen_within_device_ttl_disappear_from_the_exposition() -> None:
    analysis = many_devices(3)
    old = make_device("02:aa:00:00:00:01", NOW - 90_000, NOW - 86_401)
    analysis.devices[old.id] = old
    sensor = Sensor(analysis=analysis, settings=ExporterSettings(device_ttl=86_400), now=NOW)
    metrics = scrape(sensor)
    devices = {lab["device"] for lab, _ in metrics["santinel_device_last_seen_timestamp_seconds"]}
    assert old.id not in devices and len(devices) == 3
    sensor.now = NOW + 100_000  # everything ages out
    assert scrape(sensor)["santinel_device_info"] == []


def test_pseudonymised_labels_hide_mac_ip_and_id_and_are_stable_for_one_key(sensor: Sensor) -> None:
    sensor.settings.pseudonym_key = b"0123456789abcdef-site-key"
    text = generate_latest(build_registry(sensor)).decode()
    for secret in ("00:1b:63:aa:bb:01", "10.1.2.30", "10.1.2.4", "pump-icu-3", "00:09:fb"):
        assert secret not in text
    expected = pseudonym(sensor.settings.pseudonym_key, "00:1b:63:aa:bb:01")
    assert len(expected) == 16
    assert f'device="{expected}"' in text
    # another key gives other pseudonyms
    assert pseudonym(b"another-key-0000000", "00:1b:63:aa:bb:01") != expected
