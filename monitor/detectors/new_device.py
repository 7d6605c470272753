"""New device: a device never seen before appears on a network the sensor already knows.

Once the sensor is past its learning (at least one baseline enforcing), a device active in a
window that has no baseline yet (scored before the window is learned) is new: one
``new_device`` event per device, ever (a restarted sensor reloads the baselines, so it does
not report known devices again). Severity: warning, moved by the device's criticality. The
event describes the device as it was when the window ended: its addresses, names and class
then, whatever later packets of the same batch said.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from monitor.baseline import BaselineStore
from monitor.detectors import AnalysisView, DetectorConfig
from monitor.detectors.common import DetectorBase, shown
from monitor.events import Event, device_label, iso_time, make_event
from monitor.model import WindowProfile


class NewDeviceDetector(DetectorBase):
    """See the module docstring."""

    name = "new_device"

    def __init__(self, config: DetectorConfig | None = None) -> None:
        super().__init__(config)
        self.reported: set[str] = set()

    def score_window(
        self,
        profiles: Sequence[WindowProfile],
        analysis: AnalysisView,
        baselines: BaselineStore | None,
        now: float,
    ) -> list[Event]:
        if baselines is None or not any(b.enforcing for b in baselines.baselines.values()):
            return []
        events: list[Event] = []
        for p in profiles:
            if p.device_id in self.reported or baselines.get(p.device_id) is not None:
                continue
            device = analysis.devices.get(p.device_id)
            if device is None:
                continue
            self.reported.add(p.device_id)
            # as it was when the window ended (a batch may hold what it did next)
            device = dataclasses.replace(device, facts=device.facts.first_seen_before(p.end))
            facts, ips, hostnames = device.facts, device.ips, device.hostnames
            what = [
                f"vendor {device.vendor}" if device.vendor else "an unregistered vendor",
                f"address {shown(ips)}" if ips else "no address yet",
            ]
            if hostnames:
                what.append(f"name {shown(hostnames)}")
            events.append(make_event(
                p.device_id, device, "new_device", "warning",
                f"A new {device_label(device, p.device_id)} joined the network "
                f"({', '.join(what)}).",
                p.end,
                {"first_seen": iso_time(device.first_seen), "mac": device.mac,
                 "vendor": device.vendor, "ips": ips, "hostnames": hostnames,
                 "dhcp_vendor_class": sorted(facts.get("dhcp_vendor_class", {})),
                 "protocols": sorted(facts.get("protocol", {}))},
                {"known_devices": len(baselines)},
            ))  # fmt: skip
        return events
