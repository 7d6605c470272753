"""Silence: a device's steady conversation stops for longer than k x its learned cadence.

Clinically the most important detector: a monitor whose vitals feed stops, a pump that no
longer checks in. For every enforcing baseline, each *steady* conversation (at least
``silence_min_gaps`` measured gaps covering ``silence_min_span_windows`` windows or more,
spread MAD/median at most ``silence_max_spread``, not an infrastructure service such as DNS
or NTP, not the answers of a service the device offers) is silent once capture time ``now``
is more than ``max(k x interval, interval + 6 sigma, silence_min_seconds, two windows)``
past its last message. A conversation whose service carries on with another peer (a cloud
address rotation, a fail-over) is not silent.

Two findings, told apart by what else the device sent since the feed stopped:

- ``silence_gone``: nothing at all from the device (no ARP, no DHCP, no TCP close): it is
  unplugged, powered off or off the network;
- ``silence_app``: the host still sends something (it closed the connection, answers ARP,
  asks DNS) but the feed stopped: the application is down.

Evaluated on capture time: at every closed window on the sensor's clock (its newest
packet), and on ``tick`` on the live clock when the wire is quiet (then only *gone* can be
told before the window closes). A sensor that has captured no packet at all for
``sensor_blind_seconds`` (live), or that sees most steady devices fall silent at once, has a
sensor problem: one ``sensor_blind`` event (device ``sensor``), no device events.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from monitor.baseline import Baseline, BaselineStore
from monitor.detectors import AnalysisView, DetectorConfig
from monitor.detectors.common import (
    INFRASTRUCTURE_SERVICES,
    DetectorBase,
    enforcing_baseline,
    peer_text,
)
from monitor.events import Event, device_label, iso_time, make_event
from monitor.model import WindowProfile
from monitor.profiles import MAD_TO_SIGMA, quantize_time

SENSOR_DEVICE = "sensor"


@dataclass(frozen=True, slots=True)
class Silent:
    conversation: str
    last: float
    interval: float
    mad: float
    gaps: int
    threshold: float


def _duration(seconds: float) -> str:
    if seconds >= 5400:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 90:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"


class SilenceDetector(DetectorBase):
    """See the module docstring."""

    name = "silence"

    def __init__(self, config: DetectorConfig | None = None) -> None:
        super().__init__(config)
        # device -> conversation -> last message time seen in a closed window that its
        # baseline has not learned: the window just scored (the baseline learns it next),
        # and what a frozen baseline does not learn; only for conversations the baseline
        # tracks (the only ones ever asked about) or just saw: bounded as the baselines are,
        # however many short-lived conversations come and go
        self.last_message: dict[str, dict[str, float]] = {}
        # the devices noted in the window last scored: the baselines have learned that
        # window since (or skipped it), and what they learned is forgotten here at the next
        # window, whether or not the device sends again (most devices of a flood never do)
        self._noted: list[str] = []
        # device -> start of the latest closed window in which it sent anything
        self.last_sent_window: dict[str, float] = {}
        self._last_tick = float("-inf")

    def score_window(
        self,
        profiles: Sequence[WindowProfile],
        analysis: AnalysisView,
        baselines: BaselineStore | None,
        now: float,
    ) -> list[Event]:
        for device_id in self._noted:
            self._forget_learned(device_id, baselines)
        self._noted = []
        for profile in profiles:
            if profile.tx_packets:
                previous = self.last_sent_window.get(profile.device_id, float("-inf"))
                self.last_sent_window[profile.device_id] = max(previous, profile.start)
            self._note_messages(profile, baselines)
        return self.evaluate(analysis, baselines, now, closed=True)

    def _forget_learned(self, device_id: str, baselines: BaselineStore | None) -> None:
        """Forget the device's last messages that need no time of their own here.

        A conversation the baseline dropped (or never took) is not asked about; if it comes
        back, the baseline learns it anew with a later last message. One whose last message
        the baseline has learned needs none (``_last`` takes the later of the two): what is
        kept is what the baseline has not learned (the window just scored; all of it while
        the baseline is frozen, or when it skipped an anomalous window)."""
        seen = self.last_message.get(device_id)
        if seen is None:
            return
        baseline = baselines.get(device_id) if baselines is not None else None
        for key in list(seen):
            cadence = baseline.cadence.get(key) if baseline is not None else None
            learned = cadence.last_message if cadence is not None else None
            if cadence is None or (learned is not None and learned >= seen[key]):
                del seen[key]
        if not seen:
            del self.last_message[device_id]

    def _note_messages(self, profile: WindowProfile, baselines: BaselineStore | None) -> None:
        self._forget_learned(profile.device_id, baselines)
        seen = self.last_message.get(profile.device_id)
        for key, times in profile.conversations.items():
            if times:
                if seen is None:
                    seen = self.last_message[profile.device_id] = {}
                latest = quantize_time(max(times))  # as the baseline keeps it
                if latest > seen.get(key, float("-inf")):
                    seen[key] = latest
        if seen is not None:
            self._noted.append(profile.device_id)

    def tick(
        self, analysis: AnalysisView, baselines: BaselineStore | None, now: float
    ) -> list[Event]:
        if now - self._last_tick < self.config.window_seconds / 4:
            return []
        self._last_tick = now
        return self.evaluate(analysis, baselines, now, closed=False)

    # ------------------------------------------------------------------------------------
    def _last(self, device_id: str, key: str, baseline: Baseline) -> float | None:
        cadence = baseline.cadence.get(key)
        learned = cadence.last_message if cadence is not None else None
        seen = self.last_message.get(device_id, {}).get(key)
        if learned is None:
            return seen
        return learned if seen is None else max(seen, learned)

    def silent_conversations(
        self, device_id: str, baseline: Baseline, now: float, window: float | None = None
    ) -> tuple[list[Silent], bool]:
        """The device's silent steady conversations, and whether it has a steady one."""
        cfg = self.config
        # a silence shorter than two windows cannot be told from a window boundary
        floor = max(cfg.silence_min_seconds, 2 * (window or cfg.window_seconds))
        steady = False
        latest_by_service: dict[str, float] = {}
        candidates: list[Silent] = []
        offered = baseline.facts.get("service_offered", {})
        for key, cadence in baseline.cadence.items():
            service = key.rpartition("|")[2]
            last = self._last(device_id, key, baseline)
            if last is not None:
                latest_by_service[service] = max(latest_by_service.get(service, last), last)
            # answers of a server go quiet when its client does: the silence is the client's;
            # and a conversation with a peer the baseline never accepted (an incident's
            # session) is not part of the device's normal reporting
            peer = key.rpartition("|")[0]
            if service in INFRASTRUCTURE_SERVICES or service in offered or last is None:
                continue
            if not baseline.knows("peer", peer):
                continue
            stats = cadence.stats()
            if stats is None or stats.n < cfg.silence_min_gaps or stats.median <= 0:
                continue
            if stats.mad / stats.median > cfg.silence_max_spread:
                continue
            if stats.median > cfg.silence_max_interval:
                continue
            # a feed, not a short session: its measured gaps cover a few windows at least
            if stats.n * stats.median < cfg.silence_min_span_windows * (
                window or cfg.window_seconds
            ):
                continue
            steady = True
            threshold = max(
                cfg.silence_k * stats.median,
                stats.median + 6 * MAD_TO_SIGMA * stats.mad,
                floor,
            )
            quiet = now - last
            if threshold < quiet < max(cfg.silence_giveup_seconds, 50 * stats.median):
                candidates.append(Silent(key, last, stats.median, stats.mad, stats.n, threshold))
        silent = [
            s
            for s in candidates
            if latest_by_service.get(s.conversation.rpartition("|")[2], s.last) <= s.last
        ]
        return silent, steady

    def evaluate(
        self,
        analysis: AnalysisView,
        baselines: BaselineStore | None,
        now: float,
        closed: bool,
    ) -> list[Event]:
        if baselines is None:
            return []
        cfg = self.config
        sensor_last = max(
            (float(s.last_packet_time or 0.0) for s in analysis.capture_stats.values()),
            default=0.0,
        )
        if sensor_last <= 0.0:
            return []
        if closed:
            # the sensor's clock is its newest packet: the end of a window (or of a capture
            # file) that saw nothing more does not make anyone silent
            now = min(now, sensor_last)
        elif now - sensor_last > cfg.sensor_blind_seconds:
            blind_for = now - sensor_last
            return [self._sensor_event(now, f"has captured no packet for {_duration(blind_for)}",
                                       {"last_packet": iso_time(sensor_last)})]  # fmt: skip
        findings: list[tuple[str, list[Silent], bool]] = []
        steady_devices = 0
        for device_id, baseline in baselines.baselines.items():
            if enforcing_baseline(baselines, device_id) is None:
                continue
            window = float(getattr(analysis, "window_seconds", cfg.window_seconds))
            silent, steady = self.silent_conversations(device_id, baseline, now, window)
            steady_devices += steady
            if not silent:
                continue
            device = analysis.devices.get(device_id)
            last = max(s.last for s in silent)
            margin = max(0.25 * min(s.interval for s in silent), baseline.config.cadence_burst_gap)
            # Sent anything since? A closed window after the one of its last message in
            # which it sent something tells. (The device's last-seen time runs ahead of the
            # windows when a large batch is read, so it only counts live, between windows.)
            last_window = (last // window) * window
            sent_since = self.last_sent_window.get(device_id, float("-inf")) > last_window
            if not closed and device is not None and device.last_seen > last + margin:
                sent_since = True
            if not closed and sent_since:
                continue  # app silence is judged when the window closes
            findings.append((device_id, silent, not sent_since))
        if len(findings) >= cfg.mass_silence_devices and len(
            findings
        ) >= cfg.mass_silence_share * max(steady_devices, 1):
            return [
                self._sensor_event(
                    now,
                    f"sees {len(findings)} of {steady_devices} steadily reporting devices "
                    "fall silent at once",
                    {"silent_devices": sorted(d for d, _, _ in findings)},
                )
            ]
        return [self._event(analysis, d, silent, gone, now) for d, silent, gone in findings]

    def _sensor_event(self, now: float, what: str, observed: dict[str, object]) -> Event:
        return make_event(
            SENSOR_DEVICE,
            None,
            "sensor_blind",
            "high",
            f"The sensor {what}: a capture problem (SPAN/TAP, cable, interface), "
            "not silent devices.",
            now,
            observed,
        )

    def _event(
        self,
        analysis: AnalysisView,
        device_id: str,
        silent: list[Silent],
        gone: bool,
        now: float,
    ) -> Event:
        device = analysis.devices.get(device_id)
        main = min(silent, key=lambda s: s.interval)
        peer, _, service = main.conversation.rpartition("|")
        feed = f"{service} to {peer_text(peer, analysis)}"
        quiet = now - main.last
        label = device_label(device, device_id)
        if gone:
            detector = "silence_gone"
            summary = (
                f"The {label} has gone off the network: nothing at all from it for "
                f"{_duration(now - max(s.last for s in silent))}; it normally reports every "
                f"{_duration(main.interval)} ({feed})."
            )
        else:
            detector = "silence_app"
            summary = (
                f"The {label} stopped its {feed} feed {_duration(quiet)} ago (normally every "
                f"{_duration(main.interval)}), but the device is still on the network: its "
                "application is down."
            )
        observed = {
            "silent_conversations": [s.conversation for s in silent],
            "last_message": iso_time(main.last),
            "silent_seconds": round(quiet, 3),
            "device_last_sent": iso_time(device.last_seen) if device is not None else None,
        }
        baseline = {
            "interval_seconds": main.interval,
            "mad_seconds": main.mad,
            "gaps": main.gaps,
            "threshold_seconds": round(main.threshold, 3),
        }
        return make_event(device_id, device, detector, "high", summary, now, observed, baseline)
