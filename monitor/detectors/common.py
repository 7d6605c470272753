"""Helpers shared by the detectors: device lookup, enforcing baselines, readable values."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from monitor.baseline import Baseline, BaselineStore
from monitor.detectors import AnalysisView, DetectorConfig
from monitor.detectors._window import Reported, as_of, in_window
from monitor.events import Event
from monitor.model import Device, WindowProfile
from monitor.rules import Finding

# Infrastructure services every host uses now and then: not a clinical feed.
INFRASTRUCTURE_SERVICES = frozenset(
    {"udp/53", "udp/67", "udp/68", "udp/123", "udp/137", "udp/138", "udp/1900", "udp/5353",
     "udp/5355", "tcp/53"}
)  # fmt: skip


class DetectorBase:
    """Default ``tick`` (nothing to say between windows) and the config."""

    name = "detector"

    def __init__(self, config: DetectorConfig | None = None) -> None:
        self.config = config or DetectorConfig()

    def score_window(
        self,
        profiles: Sequence[WindowProfile],
        analysis: AnalysisView,
        baselines: BaselineStore | None,
        now: float,
    ) -> list[Event]:
        return []

    def tick(
        self, analysis: AnalysisView, baselines: BaselineStore | None, now: float
    ) -> list[Event]:
        return []


def enforcing_baseline(baselines: BaselineStore | None, device_id: str) -> Baseline | None:
    """The device's baseline when it is enforcing, else None."""
    if baselines is None:
        return None
    baseline = baselines.get(device_id)
    return baseline if baseline is not None and baseline.enforcing else None


def device_of(analysis: AnalysisView, device_id: str) -> Device | None:
    return analysis.devices.get(device_id)


def shown(values: Sequence[str], limit: int = 3) -> str:
    """``a, b, c and 4 more``: a short list for a summary."""
    values = list(values)
    head = ", ".join(values[:limit])
    return head if len(values) <= limit else f"{head} and {len(values) - limit} more"


def peer_text(peer: str, analysis: Any = None) -> str:
    """A peer id in words: ``203.0.113.9 (internet)``, ``10.1.2.3``, or a device's label."""
    if peer.startswith("ext:"):
        return f"{peer[4:]} (internet)"
    if peer.startswith("ip:"):
        return peer[3:]
    if analysis is not None:
        device = analysis.devices.get(peer)
        if device is not None:
            ips = device.facts.get("ip", {})
            if ips:  # its main address: the one that carried most of its traffic
                main = max(ips.items(), key=lambda item: (item[1].count, item[0]))[0]
                return f"{peer} ({main})"
            return peer
    return peer


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


class FindingDetector(DetectorBase):
    """A detector that reports ``monitor.rules`` findings (rules or policies) per window.

    A finding is reported when one of its values shows in the window (facts are cumulative and
    may run ahead of the window), or once when nothing in a window can show it (vendor only);
    a finding with no value it had not reported keeps its open event alive but opens no new
    one until ``finding_repeat_seconds`` passed. Subclasses say which findings and how each
    becomes an event.
    """

    library_part = ""  # "rules" or "policies": nothing to do when the library has none

    def __init__(self, config: DetectorConfig | None = None) -> None:
        super().__init__(config)
        self.reported = Reported(self.config.finding_repeat_seconds)

    def begin_window(self) -> None:
        """Called before the findings of a window's devices are asked for."""

    def end_window(self) -> None:
        """Called when a window's devices have been judged (also when judging failed)."""

    def findings(
        self, device: Device, analysis: AnalysisView, library: Any, end: float
    ) -> list[Finding]:
        """The findings for ``device``, whose facts are as of ``end`` (its window's end)."""
        raise NotImplementedError

    def event_for(
        self,
        profile: WindowProfile,
        device: Device,
        finding: Finding,
        fresh: dict[str, list[str]],
        baselines: BaselineStore | None,
    ) -> Event:
        raise NotImplementedError

    def score_window(
        self,
        profiles: Sequence[WindowProfile],
        analysis: AnalysisView,
        baselines: BaselineStore | None,
        now: float,
    ) -> list[Event]:
        library = getattr(analysis, "signatures", None)
        if library is None or not getattr(library, self.library_part):
            return []
        self.begin_window()
        try:
            return self._events(profiles, analysis, baselines, library)
        finally:
            self.end_window()

    def _events(
        self,
        profiles: Sequence[WindowProfile],
        analysis: AnalysisView,
        baselines: BaselineStore | None,
        library: Any,
    ) -> list[Event]:
        events: list[Event] = []
        for p in profiles:
            device = analysis.devices.get(p.device_id)
            if device is None:
                continue
            device = as_of(device, p.end)
            for finding in self.findings(device, analysis, library, p.end):
                fresh = {
                    kind: [v for v in values if in_window(p, kind, v)]
                    for kind, values in finding.evidence.items()
                }
                fresh = {k: v for k, v in fresh.items() if v}
                key = (p.device_id, finding.rule_id)
                observable = any(k != "oui_vendor" for k in finding.evidence)
                if not fresh and (observable or key in self.reported):
                    continue
                values = frozenset(v for vs in finding.evidence.values() for v in vs)
                refresh = self.reported.refresh_only(key, values, p.end)
                event = self.event_for(p, device, finding, fresh, baselines)
                event.refresh_only = refresh
                events.append(event)
        return events
