"""Flow table and the compiled batch helpers the pipeline aggregates with.

A flow is one bidirectional conversation between two endpoints (IP, port) over one IP
protocol. Per batch, packets get a 64-bit flow key in a compiled loop and are grouped by
hashing it (``group_keys``: no sort). ``FlowTable`` keeps the live flows: a compiled
open-addressing index from key to slot, the per-flow counters as array columns updated for
a whole batch at once, and one small ``Flow`` record per flow for what Python needs
(addresses, owners, peers, application). Python therefore touches a flow when it starts,
when its service or protocol becomes known and when one of its packets needs an
application decoder, never per packet.

Promises:
- grouping is exact up to 64-bit hash collisions of distinct flows (about 3e-8 with a
  million live flows);
- the table is bounded: flows idle longer than their transport's timeout are evicted
  (TCP 600 s, others 300 s, as Suricata's established-flow timeouts), and when
  ``max_flows`` are live the least recently seen go first (one batch's new flows may
  exceed the bound until the next batch); ``evicted`` counts both. A flow that resumes
  after eviction is a new flow record, as in Zeek and Suricata;
- the compiled helpers below never read outside the payloads they are given.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numba
import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from monitor.decode.headers import PacketTable

TRANSPORT_NAMES = {6: "tcp", 17: "udp", 1: "icmp", 58: "icmpv6"}
IDLE_TIMEOUT_TCP = 600.0
IDLE_TIMEOUT_OTHER = 300.0
DEFAULT_MAX_FLOWS = 500_000
# payload packets handed to the application decoders before a flow's protocol is known:
# every protocol decoded here shows itself in the first message of one side or the other
INSPECT_BUDGET = 4


@dataclass(slots=True)
class Flow:
    """What Python keeps of one live flow. Side 0 is endpoint a of the key, side 1 endpoint
    b. Packet and byte counters live in ``FlowTable``'s columns under ``slot``; strings are
    shared with other flows (addresses, device ids, peer names), and each side's fields are
    plain attributes rather than pairs, so a record is one object (a flood of a million
    flows keeps a million of them)."""

    slot: int
    protocol: int  # IP protocol number
    port_a: int
    port_b: int
    first_seen: float
    client_side: int
    address_a: str = ""
    address_b: str = ""
    device_a: str | None = None  # the inventory device at each end, if any
    device_b: str | None = None
    peer_a: str = ""  # how side a names side b
    peer_b: str = ""
    peer_names: tuple[str | None, str | None] = (None, None)  # from DNS
    server_side: int = -1  # known once a SYN-ACK or a UDP reply is seen
    app: str | None = None  # application protocol recognised by content
    packets_before_app: int = 0  # packets it carried before ``app`` was recognised

    @property
    def transport(self) -> str:
        return TRANSPORT_NAMES.get(self.protocol) or f"ip{self.protocol}"

    def port(self, side: int) -> int:
        return self.port_b if side else self.port_a

    def address(self, side: int) -> str:
        return self.address_b if side else self.address_a

    def device(self, side: int) -> str | None:
        return self.device_b if side else self.device_a

    def peer(self, side: int) -> str:
        """How the device on ``side`` names the other side."""
        return self.peer_b if side else self.peer_a

    def service(self) -> str:
        """``tcp/2575``: the server's port when known, else the port the client sent to."""
        side = self.server_side if self.server_side >= 0 else 1 - self.client_side
        return service_name(self.protocol, self.port(side))


# One int object per port number, shared by every flow record (an int above 256 is an object
# of its own each time it is made: 56 bytes per flow record otherwise).
PORTS: tuple[int, ...] = tuple(range(65536))

_SERVICE_NAMES: dict[tuple[int, int], str] = {}


def service_name(protocol: int, port: int) -> str:
    """``tcp/443``, one shared string per (protocol, port)."""
    name = _SERVICE_NAMES.get((protocol, port))
    if name is None:
        if len(_SERVICE_NAMES) >= 1 << 18:
            _SERVICE_NAMES.clear()
        transport = TRANSPORT_NAMES.get(protocol) or f"ip{protocol}"
        name = _SERVICE_NAMES[(protocol, port)] = f"{transport}/{port}"
    return name


