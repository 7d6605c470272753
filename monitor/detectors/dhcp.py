"""DHCP starvation: a device (or a crowd of made-up MACs) draining the DHCP server's pool.

No baseline needed; one window, three views:

- the DHCP server (a device offering udp/67) answered at least ``dhcp_packets`` requests;
- a device that is not a DHCP server sent at least ``dhcp_packets`` DHCP messages from an
  address of its own (requests and informs of a bound client);
- at least ``dhcp_new_clients`` devices appeared that have no address and no protocol of
  their own (broadcast requests from 0.0.0.0 are all they sent): the signature of tools that
  invent a MAC per request, also of MAC flooding.

The event names the DHCP server when one is known, else the device that sent the requests.
"""

from __future__ import annotations

from collections.abc import Sequence

from monitor.baseline import BaselineStore
from monitor.detectors import AnalysisView
from monitor.detectors.common import DetectorBase, shown
from monitor.events import Event, device_label, make_event
from monitor.model import WindowProfile


class DhcpStarvationDetector(DetectorBase):
    """See the module docstring."""

    name = "dhcp"

    def score_window(
        self,
        profiles: Sequence[WindowProfile],
        analysis: AnalysisView,
        baselines: BaselineStore | None,
        now: float,
    ) -> list[Event]:
        cfg = self.config
        events: list[Event] = []
        servers = [d for d in analysis.devices.values() if d.facts.has("service_offered", "udp/67")]
        server_ids = {d.id for d in servers}
        new_clients: list[str] = []
        for p in profiles:
            device = analysis.devices.get(p.device_id)
            if device is None:
                continue
            if p.device_id in server_ids:
                answers = p.facts.get("service_offered", {}).get("udp/67", 0)
                if answers >= cfg.dhcp_packets:
                    events.append(make_event(
                        p.device_id, device, "dhcp_starvation", "high",
                        f"The DHCP server {device_label(device, p.device_id)} answered "
                        f"{answers} requests in one window: its address pool may be being "
                        "drained (DHCP starvation).",
                        p.end, {"dhcp_answers": answers,
                                "window": {"start": p.start, "end": p.end}},
                    ))  # fmt: skip
                continue
            sent = p.facts.get("protocol", {}).get("dhcp", 0)
            if sent >= cfg.dhcp_packets:
                events.append(make_event(
                    p.device_id, device, "dhcp_starvation", "high",
                    f"The {device_label(device, p.device_id)} sent {sent} DHCP requests in "
                    "one window: it may be draining the address pool (DHCP starvation).",
                    p.end, {"dhcp_messages": sent, "window": {"start": p.start, "end": p.end}},
                ))  # fmt: skip
            new = p.start <= device.first_seen < p.end
            if new and not device.facts.get("ip") and not device.facts.get("protocol"):
                new_clients.append(p.device_id)
        if len(new_clients) >= cfg.dhcp_new_clients and profiles:
            end = max(p.end for p in profiles)
            target = servers[0] if servers else analysis.devices.get(new_clients[0])
            target_id = target.id if target is not None else new_clients[0]
            events.append(make_event(
                target_id, target, "dhcp_starvation", "high",
                f"{len(new_clients)} new devices without an address appeared in "
                f"one window ({shown(new_clients)}): DHCP starvation against the "
                f"{device_label(target, target_id) if servers else 'DHCP server'}.",
                end, {"new_clients_without_address": len(new_clients), "sample": new_clients[:20]},
            ))  # fmt: skip
        return events
