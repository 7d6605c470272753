"""Scans: host and port scans from or against a device, found in one window, no baseline.

- ``port_scan``: a device started new TCP connections to at least ``scan_ports`` distinct
  services in one window (the scanner), or was probed on that many of its ports by peers
  while starting few connections itself (the target);
- ``host_scan``: a device started new connections to at least ``scan_hosts`` distinct
  internal hosts in one window, or sent at least ``arp_sweep_packets`` ARP packets (an ARP
  ping sweep).

Counts are of distinct services and hosts, not packets, so a busy server or a large
download never looks like a scan.
"""

from __future__ import annotations

from collections.abc import Sequence

from monitor.baseline import BaselineStore
from monitor.detectors import AnalysisView
from monitor.detectors.common import DetectorBase, peer_text, shown
from monitor.events import Event, device_label, make_event
from monitor.inventory import address_scope
from monitor.model import WindowProfile


def _internal_peer(peer: str) -> bool:
    if peer.startswith("ext:"):
        return False
    if peer.startswith("ip:"):
        try:
            return address_scope(peer[3:]) == "internal"
        except ValueError:
            return False
    return True


class ScanDetector(DetectorBase):
    """See the module docstring."""

    name = "scan"

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
            tcp = sorted(s for s in p.services if s.startswith("tcp/"))
            internal = sorted(x for x in p.peers if _internal_peer(x))
            device = analysis.devices.get(p.device_id)
            label = device_label(device, p.device_id)
            window = {"start": p.start, "end": p.end}
            if len(tcp) >= cfg.scan_ports and p.flows_started >= cfg.scan_ports:
                targets = [peer_text(x, analysis) for x in sorted(p.peers)]
                events.append(make_event(
                    p.device_id, device, "port_scan", "high",
                    f"The {label} probed {len(tcp)} different ports on {shown(targets)} in one "
                    "window: a port scan.",
                    p.end,
                    {"ports_tried": len(tcp), "flows_started": p.flows_started,
                     "targets": sorted(p.peers), "window": window, "role": "scanner"},
                ))  # fmt: skip
            elif len(tcp) >= cfg.scan_ports and p.flows_started * 4 < len(tcp):
                sources = [peer_text(x, analysis) for x in sorted(p.peers)]
                events.append(make_event(
                    p.device_id, device, "port_scan", "warning",
                    f"The {label} was probed on {len(tcp)} different ports by "
                    f"{shown(sources)} in one window: it is being port-scanned.",
                    p.end,
                    {"ports_probed": len(tcp), "sources": sorted(p.peers), "window": window,
                     "role": "target"},
                ))  # fmt: skip
            arp = p.protocols.get("arp", 0)
            if len(internal) >= cfg.scan_hosts and p.flows_started >= cfg.scan_hosts:
                events.append(make_event(
                    p.device_id, device, "host_scan", "high",
                    f"The {label} opened connections to {len(internal)} different internal "
                    "hosts in one window: a host scan.",
                    p.end,
                    {"hosts": len(internal), "flows_started": p.flows_started,
                     "sample": internal[:10], "window": window},
                ))  # fmt: skip
            elif arp >= cfg.arp_sweep_packets:
                events.append(make_event(
                    p.device_id, device, "host_scan", "high",
                    f"The {label} sent {arp} ARP requests in one window: an ARP sweep of the "
                    "network.",
                    p.end,
                    {"arp_packets": arp, "window": window},
                ))  # fmt: skip
        return events