class FlowTable:
    """The live flows: see the module docstring. Columns are indexed by slot."""

    def __init__(self, max_flows: int = DEFAULT_MAX_FLOWS, initial: int = 4096) -> None:
        if max_flows < 1:
            raise ValueError("max_flows must be at least 1")
        self.max_flows = max_flows
        self.created = 0  # flow records ever started
        self.evicted: Counter[str] = Counter()  # reason ("idle", "full") -> flows
        self.records: list[Flow | None] = []
        self._free: list[int] = []
        self._index_keys = np.zeros(0, np.uint64)
        self._index_slots = np.zeros(0, np.int32)
        capacity = max(1, min(initial, max_flows))
        self.hash = np.zeros(capacity, np.uint64)
        self.live = np.zeros(capacity, np.bool_)
        self.packets = np.zeros((capacity, 2), np.int64)
        self.bytes = np.zeros((capacity, 2), np.int64)
        self.last_seen = np.zeros(capacity, np.float64)
        self.server_side = np.full(capacity, -1, np.int8)
        # Columns are as narrow as their values allow: at the default bound each byte of a
        # column is half a MiB of resident memory.
        self.timeout = np.zeros(capacity, np.float32)  # 600.0 or 300.0, exact in float32
        self.budget = np.zeros(capacity, np.int8)  # at most INSPECT_BUDGET
        self.followed = np.zeros(capacity, np.bool_)
        # per side: the pipeline's accounting ids (profile key, conversation), -1 for none;
        # interned ids are int32 (monitor.interning)
        self.account = np.full((capacity, 2), -1, np.int32)
        self.conversation = np.full((capacity, 2), -1, np.int32)
        self.label = np.zeros(capacity, np.int32)  # protocol label id, for protocol counts
        self._rebuild_index(capacity)

    def __len__(self) -> int:
        return len(self.records) - len(self._free)

    @property
    def capacity(self) -> int:
        return int(self.hash.shape[0])

    def flows(self) -> list[Flow]:
        return [flow for flow in self.records if flow is not None]

    # ---- lookup and insertion ----
    def lookup(self, hashes: npt.NDArray[np.uint64]) -> npt.NDArray[np.int64]:
        """The slot of each flow key hash, -1 for flows not in the table."""
        out = np.empty(hashes.shape[0], np.int64)
        _index_lookup(self._index_keys, self._index_slots, hashes, out)
        return out

    def make_room(self, needed: int, keep: npt.NDArray[np.int64]) -> None:
        """Evict least recently seen flows (never those in ``keep``) until ``needed`` new
        ones fit under ``max_flows``."""
        excess = len(self) + needed - self.max_flows
        if excess <= 0:
            return
        # evict in bulk so a flood does not pay a full scan per new flow
        count = max(excess, self.max_flows // 16)
        candidates = self.live.copy()
        candidates[keep[keep >= 0]] = False
        slots = np.flatnonzero(candidates)
        if slots.shape[0] > count:
            order = np.argpartition(self.last_seen[slots], count - 1)[:count]
            slots = slots[order]
        self.evict(slots, "full")

    def allocate(
        self, hashes: npt.NDArray[np.uint64], protocols: npt.NDArray[np.uint8]
    ) -> npt.NDArray[np.int64]:
        """Slots for new flows (the caller has made room and sets ``records[slot]``)."""
        count = hashes.shape[0]
        reused = [self._free.pop() for _ in range(min(count, len(self._free)))]
        fresh = count - len(reused)
        first_fresh = len(self.records)
        if first_fresh + fresh > self.capacity:
            capacity = self.capacity
            while capacity < first_fresh + fresh:
                capacity *= 2
            # one batch may bring more new flows than max_flows: they are tracked until the
            # next batch makes room
            self._grow(max(min(self.max_flows, capacity), first_fresh + fresh))
        self.records.extend([None] * fresh)
        slots = np.array(reused + list(range(first_fresh, first_fresh + fresh)), np.int64)
        self.hash[slots] = hashes
        self.live[slots] = True
        self.packets[slots] = 0
        self.bytes[slots] = 0
        self.last_seen[slots] = 0.0
        self.server_side[slots] = -1
        self.timeout[slots] = np.where(protocols == 6, IDLE_TIMEOUT_TCP, IDLE_TIMEOUT_OTHER)
        self.budget[slots] = INSPECT_BUDGET
        self.followed[slots] = False
        self.account[slots] = -1
        self.conversation[slots] = -1
        self.label[slots] = 0
        self.created += count
        _index_insert(self._index_keys, self._index_slots, hashes, slots)
        return slots

    # ---- eviction ----
    def idle(self, now: float) -> npt.NDArray[np.int64]:
        """Slots of live flows idle longer than their timeout at capture time ``now``."""
        return np.flatnonzero(self.live & (self.last_seen + self.timeout < now))

    def evict(self, slots: npt.NDArray[np.int64], reason: str) -> None:
        if slots.shape[0] == 0:
            return
        _index_remove(self._index_keys, self._index_slots, self.hash[slots])
        self.live[slots] = False
        for slot in slots.tolist():
            self.records[slot] = None
            self._free.append(slot)
        self.evicted[reason] += int(slots.shape[0])

    # ---- storage ----
    def _grow(self, capacity: int) -> None:
        old = self.capacity
        for name in (
            "hash",
            "live",
            "packets",
            "bytes",
            "last_seen",
            "server_side",
            "timeout",
            "budget",
            "followed",
            "account",
            "conversation",
            "label",
        ):
            column = getattr(self, name)
            grown = np.zeros((capacity, *column.shape[1:]), column.dtype)
            grown[:old] = column
            setattr(self, name, grown)
        self._rebuild_index(capacity)

    def _rebuild_index(self, capacity: int) -> None:
        # at most half full: a probe meets an empty place within two or three steps, and at
        # the default bound the index is 12 MiB (a quarter full cost 24 MiB for a lookup
        # about 1.3 times as fast, a fraction of a percent of a batch)
        size = 1
        while size < capacity * 2:
            size *= 2
        self._index_keys = np.zeros(size, np.uint64)
        self._index_slots = np.full(size, -1, np.int32)
        slots = np.flatnonzero(self.live)
        _index_insert(self._index_keys, self._index_slots, self.hash[slots], slots)


@numba.njit(cache=True, inline="always")  # type: ignore[misc]
def _probe(index_keys: npt.NDArray[np.uint64], h: np.uint64, mask: np.uint64) -> np.uint64:
    """Where key ``h`` is in the linear-probing index, or the empty place it would take."""
    p = (h >> np.uint64(20)) & mask
    while index_keys[p] != 0 and index_keys[p] != h:
        p = (p + np.uint64(1)) & mask
    return p


@numba.njit(cache=True)  # type: ignore[misc]
def _index_lookup(
    index_keys: npt.NDArray[np.uint64],
    index_slots: npt.NDArray[np.int32],
    hashes: npt.NDArray[np.uint64],
    out: npt.NDArray[np.int64],
) -> None:
    mask = np.uint64(index_keys.shape[0] - 1)
    for i in range(hashes.shape[0]):
        p = _probe(index_keys, hashes[i], mask)
        out[i] = index_slots[p] if index_keys[p] != 0 else -1


@numba.njit(cache=True)  # type: ignore[misc]
def _index_insert(
    index_keys: npt.NDArray[np.uint64],
    index_slots: npt.NDArray[np.int32],
    hashes: npt.NDArray[np.uint64],
    slots: npt.NDArray[np.int64],
) -> None:
    mask = np.uint64(index_keys.shape[0] - 1)
    for i in range(hashes.shape[0]):
        p = _probe(index_keys, hashes[i], mask)
        index_keys[p] = hashes[i]
        index_slots[p] = slots[i]


@numba.njit(cache=True)  # type: ignore[misc]
def _index_remove(
    index_keys: npt.NDArray[np.uint64],
    index_slots: npt.NDArray[np.int32],
    hashes: npt.NDArray[np.uint64],
) -> None:
    """Linear-probing deletion by backward shift: no tombstones, so lookups stay short."""
    mask = np.uint64(index_keys.shape[0] - 1)
    one = np.uint64(1)
    for i in range(hashes.shape[0]):
        p = _probe(index_keys, hashes[i], mask)
        if index_keys[p] == 0:
            continue
        index_keys[p] = 0
        index_slots[p] = -1
        q = p
        while True:
            q = (q + one) & mask
            k = index_keys[q]
            if k == 0:
                break
            ideal = (k >> np.uint64(20)) & mask
            # the entry at q may fill the hole at p unless its ideal place lies in (p, q]
            stays = (p < ideal <= q) if p <= q else (ideal > p or ideal <= q)
            if not stays:
                index_keys[p] = k
                index_slots[p] = index_slots[q]
                index_keys[q] = 0
                index_slots[q] = -1
                p = q


@numba.njit(cache=True, inline="always")  # type: ignore[misc]
def _mix(h: np.uint64, v: np.uint64) -> np.uint64:
    h ^= v + np.uint64(0x9E3779B97F4A7C15) + (h << np.uint64(6)) + (h >> np.uint64(2))
    h *= np.uint64(0xBF58476D1CE4E5B9)
    return h ^ (h >> np.uint64(31))


@numba.njit(cache=True)  # type: ignore[misc]
def flow_keys(
    ip_version: npt.NDArray[np.uint8],
    src_hi: npt.NDArray[np.uint64],
    src_lo: npt.NDArray[np.uint64],
    dst_hi: npt.NDArray[np.uint64],
    dst_lo: npt.NDArray[np.uint64],
    protocol: npt.NDArray[np.uint8],
    src_port: npt.NDArray[np.int32],
    dst_port: npt.NDArray[np.int32],
    keys: npt.NDArray[np.uint64],
    direction: npt.NDArray[np.uint8],
) -> None:
    """Per packet: the hash of its canonical (direction-free) flow key, and which side sent it
    (0 when the source is endpoint a). Packets without IP get key 0."""
    for i in range(ip_version.shape[0]):
        if ip_version[i] == 0:
            keys[i] = 0
            direction[i] = 0
            continue
        s_hi, s_lo, d_hi, d_lo = src_hi[i], src_lo[i], dst_hi[i], dst_lo[i]
        sp, dp = src_port[i], dst_port[i]
        swap = (s_hi > d_hi) or (s_hi == d_hi and (s_lo > d_lo or (s_lo == d_lo and sp > dp)))
        if swap:
            s_hi, s_lo, d_hi, d_lo = d_hi, d_lo, s_hi, s_lo
            sp, dp = dp, sp
            direction[i] = 1
        else:
            direction[i] = 0
        h = np.uint64(ip_version[i]) * np.uint64(0x100000001B3)
        h = _mix(h, s_hi)
        h = _mix(h, s_lo)
        h = _mix(h, d_hi)
        h = _mix(h, d_lo)
        h = _mix(h, (np.uint64(protocol[i]) << np.uint64(32)) | (np.uint64(sp) << np.uint64(16)))
        h = _mix(h, np.uint64(dp))
        keys[i] = h | np.uint64(1)  # never 0, which means "no flow"


def packet_flow_keys(
    table: PacketTable,
) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint8]]:
    """``flow_keys`` of a batch's decoded headers: each packet's flow key (0: none) and which
    side sent it."""
    n = table.ip_version.shape[0]
    keys = np.empty(n, np.uint64)
    direction = np.empty(n, np.uint8)
    flow_keys(
        table.ip_version,
        table.src_ip_hi,
        table.src_ip_lo,
        table.dst_ip_hi,
        table.dst_ip_lo,
        table.protocol,
        table.src_port,
        table.dst_port,
        keys,
        direction,
    )
    return keys, direction


