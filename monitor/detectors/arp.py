"""ARP spoofing, IP/MAC conflicts and address changes, from the inventory's address bindings.

The inventory binds an address to a MAC on ARP and DHCP evidence (and on plain traffic for
internal sources). Each window, the IPv4 addresses a device was first bound to in that
window are checked against the other devices:

- ``arp_spoofing``: the address belongs to another device seen recently (within
  ``arp_recent_seconds``), and the claimer keeps an address of its own: it impersonates
  that device (typically the gateway, for a man in the middle);
- ``ip_conflict``: the address belongs to another device seen recently and the claimer has
  no other address: two devices configured with one address;
- ``arp_spoofing`` too: the address belongs to nobody known (a gateway that never ARPs is a
  router the inventory binds no address to), but the claimer keeps using its other address
  after the claim, or its other address was itself only a brief claim: one MAC answering
  for several addresses;
- ``ip_change``: the device moved to a new address nobody else holds and left its old one
  (a static address set by hand, a DHCP lease lost); decided one window after the move.

Whether the old address was used after the new one appeared, and how much it had carried,
is read as of the end of the window that decides: from the windows' ``address_use``, and
from the address's count less what the still open windows counted. A capture read in one
batch knows the sightings of later windows; frame by frame they are not there yet, and the
verdict must not depend on which.

Link-local and unspecified addresses and IPv6 (privacy addresses rotate) are left out.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from monitor.baseline import BaselineStore
from monitor.detectors import AnalysisView, DetectorConfig
from monitor.detectors.common import DetectorBase, shown
from monitor.events import Event, device_label, iso_time, make_event
from monitor.model import Device, WindowProfile

ESTABLISHED_PACKETS = 10


# Asked for every address of every device each window: the answer never changes.
@functools.lru_cache(maxsize=65_536)
def _ipv4(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return ip.version == 4 and not (ip.is_link_local or ip.is_unspecified or ip.is_multicast)


@dataclass(slots=True)
class _Claim:
    """A device's new address, with others of its own: a move or a spoofer, told later."""

    device: str
    address: str
    since: float  # the new address's first seen
    own: list[str]  # the device's other addresses then
    seen_until: float  # the end of the last window whose address use is in used_after
    used_after: set[str]  # those of ``own`` used after ``since``


