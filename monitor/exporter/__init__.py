"""Prometheus exporter: custom collectors that read the sensor's state at scrape time.

Nothing here is touched per packet. The pipeline (``monitor.pipeline.Analysis``) keeps plain
counters; on each scrape the collectors copy what they need under the sensor lock and yield
fresh ``*MetricFamily`` objects (the node_exporter way: one collector per file in this
package). Metric names and labels are exactly DESIGN.md's table.

Promises:
- bounded cardinality: ``device`` is the only unbounded label, capped at
  ``exporter.max_devices`` (see ``devices.select_devices`` for which devices are kept) and
  ``santinel_devices_overflow_total`` counts each device refused a series, once;
- devices not seen for ``exporter.device_ttl`` (capture time) disappear from the exposition;
- with ``privacy.pseudonymize_addresses`` the ``device``, ``mac``, ``ip`` and ``hostname``
  labels are keyed hashes (HMAC-SHA256), stable across restarts for the same key;
- learning state and anomalies come through the small interfaces ``Baselines`` and
  ``Findings`` below; when no part provides them, their series are absent (or report the
  honest value: no baseline is ready).
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections.abc import Iterable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Literal, Protocol

from monitor.model import Device, TableStats

LearningStateName = Literal["learning", "enforcing"]


@dataclass(frozen=True, slots=True)
class Learning:
    """A device's learning state as the baseline part reports it."""

    state: LearningStateName
    expected_interval: float | None = None  # learned reporting cadence, seconds


class Baselines(Protocol):
    """What the exporter needs from the baseline part (``monitor.baseline``)."""

    def learning(self, device_id: str) -> Learning | None: ...


class Findings(Protocol):
    """What the exporter needs from the detectors: anomaly and signature-match counts."""

    def anomaly_counts(self) -> Mapping[tuple[str, str, str], int]:
        """(device, detector, severity) -> anomalies since start."""
        ...

    def active_anomalies(self, now: float) -> Iterable[tuple[str, str, str]]:
        """(device, detector, severity) held active at capture time ``now``."""
        ...

    def signature_matches(self) -> Mapping[tuple[str, str], int]:
        """(device, signature) -> matches since start."""
        ...


class SourceStatsLike(Protocol):
    @property
    def packets(self) -> int: ...
    @property
    def bytes(self) -> int: ...
    @property
    def last_packet_time(self) -> float | None: ...
    @property
    def dropped(self) -> int: ...


class AnalysisLike(Protocol):
    """The attributes of ``monitor.pipeline.Analysis`` the exporter reads."""

    @property
    def devices(self) -> Mapping[str, Device]: ...
    @property
    def capture_stats(self) -> Mapping[str, SourceStatsLike]: ...
    @property
    def decode_errors(self) -> Mapping[str, int]: ...

    def table_stats(self) -> TableStats: ...


@dataclass
class ExporterSettings:
    max_devices: int = 1000
    device_ttl: float = 7 * 86400.0
    pseudonym_key: bytes | None = None


@dataclass
class WindowJudging:
    """How long judging the closed windows took: the detectors scoring each window's device
    profiles, then the baselines learning them (kept by the daemon). A window's close is the
    sensor's largest burst of work; a sensor without capture workers reads no frame
    meanwhile, and a close that outlasts what the kernel ring holds costs packets."""

    windows: int = 0  # judged since start
    seconds: float = 0.0  # wall-clock, over all of them
    last_seconds: float | None = None  # the latest window's (None before the first)
    last_devices: int = 0  # device profiles the latest window held

    def add(self, seconds: float, devices: int) -> None:
        self.windows += 1
        self.seconds += seconds
        self.last_seconds = seconds
        self.last_devices = devices


@dataclass
class Sensor:
    """Everything the collectors read, with the lock the daemon holds while it updates it.

    ``now`` is the sensor's clock in capture time (the latest packet time, or the wall clock
    when the wire is quiet live); ``peers_last_window``, ``processing_lag`` and ``judging``
    are kept by the daemon.
    """

    analysis: AnalysisLike
    settings: ExporterSettings = field(default_factory=ExporterSettings)
    lock: AbstractContextManager[object] = field(default_factory=threading.RLock)
    now: float = 0.0
    baselines: Baselines | None = None
    findings: Findings | None = None
    peers_last_window: dict[str, int] = field(default_factory=dict)
    processing_lag: dict[str, float] = field(default_factory=dict)
    judging: WindowJudging = field(default_factory=WindowJudging)
    config_reload_successful: bool = True


def pseudonym(key: bytes | None, value: str) -> str:
    """``value`` itself, or its keyed hash (16 hex digits) when a key is set."""
    if key is None or value == "":
        return value
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()[:16]


MAX_LABEL_LENGTH = 128


def label_text(value: str | None) -> str:
    """A free-text metadata value made safe for a label: no control characters, bounded."""
    if not value:
        return ""
    cleaned = "".join(c if c.isprintable() else " " for c in value)
    return cleaned[:MAX_LABEL_LENGTH]
