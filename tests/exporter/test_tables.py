"""Bounded tables in the exposition: flows tracked, flow records started, evictions."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from monitor.capture.files import open_capture
from monitor.exporter import Sensor
from monitor.exporter.registry import build_registry
from monitor.pipeline import Analysis
from tests.support.packets import write_capture


def samples(sensor: Sensor) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(build_registry(sensor)).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_a_spray_of_flows_shows_as_evictions_to_make_room(tmp_path: Path) -> None:
    spray = [
        Ether(src="00:09:fb:00:00:01", dst="00:50:56:00:00:02")
        / IP(src="10.1.0.5", dst="10.1.0.9")
        / UDP(sport=5000, dport=20_000 + i)
        for i in range(500)
    ]
    analysis = Analysis(max_flows=100)
    # a small file is one batch: the table keeps all of it and trims when the next one comes,
    # here a packet of a flow it already tracks
    for batch in open_capture(write_capture(tmp_path / "spray.pcap", spray)):
        analysis.feed(batch)
    for batch in open_capture(
        write_capture(tmp_path / "more.pcap", spray[:1], start=1_700_000_001.0)
    ):
        analysis.feed(batch)
    exposed = samples(Sensor(analysis=analysis))
    stats = analysis.table_stats()
    assert exposed[("santinel_flows_started_total", ())] == 500
    assert (
        exposed[("santinel_flows_evicted_total", (("reason", "full"),))]
        == stats.flows_evicted["full"]
    )
    assert stats.flows_evicted["full"] >= 400
    assert exposed[
        ("santinel_flows_evicted_total", (("reason", "idle"),))
    ] == stats.flows_evicted.get("idle", 0)
    assert exposed[("santinel_flows_active", ())] == stats.flows_active <= 100
    assert exposed[("santinel_devices_evicted_total", ())] == 0