class ArpDetector(DetectorBase):
    """See the module docstring."""

    name = "arp"

    def __init__(self, config: DetectorConfig | None = None) -> None:
        super().__init__(config)
        self.pending: list[_Claim] = []  # decided a window later

    def score_window(
        self,
        profiles: Sequence[WindowProfile],
        analysis: AnalysisView,
        baselines: BaselineStore | None,
        now: float,
    ) -> list[Event]:
        if not profiles:
            return []
        # Facts are cumulative and may run ahead of the window (a batch is accounted before
        # its older windows close): only what first showed inside this window counts here.
        start = min(p.start for p in profiles)
        end = max(p.end for p in profiles)
        recent = now - self.config.arp_recent_seconds
        owners: dict[str, list[Device]] | None = None
        events: list[Event] = []
        for p in profiles:
            device = analysis.devices.get(p.device_id)
            if device is None or device.mac is None:
                continue
            ips = {a: f for a, f in device.facts.get("ip", {}).items() if _ipv4(a)}
            fresh = sorted(a for a, f in ips.items() if start <= f.first_seen < end)
            if not fresh:
                continue
            if owners is None:
                owners = {}
                for other in analysis.devices.values():
                    if other.mac is None or other.last_seen < recent:
                        continue
                    # (an address fact's last-seen time is per batch, too coarse to judge)
                    for address in other.facts.get("ip", {}):
                        if _ipv4(address):
                            owners.setdefault(address, []).append(other)
            label = device_label(device, p.device_id)
            for address in fresh:
                others = [
                    o
                    for o in owners.get(address, [])
                    if o.id != device.id
                    and ips[address].first_seen > o.facts["ip"][address].first_seen
                ]
                # its other addresses, as they were when this one appeared
                own = sorted(
                    a for a in ips if a != address and ips[a].first_seen < ips[address].first_seen
                )
                if others:
                    victims = sorted(o.id for o in others)
                    victim_labels = [device_label(o, o.id) for o in others]
                    spoof = bool(own)
                    events.append(make_event(
                        p.device_id, device, "arp_spoofing" if spoof else "ip_conflict",
                        "high" if spoof else "warning",
                        (f"The {label} claims address {address}, which belongs to the "
                         f"{shown(victim_labels)}, while keeping its own ({shown(own)}): "
                         "ARP spoofing, traffic may be intercepted.") if spoof else
                        (f"The {label} uses address {address}, already in use by the "
                         f"{shown(victim_labels)}: an IP address conflict."),
                        p.end,
                        {"claimed_address": address, "claimer_mac": device.mac,
                         "claimed_since": iso_time(ips[address].first_seen),
                         "claimer_addresses": own},
                        {"owners": victims},
                    ))  # fmt: skip
                elif own:
                    # One MAC answering for two addresses at once is a spoofer; a device that
                    # left its old address has moved. Its old address may still show later,
                    # so the call waits for the next window.
                    since = ips[address].first_seen
                    used = p.address_use
                    self.pending.append(_Claim(
                        p.device_id, address, since, own, p.end,
                        {a for a in own if a in used and used[a][1] > since},
                    ))  # fmt: skip
        by_device = {p.device_id: p for p in profiles}
        spoofers = {e.device for e in events}
        events.extend(self._decide(analysis, now, end, spoofers, by_device))
        return events

    def _decide(
        self,
        analysis: AnalysisView,
        now: float,
        end: float,
        spoofers: set[str],
        profiles: dict[str, WindowProfile],
    ) -> list[Event]:
        events: list[Event] = []
        waiting = []
        for claim in self.pending:
            device_id, address, since, own = claim.device, claim.address, claim.since, claim.own
            device = analysis.devices.get(device_id)
            if device is None or device_id in spoofers:
                continue
            profile = profiles.get(device_id)
            if profile is not None and profile.start >= claim.seen_until:
                claim.used_after |= {a for a in own if a in profile.address_use}
                claim.seen_until = profile.end
            ips = device.facts.get("ip", {})
            concurrent = sorted(claim.used_after)
            # a real address carried traffic; a spoofer's brief claim is a few ARP packets
            established = [
                a
                for a in own
                if a in ips
                and ips[a].count - analysis.address_packets_since(device_id, a, end)
                >= ESTABLISHED_PACKETS
            ]
            if not concurrent and established and end - since < self.config.window_seconds:
                waiting.append(claim)  # moved? ask again later
                continue
            label = device_label(device, device_id)
            if concurrent or not established:
                # Either it keeps both, or its "old" address was a brief claim: it flips
                # between addresses, which a host moving house does not do.
                claimed = address if concurrent else own[0]
                others = concurrent or [address]
                spoofers.add(device_id)
                events.append(make_event(
                    device_id, device, "arp_spoofing", "high",
                    f"The {label} answers for address {claimed} while also using "
                    f"{shown(others)}: one MAC claiming several addresses, ARP spoofing "
                    "(traffic may be intercepted).",
                    now,
                    {"claimed_address": claimed, "claimer_mac": device.mac,
                     "claimed_since": iso_time(since), "claimer_addresses": others},
                    {"addresses": own},
                ))  # fmt: skip
            else:
                events.append(make_event(
                    device_id, device, "ip_change", "info",
                    f"The {label} changed its address from {shown(established)} to {address}.",
                    now,
                    {"new_address": address, "since": iso_time(since)},
                    {"addresses": own},
                ))  # fmt: skip
        self.pending = waiting
        return events
