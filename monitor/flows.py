"""Flow table and the compiled batch helpers the pipeline aggregates with.

A flow is one bidirectional conversation between two endpoints (IP, port) over one IP
protocol. Per batch, packets are grouped by flow with a 64-bit key computed in a compiled
loop and sorted once; Python then touches each *flow* of the batch, not each packet.

Promise: grouping is exact up to 64-bit hash collisions of distinct flows within one batch
(about 1e-10 per batch of 65,536 packets); everything per flow is kept in ``Flow`` objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numba
import numpy as np
import numpy.typing as npt

FlowKey = tuple[int, int, int, int, int, int, int, int]
"""(ip_version, a_hi, a_lo, b_hi, b_lo, protocol, a_port, b_port), endpoint a <= endpoint b."""

TRANSPORT_NAMES = {6: "tcp", 17: "udp", 1: "icmp", 58: "icmpv6"}


@dataclass(slots=True)
class Flow:
    """One bidirectional flow. Side 0 is endpoint a of the key, side 1 endpoint b."""

    key: FlowKey
    first_seen: float
    last_seen: float
    client_side: int
    packets: list[int] = field(default_factory=lambda: [0, 0])
    bytes: list[int] = field(default_factory=lambda: [0, 0])
    server_side: int = -1  # known once a SYN-ACK or a UDP reply is seen
    app: str | None = None  # application protocol recognised by content
    # payload packets still to hand to the application decoders before the protocol is known:
    # every protocol decoded here shows itself in the first message of one side or the other
    inspect_budget: int = 4
    devices: list[str | None] = field(default_factory=lambda: [None, None])
    peers: list[str] = field(default_factory=lambda: ["", ""])  # how each side names the other
    addresses: tuple[str, str] = ("", "")
    peer_names: list[str | None] = field(default_factory=lambda: [None, None])  # from DNS

    @property
    def transport(self) -> str:
        name = TRANSPORT_NAMES.get(self.key[5])
        return name if name is not None else f"ip{self.key[5]}"

    def port(self, side: int) -> int:
        return self.key[6 + side]

    def service(self) -> str:
        """``tcp/2575``: the server's port when known, else the port the client sent to."""
        side = self.server_side if self.server_side >= 0 else 1 - self.client_side
        return f"{self.transport}/{self.port(side)}"


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


@numba.njit(cache=True)  # type: ignore[misc]
def could_be_metadata(
    buffer: npt.NDArray[np.uint8],
    offsets: npt.NDArray[np.int64],
    lengths: npt.NDArray[np.int32],
) -> npt.NDArray[np.bool_]:
    """Per TCP payload, whether its first bytes could start a message of a protocol the
    application decoders read (TLS record, HTTP request, HL7/MLLP, DICOM PDU, MQTT CONNECT):
    the rest never needs a trip into Python."""
    out = np.zeros(offsets.shape[0], np.bool_)
    for i in range(offsets.shape[0]):
        n = lengths[i]
        if n < 2:
            continue
        p = offsets[i]
        b0 = buffer[p]
        b1 = buffer[p + 1]
        tls_record = b0 == 0x16 and b1 == 0x03
        mllp_or_msh = b0 == 0x0B or (b0 == 77 and b1 == 83)  # start block, or "MS(H)"
        dicom_pdu = 1 <= b0 <= 7 and b1 == 0
        mqtt_connect = b0 == 0x10
        upper_case_word = 65 <= b0 <= 90 and 65 <= b1 <= 90  # HTTP method, FHS/BHS batch
        out[i] = tls_record or mllp_or_msh or dicom_pdu or mqtt_connect or upper_case_word
    return out


@numba.njit(cache=True)  # type: ignore[misc]
def take_within_budget(
    groups: npt.NDArray[np.int64],
    eligible: npt.NDArray[np.bool_],
    budget: npt.NDArray[np.int64],
) -> npt.NDArray[np.bool_]:
    """Mark, in order, the eligible packets of each group while the group's budget lasts;
    ``budget`` is decremented in place."""
    chosen = np.zeros(groups.shape[0], np.bool_)
    for i in range(groups.shape[0]):
        g = groups[i]
        if eligible[i] and g >= 0 and budget[g] > 0:
            chosen[i] = True
            budget[g] -= 1
    return chosen


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
    groups: npt.NDArray[np.int64],
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
