"""DHCP starvation: a device (or a crowd of made-up MACs) draining the DHCP server's pool.

No baseline needed; one window:

- a device that is not a DHCP server sent at least ``dhcp_packets`` DHCP messages;
- or at least ``dhcp_new_clients`` devices appeared whose only traffic is DHCP (and ARP),
  the signature of tools that invent a MAC per request; the event names the DHCP server
  (the device offering udp/67) or, if none is seen, the first of the new clients.
"""

from __future__ import annotations

from collections.abc import Sequence

from monitor.baseline import BaselineStore
from monitor.detectors import AnalysisView
from monitor.detectors.common import DetectorBase, shown
from monitor.events import Event, device_label, make_event
from monitor.model import WindowProfile

DHCP_ONLY = frozenset({"dhcp", "udp", "arp"})


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
        servers = [
            d for d in analysis.devices.values() if "udp/67" in d.facts.get("service_offered", {})
        ]
        server_ids = {d.id for d in servers}
        new_clients: list[str] = []
        for p in profiles:
            device = analysis.devices.get(p.device_id)
            if device is None or p.device_id in server_ids:
                continue
            sent = p.facts.get("protocol", {}).get("dhcp", 0)
            if sent >= cfg.dhcp_packets:
                events.append(make_event(
                    p.device_id, device, "dhcp_starvation", "high",
                    f"The {device_label(device, p.device_id)} sent {sent} DHCP requests in "
                    "one window: it may be draining the address pool (DHCP starvation).",
                    p.end, {"dhcp_messages": sent, "window": {"start": p.start, "end": p.end}},
                ))  # fmt: skip
            protocols = set(device.facts.get("protocol", {}))
            new = p.start <= device.first_seen < p.end
            if new and "dhcp" in protocols and protocols <= DHCP_ONLY:
                new_clients.append(p.device_id)
        if len(new_clients) >= cfg.dhcp_new_clients and profiles:
            end = max(p.end for p in profiles)
            target = servers[0] if servers else analysis.devices.get(new_clients[0])
            target_id = target.id if target is not None else new_clients[0]
            events.append(make_event(
                target_id, target, "dhcp_starvation", "high",
                f"{len(new_clients)} new devices that only ask for DHCP addresses appeared in "
                f"one window ({shown(new_clients)}): DHCP starvation against the "
                f"{device_label(target, target_id) if servers else 'DHCP server'}.",
                end, {"new_dhcp_only_clients": len(new_clients), "sample": new_clients[:20]},
            ))  # fmt: skip
        return events