@numba.njit(cache=True, inline="always")  # type: ignore[misc]
def _rows_array(rows: list[int]) -> npt.NDArray[np.int64]:
    """A compiled loop's list of rows as an array."""
    out = np.empty(len(rows), np.int64)
    for k in range(len(rows)):
        out[k] = rows[k]
    return out


@numba.njit(cache=True, inline="always")  # type: ignore[misc]
def _starts_like_metadata(buffer: npt.NDArray[np.uint8], p: int, n: int) -> bool:
    if n < 2:
        return False
    b0 = buffer[p]
    b1 = buffer[p + 1]
    tls_record = b0 == 0x16 and b1 == 0x03
    mllp_or_msh = b0 == 0x0B or (b0 == 77 and b1 == 83)  # start block, or "MS(H)"
    dicom_pdu = 1 <= b0 <= 7 and b1 == 0
    mqtt_connect = b0 == 0x10
    upper_case_word = 65 <= b0 <= 90 and 65 <= b1 <= 90  # HTTP method, FHS/BHS batch
    # an HTTP response ("HTTP/1.1 200 OK"): no decoder reads one (half the payloads of
    # AB-merged's web traffic that reached a decoder)
    http_response = (
        n >= 5
        and b0 == 72
        and b1 == 84
        and buffer[p + 2] == 84
        and buffer[p + 3] == 80
        and buffer[p + 4] == 47
    )
    return (
        tls_record or mllp_or_msh or dicom_pdu or mqtt_connect or upper_case_word
    ) and not http_response


