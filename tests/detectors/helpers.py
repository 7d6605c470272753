"""Shared helpers for the detector tests: synthetic wards built with scapy, and a runner that
feeds captures through the pipeline, scoring each window before the baselines learn it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Packet, Raw
from scapy.utils import wrpcap

from monitor.baseline import BaselineConfig, BaselineStore
from monitor.capture.files import open_capture
from monitor.detectors import DetectorConfig, DetectorSuite
from monitor.detectors.offline import replay
from monitor.events import Event, EventBook
from monitor.model import WindowProfile
from monitor.pipeline import Analysis

T0 = 1_780_000_000.0
REPO = Path(__file__).resolve().parents[2]
LAB_DEMO = REPO / "tests" / "data" / "lab-demo"

# A small ward: MAC, IP
MONITOR = ("00:09:fb:00:00:01", "10.9.0.21")
ENGINE = ("00:14:22:00:00:02", "10.9.0.11")
LAPTOP = ("b0:83:fe:00:00:03", "10.9.0.30")
PUMP = ("00:12:21:00:00:04", "10.9.0.40")
ROUTER = ("00:1b:54:00:00:05", "10.9.0.1")
ROGUE = ("b8:27:eb:00:00:06", "10.9.0.99")

WINDOW = 5.0


def udp(src: tuple[str, str], dst: tuple[str, str], when: float, sport: int, dport: int,
        size: int = 120) -> Packet:  # fmt: skip
    p = Ether(src=src[0], dst=dst[0]) / IP(src=src[1], dst=dst[1]) / UDP(sport=sport, dport=dport)
    p = p / Raw(b"x" * size)
    p.time = when
    return p


def udp_to(src: tuple[str, str], address: str, via: tuple[str, str], when: float, dport: int,
           size: int = 120, sport: int = 40000) -> Packet:  # fmt: skip
    p = Ether(src=src[0], dst=via[0]) / IP(src=src[1], dst=address) / UDP(sport=sport, dport=dport)
    p = p / Raw(b"x" * size)
    p.time = when
    return p


def arp_request(src: tuple[str, str], target_ip: str, when: float) -> Packet:
    p = Ether(src=src[0], dst="ff:ff:ff:ff:ff:ff") / ARP(
        op=1, hwsrc=src[0], psrc=src[1], pdst=target_ip
    )
    p.time = when
    return p


def arp_reply(mac: str, claimed_ip: str, to: tuple[str, str], when: float) -> Packet:
    p = Ether(src=mac, dst=to[0]) / ARP(op=2, hwsrc=mac, psrc=claimed_ip, hwdst=to[0], pdst=to[1])
    p.time = when
    return p


def syn(src: tuple[str, str], dst: tuple[str, str], when: float, dport: int,
        sport: int = 50000) -> Packet:  # fmt: skip
    p = (
        Ether(src=src[0], dst=dst[0])
        / IP(src=src[1], dst=dst[1])
        / TCP(sport=sport, dport=dport, flags="S")
    )
    p.time = when
    return p


def every(start: float, end: float, step: float) -> list[float]:
    out, t = [], start
    while t < end:
        out.append(t)
        t += step
    return out


def ward(start: float, end: float, feed_until: float | None = None,
         monitor_chatter: bool = True) -> list[Packet]:  # fmt: skip
    """A quiet ward: the monitor's HL7-like feed to the engine every 5 s (until
    ``feed_until``), ARP from every host now and then, the laptop's and the pump's own
    steady traffic (so the sensor is never blind)."""
    packets: list[Packet] = []
    stop = end if feed_until is None else feed_until
    for i, t in enumerate(every(start, stop, 5.0)):
        packets.append(udp(MONITOR, ENGINE, t + 0.01 * (i % 3), 40001, 2575))
        packets.append(udp(ENGINE, MONITOR, t + 0.05, 2575, 40001, 40))
    for t in every(start, end, 2.0):
        packets.append(udp(PUMP, ENGINE, t + 0.3, 40002, 443, 300))
        packets.append(udp(ENGINE, PUMP, t + 0.35, 443, 40002, 300))
    for t in every(start, end, 3.0):
        packets.append(udp(LAPTOP, ROUTER, t + 0.7, 40003, 53, 60))
        packets.append(udp(ROUTER, LAPTOP, t + 0.75, 53, 40003, 90))
    for host in (MONITOR, ENGINE, PUMP, ROUTER, LAPTOP):
        if host is MONITOR and not monitor_chatter:
            continue
        for t in every(start + 1.1, end if host is not MONITOR else stop, 20.0):
            packets.append(arp_request(host, ROUTER[1] if host is not ROUTER else ENGINE[1], t))
    return packets


def write(path: Path, packets: Iterable[Packet]) -> Path:
    wrpcap(str(path), sorted(packets, key=lambda p: float(p.time)))
    return path


@dataclass
class Run:
    suite: DetectorSuite
    analysis: Any
    store: BaselineStore

    @property
    def events(self) -> list[Event]:
        return self.suite.book.emitted

    @property
    def detections(self) -> list[Event]:
        return self.suite.detections

    def of(self, detector: str, device: str | None = None) -> list[Event]:
        return [
            e
            for e in self.events
            if e.detector == detector and (device is None or e.device == device)
        ]


def run(
    paths: Sequence[Path],
    window: float = WINDOW,
    min_duration: float = 60.0,
    min_windows: int = 8,
    signatures: Any = None,
    hold: float = 600.0,
    config: DetectorConfig | None = None,
    store: BaselineStore | None = None,
    batch_frames: int | None = None,
) -> Run:
    """Replay ``paths``; baselines enforce after ``min_duration`` s and ``min_windows``.
    With ``batch_frames``, the frames are fed that many at a time (1: frame by frame, as
    a live capture on a quiet wire reads them); else as a file is read."""
    if store is None:  # (an empty store is falsy)
        store = BaselineStore(BaselineConfig(min_duration=min_duration, min_windows=min_windows))
    cfg = config or DetectorConfig(
        window_seconds=window, silence_min_seconds=10.0, sensor_blind_seconds=30.0,
        arp_recent_seconds=600.0,
    )  # fmt: skip
    suite = DetectorSuite(EventBook(hold_seconds=hold), cfg)
    suite.record_detections = True
    if batch_frames is None:
        analysis = replay(paths, suite, store, signatures, window_seconds=window)
        return Run(suite, analysis, store)

    def on_window(profiles: Sequence[WindowProfile], analysis: Analysis) -> None:
        suite.on_window(profiles, analysis, store, learn=True)

    analysis = Analysis(signatures=signatures, window_seconds=window, on_window=on_window)
    for path in paths:
        for batch in open_capture(path):
            for start in range(0, len(batch), batch_frames):
                analysis.feed(batch.frames(start, min(start + batch_frames, len(batch))))
    analysis.finish()
    return Run(suite, analysis, store)
