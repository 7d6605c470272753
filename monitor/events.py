"""Anomaly events: the schema of DESIGN.md, severity, deduplication and holding, JSON lines.

An ``Event`` is one finding of one detector about one device: capture time, device id,
device class and clinical criticality, the detector's name, a severity, a one-sentence
summary a nurse manager can read, the evidence (what was observed, what the baseline holds)
and references (advisories, CVEs). ``to_dict`` gives DESIGN.md's JSON form.

Severity comes from the detector AND the device (``severity_for``): the detector names a
base level (info < warning < high < critical) and the device's clinical criticality moves it
(life_sustaining +2, high +1, medium 0, low -1, unknown 0), clamped to the scale.

``EventBook`` deduplicates and holds: one open event per (device, detector). A detection
while that event is open only refreshes it (its ``last_seen`` and ``occurrences``; a higher
severity re-opens it as a new event); an open event clears once nothing refreshed it for
``hold_seconds`` of capture time. The book keeps of an open event only what deduplication
reads (``OpenEvent``: severity, last seen, occurrences), not its summary and evidence: those
were written when it opened, and a site of 100,000 devices holds an open event or more each.
A ``refresh_only`` detection (a standing finding already reported) keeps an open event alive
but never opens one. The book is also the exporter's ``Findings`` (counts per device,
detector and severity; the events held active; signature matches) and, when given a file,
writes each new event as one JSON line.

Privacy: events carry metadata only (addresses, names, identifiers, counts), never payload
content; the detectors build them from facts and counters, which hold nothing else.
"""

from __future__ import annotations

import datetime as dt
import heapq
import json
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from monitor.model import UNKNOWN_CLASS, Device

SEVERITY_ORDER: tuple[str, ...] = ("info", "warning", "high", "critical")
"""Event severities, lowest first (the scale of ``monitor.signatures.SEVERITIES``)."""

CRITICALITY_SHIFT: dict[str, int] = {"life_sustaining": 2, "high": 1, "medium": 0, "low": -1}

# The exporter's and the alerting rules' scale: "high" is acted on in working hours.
METRIC_SEVERITY: dict[str, str] = {
    "critical": "critical",
    "high": "warning",
    "warning": "warning",
    "info": "info",
}

MAX_TEXT = 300  # characters of a summary or an evidence string
MAX_LIST = 20  # values of one evidence list


def severity_for(base: str, criticality: str | None) -> str:
    """The severity of an event of base level ``base`` about a device of ``criticality``."""
    rank = SEVERITY_ORDER.index(base) if base in SEVERITY_ORDER else 1
    rank += CRITICALITY_SHIFT.get(criticality or "", 0)
    return SEVERITY_ORDER[max(0, min(len(SEVERITY_ORDER) - 1, rank))]


def iso_time(t: float) -> str:
    moment = dt.datetime.fromtimestamp(t, tz=dt.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _bounded(value: Any, depth: int = 0) -> Any:
    """Evidence made JSON-safe and bounded: short strings, short lists, shallow mappings."""
    if isinstance(value, bool | int | None):
        return value
    if isinstance(value, float):
        return round(value, 3)
    if isinstance(value, str):
        return value[:MAX_TEXT]
    if depth > 3:
        return str(value)[:MAX_TEXT]
    if isinstance(value, Mapping):
        return {str(k)[:80]: _bounded(v, depth + 1) for k, v in list(value.items())[:MAX_LIST]}
    if isinstance(value, set | frozenset):
        value = sorted(value, key=str)
    if isinstance(value, Sequence | list | tuple):
        return [_bounded(v, depth + 1) for v in list(value)[:MAX_LIST]]
    return str(value)[:MAX_TEXT]


@dataclass(slots=True)
class Event:
    """One anomaly about one device (DESIGN.md's event)."""

    time: float  # capture time of the detection
    device: str
    device_class: str
    criticality: str | None
    detector: str
    severity: str
    summary: str
    observed: dict[str, Any] = field(default_factory=dict)
    baseline: dict[str, Any] = field(default_factory=dict)
    references: tuple[str, ...] = ()
    signature: str | None = None  # the signature rule or policy id, when one fired
    # a detection that may keep an open event alive but never opens one (a standing finding
    # already reported)
    refresh_only: bool = False

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "time": iso_time(self.time),
            "device": self.device,
            "device_class": self.device_class,
            "criticality": self.criticality,
            "detector": self.detector,
            "severity": self.severity,
            "summary": self.summary[:MAX_TEXT],
            "evidence": {"observed": _bounded(self.observed), "baseline": _bounded(self.baseline)},
            "references": list(self.references),
        }
        if self.signature:
            out["signature"] = self.signature
        return out


def device_label(device: Device | None, device_id: str) -> str:
    """How a summary names a device: its class in words, then its name or id."""
    from monitor.signatures import CLASS_LABELS

    if device is None:
        return f"device {device_id}"
    cls = device.device_class
    if cls == UNKNOWN_CLASS:
        words = "unidentified device"
    else:
        words = CLASS_LABELS.get(cls, cls.replace("_", " "))
    model = device.classification.model if device.classification else None
    name = device.hostnames[0] if device.hostnames else None
    parts = [words]
    if model:
        parts.append(model)
    parts.append(f"{name} ({device_id})" if name else device_id)
    return " ".join(parts)


