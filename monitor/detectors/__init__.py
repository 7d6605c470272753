"""Detectors: compare window profiles with baselines, rules and policies; emit events.

One contract for every detector (``Detector``): ``score_window(profiles, analysis,
baselines, now)`` is called once per closed window, BEFORE the baselines learn that window
(river's prequential order: score, then learn), and returns the events it finds;
``tick(analysis, baselines, now)`` is called when capture time moves on without a window
closing (a quiet live wire) and lets time-driven detectors (silence) speak. Each detector
lives in its own module and explains itself in the events it builds (summary + evidence).

``DetectorSuite`` runs them all, hands their events to an ``EventBook`` (dedup, hold,
JSON lines, exporter counts) and then lets the baselines learn the window, skipping the
devices whose window a volume-type detector found anomalous (so an exfiltration does not
become normal).

Thresholds are in ``DetectorConfig``; the defaults fit 60-second windows of real time. A
compressed replay (the lab runs at 60x) scales them with ``DetectorConfig.scaled``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from monitor.baseline import BaselineStore
from monitor.detectors._window import one_pass
from monitor.events import Event, EventBook
from monitor.model import Device, WindowProfile


class AnalysisView(Protocol):
    """What detectors read of ``monitor.pipeline.Analysis``."""

    @property
    def devices(self) -> Mapping[str, Device]: ...

    @property
    def capture_stats(self) -> Mapping[str, Any]: ...

    def address_packets_since(self, device_id: str, address: str, end: float) -> int:
        """Packets the device sent from ``address`` that its ``ip`` fact counts and that
        came at or after ``end`` (those of windows still open)."""
        ...


class Detector(Protocol):
    """One detector (see the module docstring)."""

    name: str

    def score_window(
        self,
        profiles: Sequence[WindowProfile],
        analysis: AnalysisView,
        baselines: BaselineStore | None,
        now: float,
    ) -> list[Event]: ...

    def tick(
        self, analysis: AnalysisView, baselines: BaselineStore | None, now: float
    ) -> list[Event]: ...


@dataclass(frozen=True, slots=True)
class DetectorConfig:
    """Thresholds of the detectors (time values in seconds of capture time)."""

    window_seconds: float = 60.0
    # silence: a conversation is silent after k x its learned interval (and at least this)
    silence_k: float = 3.0
    silence_min_seconds: float = 0.0  # (and never less than two windows)
    silence_min_gaps: int = 4  # gaps a conversation needs to count as steady
    silence_min_span_windows: float = 3.0  # ... and the windows those gaps must cover
    silence_max_spread: float = 0.5  # MAD / median above this: not steady
    silence_max_interval: float = 6 * 3600.0
    silence_giveup_seconds: float = 86400.0  # stop refreshing an event after this much silence
    sensor_blind_seconds: float = 120.0  # no packet at all for this long: the sensor is blind
    mass_silence_devices: int = 5  # this many devices silent at once ...
    mass_silence_share: float = 0.6  # ... and this share of the steady ones: a sensor problem
    # volume
    volume_z: float = 6.0  # MAD-scaled deviations from the median
    volume_ratio: float = 4.0  # and this many times the median (or a quarter of it)
    volume_windows: int = 3  # for this many consecutive windows
    volume_min_packets: float = 200.0  # a change smaller than this (per window) is noise
    exfiltration_bytes: float = 2_000_000.0  # bytes sent in one window to the internet
    transfer_bytes: float = 500_000.0  # bytes received in one window: a file/firmware transfer
    # network attacks (per window)
    scan_ports: int = 64  # distinct services tried on peers
    scan_hosts: int = 64  # distinct internal peers contacted with new flows
    arp_sweep_packets: int = 256
    dhcp_packets: int = 100  # DHCP requests sent by one device
    dhcp_new_clients: int = 20  # new DHCP-only devices in one window
    flood_pps: float = 300.0  # packets per second one way, averaged over a window
    flood_asymmetry: float = 20.0
    arp_recent_seconds: float = 3600.0  # an address owner seen this recently still owns it
    finding_repeat_seconds: float = 86400.0  # a standing rule/policy finding, reported again

    def scaled(self, time_scale: float) -> DetectorConfig:
        """The same thresholds for a replay running ``time_scale`` times faster."""
        s = float(time_scale)
        return replace(
            self,
            window_seconds=self.window_seconds / s,
            silence_min_seconds=self.silence_min_seconds / s,
            silence_max_interval=self.silence_max_interval / s,
            silence_giveup_seconds=self.silence_giveup_seconds / s,
            sensor_blind_seconds=self.sensor_blind_seconds / s,
            arp_recent_seconds=self.arp_recent_seconds / s,
            finding_repeat_seconds=self.finding_repeat_seconds / s,
        )


# Detectors whose findings mean the window is not normal and must not be learned.
NOT_LEARNED = frozenset({"exfiltration", "volume_high", "firmware_transfer", "flood"})


def default_detectors(config: DetectorConfig | None = None) -> list[Detector]:
    from monitor.detectors.arp import ArpDetector
    from monitor.detectors.dhcp import DhcpStarvationDetector
    from monitor.detectors.flood import FloodDetector
    from monitor.detectors.new_behaviour import NewBehaviourDetector
    from monitor.detectors.new_device import NewDeviceDetector
    from monitor.detectors.policy import PolicyDetector
    from monitor.detectors.scan import ScanDetector
    from monitor.detectors.signature_rules import SignatureRuleDetector
    from monitor.detectors.silence import SilenceDetector
    from monitor.detectors.volume import VolumeDetector

    cfg = config or DetectorConfig()
    return [
        NewBehaviourDetector(cfg),
        SilenceDetector(cfg),
        VolumeDetector(cfg),
        ScanDetector(cfg),
        ArpDetector(cfg),
        DhcpStarvationDetector(cfg),
        FloodDetector(cfg),
        SignatureRuleDetector(cfg),
        PolicyDetector(cfg),
        NewDeviceDetector(cfg),
    ]


class DetectorSuite:
    """All detectors, the event book, and the score-then-learn order."""

    def __init__(
        self,
        book: EventBook | None = None,
        config: DetectorConfig | None = None,
        detectors: Iterable[Detector] | None = None,
    ) -> None:
        self.config = config or DetectorConfig()
        self.book = book or EventBook()
        self.detectors: list[Detector] = (
            list(detectors) if detectors is not None else default_detectors(self.config)
        )
        # every detection before deduplication (for evaluation), when enabled
        self.record_detections = False
        self.detections: list[Event] = []
        self._last_found: list[Event] = []

    def score_window(
        self,
        profiles: Sequence[WindowProfile],
        analysis: AnalysisView,
        baselines: BaselineStore | None,
        now: float,
    ) -> list[Event]:
        """Score one closed window; returns the new events (after dedup and hold)."""
        found: list[Event] = []
        with one_pass():
            for detector in self.detectors:
                found.extend(detector.score_window(profiles, analysis, baselines, now))
        return self._submit(found, now)

    def tick(
        self, analysis: AnalysisView, baselines: BaselineStore | None, now: float
    ) -> list[Event]:
        found: list[Event] = []
        for detector in self.detectors:
            found.extend(detector.tick(analysis, baselines, now))
        return self._submit(found, now)

    def as_hook(self) -> Callable[[list[WindowProfile], Any, Any], list[dict[str, Any]]]:
        """The suite as a plain ``(profiles, analysis, store) -> event dicts`` callable: it
        scores the window (no learning: the caller learns afterwards) and returns the new
        events after deduplication, in DESIGN.md's JSON form."""

        def hook(profiles: list[WindowProfile], analysis: Any, store: Any) -> list[dict[str, Any]]:
            now = max((p.end for p in profiles), default=0.0)
            return [e.to_dict() for e in self.score_window(profiles, analysis, store, now)]

        return hook

    def _submit(self, found: list[Event], now: float) -> list[Event]:
        if self.record_detections:
            self.detections.extend(found)
        self._last_found = found
        new = self.book.submit(found, now)
        self.book.expire(now)
        return new

    def on_window(
        self,
        profiles: Sequence[WindowProfile],
        analysis: AnalysisView,
        baselines: BaselineStore | None,
        learn: bool = True,
    ) -> list[Event]:
        """Score a closed window, then (``learn``) let the baselines learn it."""
        now = max((p.end for p in profiles), default=0.0)
        new = self.score_window(profiles, analysis, baselines, now)
        if baselines is not None and learn:
            # every detection of this window counts, also those a held event absorbed
            skip = {e.device for e in self._last_found if e.detector in NOT_LEARNED}
            baselines.learn_window(profiles, analysis, skip=skip)
        return new
