"""Device inventory: who is on the wire.

One device per MAC for devices on the local segment; keyed by IP (``ip:10.1.2.3``) where the
capture has no L2 header. Per device: vendor from the IEEE registry (netaddr, offline), IP
addresses over time, hostnames, DHCP fingerprint and the rest of its facts (see
``monitor.facts``), traffic totals, first and last seen, and its classification.

Promises: identity survives IP changes (the MAC is the key, addresses are facts). An IP is
bound to a MAC only on evidence that the MAC really owns it (ARP, DHCP, or traffic with a
private source address from a MAC that is not a router), so a gateway does not collect every
address it forwards. The inventory is bounded: beyond ``max_devices`` (a MAC flood, a
scan of spoofed sources) the devices that sent and received the fewest packets make room, a
sixty-fourth at a time, and ``evicted`` counts them, so a flood of one-packet sources
recycles itself instead of pushing out the devices that talk.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import string
from collections.abc import Iterable
from typing import Any

import netaddr
import numpy as np
import numpy.typing as npt

from monitor.facts import FactJournal
from monitor.model import Device

# A MAC that sources this many distinct addresses, or any global one, forwards for others.
ROUTER_ADDRESS_THRESHOLD = 16
DEFAULT_MAX_DEVICES = 200_000

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@functools.lru_cache(maxsize=65536)
def format_mac(value: int) -> str:
    raw = f"{value:012x}"
    return ":".join(raw[i : i + 2] for i in range(0, 12, 2))


def vendor_of(mac: str) -> str | None:
    """The organisation the IEEE registered this MAC's OUI to, or None."""
    digits = mac.replace(":", "").replace("-", "").replace(".", "")
    if len(digits) != 12 or not all(c in string.hexdigits for c in digits):
        return None
    return _vendor_of_oui(digits[:6].lower())


# Keyed by the OUI (the lookup reads nothing else): a site's devices come from a few hundred
# vendors, so 100,000 new devices cost a few hundred registry lookups, not 100,000.
@functools.lru_cache(maxsize=65536)
def _vendor_of_oui(oui: str) -> str | None:
    try:
        return str(netaddr.EUI(int(oui, 16) << 24).oui.registration().org)
    except (netaddr.NotRegisteredError, netaddr.AddrFormatError, IndexError, ValueError):
        return None


def is_locally_administered(mac_value: int) -> bool:
    return bool((mac_value >> 40) & 0x02)


def is_group_mac(mac_value: int) -> bool:
    return bool((mac_value >> 40) & 0x01)


# Internal: the private, shared, link-local and loopback ranges a hospital numbers its own
# hosts from. Everything else that is not multicast is on the internet (documentation ranges
# included: they stand for internet addresses in examples and tests).
INTERNAL_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in (
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",
        "169.254.0.0/16",
        "127.0.0.0/8",
        "fc00::/7",
        "fe80::/10",
        "::1/128",
    )
)


@functools.lru_cache(maxsize=262144)
def address_scope(address: str) -> str:
    """'internal' for private, shared, link-local and loopback addresses; 'multicast' for
    multicast, broadcast and unspecified ones; 'external' for the rest."""
    ip = ipaddress.ip_address(address)
    if ip.is_multicast or ip.is_unspecified or address == "255.255.255.255":
        return "multicast"
    if any(ip in network for network in INTERNAL_NETWORKS if network.version == ip.version):
        return "internal"
    return "external"


