"""Volume: deviation of a device's traffic from its robust baseline, in both directions.

For each device with an enforcing baseline, each window's volume features (packets and bytes
each way, flows started) are compared with what the baseline expects at that time
(``VolumeHistory.expected``: the hour-of-week band once learned, the median/MAD of recent
windows before that). A feature deviates when it is at least ``volume_z`` MAD-scaled
deviations from the median AND ``volume_ratio`` times the median (or less than a
``volume_ratio``-th of it) AND differs by at least ``volume_min_packets`` packets (bytes:
that many full-size frames), so a quiet device's small wobble is not news.

Findings:

- ``exfiltration`` (at once): the device sent an exfiltration-sized burst, at least
  ``exfiltration_bytes`` in one window, far above its baseline, while talking to the internet;
- ``firmware_transfer`` (at once): the device received a file-sized burst (at least
  ``transfer_bytes``) far above its baseline, over a file-transfer service (TFTP, FTP, HTTP)
  or a service it never used;
- ``volume_high`` / ``volume_low``: a deviation sustained for ``volume_windows`` consecutive
  windows (a device that is quiet, not silent; silence has its own detector).
"""

from __future__ import annotations

from collections.abc import Sequence

from monitor.baseline import Baseline, BaselineStore
from monitor.detectors import AnalysisView, DetectorConfig
from monitor.detectors.common import DetectorBase, enforcing_baseline, shown
from monitor.events import Event, device_label, make_event
from monitor.model import WindowProfile
from monitor.profiles import RobustStats, volume_vector

FEATURES = ("tx_packets", "tx_bytes", "rx_packets", "rx_bytes", "flows")
TRANSFER_SERVICES = frozenset(
    {"udp/69", "tcp/20", "tcp/21", "tcp/80", "tcp/8080", "tcp/8000", "tcp/443", "tcp/8443"}
)
FULL_FRAME = 1500.0


def _mb(n: float) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.0f} kB"


