"""Floods against or from a device: a one-way packet rate far above anything normal.

No baseline needed, but a baseline raises the bar. In one window, a device that received
(or sent) at least ``flood_pps`` packets per second on average, ``flood_asymmetry`` times more
than it sent (received) back, is flooded (flooding). When its baseline is enforcing, the
count must also be ten times its usual median for that window.
"""

from __future__ import annotations

from collections.abc import Sequence

from monitor.baseline import BaselineStore
from monitor.detectors import AnalysisView
from monitor.detectors.common import DetectorBase, enforcing_baseline, peer_text, shown
from monitor.events import Event, device_label, make_event
from monitor.model import WindowProfile


class FloodDetector(DetectorBase):
    """See the module docstring."""

    name = "flood"

    def score_window(
        self,
        profiles: Sequence[WindowProfile],
        analysis: AnalysisView,
        baselines: BaselineStore | None,
        now: float,
    ) -> list[Event]:
        cfg = self.config
        events: list[Event] = []
        for p in profiles:
            floor = cfg.flood_pps * max(p.end - p.start, 1e-3)
            baseline = enforcing_baseline(baselines, p.device_id)
            for direction, count, back, feature in (
                ("against", p.rx_packets, p.tx_packets, "rx_packets"),
                ("from", p.tx_packets, p.rx_packets, "tx_packets"),
            ):
                if count < floor or count < cfg.flood_asymmetry * max(back, 1):
                    continue
                usual = baseline.volumes.expected(feature, p.start) if baseline else None
                if usual is not None and count < 10 * max(usual.median, 1.0):
                    continue
                device = analysis.devices.get(p.device_id)
                label = device_label(device, p.device_id)
                peers = [peer_text(x, analysis) for x in sorted(p.peers)]
                rate = count / max(p.end - p.start, 1e-9)
                who = f" (peers: {shown(peers)})" if peers else ""
                summary = (
                    f"The {label} received {count} packets in one window ({rate:.0f}/s) and "
                    f"answered {back}: a flood against it{who}."
                    if direction == "against"
                    else f"The {label} sent {count} packets in one window ({rate:.0f}/s) and "
                    f"got {back} back: a flood from it{who}."
                )
                events.append(make_event(
                    p.device_id, device, "flood", "high", summary, p.end,
                    {"direction": direction, "packets": count, "packets_back": back,
                     "peers": sorted(p.peers)[:20],
                     "window": {"start": p.start, "end": p.end}},
                    {"median": usual.median, "mad": usual.mad} if usual is not None else {},
                ))  # fmt: skip
                break
        return events
