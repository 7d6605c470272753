"""The analysis pipeline: frame batches in; inventory, flows, window profiles out.

``Analysis.feed(batch)`` decodes a batch's headers in one compiled pass, then aggregates with
array operations: per device (traffic totals, window counters), per address binding, per
flow (``monitor.flows.FlowTable``: counters as columns, updated for the batch at once).
Python runs once per *distinct* device and binding of the batch, once per flow that starts
or changes service or protocol, and once per packet only for the packets the application
decoders must see (DHCP, DNS/mDNS, SSDP: each distinct message once per batch and window;
the first payload packets of each TCP flow; HL7 messages once per routing, type and
window; DICOM command fragments). What flows add to an open window accumulates in arrays and becomes
profiles when the window closes. Capture time is the clock: windows close on packet
timestamps, or on ``tick`` when a live wire is quiet, so a replayed capture gives what
watching it live gave, read a frame or 65,536 frames at a time (docs/performance.md says
where a batch still differs); a closed window is judged with its devices as they were at
its end.

Promises: ``feed`` never raises on packet content; problems are counted in
``decode_errors`` by bounded reason. Memory is bounded: flows, devices and facts per device
have limits past which the stalest go, counted in ``table_stats()``.
"""

from __future__ import annotations

import bisect
import ipaddress
import itertools
import math
import operator
import sys
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import numpy.typing as npt

from monitor import appmeta
from monitor import facts as learned_facts
from monitor.capture import CaptureError, FrameBatch
from monitor.decode.headers import (
    ETHERTYPE_ARP,
    PROTO_TCP,
    PROTO_UDP,
    STATUS_REASONS,
    PacketTable,
    decode_headers,
)
from monitor.facts import FactTally
from monitor.flows import (
    DEFAULT_MAX_FLOWS,
    PORTS,
    Flow,
    FlowTable,
    account_flow_packets,
    could_be_metadata,
    device_traffic,
    dicom_data_only,
    dns_content_keys,
    first_sends_after,
    group_keys,
    group_max,
    hl7_routing_keys,
    message_starts,
    packet_flow_keys,
    payload_keys,
    resumed_after_idle,
    row_keys,
    select_payloads,
    service_name,
)
from monitor.interning import KeyTable, NameTable
from monitor.inventory import (
    DEFAULT_MAX_DEVICES,
    Inventory,
    address_scope,
    external_addresses,
    format_mac,
    is_group_mac,
)
from monitor.model import SIZE_BIN_EDGES, Device, TableStats, WindowProfile

if TYPE_CHECKING:
    from monitor.signatures import SignatureLibrary

WindowCallback = Callable[[list[WindowProfile], "Analysis"], None]

# UDP ports whose datagrams always go to an application decoder
INSPECTED_UDP_PORTS = frozenset().union(*(ports for _, ports in appmeta.UDP_DECODER_PORTS))
DNS_PORTS = frozenset().union(
    *(ports for name, ports in appmeta.UDP_DECODER_PORTS if name in ("dns", "mdns"))
)
DNS_HEADER = 12
# protocols whose every (small) payload packet carries metadata worth counting
FOLLOWED_APPS = frozenset({"hl7", "dicom"})
# protocols whose metadata comes first (a ClientHello, a CONNECT): the rest is opaque
OPAQUE_AFTER_FIRST = frozenset({"tls", "mqtt"})
FOLLOWED_MAX_PAYLOAD = 4096
# segments closer together than this belong to one message (for cadence)
MESSAGE_GAP_SECONDS = 0.5
# message times kept per conversation per window: enough for cadence, bounded for floods
MAX_MESSAGES_PER_WINDOW = 512


def _port_mask(ports: frozenset[int]) -> npt.NDArray[np.bool_]:
    # indexed by a port column (0 to 65535): one read a packet, where np.isin sorts each batch
    mask = np.zeros(1 << 16, np.bool_)
    mask[sorted(ports)] = True
    return mask


_INSPECTED_UDP_PORT = _port_mask(INSPECTED_UDP_PORTS)
_DNS_PORT = _port_mask(DNS_PORTS)
# indexed by a port column: appmeta's rank of the decoder that claims the port
_DECODER_RANK_OF_PORT = np.array([appmeta.decoder_rank(port) for port in range(1 << 16)], np.uint64)


def _udp_decoders(
    src_port: npt.NDArray[np.int32], dst_port: npt.NDArray[np.int32]
) -> npt.NDArray[np.uint64]:
    """Per datagram, the rank of the decoder ``appmeta`` gives it by its ports, so that
    messages grouped for decoding go to the same one."""
    return np.minimum(_DECODER_RANK_OF_PORT[src_port], _DECODER_RANK_OF_PORT[dst_port])


# a wire length's size bin (SIZE_BIN_EDGES, upper edges included) for lengths up to the
# last edge and one past it, which stands for every longer packet
_SIZE_BIN_OF_LENGTH = np.searchsorted(
    np.asarray(SIZE_BIN_EDGES), np.arange(SIZE_BIN_EDGES[-1] + 2), side="left"
)


@dataclass(slots=True)
class SourceStats:
    """Sensor health per packet source (interface or file)."""

    packets: int = 0
    bytes: int = 0
    last_packet_time: float = 0.0
    dropped: int = 0


# tx packets, tx bytes, rx packets, rx bytes, then one column per size histogram bin
DEVICE_COUNT_COLUMNS = 4 + len(SIZE_BIN_EDGES) + 1


@dataclass(slots=True)
class _Learned:
    """What an open window learned of one device besides its traffic, until it closes: its
    facts (a ``FactTally``: kind -> value -> count), the flows it began, its ARP packets, and
    its address use (``WindowProfile``'s fields of those names). A whole profile is made
    when the window closes or settles its traffic: before that, a device's profile would
    hold little but six empty containers (about 650 bytes; 65 MiB at 100,000 devices)."""

    facts: FactTally = field(default_factory=FactTally)
    flows_started: int = 0
    arp_packets: int = 0
    address_use: dict[str, tuple[int, float]] | None = None


@dataclass(slots=True)
class _WindowState:
    """An open window: its profiles, and what flows added to them since it opened, kept as
    arrays (packets per accounting key, message times per conversation) until it closes,
    so a busy window costs Python once per key, not once per key per batch."""

    start: float
    end: float
    profiles: dict[str, WindowProfile] = field(default_factory=dict)
    learned: dict[str, _Learned] = field(default_factory=dict)  # device id -> (see _Learned)
    account_packets: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    messages: list[tuple[npt.NDArray[np.int32], npt.NDArray[np.float64]]] = field(
        default_factory=list
    )
    # conversation -> the one its messages so far belong to (a peer's address renamed to its
    # device): applied once, when the messages move into the profiles
    renamed: dict[int, int] = field(default_factory=dict)
    device_counts: npt.NDArray[np.int64] = field(
        default_factory=lambda: np.zeros((0, DEVICE_COUNT_COLUMNS), np.int64)
    )

    def add_device_counts(
        self, devices: npt.NDArray[np.int64], counts: npt.NDArray[np.int64], size: int
    ) -> None:
        if self.device_counts.shape[0] < size:
            grown = np.zeros(
                (max(size, 2 * self.device_counts.shape[0]), DEVICE_COUNT_COLUMNS), np.int64
            )
            grown[: self.device_counts.shape[0]] = self.device_counts
            self.device_counts = grown
        self.device_counts[devices] += counts

    def add_packets(
        self, accounts: npt.NDArray[np.int64], packets: npt.NDArray[np.int64], size: int
    ) -> None:
        if self.account_packets.shape[0] < size:
            grown = np.zeros(max(size, 2 * self.account_packets.shape[0]), np.int64)
            grown[: self.account_packets.shape[0]] = self.account_packets
            self.account_packets = grown
        np.add.at(self.account_packets, accounts, packets)


def _owner_at_row(
    owners: list[tuple[int, str | None]], row: int, owner_now: str | None
) -> str | None:
    """The owner of an address at ``row`` of a batch, from its owners by row (see
    ``Analysis._owners_by_row``): ``owner_now`` from the last change's row on; before, the
    last to take it at or before ``row``, or when none had it then (none yet, or a router
    found out lost it), the next to take it (frame by frame, that device takes the side:
    ``Analysis._take_unowned_sides``)."""
    if row >= owners[-1][0]:
        return owner_now
    at = bisect.bisect_right(owners, row, key=operator.itemgetter(0)) - 1
    return owners[at][1] if owners[at][1] is not None else owners[at + 1][1]


class _BindingPass:
    """One pass of a batch's address bindings (ARP senders, or plain traffic): the rows it
    binds from, each row's group (one per device and address) and each group's size."""

    __slots__ = ("_by_group", "_starts", "authoritative", "group_of_row", "group_sizes", "rows")

    def __init__(
        self,
        rows: npt.NDArray[np.int64],
        group_of_row: npt.NDArray[np.int64],
        group_sizes: npt.NDArray[np.int64],
        authoritative: bool,
    ) -> None:
        self.rows, self.group_of_row, self.group_sizes = rows, group_of_row, group_sizes
        self.authoritative = authoritative
        self._by_group: npt.NDArray[np.int64] | None = None
        self._starts: list[int] = []

    def group_rows(self, group: int) -> npt.NDArray[np.int64]:
        """The batch rows of ``group``, in order. (Sorted once, when first asked: a flood
        of senders claiming one address makes as many groups.)"""
        if self._by_group is None:
            self._by_group = self.rows[np.argsort(self.group_of_row, kind="stable")]
            self._starts = [0, *np.cumsum(self.group_sizes).tolist()]
        return self._by_group[self._starts[group] : self._starts[group + 1]]


class _KeyChanges(NamedTuple):
    """How flows' accounting keys changed within a batch, by slot. Frame by frame, a packet
    counts under the key its flow had when it passed: a flow's rows before the one that
    recognised its content count under its transport, those before the one that told its
    server under the service guessed until then (and, for messages, in its conversations
    then)."""

    recognised_at: dict[int, int]  # slot -> row
    # slot -> (row, service before, conversations before)
    server_told_at: dict[int, tuple[int, str, tuple[int, int]]]


class _PacketFlows(NamedTuple):
    """A batch's packets by flow: each packet's flow key (0: none) and direction, the rows
    with a flow, and the flows in order of their first packet (``first``: index into
    ``rows`` of each one's first packet; ``inverse``: each row's flow)."""

    keys: npt.NDArray[np.uint64]
    direction: npt.NDArray[np.uint8]
    rows: npt.NDArray[np.int64]
    first: npt.NDArray[np.int64]
    inverse: npt.NDArray[np.int64]


def _group_flows(table: PacketTable) -> _PacketFlows:
    keys, direction = packet_flow_keys(table)
    rows = np.flatnonzero(keys != 0)
    first, inverse, _ = group_keys(keys[rows])
    return _PacketFlows(keys, direction, rows, first, inverse)


def _per_flow(
    rows_by_slot: dict[int, int], slots: npt.NDArray[np.int64], order: npt.NDArray[np.int64]
) -> npt.NDArray[np.int64]:
    """Per flow of a batch (at ``slots``, ``order`` sorting them), its row in
    ``rows_by_slot`` (-1 for none)."""
    found = np.full(slots.shape[0], -1, np.int64)
    if not rows_by_slot:
        return found
    keys = np.fromiter(rows_by_slot, np.int64, len(rows_by_slot))
    places = order[np.searchsorted(slots[order], keys).clip(0, slots.shape[0] - 1)]
    match = slots[places] == keys
    found[places[match]] = np.fromiter(rows_by_slot.values(), np.int64, len(rows_by_slot))[match]
    return found


def format_ip(version: int, hi: int, lo: int) -> str:
    if version == 4:
        return str(ipaddress.IPv4Address(lo))
    return str(ipaddress.IPv6Address((hi << 64) | lo))


