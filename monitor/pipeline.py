"""The analysis pipeline: frame batches in; inventory, flows, window profiles out.

``Analysis.feed(batch)`` decodes a batch's headers in one compiled pass, then aggregates with
array operations: per device (traffic totals, window counters), per address binding, per
flow. Python runs once per *distinct* device, binding and flow of the batch, and once per
packet only for the few packets the application decoders must see (DHCP, DNS/mDNS, SSDP,
and the first payload packets of each TCP flow; every packet of HL7 and DICOM control
traffic). Capture time is the clock: windows close on packet timestamps, or on ``tick`` when
a live wire is quiet, so a replayed capture gives what watching it live gave.

Promise: ``feed`` never raises on packet content; problems are counted in
``decode_errors`` by bounded reason.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from monitor import appmeta
from monitor.capture import CaptureError, FrameBatch
from monitor.decode.headers import (
    ETHERTYPE_ARP,
    PROTO_TCP,
    PROTO_UDP,
    STATUS_REASONS,
    PacketTable,
    decode_headers,
)
from monitor.flows import (
    Flow,
    FlowKey,
    could_be_metadata,
    flow_keys,
    message_starts,
    payload_keys,
    take_within_budget,
)
from monitor.inventory import Inventory, address_scope, format_mac, is_group_mac
from monitor.model import SIZE_BIN_EDGES, Device, WindowProfile

if TYPE_CHECKING:
    from monitor.signatures import SignatureLibrary

WindowCallback = Callable[[list[WindowProfile], "Analysis"], None]

# UDP ports whose datagrams always go to an application decoder
INSPECTED_UDP_PORTS = frozenset({53, 67, 68, 1900, 5353, 5355})
# protocols whose every (small) payload packet carries metadata worth counting
FOLLOWED_APPS = frozenset({"hl7", "dicom"})
FOLLOWED_MAX_PAYLOAD = 4096
UNLIMITED = 1 << 40
# segments closer together than this belong to one message (for cadence)
MESSAGE_GAP_SECONDS = 0.5
# message times kept per conversation per window: enough for cadence, bounded for floods
MAX_MESSAGES_PER_WINDOW = 512


@dataclass(slots=True)
class SourceStats:
    """Sensor health per packet source (interface or file)."""

    packets: int = 0
    bytes: int = 0
    last_packet_time: float = 0.0
    dropped: int = 0


@dataclass(slots=True)
class _WindowState:
    start: float
    end: float
    profiles: dict[str, WindowProfile] = field(default_factory=dict)


def format_ip(version: int, hi: int, lo: int) -> str:
    if version == 4:
        return str(ipaddress.IPv4Address(lo))
    return str(ipaddress.IPv6Address((hi << 64) | lo))


class Analysis:
    """Everything learned from the frames fed so far. See the module docstring."""

    def __init__(
        self,
        signatures: SignatureLibrary | None = None,
        window_seconds: float = 60.0,
        on_window: WindowCallback | None = None,
    ) -> None:
        self.signatures = signatures
        self.window_seconds = float(window_seconds)
        self.on_window = on_window
        self.inventory = Inventory()
        self.devices: dict[str, Device] = self.inventory.devices
        self.flows: dict[FlowKey, Flow] = {}
        self.capture_stats: dict[str, SourceStats] = {}
        self.decode_errors: Counter[str] = Counter()
        self.file_errors: list[CaptureError] = []
        self.protocol_packets: Counter[str] = Counter()
        self.packets = 0
        self.bytes = 0
        self.first_time: float | None = None
        self.last_time: float | None = None
        # open windows by start time, oldest first; all but the newest close after each batch
        self._windows: dict[float, _WindowState] = {}
        self._window_floor = float("-inf")  # start of the oldest window still open
        self._packet_window: npt.NDArray[np.int64] = np.zeros(0, np.int64)
        self._window_starts: list[float] = []
        self._dns_names: dict[str, str] = {}  # address -> name a device resolved it as
        self._conversation_last: dict[tuple[str, str], float] = {}
        self._new_flows_by_address: dict[str, list[Flow]] = {}
        self._new_flows: list[Flow] = []

    # ------------------------------------------------------------------ public API
    def feed(self, batch: FrameBatch) -> None:
        """Decode and account one batch of frames."""
        n = len(batch)
        if n == 0:
            return
        table = decode_headers(batch)
        stats = self.capture_stats.setdefault(batch.source, SourceStats())
        wire_bytes = int(batch.wirelens.sum())
        stats.packets += n
        stats.bytes += wire_bytes
        self.packets += n
        self.bytes += wire_bytes
        status_counts = np.bincount(table.status, minlength=len(STATUS_REASONS))
        for code in np.flatnonzero(status_counts[1:]) + 1:
            self.decode_errors[STATUS_REASONS[code]] += int(status_counts[code])

        seconds = table.timestamps_ns.astype(np.float64) / 1e9
        stats.last_packet_time = max(stats.last_packet_time, float(seconds.max()))
        if self.first_time is None:
            self.first_time = float(seconds[0])
        self.last_time = max(self.last_time or 0.0, float(seconds.max()))

        # window per packet, never going back: late packets join the newest window
        window_ns = int(self.window_seconds * 1e9)
        window_ids = table.timestamps_ns // window_ns
        if self._windows:
            newest = round(next(reversed(self._windows)) * 1e9) // window_ns
            window_ids = np.maximum(window_ids, newest)
        window_ids = np.maximum.accumulate(window_ids)
        starts, self._packet_window = np.unique(window_ids, return_inverse=True)
        self._window_starts = [int(w) * window_ns / 1e9 for w in starts.tolist()]
        for start in self._window_starts:
            if start not in self._windows:
                self._windows[start] = _WindowState(start, start + self.window_seconds)
        self._window_floor = next(iter(self._windows))
        self._process(batch, table, seconds)
        # who a device is should not wait for its window to close: classify what changed
        self.classify()
        newest_start = self._window_starts[-1]
        for start in [w for w in self._windows if w < newest_start]:
            self._close_window(start)

    def tick(self, now: float) -> None:
        """Close the windows that capture time ``now`` is past (a quiet wire)."""
        for start in [w for w, state in self._windows.items() if now >= state.end]:
            self._close_window(start)

    def finish(self) -> None:
        """Close the open windows and classify what is still unclassified."""
        for start in list(self._windows):
            self._close_window(start)
        self.classify()

    def classify(self) -> None:
        """Re-run the signature matcher on devices whose facts changed."""
        if self.signatures is None:
            self.inventory.dirty.clear()
            return
        from monitor.classifier import classify

        for device_id in sorted(self.inventory.dirty):
            device = self.devices.get(device_id)
            if device is not None:
                device.classification = classify(device, self.signatures)
        self.inventory.dirty.clear()

    # ------------------------------------------------------------------ windows
    def _close_window(self, start: float) -> None:
        window = self._windows.pop(start, None)
        if window is None:
            return
        self.classify()
        if self.on_window is not None:
            self.on_window(sorted(window.profiles.values(), key=lambda p: p.device_id), self)

    def _profile(self, device_id: str, window_start: float) -> WindowProfile:
        window = self._windows[window_start]
        profile = window.profiles.get(device_id)
        if profile is None:
            profile = WindowProfile(device_id, window.start, window.end)
            window.profiles[device_id] = profile
        return profile

    def _window_at(self, when: float) -> float:
        """The open window a time belongs to (late times join the oldest open one)."""
        start = (when // self.window_seconds) * self.window_seconds
        if start < self._window_floor:
            return self._window_floor
        if start not in self._windows:
            return next(reversed(self._windows))
        return float(start)

    def note(
        self,
        device: Device,
        kind: str,
        value: str,
        when: float,
        times: int = 1,
        last: float | None = None,
    ) -> None:
        """Record a fact about ``device`` in the inventory and in its window's profile."""
        self.inventory.note(device, kind, value, when, times, last)
        if self._windows:
            seen = self._profile(device.id, self._window_at(when)).facts.setdefault(kind, {})
            seen[value] = seen.get(value, 0) + times

    # ------------------------------------------------------------------ one batch
    def _process(
        self, batch: FrameBatch, table: PacketTable, seconds: npt.NDArray[np.float64]
    ) -> None:
        sl = slice(0, len(batch))
        t = seconds
        src_dev, dst_dev, device_list = self._resolve_devices(table, t, sl)
        self._account_devices(table, t, sl, src_dev, dst_dev, device_list)
        self._bind_addresses(table, t, sl, src_dev, device_list)
        self._account_flows(batch, table, t, sl)

    def _resolve_devices(
        self, table: PacketTable, t: npt.NDArray[np.float64], sl: slice
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], list[Device]]:
        """Per packet, the index (into the returned list) of its sending and receiving
        device, -1 where there is none: by MAC on L2 captures, by address without L2."""
        src_mac = table.src_mac[sl]
        dst_mac = table.dst_mac[sl]
        n = src_mac.shape[0]
        src_dev = np.full(n, -1, np.int64)
        dst_dev = np.full(n, -1, np.int64)
        devices: list[Device] = []
        index: dict[str, int] = {}

        def slot(device: Device) -> int:
            i = index.get(device.id)
            if i is None:
                i = index[device.id] = len(devices)
                devices.append(device)
            return i

        has_l2 = src_mac != 0
        if has_l2.any():
            macs, first, inverse = np.unique(src_mac, return_index=True, return_inverse=True)
            slots = np.full(macs.shape[0], -1, np.int64)
            for j, mac in enumerate(macs.tolist()):
                if mac == 0 or is_group_mac(mac):
                    continue
                slots[j] = slot(self.inventory.device_for_mac(mac, float(t[first[j]])))
            src_dev = slots[inverse]
            dmacs, dinverse = np.unique(dst_mac, return_inverse=True)
            dslots = np.full(dmacs.shape[0], -1, np.int64)
            for j, mac in enumerate(dmacs.tolist()):
                if mac == 0 or is_group_mac(mac):
                    continue
                known = self.devices.get(format_mac(mac))
                if known is not None:
                    dslots[j] = slot(known)
            dst_dev = dslots[dinverse]
        no_l2 = ~has_l2 & (table.ip_version[sl] > 0)
        if no_l2.any():
            rows = np.flatnonzero(no_l2)
            for side, target, hi_col, lo_col in (
                ("src", src_dev, table.src_ip_hi[sl], table.src_ip_lo[sl]),
                ("dst", dst_dev, table.dst_ip_hi[sl], table.dst_ip_lo[sl]),
            ):
                pairs = np.stack([hi_col[rows], lo_col[rows]], axis=1)
                uniq, first, inverse = np.unique(
                    pairs, axis=0, return_index=True, return_inverse=True
                )
                versions = table.ip_version[sl][rows]
                slots = np.full(uniq.shape[0], -1, np.int64)
                for j in range(uniq.shape[0]):
                    row = rows[first[j]]
                    address = format_ip(int(versions[first[j]]), int(uniq[j, 0]), int(uniq[j, 1]))
                    if address_scope(address) != "internal":
                        continue
                    if side == "src":
                        slots[j] = slot(self.inventory.device_for_ip(address, float(t[row])))
                    else:
                        owner = self.inventory.owner_of(address)
                        if owner is not None:
                            slots[j] = slot(owner)
                target[rows] = slots[inverse.reshape(-1)]
        return src_dev, dst_dev, devices

    def _account_devices(
        self,
        table: PacketTable,
        t: npt.NDArray[np.float64],
        sl: slice,
        src_dev: npt.NDArray[np.int64],
        dst_dev: npt.NDArray[np.int64],
        devices: list[Device],
    ) -> None:
        if not devices:
            return
        m = len(devices)
        windows = self._window_starts
        nw = len(windows)
        length = table.wire_length[sl].astype(np.int64)
        win = self._packet_window
        tx = src_dev >= 0
        rx = dst_dev >= 0
        tx_cell = src_dev[tx] * nw + win[tx]
        rx_cell = dst_dev[rx] * nw + win[rx]
        cells = m * nw
        tx_packets = np.bincount(tx_cell, minlength=cells).reshape(m, nw)
        tx_bytes = np.bincount(tx_cell, weights=length[tx], minlength=cells).reshape(m, nw)
        rx_packets = np.bincount(rx_cell, minlength=cells).reshape(m, nw)
        rx_bytes = np.bincount(rx_cell, weights=length[rx], minlength=cells).reshape(m, nw)
        last_tx = np.full(m, -1.0)
        np.maximum.at(last_tx, src_dev[tx], t[tx])
        bins = np.searchsorted(np.asarray(SIZE_BIN_EDGES), length[tx], side="left")
        nb = len(SIZE_BIN_EDGES) + 1
        histogram = np.bincount(tx_cell * nb + bins, minlength=cells * nb).reshape(m, nw, nb)
        arp = (table.ethertype[sl] == ETHERTYPE_ARP)[tx]
        arp_counts = np.bincount(tx_cell[arp], minlength=cells).reshape(m, nw)
        arp_last = np.full(m, -1.0)
        np.maximum.at(arp_last, src_dev[tx][arp], t[tx][arp])
        active = np.flatnonzero((tx_packets.sum(axis=1) + rx_packets.sum(axis=1)) > 0)
        for i in active.tolist():
            device = devices[i]
            device.tx_packets += int(tx_packets[i].sum())
            device.tx_bytes += int(tx_bytes[i].sum())
            device.rx_packets += int(rx_packets[i].sum())
            device.rx_bytes += int(rx_bytes[i].sum())
            if last_tx[i] > device.last_seen:
                device.last_seen = float(last_tx[i])
            for w in np.flatnonzero(tx_packets[i] + rx_packets[i]).tolist():
                profile = self._profile(device.id, windows[w])
                profile.tx_packets += int(tx_packets[i, w])
                profile.tx_bytes += int(tx_bytes[i, w])
                profile.rx_packets += int(rx_packets[i, w])
                profile.rx_bytes += int(rx_bytes[i, w])
                for k, count in enumerate(histogram[i, w].tolist()):
                    profile.size_histogram[k] += count
                arp_count = int(arp_counts[i, w])
                if arp_count:
                    self.note(device, "protocol", "arp", float(arp_last[i]), arp_count)
                    profile.protocols["arp"] = profile.protocols.get("arp", 0) + arp_count

    def _bind_addresses(
        self,
        table: PacketTable,
        t: npt.NDArray[np.float64],
        sl: slice,
        src_dev: npt.NDArray[np.int64],
        devices: list[Device],
    ) -> None:
        """Tie source addresses to sending MACs: ARP senders authoritatively, plain traffic
        only for internal addresses of non-routers (see Inventory.bind)."""
        has = (src_dev >= 0) & (table.src_mac[sl] != 0)
        version = table.ip_version[sl]
        arp = table.ethertype[sl] == ETHERTYPE_ARP
        ip = version > 0
        for mask, authoritative in ((has & arp, True), (has & ip, False)):
            rows = np.flatnonzero(mask)
            if rows.shape[0] == 0:
                continue
            keys = np.stack(
                [
                    src_dev[rows].astype(np.uint64),
                    table.src_ip_hi[sl][rows],
                    table.src_ip_lo[sl][rows],
                    version[rows].astype(np.uint64),
                ],
                axis=1,
            )
            uniq, first, counts = np.unique(keys, axis=0, return_index=True, return_counts=True)
            for j in range(uniq.shape[0]):
                dev_index, hi, lo, ver = (int(x) for x in uniq[j])
                if authoritative:
                    if lo == 0:  # ARP probe from 0.0.0.0
                        continue
                    address = format_ip(4, 0, lo)
                else:
                    address = format_ip(ver, hi, lo)
                self.inventory.bind(
                    devices[dev_index],
                    address,
                    float(t[rows[first[j]]]),
                    authoritative,
                    int(counts[j]),
                )

    # ------------------------------------------------------------------ flows
    def _account_flows(
        self, batch: FrameBatch, table: PacketTable, t: npt.NDArray[np.float64], sl: slice
    ) -> None:
        version = table.ip_version[sl]
        n = version.shape[0]
        keys = np.empty(n, np.uint64)
        direction = np.empty(n, np.uint8)
        proto = table.protocol[sl]
        sport = table.src_port[sl]
        dport = table.dst_port[sl]
        flow_keys(
            version,
            table.src_ip_hi[sl],
            table.src_ip_lo[sl],
            table.dst_ip_hi[sl],
            table.dst_ip_lo[sl],
            proto,
            sport,
            dport,
            keys,
            direction,
        )
        has_flow = keys != 0
        if not has_flow.any():
            return
        rows = np.flatnonzero(has_flow)
        uniq, first, inverse = np.unique(keys[rows], return_index=True, return_inverse=True)
        groups = np.full(n, -1, np.int64)
        groups[rows] = inverse.reshape(-1)
        m = uniq.shape[0]
        length = table.wire_length[sl].astype(np.int64)
        nw = len(self._window_starts)
        flow_window = np.bincount(
            groups[rows] * nw + self._packet_window[sl][rows], minlength=m * nw
        ).reshape(m, nw)
        side_index = groups[rows] * 2 + direction[rows]
        packets = np.bincount(side_index, minlength=2 * m).reshape(m, 2)
        volume = np.bincount(side_index, weights=length[rows], minlength=2 * m).reshape(m, 2)
        flags = table.tcp_flags[sl]
        synack = (proto == PROTO_TCP) & ((flags & 0x12) == 0x12)
        synack_side = np.full(m, -1, np.int64)
        sa_rows = np.flatnonzero(synack)
        synack_side[groups[sa_rows]] = direction[sa_rows]
        last = np.zeros(m)
        np.maximum.at(last, groups[rows], t[rows])

        flow_list: list[Flow] = []
        self._new_flows_by_address = {}
        self._new_flows = []
        for j in range(m):
            i = int(rows[first[j]])
            flow = self._flow_for(table, sl, i, float(t[i]), int(direction[i]), flags)
            flow_list.append(flow)
            for side in (0, 1):
                flow.packets[side] += int(packets[j, side])
                flow.bytes[side] += int(volume[j, side])
            flow.last_seen = max(flow.last_seen, float(last[j]))
            if flow.server_side < 0:
                if synack_side[j] >= 0:
                    self._learn_service(flow, int(synack_side[j]), float(t[i]))
                elif flow.key[5] == PROTO_UDP and flow.packets[0] and flow.packets[1]:
                    self._learn_service(flow, 1 - flow.client_side, float(t[i]))

        self._inspect(batch, table, t, sl, groups, direction, flow_list)
        self._name_new_flows()
        for j, w in zip(*(x.tolist() for x in np.nonzero(flow_window)), strict=True):
            self._account_flow_window(flow_list[j], int(flow_window[j, w]), self._window_starts[w])
        self._conversations(table, t, sl, groups, direction, flow_list)

    def _flow_for(
        self, table: PacketTable, sl: slice, i: int, when: float, direction: int, flags: Any
    ) -> Flow:
        base = sl.start + i
        version = int(table.ip_version[base])
        src = (int(table.src_ip_hi[base]), int(table.src_ip_lo[base]), int(table.src_port[base]))
        dst = (int(table.dst_ip_hi[base]), int(table.dst_ip_lo[base]), int(table.dst_port[base]))
        a, b = (dst, src) if direction else (src, dst)
        key: FlowKey = (version, a[0], a[1], b[0], b[1], int(table.protocol[base]), a[2], b[2])
        flow = self.flows.get(key)
        if flow is not None:
            return flow
        sender_side = direction
        # a first packet that is a SYN-ACK was sent by the server: the client is the other side
        if int(table.protocol[base]) == PROTO_TCP and (int(flags[i]) & 0x12) == 0x12:
            client = 1 - sender_side
        else:
            client = sender_side
        addresses = (format_ip(version, a[0], a[1]), format_ip(version, b[0], b[1]))
        flow = Flow(key=key, first_seen=when, last_seen=when, client_side=client)
        flow.addresses = addresses
        self.flows[key] = flow
        for address in addresses:
            self._new_flows_by_address.setdefault(address, []).append(flow)
        self._new_flows.append(flow)
        owners = [self.inventory.owner_of(addr) for addr in addresses]
        for side in (0, 1):
            owner = owners[side]
            flow.devices[side] = owner.id if owner is not None else None
            other = addresses[1 - side]
            other_owner = owners[1 - side]
            flow.peers[side] = (
                other_owner.id
                if other_owner is not None
                else (f"ext:{other}" if address_scope(other) == "external" else f"ip:{other}")
            )
        transport = flow.transport
        for side in (0, 1):
            owner = owners[side]
            if owner is None:
                continue
            self.note(owner, "peer", flow.peers[side], when)
            self.note(owner, "protocol", transport, when)
            # named (peer_name fact) after the batch's DNS answers are in: see _resolved
            flow.peer_names[side] = self._dns_names.get(addresses[1 - side])
            if side == client:
                self._profile(owner.id, self._window_at(when)).flows_started += 1
        # Discovery and telemetry sent to a group (IntelliVue, WS-Discovery, SSDP) get no
        # reply to learn the service from: the group port is the service the sender uses.
        target = 1 - client
        sender = owners[client]
        group = address_scope(addresses[target]) == "multicast"
        if flow.key[5] == PROTO_UDP and sender is not None and group:
            self.note(sender, "service_used", f"udp/{flow.port(target)}", when)
        return flow

    def _learn_service(self, flow: Flow, server_side: int, when: float) -> None:
        flow.server_side = server_side
        service = f"{flow.transport}/{flow.port(server_side)}"
        server = self.devices.get(flow.devices[server_side] or "")
        client = self.devices.get(flow.devices[1 - server_side] or "")
        if server is not None:
            self.note(server, "service_offered", service, when)
        if client is not None:
            self.note(client, "service_used", service, when)

    def _account_flow_window(self, flow: Flow, total: int, window_start: float) -> None:
        service = flow.service()
        protocol = flow.app or flow.transport
        self.protocol_packets[protocol] += total
        for side in (0, 1):
            device_id = flow.devices[side]
            if device_id is None:
                continue
            profile = self._profile(device_id, window_start)
            profile.peers.add(flow.peers[side])
            profile.services[service] = profile.services.get(service, 0) + total
            profile.protocols[protocol] = profile.protocols.get(protocol, 0) + total

    # ------------------------------------------------------------------ application metadata
    def _inspect(
        self,
        batch: FrameBatch,
        table: PacketTable,
        t: npt.NDArray[np.float64],
        sl: slice,
        groups: npt.NDArray[np.int64],
        direction: npt.NDArray[np.uint8],
        flow_list: list[Flow],
    ) -> None:
        proto = table.protocol[sl]
        payload_len = table.payload_length[sl]
        has_payload = (payload_len > 0) & (table.fragment[sl] != 2)
        udp = has_payload & (proto == PROTO_UDP)
        special_udp = udp & (
            np.isin(table.src_port[sl], list(INSPECTED_UDP_PORTS))
            | np.isin(table.dst_port[sl], list(INSPECTED_UDP_PORTS))
        )
        tcp = has_payload & (proto == PROTO_TCP)
        followed = np.array(
            [f.app in FOLLOWED_APPS for f in flow_list] + [False], dtype=np.bool_
        )  # index -1 (no flow) lands on the trailing False
        small = payload_len <= FOLLOWED_MAX_PAYLOAD
        eligible = tcp & (~followed[groups] | small)
        budget = np.array(
            [UNLIMITED if f.app in FOLLOWED_APPS else f.inspect_budget for f in flow_list],
            dtype=np.int64,
        )
        chosen = take_within_budget(groups, eligible, budget)
        candidates = np.flatnonzero(chosen)
        if candidates.shape[0]:
            plausible = could_be_metadata(
                batch.buffer, table.payload_offset[sl][candidates], payload_len[candidates]
            )
            chosen[candidates[~plausible]] = False
        for j, flow in enumerate(flow_list):
            if flow.app not in FOLLOWED_APPS:
                flow.inspect_budget = int(budget[j])
        buffer = batch.buffer
        offsets = table.payload_offset[sl]
        # Announcements repeat byte for byte within a flow: decode each distinct one once,
        # counting its repeats (first and last time kept).
        udp_rows = np.flatnonzero(special_udp & (groups >= 0))
        once: list[tuple[int, int, float]] = []  # (row, repeats, last time)
        if udp_rows.shape[0]:
            salt = groups[udp_rows] * 2 + direction[udp_rows]
            keys = payload_keys(buffer, offsets, payload_len, udp_rows, salt)
            _, first, inverse, counts = np.unique(
                keys, return_index=True, return_inverse=True, return_counts=True
            )
            last = np.zeros(first.shape[0])
            np.maximum.at(last, inverse.reshape(-1), t[udp_rows])
            once = [
                (int(udp_rows[f]), int(c), float(x))
                for f, c, x in zip(first.tolist(), counts.tolist(), last.tolist(), strict=True)
            ]
        tcp_rows = np.flatnonzero(chosen)
        once += [(i, 1, float(t[i])) for i in tcp_rows.tolist()]
        once.sort()
        recognised_at: dict[int, int] = {}  # flow group -> row where it became followed
        for i, repeats, last_time in once:
            group = int(groups[i])
            flow = flow_list[group]
            was_followed = flow.app in FOLLOWED_APPS
            self._decode_row(batch, table, t, i, flow, int(direction[i]), repeats, last_time)
            if not was_followed and flow.app in FOLLOWED_APPS:
                recognised_at[group] = i
        if not recognised_at:
            return
        # A flow recognised as HL7 or DICOM in this batch is followed from that packet on, as
        # it would have been had the batch been cut right after it.
        later = np.zeros(groups.shape[0], np.bool_)
        for group, row in recognised_at.items():
            later |= (groups == group) & (np.arange(groups.shape[0]) > row)
        rows = np.flatnonzero(later & tcp & small & ~chosen)
        if rows.shape[0]:
            plausible = could_be_metadata(buffer, offsets[rows], payload_len[rows])
            for i in rows[plausible].tolist():
                flow = flow_list[int(groups[i])]
                self._decode_row(batch, table, t, i, flow, int(direction[i]), 1, float(t[i]))

    def _decode_row(
        self,
        batch: FrameBatch,
        table: PacketTable,
        t: npt.NDArray[np.float64],
        i: int,
        flow: Flow,
        sender: int,
        repeats: int,
        last_time: float,
    ) -> None:
        start = int(table.payload_offset[i])
        payload = batch.buffer[start : start + int(table.payload_length[i])].tobytes()
        ports = (int(table.src_port[i]), int(table.dst_port[i]))
        self._apply_metadata(flow, sender, payload, ports, float(t[i]), repeats, last_time)

    def _apply_metadata(
        self,
        flow: Flow,
        sender: int,
        payload: bytes,
        ports: tuple[int, int],
        when: float,
        repeats: int = 1,
        last: float | None = None,
    ) -> None:
        try:
            found = appmeta.decode(flow.app, flow.key[5], ports, payload)
        except appmeta.Malformed as error:
            self.decode_errors[error.reason] += repeats
            return
        except Exception:  # a decoder bug must not stop the sensor: count it by protocol
            self.decode_errors[f"{flow.app or 'app'}_internal_error"] += repeats
            return
        if found is None:
            return
        app, facts = found
        if flow.app is None:
            flow.app = app
            if app in ("tls", "mqtt"):
                flow.inspect_budget = 0  # what they reveal comes first: the rest is opaque
        if app in appmeta.FLOW_PROTOCOLS:
            for side in (0, 1):
                device = self.devices.get(flow.devices[side] or "")
                if device is not None:
                    self.note(device, "protocol", app, when, repeats, last)
        else:
            device = self.devices.get(flow.devices[sender] or "")
            if device is not None:
                self.note(device, "protocol", app, when, repeats, last)
        device = self.devices.get(flow.devices[sender] or "")
        for fact in facts:
            if fact.kind == "resolved":
                self._resolved(fact.value, fact.extra, when)
                continue
            target = device
            if fact.about == "peer":
                target = self.devices.get(flow.devices[1 - sender] or "")
            elif fact.about == "client_mac" and fact.extra:
                target = self.devices.get(fact.extra)
            if target is not None:
                self.note(target, fact.kind, fact.value, when, repeats, last)

    def _resolved(self, address: str, name: str, when: float) -> None:
        """A DNS answer: the name of ``address`` from now on. A flow of this batch that began
        after the answer takes it, as it would have in a smaller batch (answers come in
        capture order, so the last one before the flow wins)."""
        if len(self._dns_names) < 100_000:
            self._dns_names[address] = name
        for flow in self._new_flows_by_address.get(address, ()):
            if flow.first_seen >= when:
                flow.peer_names[0 if flow.addresses[1] == address else 1] = name

    def _name_new_flows(self) -> None:
        for flow in self._new_flows:
            for side in (0, 1):
                name = flow.peer_names[side]
                device = self.devices.get(flow.devices[side] or "")
                if name is not None and device is not None:
                    self.note(device, "peer_name", name, flow.first_seen)

    # ------------------------------------------------------------------ cadence
    def _conversations(
        self,
        table: PacketTable,
        t: npt.NDArray[np.float64],
        sl: slice,
        groups: npt.NDArray[np.int64],
        direction: npt.NDArray[np.uint8],
        flow_list: list[Flow],
    ) -> None:
        """Message times per (device, peer|service) conversation, for cadence."""
        proto = table.protocol[sl]
        carries = (groups >= 0) & ((table.payload_wire_length[sl] > 0) | (proto == PROTO_UDP))
        rows = np.flatnonzero(carries)
        if rows.shape[0] == 0:
            return
        conv_keys: list[tuple[str, str]] = []
        conv_index: dict[tuple[str, str], int] = {}
        lookup = np.full(len(flow_list) * 2, -1, np.int64)
        for j, flow in enumerate(flow_list):
            service = flow.service()
            for side in (0, 1):
                device_id = flow.devices[side]
                if device_id is None:
                    continue
                key = (device_id, f"{flow.peers[side]}|{service}")
                c = conv_index.get(key)
                if c is None:
                    c = conv_index[key] = len(conv_keys)
                    conv_keys.append(key)
                lookup[j * 2 + side] = c
        conv_of_row = lookup[groups[rows] * 2 + direction[rows]]
        last = np.array([self._conversation_last.get(k, -1.0) for k in conv_keys] or [0.0])
        starts = message_starts(conv_of_row, t[rows], last, MESSAGE_GAP_SECONDS)
        for c, key in enumerate(conv_keys):
            self._conversation_last[key] = float(last[c])
        for r in np.flatnonzero(starts).tolist():
            device_id, conversation = conv_keys[int(conv_of_row[r])]
            when = float(t[rows[r]])
            window = self._window_starts[int(self._packet_window[rows[r]])]
            times = self._profile(device_id, window).conversations.setdefault(conversation, [])
            if len(times) < MAX_MESSAGES_PER_WINDOW:
                times.append(when)


def analyze_captures(
    paths: Iterable[Path | str],
    signatures: SignatureLibrary | None = None,
    window_seconds: float = 60.0,
    on_window: WindowCallback | None = None,
) -> Analysis:
    """Run the pipeline over capture files in order; per-file problems go to
    ``file_errors`` and the other files go on."""
    from monitor.capture.files import open_capture

    analysis = Analysis(signatures=signatures, window_seconds=window_seconds, on_window=on_window)
    for path in paths:
        try:
            for batch in open_capture(Path(path)):
                analysis.feed(batch)
        except CaptureError as error:
            analysis.file_errors.append(error)
    analysis.finish()
    return analysis