class VolumeDetector(DetectorBase):
    """See the module docstring."""

    name = "volume"

    def __init__(self, config: DetectorConfig | None = None) -> None:
        super().__init__(config)
        # device -> feature -> (direction, consecutive windows)
        self.streaks: dict[str, dict[str, tuple[str, int]]] = {}

    def _deviation(self, value: float, stats: RobustStats | None, feature: str) -> str | None:
        if stats is None or stats.n < 4:
            return None
        cfg = self.config
        floor = cfg.volume_min_packets * (FULL_FRAME if "bytes" in feature else 1.0)
        if "flows" in feature:
            floor = cfg.volume_min_packets / 10
        score = stats.score(value, floor=floor / cfg.volume_z)
        if (
            score >= cfg.volume_z
            and value >= cfg.volume_ratio * max(stats.median, 1.0)
            and value - stats.median >= floor
        ):
            return "high"
        if (
            score <= -cfg.volume_z
            and value * cfg.volume_ratio <= stats.median
            and stats.median - value >= floor
        ):
            return "low"
        return None

    def score_window(
        self,
        profiles: Sequence[WindowProfile],
        analysis: AnalysisView,
        baselines: BaselineStore | None,
        now: float,
    ) -> list[Event]:
        events: list[Event] = []
        for profile in profiles:
            baseline = enforcing_baseline(baselines, profile.device_id)
            if baseline is None:
                continue
            vector = dict(zip(("tx_packets", "tx_bytes", "rx_packets", "rx_bytes", "flows",
                               "peers"), volume_vector(profile), strict=True))  # fmt: skip
            expected = baseline.volumes.expected_all(profile.start)
            direction = {f: self._deviation(vector[f], expected[f], f) for f in FEATURES}
            event = self._burst(profile, analysis, baseline, vector, expected, direction)
            if event is not None:
                events.append(event)
                self.streaks.pop(profile.device_id, None)
                continue
            streaks = self.streaks.setdefault(profile.device_id, {})
            sustained: list[tuple[str, str]] = []
            for feature in FEATURES:
                d = direction[feature]
                if d is None:
                    streaks.pop(feature, None)
                    continue
                previous = streaks.get(feature)
                count = previous[1] + 1 if previous is not None and previous[0] == d else 1
                streaks[feature] = (d, count)
                if count >= self.config.volume_windows:
                    sustained.append((feature, d))
            if sustained:
                events.append(self._sustained(profile, analysis, vector, expected, sustained))
        active = {p.device_id for p in profiles}
        for device_id in [d for d in self.streaks if d not in active]:
            del self.streaks[device_id]  # an idle window breaks a streak
        return events

    def _burst(
        self,
        profile: WindowProfile,
        analysis: AnalysisView,
        baseline: Baseline,
        vector: dict[str, int],
        expected: dict[str, RobustStats | None],
        direction: dict[str, str | None],
    ) -> Event | None:
        cfg = self.config
        device = analysis.devices.get(profile.device_id)
        label = device_label(device, profile.device_id)
        external = sorted(p for p in profile.peers if p.startswith("ext:"))
        if (
            direction["tx_bytes"] == "high"
            and vector["tx_bytes"] >= cfg.exfiltration_bytes
            and external
        ):
            stats = expected["tx_bytes"]
            assert stats is not None
            return make_event(
                profile.device_id,
                device,
                "exfiltration",
                "high",
                f"The {label} sent {_mb(vector['tx_bytes'])} in one window while talking to "
                f"the internet ({shown([p[4:] for p in external])}); it normally sends about "
                f"{_mb(stats.median)}.",
                profile.end,
                {"tx_bytes": vector["tx_bytes"], "external_peers": external,
                 "window": {"start": profile.start, "end": profile.end}},
                {"tx_bytes_median": stats.median, "tx_bytes_mad": stats.mad,
                 "windows": stats.n},
            )  # fmt: skip
        if direction["rx_bytes"] == "high" and vector["rx_bytes"] >= cfg.transfer_bytes:
            services = sorted(profile.services)
            known = baseline.facts.get("service_used", {})
            unusual = [
                s
                for s in services
                if s in TRANSFER_SERVICES and (s == "udp/69" or s not in known or s == "tcp/21")
            ]
            new = [s for s in services if s not in known and s not in baseline.facts.get(
                "service_offered", {})]  # fmt: skip
            if unusual or new:
                stats = expected["rx_bytes"]
                assert stats is not None
                return make_event(
                    profile.device_id,
                    device,
                    "firmware_transfer",
                    "warning",
                    f"The {label} received {_mb(vector['rx_bytes'])} in one window over "
                    f"{shown(unusual or new)}, far more than usual ({_mb(stats.median)}): "
                    "a file or firmware transfer.",
                    profile.end,
                    {"rx_bytes": vector["rx_bytes"], "services": services[:20],
                     "window": {"start": profile.start, "end": profile.end}},
                    {"rx_bytes_median": stats.median, "rx_bytes_mad": stats.mad,
                     "windows": stats.n},
                )  # fmt: skip
        return None

    def _sustained(
        self,
        profile: WindowProfile,
        analysis: AnalysisView,
        vector: dict[str, int],
        expected: dict[str, RobustStats | None],
        sustained: list[tuple[str, str]],
    ) -> Event:
        device = analysis.devices.get(profile.device_id)
        label = device_label(device, profile.device_id)
        up = [f for f, d in sustained if d == "high"]
        detector = "volume_high" if up else "volume_low"
        chosen = up or [f for f, _ in sustained]
        words = []
        for feature in chosen:
            stats = expected[feature]
            assert stats is not None
            words.append(
                f"{feature.replace('_', ' ')} {vector[feature]} vs usual {stats.median:.0f}"
            )
        summary = (
            f"The {label} has had {'much more' if up else 'much less'} traffic than usual for "
            f"{self.config.volume_windows} windows in a row ({shown(words)})."
        )
        observed = {f: vector[f] for f, _ in sustained}
        held = {
            f: {"median": s.median, "mad": s.mad, "windows": s.n}
            for f, _ in sustained
            if (s := expected[f]) is not None
        }
        return make_event(
            profile.device_id, device, detector, "warning", summary, profile.end, observed, held
        )