# a batch's DNS answers in capture order: by time, then by the row that carried them
_TIME_AND_ROW = operator.itemgetter(0, 1)

# capture time between sweeps of the flow table for idle flows
FLOW_SWEEP_SECONDS = 10.0
# Who a device is should not wait for its window to close, but a live batch holds a few
# milliseconds of traffic: devices whose facts changed are classified again at most once per
# this many seconds of capture time (and whenever a window closes).
CLASSIFY_SECONDS = 1.0
# interned keys (and key names) beyond this many per live flow, plus the slack, are
# compacted away
KEYS_PER_FLOW = 3
KEY_SLACK = 4096
COMPACTION_SLICE = 65_536  # flows, or conversations, re-interned at a time
# addresses (and peer labels) whose text is kept: flows to one address share one string, so
# the cache should hold every address a busy network uses at once
ADDRESS_CACHE_SIZE = 1 << 18


class Analysis:
    """Everything learned from the frames fed so far. See the module docstring."""

    def __init__(
        self,
        signatures: SignatureLibrary | None = None,
        window_seconds: float = 60.0,
        on_window: WindowCallback | None = None,
        max_flows: int = DEFAULT_MAX_FLOWS,
        max_devices: int = DEFAULT_MAX_DEVICES,
    ) -> None:
        self.signatures = signatures
        self.window_seconds = float(window_seconds)
        self.on_window = on_window
        self.inventory = Inventory(max_devices)
        self.devices: dict[str, Device] = self.inventory.devices
        self.flows = FlowTable(max_flows)
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
        self._new_flows_by_address: dict[str, list[Flow]] = {}
        # the batch's DNS answers as (time, row decoded, address, name), and the row being
        # decoded: see _name_by_answers
        self._answers: list[tuple[float, int, str, str]] = []
        self._decoding_row = -1
        self._new_flows: list[Flow] = []
        self._next_sweep = float("-inf")
        self._classified_at = float("-inf")  # capture time of the last classification
        self._addresses: dict[int, str] = {}  # see _address
        self._peer_labels: dict[str, str] = {}
        # Interned per-side accounting keys of flows, so a batch aggregates by integer:
        # (device, peer, service, protocol) for window profiles, (device, peer, service) for
        # cadence, and the flow's protocol label for the protocol counts.
        self._key_names = NameTable()
        self._accounts = KeyTable(4)
        self._conversation_table = KeyTable(3)
        self._conversation_last: npt.NDArray[np.float64] = np.full(1024, -1.0)
        self._labels = NameTable()  # protocol label -> id in the flow table's label column
        # how flows' keys changed in this batch: interned anew at its end
        self._key_changes = _KeyChanges({}, {})
        # internal address -> live flows that started with no device at that address, each
        # with the window its first facts went into: the device that later sends from it
        # takes that side (see _take_unowned_sides)
        self._unowned_sides: dict[str, list[tuple[Flow, float]]] = {}
        # hashes of (MAC, address) an ARP made the MAC's, as the inventory had them after
        # this many evictions (an eviction forgets them): see _router_claim_rows
        self._claims_made: set[int] = set()
        self._claims_made_evictions = 0
        # slot -> (flow, when its service was learned) for flows of _unowned_sides that had
        # learned it by then: the side's device, when it takes the side, uses or offers it
        # from that time, as one batch holding both would have noted
        self._services_waiting: dict[int, tuple[Flow, float]] = {}
        # addresses of _unowned_sides that may have got an owner in this batch, in order
        self._owned_now: dict[str, None] = {}
        # address -> its owners in this batch, when it changed hands: (row, device) of its
        # owner before the batch (row -1) and of each row where its owner changed (device
        # None: a router found out lost it), by row; flows begun before the last of those
        # rows start with the owner then, as frame by frame (see _bind_addresses,
        # _ownership_changes, _owner_at_row)
        self._owners_by_row: dict[str, list[tuple[int, str | None]]] = {}
        self._device_rows = NameTable()  # device id -> row of the windows' device counts
        # facts noted while a batch is processed, applied once per distinct fact at its end
        self._pending_notes: dict[tuple[str, str, str, float], list[float]] | None = None

    # ------------------------------------------------------------------ public API
    def feed(self, batch: FrameBatch) -> None:
        """Decode and account one batch of frames."""
        n = len(batch)
        if n == 0:
            return
        table = decode_headers(batch)
        seconds = table.timestamps_ns.astype(np.float64) / 1e9
        packet_flows = _group_flows(table)
        # A flow silent for longer than its idle timeout is over, and its next packet starts
        # another, as when each packet came alone: a batch holding both ends of such a
        # silence (a sparse capture's batch spans hours) is cut before the packet that ends
        # it, and each part is fed on its own (its headers are the batch's, not decoded again).
        cuts = resumed_after_idle(
            packet_flows.inverse,
            seconds[packet_flows.rows],
            table.protocol[packet_flows.rows],
            packet_flows.first.shape[0],
        )
        # And before the first frame of a device whose address a flow of the batch began
        # to earlier, and before a router's ARP that makes an address it used its own: see
        # _late_owner_rows and _router_claim_rows.
        more = self._late_owner_rows(table) + self._router_claim_rows(table)
        if cuts.shape[0] == 0 and not more:
            self._feed(batch, table, seconds, packet_flows)
            return
        bounds = [0, *sorted({*packet_flows.rows[cuts].tolist(), *more}), n]
        for start, end in itertools.pairwise(bounds):
            part_table = table.rows(start, end)
            self._feed(
                batch.frames(start, end),
                part_table,
                seconds[start:end],
                _group_flows(part_table),
            )

    def _window_ids(self, timestamps_ns: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """Each frame's window number as ``_feed`` gives it: its time's, never going back (a
        late frame joins the newest window open or seen before it)."""
        window_ns = int(self.window_seconds * 1e9)
        window_ids = timestamps_ns // window_ns
        if self._windows:
            newest = round(next(reversed(self._windows)) * 1e9) // window_ns
            window_ids = np.maximum(window_ids, newest)
        return np.maximum.accumulate(window_ids)

    def _late_owner_rows(self, table: PacketTable) -> list[int]:
        """Rows to cut a batch at, each the first frame from an address no device owns
        where the frame before is in a later window than the one open when the batch began,
        and a flow to the address began in an older window than that frame (or flows from
        earlier batches wait for the address's owner: ``_take_unowned_sides``).

        Frame by frame, the device that sends from the address takes the flow's side at
        its first frame, once the windows before the frame before it have closed: the
        flow's packets so far and its peer and protocol facts count in the window then
        open. One batch holding that frame would give the device the side from the flow's
        start, in the windows its packets were sent in. Cut there, a batch does what frame
        by frame does. A batch within one window, as most are, is not cut and pays nothing
        more; a cut where the owner is refused (a router's forwarded address) is harmless."""
        window_ids = self._window_ids(table.timestamps_ns)
        windows = self._windows
        floor = (
            round(next(iter(windows)) * 1e9) // int(self.window_seconds * 1e9)
            if windows
            else int(window_ids[0])
        )
        if int(window_ids[-1]) == floor:
            return []
        # the first frame from each address whose frame before is past the floor
        past = int(np.argmax(window_ids > floor))
        arp = table.ethertype == ETHERTYPE_ARP
        firsts = first_sends_after(
            table.src_ip_hi, table.src_ip_lo, table.ip_version, arp, past
        ).tolist()
        owners = self.inventory.ip_owner
        waiting = self._unowned_sides
        rows: list[int] = []
        to_check: list[int] = []
        for row in firsts:
            ver = 4 if arp[row] else int(table.ip_version[row])
            address = self._address(ver, int(table.src_ip_hi[row]), int(table.src_ip_lo[row]))
            if address in owners or address_scope(address) != "internal":
                continue
            (rows if address in waiting else to_check).append(row)
        if to_check:
            rows += self._sent_to_earlier(table, window_ids, np.array(to_check, np.int64))
        return sorted(rows)

    def _router_claim_rows(self, table: PacketTable) -> list[int]:
        """Rows to cut a batch at, each a router's first ARP of the batch from an address
        ARP had not made its own yet, where the router sent from that address earlier in
        the batch. A router's plain traffic binds no address (it forwards others'), an ARP
        sender's address is its own: frame by frame, its packets from the address before
        the ARP are refused. One batch binds its ARP senders first, and would have taken
        them (a gateway's DHCP offers counted for it before its first ARP)."""
        arp = table.ethertype == ETHERTYPE_ARP
        claims = np.flatnonzero(arp & (table.src_ip_lo != 0) & (table.src_mac != 0))
        if claims.shape[0] == 0:
            return []
        none = np.zeros(claims.shape[0], np.uint64)
        macs = table.src_mac[claims].astype(np.uint64)
        keys = row_keys(macs, table.src_ip_lo[claims], none, none)
        first, _, _ = group_keys(keys)
        inventory = self.inventory
        made = self._claims_made
        if self._claims_made_evictions != inventory.evicted:
            made.clear()
            self._claims_made_evictions = inventory.evicted
        new: list[tuple[int, int, str]] = []  # (row, MAC, device id) of a claim not yet made
        for row, key in zip(claims[first].tolist(), keys[first].tolist(), strict=True):
            if key in made:  # (most: a device's ARP, again)
                continue
            mac = int(table.src_mac[row])
            if is_group_mac(mac):
                continue
            device_id = format_mac(mac)
            if inventory.is_confirmed(device_id, self._address(4, 0, int(table.src_ip_lo[row]))):
                made.add(key)
            else:
                new.append((row, mac, device_id))
        if not new:
            return []
        # the first frame of each (MAC, source address): which MACs forwarded an internet
        # address before, and from which of its own addresses each MAC sent before
        sends = np.flatnonzero(table.ip_version > 0)
        versions = table.ip_version[sends]
        macs = table.src_mac[sends].astype(np.uint64)
        his, los = table.src_ip_hi[sends], table.src_ip_lo[sends]
        first, _, _ = group_keys(row_keys(macs, his, los, versions.astype(np.uint64)))
        external = external_addresses(his[first], los[first], versions[first])
        forwarded_from: dict[int, int] = {}  # MAC -> its first frame from an internet address
        for mac, row in zip(
            table.src_mac[sends[first][external]].tolist(),
            sends[first][external].tolist(),
            strict=True,
        ):
            forwarded_from.setdefault(mac, row)
        v4 = versions[first] == 4
        sent_from = dict(  # (MAC, IPv4 address) -> its first frame
            zip(
                zip(table.src_mac[sends[first][v4]].tolist(), los[first][v4].tolist(), strict=True),
                sends[first][v4].tolist(),
                strict=True,
            )
        )
        routers = inventory.routers
        return [
            row
            for row, mac, device_id in new
            if sent_from.get((mac, int(table.src_ip_lo[row])), row) < row
            and (device_id in routers or forwarded_from.get(mac, row) < row)
        ]

    @staticmethod
    def _sent_to_earlier(
        table: PacketTable, window_ids: npt.NDArray[np.int64], firsts: npt.NDArray[np.int64]
    ) -> list[int]:
        """Of ``firsts`` (each the first frame from its address), those whose address a
        frame was sent to in an older window than the frame before."""
        arp = table.ethertype[firsts] == ETHERTYPE_ARP
        versions = np.where(arp, 4, table.ip_version[firsts]).astype(np.uint64)
        none = np.zeros(firsts.shape[0], np.uint64)
        keys = row_keys(table.src_ip_hi[firsts], table.src_ip_lo[firsts], versions, none)
        received = np.flatnonzero(table.ip_version > 0)
        to_keys = row_keys(
            table.dst_ip_hi[received],
            table.dst_ip_lo[received],
            table.ip_version[received].astype(np.uint64),
            np.zeros(received.shape[0], np.uint64),
        )
        to_first, _, _ = group_keys(to_keys)
        first_to = dict(zip(to_keys[to_first].tolist(), received[to_first].tolist(), strict=True))
        return [
            row
            for row, key in zip(firsts.tolist(), keys.tolist(), strict=True)
            if (to_row := first_to.get(key, row)) < row and window_ids[to_row] < window_ids[row - 1]
        ]

    def _feed(
        self,
        batch: FrameBatch,
        table: PacketTable,
        seconds: npt.NDArray[np.float64],
        packet_flows: _PacketFlows,
    ) -> None:
        """``feed`` for frames no flow is silent in for longer than its idle timeout."""
        n = len(batch)
        stats = self.capture_stats.setdefault(batch.source, SourceStats())
        wire_bytes = int(batch.wirelens.sum())
        stats.packets += n
        stats.bytes += wire_bytes
        self.packets += n
        self.bytes += wire_bytes
        status_counts = np.bincount(table.status, minlength=len(STATUS_REASONS))
        if status_counts[0] != n:
            for code in (np.flatnonzero(status_counts[1:]) + 1).tolist():
                self.decode_errors[STATUS_REASONS[code]] += int(status_counts[code])

        latest = float(seconds.max())
        stats.last_packet_time = max(stats.last_packet_time, latest)
        if self.first_time is None:
            self.first_time = float(seconds[0])
        self.last_time = max(self.last_time or 0.0, latest)

        # window per packet, never going back: late packets join the newest window
        window_ns = int(self.window_seconds * 1e9)
        window_ids = table.timestamps_ns // window_ns
        lowest, highest = int(window_ids[0]), int(window_ids.max())
        windows = self._windows
        newest = round(next(reversed(windows)) * 1e9) // window_ns if windows else lowest
        lowest, highest = max(lowest, newest), max(highest, newest)
        if lowest == highest:  # most batches: one window
            self._packet_window = np.zeros(n, np.int64)
            starts = [lowest]
        else:
            window_ids = self._window_ids(table.timestamps_ns)
            # non-decreasing: each change starts the next window of the batch
            changes = np.flatnonzero(np.diff(window_ids)) + 1
            starts = window_ids[np.concatenate(([0], changes))].tolist()
            self._packet_window = np.zeros(n, np.int64)
            self._packet_window[changes] = 1
            np.cumsum(self._packet_window, out=self._packet_window)
        self._window_starts = [w * window_ns / 1e9 for w in starts]
        for start in self._window_starts:
            if start not in self._windows:
                self._windows[start] = _WindowState(start, start + self.window_seconds)
        self._window_floor = next(iter(self._windows))
        # flows idle since before this batch are gone before its packets are counted
        self._sweep_flows(float(seconds[0]))
        self._process(batch, table, seconds, packet_flows)
        self._classify_due(latest)
        newest_start = self._window_starts[-1]
        for start in [w for w in self._windows if w < newest_start]:
            self._close_window(start)

    def table_stats(self) -> TableStats:
        """Sizes of the flow and device tables and what they evicted."""
        return TableStats(
            flows_active=len(self.flows),
            flows_started=self.flows.created,
            flows_evicted=dict(self.flows.evicted),
            devices=len(self.devices),
            devices_evicted=self.inventory.evicted,
            facts_evicted=learned_facts.evicted_values,
        )

    def tick(self, now: float) -> None:
        """Close the windows that capture time ``now`` is past, and classify the devices
        whose facts changed (a quiet wire)."""
        for start in [w for w, state in self._windows.items() if now >= state.end]:
            self._close_window(start)
        self._sweep_flows(now)
        self._classify_due(now)

    def finish(self) -> None:
        """Close the open windows and classify what is still unclassified."""
        for start in list(self._windows):
            self._close_window(start)
        self.classify()

    def classify(self) -> None:
        """Re-run the signature matcher on devices whose facts changed."""
        self.inventory.classify_dirty(self.signatures)

    def _classify_due(self, now: float) -> None:
        # a clock that went back (a replayed file, a stepped clock) is no reason to wait
        if now - self._classified_at >= CLASSIFY_SECONDS or now < self._classified_at:
            self.classify()
            self._classified_at = now

    # ------------------------------------------------------------------ windows
    def _close_window(self, start: float) -> None:
        window = self._windows.get(start)
        if window is None:
            return
        self._add_learned(window)
        self._settle(window)
        del self._windows[start]
        self.classify()
        # judged as it was at its end: a batch may hold the next window's packets, and frame
        # by frame the packet that began the next window is already in
        self.inventory.classify_as_of(window.profiles, window.end, self.signatures)
        if self.on_window is not None:
            self.on_window(sorted(window.profiles.values(), key=lambda p: p.device_id), self)

    def _add_learned(self, window: _WindowState) -> None:
        """Put what the closing ``window`` learned of each device into its profile (see
        ``_Learned``), before its traffic is settled: the order of keys its profile had when
        each sighting went straight into it."""
        for device_id, learned in window.learned.items():
            profile = self._profile_in(window, device_id)
            # (a window settled before it closed has profiles of its traffic only)
            profile.facts = learned.facts.counts()
            profile.flows_started = learned.flows_started
            if learned.arp_packets:
                profile.protocols["arp"] = profile.protocols.get("arp", 0) + learned.arp_packets
            if learned.address_use is not None:
                profile.address_use = learned.address_use
        window.learned = {}

    @staticmethod
    def _profile_in(window: _WindowState, device_id: str) -> WindowProfile:
        profile = window.profiles.get(device_id)
        if profile is None:
            profile = window.profiles[device_id] = WindowProfile(
                device_id, window.start, window.end
            )
        return profile

    def _learned(self, device_id: str, window_start: float) -> _Learned:
        learned = self._windows[window_start].learned
        found = learned.get(device_id)
        if found is None:
            found = learned[device_id] = _Learned()
        return found

    def _window_at(self, when: float) -> float:
        """The open window a time belongs to (late times join the oldest open one, later
        ones the newest: with one window open, it is every time's)."""
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
        not_before: float | None = None,
    ) -> None:
        """Record a fact about ``device`` in the inventory and in its window's profile.
        Inside a batch the sightings are summed and applied when the batch ends (a fact keeps
        its first time, last time and count, so the order of sightings does not matter).
        It counts in ``when``'s window, or in the open window ``not_before`` if that one
        is older (as frame by frame, once the windows before it closed)."""
        window = self._note_window(when, not_before)
        pending = self._pending_notes
        if pending is not None and window is not None:
            key = (device.id, kind, value, window)
            seen = pending.get(key)
            end = when if last is None or last < when else last
            if seen is None:
                pending[key] = [times, when, end]
            else:
                seen[0] += times
                if when < seen[1]:
                    seen[1] = when
                if end > seen[2]:
                    seen[2] = end
            return
        self.inventory.note(device, kind, value, when, times, last)
        if window is not None:
            self._learned(device.id, window).facts.add(kind, value, times)

    def _take_back(self, device: Device, kind: str, value: str, when: float, window: float) -> None:
        """Undo one sighting at ``when`` that ``note`` recorded in ``window``: from the
        batch's notes while they are not applied yet (a device that took a flow's side
        earlier in this batch named its peer there), else from the inventory and from the
        window's facts if that window is still open."""
        pending, window_noted = self._pending_notes, self._note_window(when)
        if pending and window_noted is not None:
            key = (device.id, kind, value, window_noted)
            noted = pending.get(key)
            if noted is not None:
                noted[0] -= 1
                if noted[0] <= 0:
                    del pending[key]
                return
        self.inventory.take_back(device, kind, value)
        state = self._windows.get(window)
        learned = state.learned.get(device.id) if state is not None else None
        if learned is not None:
            learned.facts.take_back(kind, value)

    def _note_window(self, when: float, not_before: float | None = None) -> float | None:
        """The open window a sighting at ``when`` counts in (see ``note``)."""
        windows = self._windows
        # one open window (nearly always) is every time's window: see _window_at
        if len(windows) == 1:
            return next(iter(windows))
        window = self._window_at(when) if windows else None
        if not_before is not None and window is not None and window < not_before:
            window = not_before
        return window

    def _apply_notes(self) -> None:
        pending, self._pending_notes = self._pending_notes, None
        if not pending:
            return
        devices = self.devices
        note = self.inventory.note
        # a device's notes mostly come together: its device and facts looked up once
        noted_for: tuple[str, float] | None = None
        device: Device | None = None
        profile_facts = FactTally()
        for (device_id, kind, value, window), (times, first, last) in pending.items():
            if (device_id, window) != noted_for:
                noted_for = (device_id, window)
                device = devices.get(device_id)
                if device is not None:
                    profile_facts = self._learned(device_id, window).facts
            if device is None:
                continue
            count = int(times)
            note(device, kind, value, first, count, last)
            profile_facts.add(kind, value, count)

    # ------------------------------------------------------------------ one batch
    def _process(
        self,
        batch: FrameBatch,
        table: PacketTable,
        seconds: npt.NDArray[np.float64],
        packet_flows: _PacketFlows,
    ) -> None:
        sl = slice(0, len(batch))
        t = seconds
        self._pending_notes = {}
        try:
            src_dev, dst_dev, device_list = self._resolve_devices(table, t, sl)
            self._account_devices(table, t, sl, src_dev, dst_dev, device_list)
            self._bind_addresses(table, t, sl, src_dev, device_list)
            self._take_unowned_sides()
            self._account_flows(batch, table, t, sl, packet_flows, (dst_dev, device_list))
        finally:
            self._apply_notes()

    def _resolve_devices(
        self, table: PacketTable, t: npt.NDArray[np.float64], sl: slice
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], list[Device]]:
        """Per packet, the index (into the returned list) of its sending and receiving
        device, -1 where there is none: by MAC on L2 captures, by address without L2.

        A device exists from the first frame it sends, as frame by frame: the frames sent
        to it earlier in the batch have no receiving device (it is made in this batch, so
        its first frame is known)."""
        src_mac = table.src_mac[sl]
        dst_mac = table.dst_mac[sl]
        n = src_mac.shape[0]
        src_dev = np.full(n, -1, np.int64)
        dst_dev = np.full(n, -1, np.int64)
        devices: list[Device] = []
        index: dict[str, int] = {}
        inventory = self.inventory
        first_sent: dict[int, int] = {}  # slot -> its first frame, for devices made here

        def slot(device: Device) -> int:
            i = index.get(device.id)
            if i is None:
                i = index[device.id] = len(devices)
                devices.append(device)
            return i

        def sender(device: Device, row: int, made_before: int) -> int:
            i = slot(device)
            if inventory.made != made_before:
                first_sent.setdefault(i, row)
            return i

        has_l2 = src_mac != 0
        if has_l2.any():
            first, inverse, _ = group_keys(src_mac.view(np.uint64))
            slots = np.full(first.shape[0], -1, np.int64)
            senders = zip(src_mac[first].tolist(), first.tolist(), strict=True)
            for j, (mac, row) in enumerate(senders):
                if mac == 0 or is_group_mac(mac):
                    continue
                made_before = inventory.made
                device = inventory.device_for_mac(mac, float(t[row]))
                slots[j] = sender(device, row, made_before)
            src_dev = slots[inverse]
            dfirst, dinverse, _ = group_keys(dst_mac.view(np.uint64))
            dslots = np.full(dfirst.shape[0], -1, np.int64)
            for j, mac in enumerate(dst_mac[dfirst].tolist()):
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
                versions = table.ip_version[sl][rows]
                zero = np.zeros(rows.shape[0], np.uint64)
                pair_keys = row_keys(hi_col[rows], lo_col[rows], versions.astype(np.uint64), zero)
                first, inverse, _ = group_keys(pair_keys)
                slots = np.full(first.shape[0], -1, np.int64)
                for j in range(first.shape[0]):
                    f = int(first[j])
                    row = rows[f]
                    address = self._address(int(versions[f]), int(hi_col[row]), int(lo_col[row]))
                    if address_scope(address) != "internal":
                        continue
                    if side == "src":
                        made_before = inventory.made
                        device = inventory.device_for_ip(address, float(t[row]))
                        slots[j] = sender(device, int(row), made_before)
                        self._owned_at(address)
                    else:
                        owner = self.inventory.owner_of(address)
                        if owner is not None:
                            slots[j] = slot(owner)
                target[rows] = slots[inverse.reshape(-1)]
        if first_sent:
            made_at = np.full(len(devices), -1, np.int64)
            made_at[list(first_sent)] = list(first_sent.values())
            receiver = np.flatnonzero(dst_dev >= 0)
            early = receiver[receiver < made_at[dst_dev[receiver]]]
            dst_dev[early] = -1
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
        windows = self._window_starts
        counts, totals, last_sent, arp_counts, arp_times = device_traffic(
            src_dev,
            dst_dev,
            self._packet_window,
            table.wire_length[sl],
            t,
            table.ethertype[sl] == ETHERTYPE_ARP,
            len(devices),
            len(windows),
            _SIZE_BIN_OF_LENGTH,
            len(SIZE_BIN_EDGES) + 1,
        )
        moved = np.flatnonzero(totals[:, 0] + totals[:, 2])
        for i, (sent, sent_bytes, received, received_bytes), last in zip(
            moved.tolist(), totals[moved].tolist(), last_sent[moved].tolist(), strict=True
        ):
            device = devices[i]
            device.tx_packets += sent
            device.tx_bytes += sent_bytes
            device.rx_packets += received
            device.rx_bytes += received_bytes
            if last > device.last_seen:
                device.last_seen = last
        journal = self.inventory.journal
        if journal is not None:  # a capture worker reports the devices whose counters moved
            journal.touched.update(devices[i].id for i in moved.tolist())
        row = self._device_rows.id
        device_ids = np.array([row(d.id) for d in devices], np.int64)
        size = len(self._device_rows)
        for w, start in enumerate(windows):
            busy = np.flatnonzero(counts[:, w, 0] + counts[:, w, 2])
            if busy.shape[0]:
                self._windows[start].add_device_counts(device_ids[busy], counts[busy, w], size)
        # each device's first and last ARP of each window: the fact's times, whatever the
        # batch holds besides
        for i, w in zip(*np.nonzero(arp_counts), strict=True):
            arp_count = int(arp_counts[i, w])
            first, last = arp_times[i, w].tolist()
            self.note(devices[i], "protocol", "arp", first, arp_count, last)
            self._learned(devices[i].id, windows[w]).arp_packets += arp_count

    def _bind_addresses(
        self,
        table: PacketTable,
        t: npt.NDArray[np.float64],
        sl: slice,
        src_dev: npt.NDArray[np.int64],
        devices: list[Device],
    ) -> None:
        """Tie source addresses to sending MACs: ARP senders authoritatively, plain traffic
        only for internal addresses of non-routers (see Inventory.bind). A device shown to be
        a router here loses its traffic addresses at the frame that showed it. Flows that
        began to or from an address before such a frame, or before another device's frame
        took it over, start with the owner then, as frame by frame (``_owners_by_row``)."""
        ip_owner = self.inventory.ip_owner
        routers = self.inventory.routers
        owned_before: dict[str, str | None] = {}  # address -> its owner before this batch
        # address -> (row, device that took it, or None: a router found out lost it)
        taken: dict[str, list[tuple[int, str | None]]] = {}
        # address -> (pass, group, device) of each binding that made it the device's; and
        # device -> the row that showed it to be a router: to follow, row by row, an address
        # that changed hands (see _ownership_changes)
        accepted: dict[str, list[tuple[int, int, str]]] = {}
        router_from: dict[str, int] = {}
        passes: list[_BindingPass] = []
        has = (src_dev >= 0) & (table.src_mac[sl] != 0)
        version = table.ip_version[sl]
        arp = table.ethertype[sl] == ETHERTYPE_ARP
        ip = version > 0
        # the IPv4 bindings recorded, per kind of evidence: (rows, each row's group, and
        # per recorded group its device and address), for the windows' address use
        recorded_v4: list[
            tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], dict[int, tuple[Device, str]]]
        ] = []
        for mask, authoritative in ((has & arp, True), (has & ip, False)):
            rows = np.flatnonzero(mask)
            if rows.shape[0] == 0:
                continue
            dev_col = src_dev[rows].astype(np.uint64)
            hi_col = table.src_ip_hi[sl][rows]
            lo_col = table.src_ip_lo[sl][rows]
            ver_col = version[rows].astype(np.uint64)
            keys = row_keys(dev_col, hi_col, lo_col, ver_col)
            first, inverse, counts = group_keys(keys)
            groups: dict[int, tuple[Device, str]] = {}
            recorded_v4.append((rows, inverse, groups))
            passes.append(_BindingPass(rows, inverse, counts[: first.shape[0]], authoritative))
            latest = group_max(inverse, t[rows], first.shape[0])
            for j in range(first.shape[0]):
                r = int(first[j])
                dev_index, hi, lo, ver = (
                    int(dev_col[r]),
                    int(hi_col[r]),
                    int(lo_col[r]),
                    int(ver_col[r]),
                )
                if authoritative:
                    if lo == 0:  # ARP probe from 0.0.0.0
                        continue
                    address = self._address(4, 0, lo)
                else:
                    address = self._address(ver, hi, lo)
                device = devices[dev_index]
                if address not in owned_before:
                    owned_before[address] = ip_owner.get(address)
                was_router = device.id in routers
                unbound = self.inventory.bind(
                    device,
                    address,
                    float(t[rows[r]]),
                    authoritative,
                    int(counts[j]),
                    float(latest[j]),
                )
                if not was_router and device.id in routers:
                    router_from[device.id] = int(rows[r])
                for gone in unbound:
                    owned_before.setdefault(gone, device.id)
                    taken.setdefault(gone, []).append((int(rows[r]), None))
                self._owned_at(address)
                # (an ARP sender's address is IPv4; an address is owned by the device it
                # was last recorded for)
                v4 = authoritative or ver == 4
                if ip_owner.get(address) == device.id:
                    taken.setdefault(address, []).append((int(rows[r]), device.id))
                    accepted.setdefault(address, []).append((len(passes) - 1, j, device.id))
                    if v4:
                        groups[j] = (device, address)
        self._owners_by_row = {}
        for address, takers in taken.items():
            before, taker = owned_before[address], takers[0][1]
            if taker is not None and before in (None, taker) and all(d == taker for _, d in takers):
                continue  # one owner all along, or none before it (see _take_unowned_sides)
            if len(takers) == 1 and not router_from:  # the usual case: one device took it
                changes = [(-1, before), takers[0]]
            else:
                changes = self._ownership_changes(
                    address, before, accepted.get(address, []), passes, router_from
                )
            if changes[-1][1] is None:
                ip_owner.pop(address, None)
            else:
                ip_owner[address] = changes[-1][1]
            self._owners_by_row[address] = changes
        self._note_address_use(t, recorded_v4)

    def _ownership_changes(
        self,
        address: str,
        before: str | None,
        bindings: list[tuple[int, int, str]],
        passes: list[_BindingPass],
        router_from: dict[str, int],
    ) -> list[tuple[int, str | None]]:
        """(row, owner) of ``address`` before the batch (row -1) and at each row where its
        owner changed, frame by frame: each frame that binds it makes it its sender's, and a
        router found out loses it. ``bindings`` are the batch's accepted bindings of it, as
        (pass, group, device); a router's plain traffic binds nothing from the row that
        showed it to be one. (The batch binds once per device and address, at its first
        frame: when the address went back and forth, as between two devices set to one
        static address, the last device to bind it is not the last to send from it.)"""
        events: list[tuple[int, int]] = []  # (row, taker's index; a router's: -1 - index)
        takers: list[str] = []
        for pass_index, group, device_id in bindings:
            binding_pass = passes[pass_index]
            rows = binding_pass.group_rows(group)
            if not binding_pass.authoritative and device_id in router_from:
                rows = rows[rows < router_from[device_id]]
            events.extend(zip(rows.tolist(), itertools.repeat(len(takers))))
            takers.append(device_id)
        confirmed = self.inventory.is_confirmed
        for router, row in router_from.items():
            if not confirmed(router, address):
                events.append((row, -1 - len(takers)))
                takers.append(router)
        events.sort()  # (no two at one row: a row is one frame, from one address)
        changes: list[tuple[int, str | None]] = [(-1, before)]
        owner = before
        for row, k in events:
            if k < 0 and owner != takers[-1 - k]:
                continue  # a router found out loses the address only if it was its own then
            now = takers[k] if k >= 0 else None
            if now != owner:
                owner = now
                changes.append((row, owner))
        return changes

    def _note_address_use(
        self,
        t: npt.NDArray[np.float64],
        recorded_v4: list[
            tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], dict[int, tuple[Device, str]]]
        ],
    ) -> None:
        """Per window, the packets a device sent from each of its IPv4 addresses once it had
        two, and the last one's time (``WindowProfile.address_use``): the ARP detector asks
        which addresses a device used after its newest appeared. A device with one address
        has none (it moved nowhere, and a profile per device would carry it)."""
        second_since: dict[str, float] = {}  # device -> when it had two IPv4 addresses
        for _, _, groups in recorded_v4:
            for device, _ in groups.values():
                if device.id in second_since:
                    continue
                if device.facts.count_of("ip") < 2:  # (most devices: a look-up, no more)
                    second_since[device.id] = math.inf
                    continue
                ips = device.facts["ip"].items()
                firsts = sorted(fact.first_seen for a, fact in ips if ":" not in a)
                second_since[device.id] = firsts[1] if len(firsts) > 1 else math.inf
        if all(since == math.inf for since in second_since.values()):
            return
        windows = self._window_starts
        for rows, inverse, groups in recorded_v4:
            since_of = np.full(int(inverse.max()) + 1, math.inf)  # per group
            for j, (device, _) in groups.items():
                since_of[j] = second_since[device.id]
            keep = t[rows] >= since_of[inverse]
            if not keep.any():
                continue
            group_of = inverse[keep]
            window_of = self._packet_window[rows[keep]]
            cells = (group_of * len(windows) + window_of).astype(np.uint64)
            first, cell_of, packets = group_keys(cells)
            last = group_max(cell_of, t[rows[keep]], first.shape[0])
            for f, count, latest in zip(
                first.tolist(), packets.tolist(), last.tolist(), strict=True
            ):
                device, address = groups[int(group_of[f])]
                learned = self._learned(device.id, windows[int(window_of[f])])
                use = learned.address_use
                if use is None:
                    use = learned.address_use = {}
                before = use.get(address)
                if before is not None:
                    count, latest = count + before[0], max(latest, before[1])
                use[address] = (count, latest)

    def address_packets_since(self, device_id: str, address: str, end: float) -> int:
        """The packets ``device_id`` sent from ``address`` in the open windows from ``end``
        on: counted in its ``ip`` fact already (a batch is accounted before the windows it
        ends close), not yet when frame by frame the window before ``end`` closed."""
        packets = 0
        for window in self._windows.values():
            if window.start >= end:
                learned = window.learned.get(device_id)
                if learned is not None and learned.address_use is not None:
                    packets += learned.address_use.get(address, (0, 0.0))[0]
        return packets

    # ------------------------------------------------------------------ flows
    def _address(self, version: int, hi: int, lo: int) -> str:
        """The text form of an address, from a bounded cache (formatting is slow)."""
        # IPv4 by its 32-bit value, IPv6 by its 128 bits plus bit 128 (one small int, not a
        # tuple: the cache holds hundreds of thousands)
        key = lo if version == 4 else (1 << 128) | (hi << 64) | lo
        text = self._addresses.get(key)
        if text is None:
            if len(self._addresses) >= ADDRESS_CACHE_SIZE:
                self._addresses.clear()
            text = self._addresses[key] = format_ip(version, hi, lo)
        return text

    def _account_flows(
        self,
        batch: FrameBatch,
        table: PacketTable,
        t: npt.NDArray[np.float64],
        sl: slice,
        packet_flows: _PacketFlows,
        receivers: tuple[npt.NDArray[np.int64], list[Device]],
    ) -> None:
        """Flows: start those that begin here, count their packets, learn their services,
        inspect what needs it, and count them per window and conversation. ``receivers``:
        per packet, the index into the list of the device it was sent to (-1 for none), as
        ``_resolve_devices`` gives them."""
        keys, direction, rows, first, inverse = packet_flows
        if rows.shape[0] == 0:
            return
        n = keys.shape[0]
        proto = table.protocol[sl]
        uniq = keys[rows][first]
        groups = np.full(n, -1, np.int64)
        groups[rows] = inverse
        first_rows = rows[first]
        flows = self.flows
        slots = flows.lookup(uniq)
        # a flow idle past its timeout when its next packet came is over, swept or not yet
        known = np.flatnonzero(slots >= 0)
        over = known[
            flows.last_seen[slots[known]] + flows.timeout[slots[known]] < t[first_rows[known]]
        ]
        if over.shape[0]:
            flows.evict(slots[over], "idle")
            slots[over] = -1
        new = np.flatnonzero(slots < 0)
        flows.make_room(new.shape[0], slots)
        if new.shape[0]:
            slots[new] = flows.allocate(uniq[new], proto[first_rows[new]])

        flags = table.tcp_flags[sl]
        # a service becomes known from a SYN-ACK, or from a UDP reply
        replied, synack_side, known_at = account_flow_packets(
            rows,
            inverse,
            slots,
            direction,
            table.wire_length[sl],
            t,
            proto,
            flags,
            flows.packets,
            flows.bytes,
            flows.last_seen,
            flows.server_side,
        )
        self._new_flows_by_address = {}
        self._new_flows = []
        if new.shape[0]:
            self._start_flows(
                table, sl, t, direction, flags, first_rows[new], slots[new], receivers
            )

        # Used and offered since the flow began, in whichever batch the reply came. Frame by
        # frame, the windows before the previous frame's had closed when the reply came: it
        # counts in the oldest then open if the flow began earlier (with one window open,
        # that one).
        floors: list[float | None] = [None] * replied.shape[0]
        if len(self._windows) > 1 and replied.shape[0]:
            before = np.maximum(known_at[replied] - 1, 0)
            starts = self._window_starts
            floors = [
                starts[w] if r > 0 else None
                for w, r in zip(
                    self._packet_window[before].tolist(), known_at[replied].tolist(), strict=True
                )
            ]
        for j, side, not_before in zip(
            replied.tolist(), synack_side[replied].tolist(), floors, strict=True
        ):
            flow = flows.records[int(slots[j])]
            assert flow is not None
            server = side if side >= 0 else 1 - flow.client_side
            self._learn_service(flow, server, flow.first_seen, not_before, int(known_at[j]))

        self._inspect(batch, table, t, sl, groups, direction, slots)
        self._name_new_flows()
        # flows whose service or protocol became known take their new keys once per batch
        changes, self._key_changes = self._key_changes, _KeyChanges({}, {})
        changed = changes.recognised_at.keys() | changes.server_told_at.keys()
        self._assign_keys([flow for slot in changed if (flow := flows.records[slot]) is not None])
        parts = self._key_parts(changes, rows, inverse, slots, groups.shape[0])
        self._account_flow_windows(rows, inverse, slots, changes, parts)
        self._conversations(table, t, sl, groups, direction, slots, changes, parts)

    def _start_flows(
        self,
        table: PacketTable,
        sl: slice,
        t: npt.NDArray[np.float64],
        direction: npt.NDArray[np.uint8],
        flags: npt.NDArray[np.uint8],
        rows: npt.NDArray[np.int64],
        slots: npt.NDArray[np.int64],
        receivers: tuple[npt.NDArray[np.int64], list[Device]],
    ) -> None:
        """Records for the flows that start in this batch (``rows``: each one's first packet).

        A side's device is its address's owner, but a DHCP reply's client is the device its
        destination MAC names when there is one: an address a server hands out may still be
        owned by the device that last had it (months before), and the client makes it its
        own only after the reply (frame by frame; one batch holding the client's ARP had
        already moved it). To an address nobody owns, the reply's client side waits for the
        device that takes the address (``_take_unowned_sides``), as any flow's: a capture
        worker that did not see the client send would not know it."""
        swap = direction[rows].astype(np.bool_)
        columns = []
        for mine, theirs in (
            (table.src_ip_hi[sl][rows], table.dst_ip_hi[sl][rows]),
            (table.src_ip_lo[sl][rows], table.dst_ip_lo[sl][rows]),
            (table.src_port[sl][rows], table.dst_port[sl][rows]),
        ):
            columns.append(np.where(swap, theirs, mine).tolist())
            columns.append(np.where(swap, mine, theirs).tolist())
        a_hi, b_hi, a_lo, b_lo, a_port, b_port = columns
        protocol = table.protocol[sl][rows]
        # a first packet that is a SYN-ACK was sent by the server: the client is the other
        # side; so is a DHCP server's unicast offer or acknowledgement to a client's new
        # address (its port 68 answering later is a renewal, not a service)
        synack = (protocol == PROTO_TCP) & ((flags[rows] & 0x12) == 0x12)
        src_port, dst_port = table.src_port[sl][rows], table.dst_port[sl][rows]
        dhcp_reply = (protocol == PROTO_UDP) & (
            ((src_port == 67) & (dst_port == 68)) | ((src_port == 547) & (dst_port == 546))
        )
        client = np.where(synack | dhcp_reply, 1 - swap, swap).astype(np.int64).tolist()
        receiver_rows, receiver_devices = receivers
        replies = rows[dhcp_reply]
        dhcp_clients: dict[int, str] = {  # row -> the device a DHCP reply was sent to
            row: receiver_devices[index].id
            for row, index in zip(replies.tolist(), receiver_rows[replies].tolist(), strict=True)
            if index >= 0
        }
        pending = self._pending_notes
        assert pending is not None
        ip_owner = self.inventory.ip_owner
        devices = self.devices
        records = self.flows.records
        by_address = self._new_flows_by_address
        dns_names = self._dns_names
        address_of, peer_label = self._address, self._peer_label
        only_window = next(iter(self._windows)) if len(self._windows) == 1 else None
        started: dict[tuple[str, float], int] = {}
        begun: list[Flow] = []
        owners_by_row = self._owners_by_row
        for j, (version, proto, when, slot, client_side, row) in enumerate(
            zip(
                table.ip_version[sl][rows].tolist(),
                protocol.tolist(),
                t[rows].tolist(),
                slots.tolist(),
                client,
                rows.tolist(),
                strict=True,
            )
        ):
            address_a = address_of(version, a_hi[j], a_lo[j])
            address_b = address_of(version, b_hi[j], b_lo[j])
            device_a, device_b = ip_owner.get(address_a), ip_owner.get(address_b)
            if owners_by_row:
                if address_a in owners_by_row:
                    device_a = _owner_at_row(owners_by_row[address_a], row, device_a)
                if address_b in owners_by_row:
                    device_b = _owner_at_row(owners_by_row[address_b], row, device_b)
            if dhcp_clients and row in dhcp_clients:  # over a stale owner only (see above)
                if client_side and device_b is not None:
                    device_b = dhcp_clients[row]
                elif not client_side and device_a is not None:
                    device_a = dhcp_clients[row]
            if device_a is not None and device_a not in devices:
                device_a = None
            if device_b is not None and device_b not in devices:
                device_b = None
            peer_a = device_b or peer_label(address_b)  # how side a names side b
            peer_b = device_a or peer_label(address_a)
            flow = Flow(
                slot,
                proto,
                PORTS[a_port[j]],
                PORTS[b_port[j]],
                when,
                client_side,
                address_a,
                address_b,
                device_a,
                device_b,
                peer_a,
                peer_b,
            )
            # named (peer_name fact) after the batch's DNS answers are in: see _resolved
            names = (
                dns_names.get(address_b) if device_a is not None else None,
                dns_names.get(address_a) if device_b is not None else None,
            )
            if names != (None, None):
                flow.peer_names = names
            records[slot] = flow
            window = only_window if only_window is not None else self._window_at(when)
            if device_a is None and peer_b.startswith("ip:"):
                self._index_unowned_side(address_a, flow, window)
            if device_b is None and peer_a.startswith("ip:"):
                self._index_unowned_side(address_b, flow, window)
            by_address.setdefault(address_a, []).append(flow)
            by_address.setdefault(address_b, []).append(flow)
            begun.append(flow)
            transport = flow.transport
            for device_id, peer in ((device_a, peer_a), (device_b, peer_b)):
                if device_id is None:
                    continue
                for noted in (
                    (device_id, "peer", peer, window),
                    (device_id, "protocol", transport, window),
                ):
                    seen = pending.get(noted)
                    if seen is None:
                        pending[noted] = [1, when, when]
                    else:
                        seen[0] += 1
                        if when < seen[1]:
                            seen[1] = when
                        if when > seen[2]:
                            seen[2] = when
            sender = device_b if client_side else device_a
            if sender is None:
                continue
            key = (sender, window)
            started[key] = started.get(key, 0) + 1
            # Discovery and telemetry sent to a group (IntelliVue, WS-Discovery, SSDP) get no
            # reply to learn the service from: the group port is the service the sender uses.
            target = 1 - client_side
            if proto == PROTO_UDP and address_scope(flow.address(target)) == "multicast":
                used = service_name(proto, flow.port(target))
                self.note(devices[sender], "service_used", used, when)
        self._new_flows.extend(begun)
        self._assign_keys(begun)
        for (device_id, window), count in started.items():
            self._learned(device_id, window).flows_started += count

    def _peer_label(self, address: str) -> str:
        """How a peer that is no inventory device is named: ``ext:ADDR`` or ``ip:ADDR``, one
        shared string per address (flows to one peer are many)."""
        label = self._peer_labels.get(address)
        if label is None:
            if len(self._peer_labels) >= ADDRESS_CACHE_SIZE:
                self._peer_labels.clear()
            scope = address_scope(address)
            label = self._peer_labels[address] = (
                f"ext:{address}" if scope == "external" else f"ip:{address}"
            )
        return label

    def _index_unowned_side(self, address: str, flow: Flow, window: float) -> None:
        """``flow`` began to or from ``address`` with no device there, and its first facts
        went into ``window``."""
        if address_scope(address) == "internal":  # a group address never gets an owner
            self._unowned_sides.setdefault(address, []).append((flow, window))

    def _owned_at(self, address: str) -> None:
        """``address`` may have got an owner: flows waiting for one take it in
        ``_take_unowned_sides``."""
        if address in self._unowned_sides:
            self._owned_now[address] = None

    def _take_unowned_sides(self) -> None:
        """Give each live flow's side at an address that got an owner in this batch to that
        device, as one batch holding the flow's first packet and the owner's would have
        from the start. The usual case is a server first seen answering a connection, or a
        DHCP client sending from the address its server just gave it; frame by frame, the
        owner came one packet late.

        - The device takes the flow's peer and protocol facts from the flow's first packet,
          and the other side's device names it as its peer from then: the ``ip:ADDR`` it
          had named instead is taken back (one sighting per flow; the value goes when none
          is left), in the inventory and in the window its flow's first facts went into if
          still open, or from the batch's notes if that device took its own side in this
          batch.
        - The flow's packets so far count for the device in the window of the flow's last
          packet (the oldest open one if that one closed, as for a late fact), and the flow
          as one it started if it is the client; what was sent to it before it first sent
          counts as received by nobody (see _resolve_devices). For the other side, they move
          from its account under ``ip:ADDR`` to the one under the device in the open
          windows, and its messages there move to the conversation with the device. Both
          count those before the flow's content was recognised under its transport.
        - From this batch on, its packets, services and messages count for it as for any
          flow. What closed windows hold stays as it was."""
        owned, self._owned_now = self._owned_now, {}
        records = self.flows.records
        taken: list[tuple[Flow, int, Device]] = []
        for address in owned:
            owner = self.inventory.owner_of(address)
            if owner is None:  # refused (a router's forwarded traffic): still waiting
                continue
            for flow, named_in in self._unowned_sides.pop(address, ()):
                if records[flow.slot] is not flow:
                    continue  # ended
                for side in (0, 1):
                    if flow.address(side) == address and flow.device(side) is None:
                        self._take_side(flow, side, owner, named_in)
                        taken.append((flow, side, owner))
        if not taken:
            return
        flows = self.flows
        named_before = [
            (int(flows.account[flow.slot, 1 - side]), int(flows.conversation[flow.slot, 1 - side]))
            for flow, side, _ in taken
        ]
        self._assign_keys([flow for flow, _, _ in taken])
        if not self._windows:
            return
        for (flow, side, _), (old_account, old_conversation) in zip(
            taken, named_before, strict=True
        ):
            account = int(flows.account[flow.slot, side])
            packets = int(flows.packets[flow.slot].sum())
            # those before its content was recognised counted under its transport
            before = min(flow.packets_before_app, packets) if flow.app is not None else 0
            window = self._windows[self._window_at(float(flows.last_seen[flow.slot]))]
            if packets and account >= 0:
                accounts = [account]
                if before:
                    accounts.append(self._transport_account(account, flow))
                window.add_packets(
                    np.array(accounts, np.int64),
                    np.array([packets - before, before][: len(accounts)], np.int64),
                    len(self._accounts),
                )
            if packets and old_account >= 0:
                new_account = int(flows.account[flow.slot, 1 - side])
                self._move_packets(old_account, new_account, packets - before)
                if before:
                    self._move_packets(
                        self._transport_account(old_account, flow),
                        self._transport_account(new_account, flow),
                        before,
                    )
            new_conversation = int(flows.conversation[flow.slot, 1 - side])
            if old_conversation >= 0 and new_conversation != old_conversation:
                self._move_messages(old_conversation, new_conversation)

    def _move_packets(self, old: int, new: int, packets: int) -> None:
        """Move up to ``packets`` packets from account ``old`` to account ``new`` in the open
        windows, the newest first (where a flow's packets mostly are)."""
        size = len(self._accounts)
        for window in reversed(self._windows.values()):
            if not packets:
                return
            counts = window.account_packets
            moved = min(int(counts[old]), packets) if old < counts.shape[0] else 0
            if moved:
                counts[old] -= moved
                window.add_packets(np.array([new], np.int64), np.array([moved], np.int64), size)
                packets -= moved

    def _transport_account(self, account: int, flow: Flow) -> int:
        """The account that differs from ``account`` only by having ``flow``'s transport as
        its protocol, where the flow's packets before its content was recognised count."""
        row = self._accounts.rows(np.array([account], np.int64)).copy()
        row[0, 3] = self._key_names.ids[flow.transport]
        return int(self._accounts.intern(row)[0])

    def _move_messages(self, old: int, new: int) -> None:
        """The open windows' messages of conversation ``old`` become ``new``'s (when they move
        into the profiles: a window holds an array of them per batch), and so does its last
        message time (a message right after it continues its burst)."""
        for window in self._windows.values():
            window.renamed[old] = new
        last = self._conversation_last
        last[new] = max(last[new], last[old])

    def _take_side(self, flow: Flow, side: int, device: Device, named_in: float) -> None:
        """``device`` is ``flow``'s side ``side`` from its start; the other side's device
        named it by its address in window ``named_in``."""
        other = self.devices.get(flow.device(1 - side) or "")
        named = flow.peer(1 - side)  # how the other side named this one: ip:ADDR
        if side:
            flow.device_b, flow.peer_a = device.id, device.id
        else:
            flow.device_a, flow.peer_b = device.id, device.id
        when = flow.first_seen
        self.note(device, "peer", flow.peer(side), when)
        self.note(device, "protocol", flow.transport, when)
        waiting = self._services_waiting.pop(flow.slot, None)
        if waiting is not None and waiting[0] is flow:
            service = service_name(flow.protocol, flow.port(flow.server_side))
            kind = "service_offered" if side == flow.server_side else "service_used"
            self.note(device, kind, service, waiting[1])
        if side == flow.client_side:  # a DHCP client given its address: it began the flow
            self._learned(device.id, self._window_at(when)).flows_started += 1
        if other is None:
            return
        self.note(other, "peer", device.id, when)
        self._take_back(other, "peer", named, when, named_in)

    def _learn_service(
        self,
        flow: Flow,
        server_side: int,
        when: float,
        not_before: float | None = None,
        row: int = -1,
    ) -> None:
        """``flow``'s server is its side ``server_side``, as told at the batch's ``row``."""
        guessed = flow.service()
        flow.server_side = server_side
        self.flows.server_side[flow.slot] = server_side
        service = service_name(flow.protocol, flow.port(server_side))  # shared, as facts keep it
        server = self.devices.get(flow.device(server_side) or "")
        client = self.devices.get(flow.device(1 - server_side) or "")
        if server is not None:
            self.note(server, "service_offered", service, when, not_before=not_before)
        if client is not None:
            self.note(client, "service_used", service, when, not_before=not_before)
        if (server is None and address_scope(flow.address(server_side)) == "internal") or (
            client is None and address_scope(flow.address(1 - server_side)) == "internal"
        ):
            self._services_waiting[flow.slot] = (flow, when)
        if service != guessed:
            conversations = self.flows.conversation[flow.slot]
            self._key_changes.server_told_at[flow.slot] = (
                row,
                guessed,
                (int(conversations[0]), int(conversations[1])),
            )

    def _assign_keys(self, flows: list[Flow]) -> None:
        """Intern the protocol label and per side the accounting and conversation keys of
        ``flows`` (new ones, or ones whose service or protocol changed) into the flow table's
        columns (-1 for a side that is no inventory device)."""
        if not flows:
            return
        labels, rows, places = self._side_keys(
            [(flow, flow.service(), flow.app or flow.transport) for flow in flows]
        )
        slots = np.array([flow.slot for flow in flows], np.int64)
        table = self.flows
        table.label[slots] = labels
        table.account[slots] = -1
        table.conversation[slots] = -1
        if not rows:
            return
        keys = np.array(rows, np.int32)
        where = np.array(places, np.int64)
        row_slots, row_sides = slots[where // 2], where % 2
        table.account[row_slots, row_sides] = self._accounts.intern(keys)
        table.conversation[row_slots, row_sides] = self._conversation_table.intern(keys[:, :3])
        size = self._conversation_last.shape[0]
        if len(self._conversation_table) > size:
            while size < len(self._conversation_table):
                size *= 2
            grown = np.full(size, -1.0)
            grown[: self._conversation_last.shape[0]] = self._conversation_last
            self._conversation_last = grown

    def _side_keys(
        self, keyed: list[tuple[Flow, str, str]]
    ) -> tuple[list[int], list[tuple[int, int, int, int]], list[int]]:
        """For each (flow, service, protocol) of ``keyed``: the protocol's label, and per
        side that is an inventory device its accounting key (device, peer, service,
        protocol) as name ids, with its place (2 * index in ``keyed`` + side)."""
        name = self._key_names.ids  # numbers a name, new or not
        label = self._labels.ids
        labels: list[int] = []
        rows: list[tuple[int, int, int, int]] = []
        places: list[int] = []
        for j, (flow, service_text, protocol) in enumerate(keyed):
            labels.append(label[protocol])
            service, protocol_name = name[service_text], name[protocol]
            if flow.device_a is not None:
                rows.append((name[flow.device_a], name[flow.peer_a], service, protocol_name))
                places.append(2 * j)
            if flow.device_b is not None:
                rows.append((name[flow.device_b], name[flow.peer_b], service, protocol_name))
                places.append(2 * j + 1)
        return labels, rows, places

    def _key_parts(
        self,
        changes: _KeyChanges,
        rows: npt.NDArray[np.int64],
        row_groups: npt.NDArray[np.int64],
        slots: npt.NDArray[np.int64],
        size: int,
    ) -> npt.NDArray[np.int64] | None:
        """Per row of the batch (``size`` rows; ``rows`` those of a flow, ``row_groups``
        their flows), which parts of its flow's key it counts under: bit 0 set for the
        service its flow has now, bit 1 for the protocol (3, both, unless its flow changed
        them at a later row: see ``_KeyChanges``). None when no flow changed. A flow
        recognised in the batch learns how many of its packets came before."""
        recognised, told = changes
        if not recognised and not told:
            return None
        # per flow of the batch, the row from which its protocol and its service are the
        # ones it has now (-1: from before the batch)
        order = np.argsort(slots)
        protocol_from = _per_flow(recognised, slots, order)
        service_from = _per_flow({slot: row for slot, (row, _, _) in told.items()}, slots, order)
        at = np.flatnonzero(((protocol_from >= 0) | (service_from >= 0))[row_groups])
        changed_rows, changed_groups = rows[at], row_groups[at]
        since_recognised = changed_rows >= protocol_from[changed_groups]
        parts = np.full(size, 3, np.int64)
        parts[changed_rows] = (changed_rows >= service_from[changed_groups]) + 2 * since_recognised
        if recognised:
            recognised_slots = slots[protocol_from >= 0]
            after = np.bincount(changed_groups[since_recognised], minlength=slots.shape[0])
            before = self.flows.packets[recognised_slots].sum(axis=1) - after[protocol_from >= 0]
            records = self.flows.records
            for slot, count in zip(recognised_slots.tolist(), before.tolist(), strict=True):
                flow = records[slot]
                if flow is not None:
                    flow.packets_before_app = count
        return parts

    def _keys_before(
        self,
        changes: _KeyChanges,
        slots: npt.NDArray[np.int64],
        parts: npt.NDArray[np.int64],
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """The protocol labels and per side the accounts (-1: no device) of flows at
        ``slots`` under the key ``parts`` say (see ``_key_parts``)."""
        records = self.flows.records
        keyed = []
        for slot, part in zip(slots.tolist(), parts.tolist(), strict=True):
            flow = records[slot]
            assert flow is not None
            service = flow.service() if part & 1 else changes.server_told_at[slot][1]
            # before its content was recognised, it had no application
            protocol = (flow.app or flow.transport) if part & 2 else flow.transport
            keyed.append((flow, service, protocol))
        labels, rows, places = self._side_keys(keyed)
        accounts = np.full(2 * slots.shape[0], -1, np.int64)
        if rows:
            accounts[places] = self._accounts.intern(np.array(rows, np.int32))
        return np.array(labels, np.int64), accounts.reshape(-1, 2)

    def _account_flow_windows(
        self,
        rows: npt.NDArray[np.int64],
        row_groups: npt.NDArray[np.int64],
        slots: npt.NDArray[np.int64],
        changes: _KeyChanges,
        parts: npt.NDArray[np.int64] | None,
    ) -> None:
        """Packets per (flow, window, key), summed per accounting key into the profiles of
        the devices on either side, and per protocol label into ``protocol_packets``. A
        packet counts under the key its flow had when it passed (see ``_KeyChanges``)."""
        nw = len(self._window_starts)
        cell_keys = row_groups * nw + self._packet_window[rows]
        if parts is not None:
            cell_keys = cell_keys * 4 + parts[rows]
        cell_first, _, totals = group_keys(cell_keys.astype(np.uint64))
        cells = cell_keys[cell_first]
        flows = self.flows
        if parts is not None:
            cell_parts = cells % 4
            cells //= 4
        cell_slots = slots[cells // nw]
        cell_windows = cells % nw
        labels = flows.label[cell_slots].astype(np.int64)
        cell_accounts = flows.account[cell_slots]
        if parts is not None:
            before = np.flatnonzero(cell_parts != 3)
            if before.shape[0]:
                labels[before], cell_accounts[before] = self._keys_before(
                    changes, cell_slots[before], cell_parts[before]
                )
        per_label = np.bincount(labels, weights=totals)
        for label in np.flatnonzero(per_label).tolist():
            self.protocol_packets[self._labels.names[label]] += int(per_label[label])
        size = len(self._accounts)
        for side in (0, 1):
            accounts = cell_accounts[:, side]
            known = accounts >= 0
            if nw == 1:  # most batches
                self._windows[self._window_starts[0]].add_packets(
                    accounts[known], totals[known], size
                )
                continue
            for w in np.unique(cell_windows[known]).tolist():
                here = known & (cell_windows == w)
                self._windows[self._window_starts[w]].add_packets(
                    accounts[here], totals[here], size
                )

    def _settle(self, window: _WindowState) -> None:
        """Move what devices and flows added to an open window into its profiles."""
        profiles = window.profiles
        counts = window.device_counts
        for number in np.flatnonzero(counts[:, 0] + counts[:, 2]).tolist():
            device_id = self._device_rows.names[number]
            profile = profiles.get(device_id) or self._profile_in(window, device_id)
            tx_packets, tx_bytes, rx_packets, rx_bytes, *histogram = counts[number].tolist()
            profile.tx_packets += tx_packets
            profile.tx_bytes += tx_bytes
            profile.rx_packets += rx_packets
            profile.rx_bytes += rx_bytes
            profile.size_histogram = [
                a + b for a, b in zip(profile.size_histogram, histogram, strict=True)
            ]
        window.device_counts = np.zeros((0, DEVICE_COUNT_COLUMNS), np.int64)
        packets = window.account_packets
        names = self._key_names.names
        touched = np.flatnonzero(packets)
        for account, (device, peer_number, service_number, protocol_number) in zip(
            touched.tolist(), self._accounts.rows(touched).tolist(), strict=True
        ):
            device_id, peer = names[device], names[peer_number]
            service, protocol = names[service_number], names[protocol_number]
            profile = profiles.get(device_id) or self._profile_in(window, device_id)
            profile.peers.add(peer)
            count = int(packets[account])
            profile.services[service] = profile.services.get(service, 0) + count
            profile.protocols[protocol] = profile.protocols.get(protocol, 0) + count
        window.account_packets = np.zeros(0, np.int64)
        renamed, window.renamed = window.renamed, {}
        if not window.messages:
            return
        conversations = np.concatenate([c for c, _ in window.messages])
        if renamed:
            alias = np.arange(len(self._conversation_table), dtype=conversations.dtype)
            alias[list(renamed)] = list(renamed.values())
            conversations = alias[conversations]
        times = np.concatenate([t for _, t in window.messages])
        window.messages = []
        order = np.argsort(conversations, kind="stable")  # capture order within each
        ids, bounds = np.unique(conversations[order], return_index=True)
        ordered = times[order]
        ends = [*bounds[1:].tolist(), ordered.shape[0]]
        keys = self._conversation_table.rows(ids).tolist()
        for (device, peer, service), begin, end in zip(keys, bounds.tolist(), ends, strict=True):
            device_id = names[device]
            # one string per peer and service, however many devices and windows hold it as a
            # key (their baselines' cadences, the silence detector): interned strings go when
            # the last of them does
            conversation = sys.intern(f"{names[peer]}|{names[service]}")
            profile = profiles.get(device_id) or self._profile_in(window, device_id)
            kept = profile.conversations.setdefault(conversation, [])
            room = MAX_MESSAGES_PER_WINDOW - len(kept)
            if room > 0:
                kept.extend(ordered[begin : min(end, begin + room)].tolist())

    def _sweep_flows(self, now: float | None) -> None:
        """Evict idle flows every ``FLOW_SWEEP_SECONDS`` of capture time, and drop the
        interned keys no live flow uses any more."""
        if now is None or now < self._next_sweep:
            return
        self._next_sweep = now + FLOW_SWEEP_SECONDS
        self.flows.evict(self.flows.idle(now), "idle")
        records = self.flows.records
        self._unowned_sides = {
            address: live
            for address, flows in self._unowned_sides.items()
            if (live := [(flow, w) for flow, w in flows if records[flow.slot] is flow])
        }
        self._services_waiting = {
            slot: waiting
            for slot, waiting in self._services_waiting.items()
            if records[slot] is waiting[0]
        }
        most = KEYS_PER_FLOW * len(self.flows) + KEY_SLACK
        if len(self._accounts) > most or len(self._key_names) > most:
            self._compact_keys()
        if len(self._device_rows) > 2 * len(self.devices) + 4096:
            for window in self._windows.values():
                self._settle(window)
            self._device_rows = NameTable()

    def _compact_keys(self) -> None:
        """Intern anew the keys of the live flows only, keeping each conversation's last
        message time."""
        for window in self._windows.values():
            self._settle(window)
        old_names = self._key_names.names
        old = len(self._conversation_table)
        old_conversations = self._conversation_table.rows(np.arange(old))
        old_last = self._conversation_last[:old]
        self._key_names = NameTable()
        self._accounts = KeyTable(4)
        self._conversation_table = KeyTable(3)
        self._labels = NameTable()
        self._conversation_last = np.full(1024, -1.0)
        # a slice at a time: at once, 500,000 flows' keys as Python tuples and the old
        # conversations as int64 rows made the flood's peak (the heap at 1,040 MiB, not 954)
        live = self.flows.flows()
        for begin in range(0, len(live), COMPACTION_SLICE):
            self._assign_keys(live[begin : begin + COMPACTION_SLICE])
        if old == 0:
            return
        names_now = self._key_names.ids
        renumbered = np.fromiter(
            (names_now.get(n, -1) for n in old_names), np.int32, count=len(old_names)
        )
        for begin in range(0, old, COMPACTION_SLICE):
            carried = renumbered[old_conversations[begin : begin + COMPACTION_SLICE]]
            alive = np.flatnonzero((carried >= 0).all(axis=1))
            ids = self._conversation_table.lookup(carried[alive])
            kept = ids >= 0
            self._conversation_last[ids[kept]] = old_last[begin + alive[kept]]

    # ------------------------------------------------------------------ application metadata
    def _inspect(
        self,
        batch: FrameBatch,
        table: PacketTable,
        t: npt.NDArray[np.float64],
        sl: slice,
        groups: npt.NDArray[np.int64],
        direction: npt.NDArray[np.uint8],
        slots: npt.NDArray[np.int64],
    ) -> None:
        """Decode the batch's payloads worth decoding, then let its DNS answers name the
        addresses they resolve in capture order (see ``_name_by_answers``)."""
        self._answers = []
        udp_rows, leaders = self._decode_payloads(batch, table, t, sl, groups, direction, slots)
        if self._answers:
            self._name_by_answers(udp_rows, leaders, t)

    def _decode_payloads(
        self,
        batch: FrameBatch,
        table: PacketTable,
        t: npt.NDArray[np.float64],
        sl: slice,
        groups: npt.NDArray[np.int64],
        direction: npt.NDArray[np.uint8],
        slots: npt.NDArray[np.int64],
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """Returns the inspected UDP rows and, per row, the row whose decoding stood for it
        (itself, or the first of the repeats it was grouped with)."""
        flows = self.flows
        records = flows.records
        payload_len = table.payload_length[sl]
        buffer = batch.buffer
        offsets = table.payload_offset[sl]
        chosen, udp_rows, tcp_rows, feed = select_payloads(
            groups,
            slots,
            payload_len,
            table.fragment[sl],
            table.protocol[sl],
            table.src_port[sl],
            table.dst_port[sl],
            _INSPECTED_UDP_PORT,
            buffer,
            offsets,
            flows.followed,
            flows.budget,
            FOLLOWED_MAX_PAYLOAD,
        )
        # Announcements repeat byte for byte within a flow: decode each distinct one once,
        # counting its repeats per window (first and last time kept). DNS lookups each take a
        # flow of their own (a fresh source port) and ask the same questions again and again:
        # they group by message without its id, by sender and decoder. What a DNS message
        # says is about its sender alone (a client's query, a resolver's answer, a host's
        # announcement), so a resolver's one answer to every client decodes once.
        leaders = udp_rows
        # (row, repeats, last time, a hash of what its decoding depends on or 0)
        once: list[tuple[int, int, float, int]] = []
        followers: list[tuple[int, int]] = []  # (row, the row whose decoding names its flow)
        if udp_rows.shape[0]:
            dns = (
                _DNS_PORT[table.src_port[sl][udp_rows]] | _DNS_PORT[table.dst_port[sl][udp_rows]]
            ) & (payload_len[udp_rows] >= DNS_HEADER)
            sender = row_keys(
                table.src_ip_hi[sl][udp_rows],
                table.src_ip_lo[sl][udp_rows],
                _udp_decoders(table.src_port[sl][udp_rows], table.dst_port[sl][udp_rows]),
                np.zeros(udp_rows.shape[0], np.uint64),
            ).view(np.int64)
            salt = np.where(dns, sender, groups[udp_rows] * 2 + direction[udp_rows])
            # repeats count in the window they were seen in
            salt = salt * 1_000_003 + self._packet_window[sl][udp_rows]
            skip = np.zeros(offsets.shape[0], np.int32)
            skip[udp_rows[dns]] = 2
            keys = payload_keys(buffer, offsets + skip, payload_len - skip, udp_rows, salt)
            # a resolver's answers to one question differ in their TTLs too, which it counts
            # down: a DNS message keys by what its decoding depends on where that is shown
            contents = np.zeros(udp_rows.shape[0], np.uint64)
            dns_at = np.flatnonzero(dns)
            if dns_at.shape[0]:
                contents[dns_at], salted = dns_content_keys(
                    buffer, offsets, payload_len, udp_rows[dns_at], salt[dns_at]
                )
                keys[dns_at] = np.where(salted != 0, salted, keys[dns_at])
            first, inverse, counts = group_keys(keys)
            last = group_max(inverse, t[udp_rows], first.shape[0])
            once = [
                (int(udp_rows[f]), int(c), float(x), int(content))
                for f, c, x, content in zip(
                    first.tolist(),
                    counts.tolist(),
                    last.tolist(),
                    contents[first].tolist(),
                    strict=True,
                )
            ]
            leaders = udp_rows[first][inverse]
            shared = np.flatnonzero((leaders != udp_rows) & dns)
            followers = list(zip(udp_rows[shared].tolist(), leaders[shared].tolist(), strict=True))
        once += self._followed_once(
            buffer, offsets, payload_len, t, groups, direction, slots, tcp_rows[feed]
        )
        once += [(i, 1, float(t[i]), 0) for i in tcp_rows[~feed].tolist()]
        once.sort()
        recognised_at = self._decode_rows(batch, table, t, groups, direction, slots, once)
        for row, leader_row in followers:
            flow = records[int(slots[groups[row]])]
            leader = records[int(slots[groups[leader_row]])]
            assert flow is not None and leader is not None
            if leader.app is None:
                continue
            if flow.app is None:
                self._set_app(flow, leader.app, row)
            else:  # told by a later row of its own: frame by frame, this one told first
                recognised = self._key_changes.recognised_at
                if recognised.get(flow.slot, -1) > row:
                    recognised[flow.slot] = row
        if (recognised_at == groups.shape[0]).all():
            return udp_rows, leaders
        # A flow recognised as HL7 or DICOM in this batch is followed from that packet on, as
        # it would have been had the batch been cut right after it.
        tcp = (payload_len > 0) & (table.fragment[sl] != 2) & (table.protocol[sl] == PROTO_TCP)
        small = payload_len <= FOLLOWED_MAX_PAYLOAD
        rows = np.flatnonzero(tcp & small & ~chosen & (groups >= 0))
        rows = rows[rows > recognised_at[groups[rows]]]
        if rows.shape[0]:
            rows = rows[could_be_metadata(buffer, offsets[rows], payload_len[rows])]
            later = self._followed_once(
                buffer, offsets, payload_len, t, groups, direction, slots, rows
            )
            self._decode_rows(batch, table, t, groups, direction, slots, sorted(later))
        return udp_rows, leaders

    def _followed_once(
        self,
        buffer: npt.NDArray[np.uint8],
        offsets: npt.NDArray[np.int64],
        payload_len: npt.NDArray[np.int32],
        t: npt.NDArray[np.float64],
        groups: npt.NDArray[np.int64],
        direction: npt.NDArray[np.uint8],
        slots: npt.NDArray[np.int64],
        rows: npt.NDArray[np.int64],
    ) -> list[tuple[int, int, float, int]]:
        """The payloads of HL7 and DICOM flows worth decoding, as (row, repeats, last time,
        content key): DICOM image fragments never, and an HL7 feed's messages once per
        distinct routing and type per direction (its time and control id aside). The content
        key of an HL7 message hashes what its facts depend on (0 for other payloads): the
        decoder decodes each once, across batches (a feed says the same thing all day)."""
        if rows.shape[0] == 0:
            return []
        labels = self.flows.label[slots[groups[rows]]]
        dicom = labels == self._labels.ids.get("dicom", -1)
        if dicom.any():
            images = np.zeros(rows.shape[0], np.bool_)
            images[dicom] = dicom_data_only(buffer, offsets, payload_len, rows[dicom])
            rows, labels = rows[~images], labels[~images]
        hl7 = labels == self._labels.ids.get("hl7", -1)
        feed = rows[hl7]
        # repeats count in the window they were seen in, as for datagrams
        salt = (groups[feed] * 2 + direction[feed]) * 1_000_003 + self._packet_window[feed]
        keys = hl7_routing_keys(buffer, offsets, payload_len, feed, salt)
        routed = keys != 0
        first, inverse, counts = group_keys(keys[routed])
        last = group_max(inverse, t[feed[routed]], first.shape[0])
        leaders = feed[routed][first]
        contents = hl7_routing_keys(
            buffer, offsets, payload_len, leaders, np.zeros(leaders.shape[0], np.int64)
        )
        once = [
            (f, int(c), float(x), k)
            for f, c, x, k in zip(
                leaders.tolist(), counts.tolist(), last.tolist(), contents.tolist(), strict=True
            )
        ]
        alone = (*rows[~hl7].tolist(), *feed[~routed].tolist())
        return once + [(i, 1, float(t[i]), 0) for i in alone]

    def _decode_rows(
        self,
        batch: FrameBatch,
        table: PacketTable,
        t: npt.NDArray[np.float64],
        groups: npt.NDArray[np.int64],
        direction: npt.NDArray[np.uint8],
        slots: npt.NDArray[np.int64],
        once: list[tuple[int, int, float, int]],
    ) -> npt.NDArray[np.int64]:
        """Decode the payload of each (row, repeats, last time, content key) of ``once``, in
        its order. Returns per group the row at which its flow was recognised as HL7 or
        DICOM (the number of rows where it was not). A flow recognised as TLS or MQTT has
        nothing more decoded in the batch."""
        recognised_at = np.full(slots.shape[0], groups.shape[0], np.int64)
        if not once:
            return recognised_at
        # each row's numbers read as lists at once: read from the arrays one element at a
        # time, they cost about 1 µs a row
        rows = np.fromiter((entry[0] for entry in once), np.int64, len(once))
        row_groups = groups[rows]
        records = self.flows.records
        buffer = batch.buffer.data
        opaque: set[int] = set()  # flows recognised as TLS or MQTT in this batch
        # image fragments, skipped once their flow is known as DICOM (see _followed_once)
        images = dicom_data_only(batch.buffer, table.payload_offset, table.payload_length, rows)
        for entry, group, slot, start, length, src, dst, when, sender, image in zip(
            once,
            row_groups.tolist(),
            slots[row_groups].tolist(),
            table.payload_offset[rows].tolist(),
            table.payload_length[rows].tolist(),
            table.src_port[rows].tolist(),
            table.dst_port[rows].tolist(),
            t[rows].tolist(),
            direction[rows].tolist(),
            images.tolist(),
            strict=True,
        ):
            if group in opaque:
                continue  # as if the batch had been cut after the packet that told
            i, repeats, last_time, content = entry
            flow = records[slot]
            assert flow is not None
            if image and recognised_at[group] < i and flow.app == "dicom":
                continue  # as if the batch had been cut after the packet that told
            self._decoding_row = i
            was = flow.app
            payload = buffer[start : start + length].tobytes()
            self._apply_metadata(
                flow, sender, payload, (src, dst), when, repeats, last_time, content
            )
            if was not in FOLLOWED_APPS and flow.app in FOLLOWED_APPS:
                recognised_at[group] = i
            elif was is None and flow.app in OPAQUE_AFTER_FIRST:
                opaque.add(group)
        return recognised_at

    def _apply_metadata(
        self,
        flow: Flow,
        sender: int,
        payload: bytes,
        ports: tuple[int, int],
        when: float,
        repeats: int = 1,
        last: float | None = None,
        content: int = 0,
    ) -> None:
        try:
            found = appmeta.decode(flow.app, flow.protocol, ports, payload, content)
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
            self._set_app(flow, app, self._decoding_row)
        # each side's device, looked up once for the protocol and the facts
        sides = (self._existing(flow.device(0), when), self._existing(flow.device(1), when))
        told = sides if app in appmeta.FLOW_PROTOCOLS else (sides[sender],)
        for device in told:
            if device is not None:
                self.note(device, "protocol", app, when, repeats, last)
        for fact in facts:
            if fact.kind == "resolved":
                self._resolved(fact.value, fact.extra, when)
                continue
            target = sides[sender]
            if fact.about == "peer":
                target = sides[1 - sender]
            elif fact.about == "client_mac" and fact.extra:
                target = self._existing(fact.extra, when)
            if target is not None:
                self.note(target, fact.kind, fact.value, when, repeats, last)

    def _existing(self, device_id: str | None, when: float) -> Device | None:
        """The device ``device_id`` if it existed at ``when``: one made later in the batch
        (at its first frame) did not, frame by frame, and learns nothing from the message."""
        device = self.devices.get(device_id or "")
        return device if device is not None and device.first_seen <= when else None

    def _set_app(self, flow: Flow, app: str, row: int) -> None:
        """``flow`` (no application yet) carries ``app``, as the batch's ``row`` showed."""
        self._key_changes.recognised_at[flow.slot] = row
        flow.app = app
        if app in FOLLOWED_APPS:
            self.flows.followed[flow.slot] = True
        if app in OPAQUE_AFTER_FIRST:
            self.flows.budget[flow.slot] = 0
        # now: the rest of the batch follows it by label
        self.flows.label[flow.slot] = self._labels.id(app)

    def _resolved(self, address: str, name: str, when: float) -> None:
        """A DNS answer decoded from the current row: kept until the batch's payloads are
        decoded (``_name_by_answers``)."""
        self._answers.append((when, self._decoding_row, address, name))

    def _name_by_answers(
        self,
        udp_rows: npt.NDArray[np.int64],
        leaders: npt.NDArray[np.int64],
        t: npt.NDArray[np.float64],
    ) -> None:
        """Apply the batch's DNS answers in capture order, each where it was seen: a message
        repeated in the batch was decoded once, for its first row, and counts again at each
        repeat (a resolver answering X, then Y, then X again names the address X after).
        A flow of this batch that began at or after an answer takes the name of the last
        one before it, as it would have in a smaller batch."""
        answers = self._answers
        self._answers = []
        by_row: dict[int, list[tuple[str, str]]] = {}
        for _, row, address, name in answers:
            by_row.setdefault(row, []).append((address, name))
        repeated = np.flatnonzero(np.isin(leaders, list(by_row)) & (leaders != udp_rows))
        times = t[udp_rows[repeated]].tolist()
        for when, row, leader in zip(
            times, udp_rows[repeated].tolist(), leaders[repeated].tolist(), strict=True
        ):
            answers.extend((when, row, address, name) for address, name in by_row[leader])
        answers.sort(key=_TIME_AND_ROW)  # stable: a message's answers keep their order
        by_address: dict[str, tuple[list[float], list[str]]] = {}
        for when, _, address, name in answers:
            named = by_address.get(address)
            if named is None:
                named = by_address[address] = ([], [])
            named[0].append(when)
            named[1].append(name)
        dns_names = self._dns_names
        for address, (times_named, names) in by_address.items():
            if address in dns_names or len(dns_names) < 100_000:  # (renamed even when full)
                dns_names[address] = names[-1]
            for flow in self._new_flows_by_address.get(address, ()):
                last_before = bisect.bisect_right(times_named, flow.first_seen) - 1
                if last_before < 0:
                    continue
                name = names[last_before]
                if flow.address_b == address:
                    flow.peer_names = (name, flow.peer_names[1])
                else:
                    flow.peer_names = (flow.peer_names[0], name)

    def _name_new_flows(self) -> None:
        for flow in self._new_flows:
            if flow.peer_names == (None, None):
                continue
            for side in (0, 1):
                name = flow.peer_names[side]
                device = self.devices.get(flow.device(side) or "")
                if name is not None and device is not None:
                    self.note(device, "peer_name", name, flow.first_seen)
            flow.peer_names = (None, None)  # only a new flow's names become facts

    # ------------------------------------------------------------------ cadence
    def _conversations(
        self,
        table: PacketTable,
        t: npt.NDArray[np.float64],
        sl: slice,
        groups: npt.NDArray[np.int64],
        direction: npt.NDArray[np.uint8],
        slots: npt.NDArray[np.int64],
        changes: _KeyChanges,
        parts: npt.NDArray[np.int64] | None,
    ) -> None:
        """Message times per (device, peer|service) conversation, for cadence. A message
        before its flow's service was learned counts in the conversation of the service
        it had then (see ``_KeyChanges``)."""
        proto = table.protocol[sl]
        carries = (groups >= 0) & ((table.payload_wire_length[sl] > 0) | (proto == PROTO_UDP))
        rows = np.flatnonzero(carries)
        if rows.shape[0] == 0:
            return
        row_slots = slots[groups[rows]]
        conversation_of_row = self.flows.conversation[row_slots, direction[rows]]
        if parts is not None:
            before = np.flatnonzero((parts[rows] & 1) == 0)
            conversation_of_row[before] = [
                changes.server_told_at[slot][2][side]
                for slot, side in zip(
                    row_slots[before].tolist(), direction[rows[before]].tolist(), strict=True
                )
            ]
        starts = message_starts(
            conversation_of_row, t[rows], self._conversation_last, MESSAGE_GAP_SECONDS
        )
        start_rows = rows[starts]
        if start_rows.shape[0] == 0:
            return
        conversations = conversation_of_row[starts]
        windows = self._packet_window[start_rows]
        times = t[start_rows]
        for w in np.unique(windows).tolist():
            here = windows == w
            self._windows[self._window_starts[w]].messages.append(
                (conversations[here], times[here])
            )


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