def make_event(
    device_id: str,
    device: Device | None,
    detector: str,
    base_severity: str,
    summary: str,
    time: float,
    observed: Mapping[str, Any] | None = None,
    baseline: Mapping[str, Any] | None = None,
    references: Iterable[str] = (),
    signature: str | None = None,
) -> Event:
    """An event with class, criticality and severity taken from the device."""
    classification = device.classification if device is not None else None
    criticality = classification.criticality if classification is not None else None
    return Event(
        time=time,
        device=device_id,
        device_class=device.device_class if device is not None else UNKNOWN_CLASS,
        criticality=criticality,
        detector=detector,
        severity=severity_for(base_severity, criticality),
        summary=summary,
        observed=dict(observed or {}),
        baseline=dict(baseline or {}),
        references=tuple(references),
        signature=signature,
    )


@dataclass(slots=True)
class OpenEvent:
    """What the book keeps of an open event (see the module docstring)."""

    severity: str
    last_seen: float
    occurrences: int = 1


class EventBook:
    """Deduplicates and holds events; counts them for the exporter; writes JSON lines.

    Thread-safe: the daemon submits from its capture loop while the exporter reads.
    """

    def __init__(self, hold_seconds: float = 3600.0, events_file: Path | None = None) -> None:
        self.hold_seconds = hold_seconds
        self._lock = threading.Lock()
        self.open: dict[tuple[str, str], OpenEvent] = {}
        # (time, key) for each open event, the time at most its last_seen (one entry per
        # event opened or escalated): expiring looks at the earliest, instead of passing over
        # every open event for every event submitted
        self._expiry: list[tuple[float, tuple[str, str]]] = []
        # (detector, metric severity) -> device -> events, and signature -> device ->
        # matches: keyed by the device's id alone, where a tuple per device and label cost
        # 64 bytes more each (most of 100,000 devices have an event or two)
        self._counts: dict[tuple[str, str], dict[str, int]] = {}
        self._matches: dict[str, dict[str, int]] = {}
        self.emitted: list[Event] = []  # every new event, in order (bounded by the caller)
        self.keep_emitted = True
        self._file: IO[str] | None = None
        self.events_file = events_file
        if events_file is not None:
            events_file.parent.mkdir(parents=True, exist_ok=True)
            self._file = events_file.open("a", encoding="utf-8")

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def expire(self, now: float) -> list[tuple[str, str]]:
        """Clear the open events not refreshed for ``hold_seconds``; returns their
        (device, detector)."""
        with self._lock:
            return self._expire(now)

    def _expire(self, now: float) -> list[tuple[str, str]]:
        gone: list[tuple[str, str]] = []
        expiry = self._expiry
        while expiry and now - expiry[0][0] >= self.hold_seconds:
            _, key = heapq.heappop(expiry)
            held = self.open.get(key)
            if held is None:
                continue
            if now - held.last_seen >= self.hold_seconds:
                del self.open[key]
                gone.append(key)
            else:  # refreshed since: it expires later
                heapq.heappush(expiry, (held.last_seen, key))
        return gone

    def submit(self, events: Iterable[Event], now: float | None = None) -> list[Event]:
        """Take the detections of one evaluation; returns the events that are new (opened
        or escalated), which were also counted and written."""
        new: list[Event] = []
        with self._lock:
            if now is not None:
                self._expire(now)
            for event in sorted(events, key=lambda e: (e.time, e.device, e.detector)):
                self._expire(event.time if now is None else max(now, event.time))
                key = (event.device, event.detector)
                held = self.open.get(key)
                if held is None and event.refresh_only:
                    continue
                if held is not None and (
                    event.refresh_only
                    or SEVERITY_ORDER.index(event.severity) <= SEVERITY_ORDER.index(held.severity)
                ):
                    held.last_seen = max(held.last_seen, event.time)
                    held.occurrences += 1
                    continue
                heapq.heappush(self._expiry, (event.time, key))
                self.open[key] = OpenEvent(event.severity, event.time)
                new.append(event)
                counts = self._counts.get((event.detector, METRIC_SEVERITY[event.severity]))
                if counts is None:
                    label = (event.detector, METRIC_SEVERITY[event.severity])
                    counts = self._counts[label] = {}
                counts[event.device] = counts.get(event.device, 0) + 1
                if event.signature:
                    matches = self._matches.get(event.signature)
                    if matches is None:
                        matches = self._matches[event.signature] = {}
                    matches[event.device] = matches.get(event.device, 0) + 1
                if self.keep_emitted:
                    self.emitted.append(event)
                if self._file is not None:
                    self._file.write(json.dumps(event.to_dict(), sort_keys=False) + "\n")
            if self._file is not None and new:
                self._file.flush()
        return new

    # --- the exporter's Findings ------------------------------------------------------------

    def anomaly_counts(self) -> Mapping[tuple[str, str, str], int]:
        with self._lock:
            return {
                (device, detector, severity): count
                for (detector, severity), counts in self._counts.items()
                for device, count in counts.items()
            }

    def active_anomalies(self, now: float) -> Iterable[tuple[str, str, str]]:
        with self._lock:
            return [
                (device, detector, METRIC_SEVERITY[held.severity])
                for (device, detector), held in self.open.items()
                if now - held.last_seen < self.hold_seconds
            ]

    def signature_matches(self) -> Mapping[tuple[str, str], int]:
        with self._lock:
            return {
                (device, signature): count
                for signature, matches in self._matches.items()
                for device, count in matches.items()
            }