def _masks(network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> tuple[int, int, int, int]:
    """(high mask, high value, low mask, low value) of a network over an address kept as
    two 64-bit halves (IPv4 in the low half)."""
    mask, value = int(network.netmask), int(network.network_address)
    return mask >> 64, value >> 64, mask & (2**64 - 1), value & (2**64 - 1)


_MULTICAST_V4 = ipaddress.ip_network("224.0.0.0/4")
_MULTICAST_V6 = ipaddress.ip_network("ff00::/8")


def external_addresses(
    hi: npt.NDArray[np.uint64], lo: npt.NDArray[np.uint64], version: npt.NDArray[np.uint8]
) -> npt.NDArray[np.bool_]:
    """Per address, whether ``address_scope`` calls it external: ``address_scope`` for a
    whole column at once (a batch's sources, without a string each)."""
    out = np.zeros(hi.shape[0], np.bool_)
    for ver, networks in (
        (4, [n for n in INTERNAL_NETWORKS if n.version == 4] + [_MULTICAST_V4]),
        (6, [n for n in INTERNAL_NETWORKS if n.version == 6] + [_MULTICAST_V6]),
    ):
        rows = version == ver
        if not rows.any():
            continue
        h, low = hi[rows], lo[rows]
        inside = (h == 0) & (low == 0)  # unspecified
        if ver == 4:
            inside |= low == 0xFFFFFFFF  # broadcast
        for network in networks:
            mask_hi, value_hi, mask_lo, value_lo = _masks(network)
            inside |= ((h & np.uint64(mask_hi)) == np.uint64(value_hi)) & (
                (low & np.uint64(mask_lo)) == np.uint64(value_lo)
            )
        out[rows] = ~inside
    return out


class Inventory:
    """The devices seen so far, and the address bindings that tie traffic to them."""

    def __init__(self, max_devices: int = DEFAULT_MAX_DEVICES) -> None:
        self.max_devices = max_devices
        self.evicted = 0  # devices dropped to make room
        self.devices: dict[str, Device] = {}
        self.ip_owner: dict[str, str] = {}  # address -> device id (latest binding)
        # learned from plain traffic; a tuple (fewer than ROUTER_ADDRESS_THRESHOLD, mostly
        # one) costs a quarter of a set, for every device
        self._addresses_by_mac: dict[str, tuple[str, ...]] = {}
        self._confirmed: set[tuple[str, str]] = set()  # (device, address) seen in ARP/DHCP
        self.routers: set[str] = set()
        self.dirty: set[str] = set()  # devices whose facts changed since last classification
        self.new_devices: list[str] = []  # device ids in order of appearance
        self.made = 0  # devices made so far (evictions do not lower it)
        # set by a capture worker: every fact recorded or removed is journaled for its report
        self.journal: FactJournal | None = None

    # ---- devices ----
    def device_for_mac(self, mac_value: int, when: float) -> Device:
        mac = format_mac(mac_value)
        device = self.devices.get(mac)
        if device is None:
            self._make_room()
            device = Device(
                id=mac,
                mac=mac,
                locally_administered=is_locally_administered(mac_value),
                vendor=vendor_of(mac),
                first_seen=when,
                last_seen=when,
            )
            self.devices[mac] = device
            self.dirty.add(mac)
            self.new_devices.append(mac)
            self.made += 1
            if self.journal is not None:
                self.journal.touched.add(mac)
        return device

    def device_for_ip(self, address: str, when: float) -> Device:
        key = f"ip:{address}"
        device = self.devices.get(key)
        if device is None:
            self._make_room()
            device = Device(
                id=key,
                mac=None,
                locally_administered=False,
                vendor=None,
                first_seen=when,
                last_seen=when,
                local=False,
            )
            device.facts.record("ip", address, when)
            if self.journal is not None:
                self.journal.record(key, "ip", address, when)
            self.ip_owner[address] = key
            self.devices[key] = device
            self.dirty.add(key)
            self.new_devices.append(key)
            self.made += 1
        return device

    def _make_room(self) -> None:
        if len(self.devices) < self.max_devices:
            return
        count = max(1, self.max_devices // 64)
        quietest = sorted(
            self.devices.values(),
            key=lambda d: (d.tx_packets + d.rx_packets, d.last_seen),
        )[:count]
        gone = {device.id for device in quietest}
        for device_id in gone:
            del self.devices[device_id]
            self._addresses_by_mac.pop(device_id, None)
        self.ip_owner = {a: d for a, d in self.ip_owner.items() if d not in gone}
        self._confirmed = {(d, a) for d, a in self._confirmed if d not in gone}
        self.routers -= gone
        self.dirty -= gone
        self.new_devices = [d for d in self.new_devices if d not in gone]
        self.evicted += len(gone)

    def classify_dirty(self, signatures: Any) -> None:
        """Re-run the signature matcher on the devices whose facts changed (``dirty``)."""
        if signatures is not None:
            from monitor.classifier import classify

            for device_id in sorted(self.dirty):
                device = self.devices.get(device_id)
                if device is not None:
                    device.classification = classify(device, signatures)
        self.dirty.clear()

    def classify_as_of(self, device_ids: Iterable[str], end: float, signatures: Any) -> None:
        """Give the devices of ``device_ids`` (a closed window's, after ``classify_dirty``) the
        class they had at ``end``, which the window is judged with: a device with a value
        first seen since that could tell what it is gets the class of its facts first seen
        before ``end``, and, when that differs, is marked for classifying again on all."""
        if signatures is None:
            return
        from monitor.classifier import classify, could_tell

        for device_id in device_ids:
            device = self.devices.get(device_id)
            if device is None or device.facts.newest_first_seen() < end:
                continue
            late = device.facts.first_seen_since(end)
            if not any(could_tell(signatures, kind, value) for kind, value in late):
                continue
            then = dataclasses.replace(device, facts=device.facts.first_seen_before(end))
            classification = classify(then, signatures)
            if classification != device.classification:
                device.classification = classification
                self.dirty.add(device.id)

    # ---- address bindings ----
    def bind(
        self,
        device: Device,
        address: str,
        when: float,
        authoritative: bool,
        times: int = 1,
        last: float | None = None,
    ) -> tuple[str, ...]:
        """Tie ``address`` to ``device``, seen ``times`` times from ``when`` to ``last``
        (default: all at ``when``). Non-authoritative (plain traffic) bindings are refused
        for routers and for non-internal addresses. Returns the addresses unbound because
        this binding showed ``device`` to be a router (mostly none)."""
        scope = address_scope(address)
        if scope == "multicast":
            return ()
        if authoritative:
            self._confirmed.add((device.id, address))
        elif (device.id, address) not in self._confirmed:
            if device.id in self.routers:
                return ()
            seen = self._addresses_by_mac.get(device.id, ())
            if address not in seen:
                seen = self._addresses_by_mac[device.id] = (*seen, address)
            if scope == "external" or len(seen) >= ROUTER_ADDRESS_THRESHOLD:
                self.routers.add(device.id)
                return self._unbind_traffic_addresses(device)
        if device.facts.record("ip", address, when, times, last):
            self.dirty.add(device.id)
        if self.journal is not None:
            self.journal.record(device.id, "ip", address, when, times, last)
        self.ip_owner[address] = device.id
        return ()

    def _unbind_traffic_addresses(self, device: Device) -> tuple[str, ...]:
        # Addresses learned only from forwarded traffic were never the router's own.
        unbound = []
        for address in self._addresses_by_mac.get(device.id, ()):
            if (device.id, address) in self._confirmed:
                continue
            if self.ip_owner.get(address) == device.id:
                del self.ip_owner[address]
                unbound.append(address)
            removed = device.facts.get("ip", {}).pop(address, None)
            if removed is not None and self.journal is not None:
                self.journal.remove(device.id, "ip", address)
        return tuple(unbound)

    def is_confirmed(self, device_id: str, address: str) -> bool:
        """Whether ``address`` is ``device_id``'s on ARP or DHCP evidence."""
        return (device_id, address) in self._confirmed

    def owner_of(self, address: str) -> Device | None:
        device_id = self.ip_owner.get(address)
        return self.devices.get(device_id) if device_id else None

    def peer_id(self, address: str, l2_device: Device | None) -> str:
        """How a peer at ``address`` is named in facts: its device id when it is a known local
        device, ``ext:ADDR`` on the internet, ``ip:ADDR`` for other internal hosts."""
        owner = self.owner_of(address)
        if owner is not None:
            return owner.id
        if l2_device is not None and l2_device.id not in self.routers:
            return l2_device.id
        scope = address_scope(address)
        return f"ext:{address}" if scope == "external" else f"ip:{address}"

    def note(
        self,
        device: Device,
        kind: str,
        value: str,
        when: float,
        times: int = 1,
        last: float | None = None,
    ) -> bool:
        """Record a fact about ``device``; marks it for reclassification when new."""
        if self.journal is not None:
            self.journal.record(device.id, kind, value, when, times, last)
        if device.facts.record(kind, value, when, times, last):
            self.dirty.add(device.id)
            return True
        return False

    def take_back(self, device: Device, kind: str, value: str, times: int = 1) -> None:
        """Take back ``times`` sightings of a fact noted under a name that stood for another
        (a peer's address before its device was known); the value goes when none is left.
        A worker's journal reports only that: the daemon keeps the count it was told."""
        if device.facts.take_back(kind, value, times):
            if self.journal is not None:
                self.journal.remove(device.id, kind, value)
            self.dirty.add(device.id)