@numba.njit(cache=True)  # type: ignore[misc]
def could_be_metadata(
    buffer: npt.NDArray[np.uint8],
    offsets: npt.NDArray[np.int64],
    lengths: npt.NDArray[np.int32],
) -> npt.NDArray[np.bool_]:
    """Per TCP payload, whether its first bytes could start a message of a protocol the
    application decoders read (TLS record, HTTP request, HL7/MLLP, DICOM PDU, MQTT CONNECT):
    the rest, HTTP responses among them, never needs a trip into Python."""
    out = np.zeros(offsets.shape[0], np.bool_)
    for i in range(offsets.shape[0]):
        out[i] = _starts_like_metadata(buffer, offsets[i], lengths[i])
    return out


@numba.njit(cache=True)  # type: ignore[misc]
def select_payloads(
    groups: npt.NDArray[np.int64],
    slots: npt.NDArray[np.int64],
    lengths: npt.NDArray[np.int32],
    fragment: npt.NDArray[np.uint8],
    protocols: npt.NDArray[np.uint8],
    src_port: npt.NDArray[np.int32],
    dst_port: npt.NDArray[np.int32],
    inspected_udp_port: npt.NDArray[np.bool_],
    buffer: npt.NDArray[np.uint8],
    offsets: npt.NDArray[np.int64],
    followed: npt.NDArray[np.bool_],
    budget: npt.NDArray[np.int8],
    followed_max_payload: int,
) -> tuple[
    npt.NDArray[np.bool_], npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.bool_]
]:
    """Which payloads of a batch (``groups``: each packet's flow, -1 for none; ``slots``:
    each flow's slot) go to the application decoders, in one pass:

    - UDP payloads to or from an inspected port (``inspected_udp_port``), of a flow;
    - TCP payloads of a flow while its inspection budget lasts (each one looked at spends
      one of its flow's ``budget``, in place, also when it turns out unreadable), or of a
      followed flow (HL7, DICOM: no budget) up to ``followed_max_payload`` bytes, when
      their first bytes could start a message (``could_be_metadata``).

    A payload is a packet with payload bytes that is not a later fragment. Returns the TCP
    payloads taken per packet, the UDP rows, the TCP rows taken, and whether each of those
    is of a followed flow."""
    n = groups.shape[0]
    taken = np.zeros(n, np.bool_)
    udp_rows = []
    tcp_rows = []
    for i in range(n):
        g = groups[i]
        if g < 0 or lengths[i] <= 0 or fragment[i] == 2:
            continue
        if protocols[i] == 17:
            if inspected_udp_port[src_port[i]] or inspected_udp_port[dst_port[i]]:
                udp_rows.append(i)
        elif protocols[i] == 6:
            s = slots[g]
            if followed[s]:
                if lengths[i] > followed_max_payload:
                    continue
            elif budget[s] > 0:
                budget[s] -= 1
            else:
                continue
            if _starts_like_metadata(buffer, offsets[i], lengths[i]):
                taken[i] = True
                tcp_rows.append(i)
    tcp = _rows_array(tcp_rows)
    of_followed = np.empty(tcp.shape[0], np.bool_)
    for k in range(tcp.shape[0]):
        of_followed[k] = followed[slots[groups[tcp[k]]]]
    return taken, _rows_array(udp_rows), tcp, of_followed


@numba.njit(cache=True)  # type: ignore[misc]
def payload_keys(
    buffer: npt.NDArray[np.uint8],
    offsets: npt.NDArray[np.int64],
    lengths: npt.NDArray[np.int32],
    rows: npt.NDArray[np.int64],
    salt: npt.NDArray[np.int64],
) -> npt.NDArray[np.uint64]:
    """A 64-bit FNV-1a hash of each selected payload, mixed with a per-row salt (its flow and
    direction), so that repeats of one announcement can be decoded once."""
    out = np.empty(rows.shape[0], np.uint64)
    for k in range(rows.shape[0]):
        i = rows[k]
        h = np.uint64(0xCBF29CE484222325)
        start = offsets[i]
        for j in range(start, start + lengths[i]):
            h = (h ^ np.uint64(buffer[j])) * np.uint64(0x100000001B3)
        out[k] = _mix(h, np.uint64(salt[k]))
    return out


@numba.njit(cache=True)  # type: ignore[misc]
def message_starts(
    groups: npt.NDArray[np.int32],
    timestamps: npt.NDArray[np.float64],
    last_seen: npt.NDArray[np.float64],
    gap: float,
) -> npt.NDArray[np.bool_]:
    """Mark packets that start a message of their conversation: the first packet after a
    pause longer than ``gap`` (a burst of segments is one message). ``last_seen`` holds each
    group's last packet time (negative: none yet) and is updated in place."""
    starts = np.zeros(groups.shape[0], np.bool_)
    for i in range(groups.shape[0]):
        g = groups[i]
        if g < 0:
            continue
        t = timestamps[i]
        if last_seen[g] < 0 or t - last_seen[g] > gap:
            starts[i] = True
        last_seen[g] = t
    return starts


@numba.njit(cache=True)  # type: ignore[misc]
def row_keys(
    a: npt.NDArray[np.uint64],
    b: npt.NDArray[np.uint64],
    c: npt.NDArray[np.uint64],
    d: npt.NDArray[np.uint64],
) -> npt.NDArray[np.uint64]:
    """A 64-bit hash of each row of four columns: grouping rows by it is a one-column sort,
    where ``np.unique(axis=0)`` would sort structured rows (ten times slower)."""
    out = np.empty(a.shape[0], np.uint64)
    for i in range(a.shape[0]):
        h = _mix(np.uint64(0x100000001B3), a[i])
        h = _mix(h, b[i])
        h = _mix(h, c[i])
        out[i] = _mix(h, d[i])
    return out


@numba.njit(cache=True)  # type: ignore[misc]
def _table_size(n: int) -> int:
    """Slots of an open-addressing table for ``n`` keys: a power of two, at most half full."""
    size = 16
    while size < 2 * n:
        size *= 2
    return size


@numba.njit(cache=True)  # type: ignore[misc]
def group_keys(
    keys: npt.NDArray[np.uint64],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Group equal keys in one hashing pass (``np.unique`` sorts, several times slower).
    Returns, with groups numbered in order of first appearance: each group's first index,
    each key's group, and each group's size."""
    n = keys.shape[0]
    size = _table_size(n)
    mask = np.uint64(size - 1)
    table_keys = np.empty(size, np.uint64)
    table_groups = np.full(size, -1, np.int64)
    first = np.empty(n, np.int64)
    counts = np.zeros(n, np.int64)
    inverse = np.empty(n, np.int64)
    groups = 0
    for i in range(n):
        k = keys[i]
        p = _mix(k, np.uint64(0x51ED27)) & mask
        while True:
            g = table_groups[p]
            if g < 0:
                table_keys[p] = k
                table_groups[p] = groups
                first[groups] = i
                g = groups
                groups += 1
                break
            if table_keys[p] == k:
                break
            p = (p + np.uint64(1)) & mask
        inverse[i] = g
        counts[g] += 1
    return first[:groups], inverse, counts[:groups]


@numba.njit(cache=True)  # type: ignore[misc]
def first_sends_after(
    src_hi: npt.NDArray[np.uint64],
    src_lo: npt.NDArray[np.uint64],
    ip_version: npt.NDArray[np.uint8],
    arp: npt.NDArray[np.bool_],
    start: int,
) -> npt.NDArray[np.int64]:
    """The rows after ``start`` that are the first of the batch from their source address
    (an IP packet's, or an ARP sender's but 0.0.0.0), ascending: one hashing pass."""
    n = src_hi.shape[0]
    size = _table_size(n)
    mask = np.uint64(size - 1)
    table_keys = np.empty(size, np.uint64)
    used = np.zeros(size, np.bool_)
    rows = []
    for i in range(n):
        version = np.uint64(4) if arp[i] else np.uint64(ip_version[i])
        if version == 0 or (arp[i] and src_lo[i] == 0):
            continue
        k = _mix(_mix(_mix(np.uint64(0x100000001B3), src_hi[i]), src_lo[i]), version)
        p = _mix(k, np.uint64(0x51ED27)) & mask
        while True:
            if not used[p]:
                used[p] = True
                table_keys[p] = k
                if i > start:
                    rows.append(i)
                break
            if table_keys[p] == k:
                break
            p = (p + np.uint64(1)) & mask
    return _rows_array(rows)


@numba.njit(cache=True)  # type: ignore[misc]
def group_max(
    groups: npt.NDArray[np.int64], values: npt.NDArray[np.float64], count: int
) -> npt.NDArray[np.float64]:
    """The largest value per group (``np.maximum.at`` without its per-element overhead)."""
    out = np.full(count, -np.inf)
    for i in range(groups.shape[0]):
        g = groups[i]
        if values[i] > out[g]:
            out[g] = values[i]
    return out


@numba.njit(cache=True)  # type: ignore[misc]
def device_traffic(
    senders: npt.NDArray[np.int64],
    receivers: npt.NDArray[np.int64],
    windows: npt.NDArray[np.int64],
    lengths: npt.NDArray[np.int32],
    times: npt.NDArray[np.float64],
    arp: npt.NDArray[np.bool_],
    devices: int,
    window_count: int,
    size_bins: npt.NDArray[np.int64],
    bin_count: int,
) -> tuple[
    npt.NDArray[np.int64],
    npt.NDArray[np.int64],
    npt.NDArray[np.float64],
    npt.NDArray[np.int64],
    npt.NDArray[np.float64],
]:
    """A batch's traffic per device (``senders``, ``receivers``: each packet's, -1 for
    none) and window, in one pass where numpy took a dozen (a live batch is small, and
    each call has its price). Returns:

    - ``counts``, devices × windows × (4 + ``bin_count``): packets sent, bytes sent, packets
      received, bytes received, then the sent packets per size bin (``size_bins``: each
      wire length's bin, the last entry standing for every longer length);
    - ``totals``, devices × 4: the first four summed over the windows;
    - ``last_sent``: each device's latest send, -1.0 for none;
    - ``arp_counts``, devices × windows, and ``arp_times``, devices × windows × 2: ARP
      packets sent, and the first and last one's time (inf and -inf where none)."""
    counts = np.zeros((devices, window_count, 4 + bin_count), np.int64)
    totals = np.zeros((devices, 4), np.int64)
    last_sent = np.full(devices, -1.0)
    arp_counts = np.zeros((devices, window_count), np.int64)
    arp_times = np.empty((devices, window_count, 2), np.float64)
    arp_times[:, :, 0] = np.inf
    arp_times[:, :, 1] = -np.inf
    longest = size_bins.shape[0] - 1
    for i in range(senders.shape[0]):
        w = windows[i]
        length = np.int64(lengths[i])
        s = senders[i]
        if s >= 0:
            counts[s, w, 0] += 1
            counts[s, w, 1] += length
            totals[s, 0] += 1
            totals[s, 1] += length
            counts[s, w, 4 + size_bins[min(max(length, 0), longest)]] += 1
            t = times[i]
            if t > last_sent[s]:
                last_sent[s] = t
            if arp[i]:
                arp_counts[s, w] += 1
                if t < arp_times[s, w, 0]:
                    arp_times[s, w, 0] = t
                if t > arp_times[s, w, 1]:
                    arp_times[s, w, 1] = t
        r = receivers[i]
        if r >= 0:
            counts[r, w, 2] += 1
            counts[r, w, 3] += length
            totals[r, 2] += 1
            totals[r, 3] += length
    return counts, totals, last_sent, arp_counts, arp_times


@numba.njit(cache=True)  # type: ignore[misc]
def account_flow_packets(
    rows: npt.NDArray[np.int64],
    groups: npt.NDArray[np.int64],
    slots: npt.NDArray[np.int64],
    direction: npt.NDArray[np.uint8],
    lengths: npt.NDArray[np.int32],
    times: npt.NDArray[np.float64],
    protocols: npt.NDArray[np.uint8],
    flags: npt.NDArray[np.uint8],
    packets: npt.NDArray[np.int64],
    byte_counts: npt.NDArray[np.int64],
    last_seen: npt.NDArray[np.float64],
    server_side: npt.NDArray[np.int8],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Count a batch's packets (``rows``; ``groups``: each one's flow; ``slots``: each
    flow's slot) into the flow table's columns per side, and move each flow's last seen
    on, in one pass where numpy took a dozen. Returns the
    flows whose server side is unknown and now shows itself (a SYN-ACK, or a UDP flow with
    packets both ways), ascending; per flow the side that sent its first SYN-ACK of the
    batch (-1 for none); and per flow the row that showed its server side (-1 for none),
    as frame by frame the first such packet does."""
    synack_side = np.full(slots.shape[0], -1, np.int64)
    known_at = np.full(slots.shape[0], -1, np.int64)
    for k in range(rows.shape[0]):
        r = rows[k]
        g = groups[k]
        s = slots[g]
        d = direction[r]
        packets[s, d] += 1
        byte_counts[s, d] += lengths[r]
        if times[r] > last_seen[s]:
            last_seen[s] = times[r]
        if server_side[s] >= 0 or known_at[g] >= 0:
            continue
        if protocols[r] == 6 and (flags[r] & 0x12) == 0x12:
            synack_side[g] = d
            known_at[g] = r
        elif protocols[r] == 17 and packets[s, 0] > 0 and packets[s, 1] > 0:
            known_at[g] = r
    replied = []
    for g in range(slots.shape[0]):
        if known_at[g] >= 0:
            replied.append(g)
    return _rows_array(replied), synack_side, known_at


@numba.njit(cache=True)  # type: ignore[misc]
def resumed_after_idle(
    groups: npt.NDArray[np.int64],
    times: npt.NDArray[np.float64],
    protocols: npt.NDArray[np.uint8],
    count: int,
) -> npt.NDArray[np.int64]:
    """Where to cut rows (in order; ``groups``: each one's flow) so that no part holds a
    flow's packet and its next one further apart than the flow's idle timeout: the flow
    ended in between, and the later packet starts another. Returns the row of each cut,
    ascending: a part starts at each."""
    last = np.full(count, -np.inf)
    part_of = np.full(count, -1, np.int64)
    cuts = []
    part = 0
    for i in range(groups.shape[0]):
        g = groups[i]
        timeout = IDLE_TIMEOUT_TCP if protocols[i] == 6 else IDLE_TIMEOUT_OTHER
        if part_of[g] == part and last[g] + timeout < times[i]:
            cuts.append(i)
            part += 1
        if part_of[g] != part:
            part_of[g] = part
            last[g] = times[i]
        elif times[i] > last[g]:
            last[g] = times[i]
    return _rows_array(cuts)


@numba.njit(cache=True)  # type: ignore[misc]
def hl7_routing_keys(
    buffer: npt.NDArray[np.uint8],
    offsets: npt.NDArray[np.int64],
    lengths: npt.NDArray[np.int32],
    rows: npt.NDArray[np.int64],
    salt: npt.NDArray[np.int64],
) -> npt.NDArray[np.uint64]:
    """Per HL7 message: a hash of everything its facts depend on (the MSH segment without
    MSH-7, the message time, and MSH-10, the control id, and whether an MSA segment follows),
    mixed with a salt, so that a feed's messages decode once per routing and type; 0 where
    the payload does not start with an MSH segment (decoded on its own)."""
    out = np.zeros(rows.shape[0], np.uint64)
    for k in range(rows.shape[0]):
        i = rows[k]
        p = offsets[i]
        end = p + lengths[i]
        if p < end and buffer[p] == 0x0B:
            p += 1
        if end - p < 8 or buffer[p] != 77 or buffer[p + 1] != 83 or buffer[p + 2] != 72:
            continue
        separator = buffer[p + 3]
        h = np.uint64(0xCBF29CE484222325)
        field_index = 0  # as in MSH split on the separator: 6 is MSH-7, 9 is MSH-10
        q = p
        while q < end and buffer[q] != 13 and buffer[q] != 10:
            c = buffer[q]
            if c == separator:
                field_index += 1
            if c == separator or (field_index != 6 and field_index != 9):
                h = (h ^ np.uint64(c)) * np.uint64(0x100000001B3)
            q += 1
        while q < end and (buffer[q] == 13 or buffer[q] == 10):
            q += 1
        acknowledgement = end - q >= 3 and buffer[q] == 77 and buffer[q + 1] == 83
        acknowledgement = acknowledgement and buffer[q + 2] == 65
        h = _mix(h, np.uint64(1 if acknowledgement else 2))
        out[k] = _mix(h, np.uint64(salt[k])) | np.uint64(1)
    return out


# what ``monitor.decode.dns.parse`` reads at most (see there)
_DNS_MAX_QUESTIONS = 16
_DNS_MAX_RECORDS = 64
_DNS_MAX_JUMPS = 32
_DNS_MAX_LABELS = 128


@numba.njit(cache=True, inline="always")  # type: ignore[misc]
def _after_dns_name(msg: npt.NDArray[np.uint8], pos: int) -> int:
    """The offset after the name at ``pos`` as it is written (a pointer ends it), or -1."""
    n = msg.shape[0]
    while pos < n:
        length = msg[pos]
        if length >= 0xC0:
            return pos + 2 if pos + 1 < n else -1
        if length & 0xC0:
            return -1
        if length == 0:
            return pos + 1
        pos += 1 + length
    return -1


@numba.njit(cache=True, inline="always")  # type: ignore[misc]
def _dns_name_clear_of(msg: npt.NDArray[np.uint8], pos: int, hidden: npt.NDArray[np.bool_]) -> bool:
    """Whether the name at ``pos``, followed through its pointers as the decoder reads it,
    ends well and reads no byte marked ``hidden``."""
    n = msg.shape[0]
    jumps = 0
    labels = 0
    while True:
        if pos >= n or hidden[pos]:
            return False
        length = msg[pos]
        if length >= 0xC0:
            if pos + 1 >= n or hidden[pos + 1]:
                return False
            jumps += 1
            if jumps > _DNS_MAX_JUMPS:
                return False
            pos = ((length & 0x3F) << 8) | msg[pos + 1]
            continue
        if length & 0xC0:
            return False
        if length == 0:
            return True
        if pos + 1 + length > n:
            return False
        labels += 1
        if labels > _DNS_MAX_LABELS:
            return False
        for q in range(pos + 1, pos + 1 + length):
            if hidden[q]:
                return False
        pos += 1 + length


@numba.njit(cache=True)  # type: ignore[misc]
def dns_content_keys(
    buffer: npt.NDArray[np.uint8],
    offsets: npt.NDArray[np.int64],
    lengths: npt.NDArray[np.int32],
    rows: npt.NDArray[np.int64],
    salt: npt.NDArray[np.int64],
) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64]]:
    """Per DNS message: a hash of everything its decoding depends on, the message without
    its id and without the TTLs of the records the decoder reads (a resolver counts them
    down: its answers to one question differ in nothing else), and that hash mixed with a
    salt. 0 and 0 where the message would not decode, or where one of the names the decoder
    reads runs through a TTL (a compression pointer into one): those are told apart by
    their whole payload."""
    contents = np.zeros(rows.shape[0], np.uint64)
    salted = np.zeros(rows.shape[0], np.uint64)
    hidden = np.zeros(65536, np.bool_)
    names = np.empty(_DNS_MAX_QUESTIONS + 2 * _DNS_MAX_RECORDS, np.int64)
    ttls = np.empty(_DNS_MAX_RECORDS, np.int64)
    for k in range(rows.shape[0]):
        i = rows[k]
        n = lengths[i]
        if n < 12 or n > 65535:
            continue
        msg = buffer[offsets[i] : offsets[i] + n]
        opcode = (msg[2] >> 3) & 0x0F
        questions = (np.int64(msg[4]) << 8) | msg[5]
        records = (
            ((np.int64(msg[6]) << 8) | msg[7])
            + ((np.int64(msg[8]) << 8) | msg[9])
            + ((np.int64(msg[10]) << 8) | msg[11])
        )
        if opcode not in (0, 2, 4, 5) or questions > _DNS_MAX_QUESTIONS:
            continue
        if questions + records == 0:
            continue
        named = 0
        timed = 0
        pos = 12
        readable = True
        for _ in range(questions):
            names[named] = pos
            named += 1
            pos = _after_dns_name(msg, pos)
            if pos < 0 or pos + 4 > n:
                readable = False
                break
            pos += 4
        for _ in range(min(records, _DNS_MAX_RECORDS) if readable else 0):
            names[named] = pos
            named += 1
            pos = _after_dns_name(msg, pos)
            if pos < 0 or pos + 10 > n:
                readable = False
                break
            rtype = (np.int64(msg[pos]) << 8) | msg[pos + 1]
            rdlength = (np.int64(msg[pos + 8]) << 8) | msg[pos + 9]
            rdata = pos + 10
            if rdata + rdlength > n:
                readable = False
                break
            ttls[timed] = pos + 4
            timed += 1
            if rtype == 5 or rtype == 12:
                names[named] = rdata
                named += 1
            elif rtype == 33:
                if rdlength < 7:
                    readable = False
                    break
                names[named] = rdata + 6
                named += 1
            pos = rdata + rdlength
        if not readable:
            continue
        for t in range(timed):
            hidden[ttls[t] : ttls[t] + 4] = True
        for j in range(named):
            if not _dns_name_clear_of(msg, names[j], hidden):
                readable = False
                break
        if readable:
            h = _mix(np.uint64(0xCBF29CE484222325), np.uint64(n))
            for q in range(2, n):
                if not hidden[q]:
                    h = (h ^ np.uint64(msg[q])) * np.uint64(0x100000001B3)
            contents[k] = h | np.uint64(1)
            salted[k] = _mix(h, np.uint64(salt[k])) | np.uint64(1)
        for t in range(timed):
            hidden[ttls[t] : ttls[t] + 4] = False
    return contents, salted


@numba.njit(cache=True)  # type: ignore[misc]
def dicom_data_only(
    buffer: npt.NDArray[np.uint8],
    offsets: npt.NDArray[np.int64],
    lengths: npt.NDArray[np.int32],
    rows: npt.NDArray[np.int64],
) -> npt.NDArray[np.bool_]:
    """Per payload: True for a DICOM P-DATA-TF PDU whose PDVs in the payload are all dataset
    fragments (message control header bit 0 clear). Those carry images, never a command:
    the DICOM decoder would find nothing in them."""
    out = np.zeros(rows.shape[0], np.bool_)
    for k in range(rows.shape[0]):
        i = rows[k]
        p = offsets[i]
        end = p + lengths[i]
        if end - p < 12 or buffer[p] != 0x04 or buffer[p + 1] != 0:
            continue
        q = p + 6
        data_only = True
        while q + 6 <= end:
            length = (
                (np.int64(buffer[q]) << 24)
                | (np.int64(buffer[q + 1]) << 16)
                | (np.int64(buffer[q + 2]) << 8)
                | np.int64(buffer[q + 3])
            )
            if buffer[q + 5] & 0x01 or length < 2:
                data_only = False
                break
            q += 4 + length
        out[k] = data_only
    return out


def warm_up() -> None:
    """Load every compiled helper of this module (from numba's cache, or compile it) with the
    argument types the pipeline uses, so that the first packets of a kind never wait for it:
    a live capture would drop them meanwhile. Frame buffers come writable from a live ring
    and read-only from a mapped capture file: numba compiles each apart."""
    u64 = np.ones(1, np.uint64)
    i64 = np.zeros(1, np.int64)
    i32 = np.ones(1, np.int32)
    f64 = np.zeros(1, np.float64)
    u8 = np.zeros(1, np.uint8)
    flow_keys(u8, u64, u64, u64, u64, u8, i32, i32, np.empty(1, np.uint64), np.empty(1, np.uint8))
    for buffer in (np.zeros(16, np.uint8), np.frombuffer(bytes(16), np.uint8)):
        could_be_metadata(buffer, i64, i32)
        payload_keys(buffer, i64, i32, i64, i64)
        hl7_routing_keys(buffer, i64, i32, i64, i64)
        dns_content_keys(buffer, i64, i32, i64, i64)
        dicom_data_only(buffer, i64, i32, i64)
        select_payloads(
            i64, i64, i32, u8, u8, i32, i32, np.zeros(1, np.bool_), buffer, i64,
            np.zeros(1, np.bool_), np.zeros(1, np.int8), 1,
        )  # fmt: skip
    message_starts(i32, f64, np.full(1, -1.0), 0.5)
    row_keys(u64, u64, u64, u64)
    first, inverse, _ = group_keys(u64)
    group_max(inverse, f64, first.shape[0])
    first_sends_after(u64, u64, u8, np.zeros(1, np.bool_), 0)
    resumed_after_idle(inverse, f64, u8, first.shape[0])
    device_traffic(i64, i64, i64, i32, f64, np.zeros(1, np.bool_), 1, 1, i64, 1)
    table = FlowTable(max_flows=2, initial=2)
    slots = table.allocate(u64, np.full(1, 6, np.uint8))
    table.lookup(u64)
    account_flow_packets(
        i64, i64, slots, u8, i32, f64, u8, u8,
        table.packets, table.bytes, table.last_seen, table.server_side,
    )  # fmt: skip
    table.evict(slots, "idle")
