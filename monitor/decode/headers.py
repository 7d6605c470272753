"""Batch decode of L2–L4 headers: a whole ``FrameBatch`` into columns of numbers.

One compiled loop (numba) walks every frame once: link layer (Ethernet with 802.1Q/QinQ,
PPPoE and MPLS, Linux SLL/SLL2, raw IP, BSD null/loopback), ARP, IPv4 (options, fragments),
IPv6 (extension headers), TCP, UDP, ICMP/ICMPv6. The result is a ``PacketTable``: one numpy
array per field, no per-packet Python object, so the rest of the pipeline aggregates with
array operations and hands only the few packets that need it to the application decoders.

Promise: never raises on frame content. A frame that is cut short or broken keeps every field
decoded before the problem and gets a ``status`` code; ``STATUS_REASONS`` names each code and
is the bounded label set of ``santinel_decode_errors_total``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numba
import numpy as np
import numpy.typing as npt

from monitor.capture import FrameBatch

# status codes (0 = decoded without a problem); the names are metric label values
STATUS_REASONS = (
    "ok",
    "unsupported_linktype",
    "truncated_link_header",
    "truncated_vlan",
    "truncated_arp",
    "truncated_ipv4",
    "bad_ipv4_header",
    "truncated_ipv6",
    "truncated_ipv6_extension",
    "truncated_tcp",
    "bad_tcp_header",
    "truncated_udp",
    "truncated_icmp",
    "bad_ip_version",
)
STATUS_OK = 0

ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_ARP = 0x0806
ETHERTYPE_IPV6 = 0x86DD

PROTO_ICMP = 1
PROTO_TCP = 6
PROTO_UDP = 17
PROTO_ICMPV6 = 58

FRAG_NONE = 0
FRAG_FIRST = 1
FRAG_LATER = 2


@dataclass(frozen=True, slots=True)
class PacketTable:
    """Decoded headers of a batch, one array per field, index = frame index in the batch.

    Addresses are 128-bit as two uint64 halves; an IPv4 address is ``hi = 0``,
    ``lo = address`` (``ip_version`` tells them apart). MACs are 48-bit integers, 0 when the
    frame carries none. Ports are 0 where the packet has none (ICMP, non-first fragments,
    truncated L4). ``payload_offset``/``payload_length`` locate the L4 payload in the batch
    buffer, bounded by the IP length (so Ethernet padding is not payload);
    ``payload_wire_length`` is the payload the packet carried on the wire, known from the IP,
    TCP and UDP headers even where a short snaplen cut the payload off.
    """

    timestamps_ns: npt.NDArray[np.int64]
    wire_length: npt.NDArray[np.int32]
    src_mac: npt.NDArray[np.int64]
    dst_mac: npt.NDArray[np.int64]
    vlan: npt.NDArray[np.int32]
    ethertype: npt.NDArray[np.int32]
    ip_version: npt.NDArray[np.uint8]
    src_ip_hi: npt.NDArray[np.uint64]
    src_ip_lo: npt.NDArray[np.uint64]
    dst_ip_hi: npt.NDArray[np.uint64]
    dst_ip_lo: npt.NDArray[np.uint64]
    protocol: npt.NDArray[np.uint8]
    src_port: npt.NDArray[np.int32]
    dst_port: npt.NDArray[np.int32]
    tcp_flags: npt.NDArray[np.uint8]
    icmp_type: npt.NDArray[np.int32]
    fragment: npt.NDArray[np.uint8]
    arp_opcode: npt.NDArray[np.int32]
    payload_offset: npt.NDArray[np.int64]
    payload_length: npt.NDArray[np.int32]
    payload_wire_length: npt.NDArray[np.int32]
    status: npt.NDArray[np.uint8]

    def __len__(self) -> int:
        return int(self.status.shape[0])

    def rows(self, start: int, end: int) -> PacketTable:
        """The headers of frames ``start`` to ``end`` (excluded): those of
        ``FrameBatch.frames(start, end)``, which shares the buffer the payload offsets point
        into."""
        return PacketTable(*(getattr(self, name)[start:end] for name in _COLUMNS))


_COLUMNS = tuple(field.name for field in fields(PacketTable))


@numba.njit(cache=True, inline="always")  # type: ignore[misc]
def _u16(buf: npt.NDArray[np.uint8], i: int) -> Any:
    return (np.int64(buf[i]) << 8) | np.int64(buf[i + 1])


@numba.njit(cache=True, inline="always")  # type: ignore[misc]
def _u32(buf: npt.NDArray[np.uint8], i: int) -> Any:
    return (
        (np.int64(buf[i]) << 24)
        | (np.int64(buf[i + 1]) << 16)
        | (np.int64(buf[i + 2]) << 8)
        | np.int64(buf[i + 3])
    )


@numba.njit(cache=True, inline="always")  # type: ignore[misc]
def _u48(buf: npt.NDArray[np.uint8], i: int) -> Any:
    return (_u16(buf, i) << 32) | _u32(buf, i + 2)


@numba.njit(cache=True, inline="always")  # type: ignore[misc]
def _u64(buf: npt.NDArray[np.uint8], i: int) -> np.uint64:
    return (np.uint64(_u32(buf, i)) << np.uint64(32)) | np.uint64(_u32(buf, i + 4))


@numba.njit(cache=True)  # type: ignore[misc]
def _decode(
    buf: npt.NDArray[np.uint8],
    offsets: npt.NDArray[np.int64],
    caplens: npt.NDArray[np.int32],
    linktypes: npt.NDArray[np.int32],
    src_mac: npt.NDArray[np.int64],
    dst_mac: npt.NDArray[np.int64],
    vlan: npt.NDArray[np.int32],
    ethertype: npt.NDArray[np.int32],
    ip_version: npt.NDArray[np.uint8],
    src_ip_hi: npt.NDArray[np.uint64],
    src_ip_lo: npt.NDArray[np.uint64],
    dst_ip_hi: npt.NDArray[np.uint64],
    dst_ip_lo: npt.NDArray[np.uint64],
    protocol: npt.NDArray[np.uint8],
    src_port: npt.NDArray[np.int32],
    dst_port: npt.NDArray[np.int32],
    tcp_flags: npt.NDArray[np.uint8],
    icmp_type: npt.NDArray[np.int32],
    fragment: npt.NDArray[np.uint8],
    arp_opcode: npt.NDArray[np.int32],
    payload_offset: npt.NDArray[np.int64],
    payload_length: npt.NDArray[np.int32],
    payload_wire_length: npt.NDArray[np.int32],
    status: npt.NDArray[np.uint8],
) -> None:
    n = offsets.shape[0]
    for k in range(n):
        start = offsets[k]
        end = start + caplens[k]
        lt = linktypes[k]
        vlan[k] = -1
        ethertype[k] = -1
        icmp_type[k] = -1
        arp_opcode[k] = -1
        p = start
        et = -1
        # ---- link layer ----
        if lt == 1:  # Ethernet
            if end - p < 14:
                status[k] = 2
                continue
            dst_mac[k] = _u48(buf, p)
            src_mac[k] = _u48(buf, p + 6)
            et = _u16(buf, p + 12)
            p += 14
        elif lt == 113:  # Linux SLL
            if end - p < 16:
                status[k] = 2
                continue
            if _u16(buf, p + 2) == 1 and _u16(buf, p + 4) == 6:
                src_mac[k] = _u48(buf, p + 6)
            et = _u16(buf, p + 14)
            p += 16
        elif lt == 276:  # Linux SLL2
            if end - p < 20:
                status[k] = 2
                continue
            if _u16(buf, p + 8) == 1 and buf[p + 11] == 6:
                src_mac[k] = _u48(buf, p + 12)
            et = _u16(buf, p)
            p += 20
        elif lt == 0 or lt == 108:  # BSD null / OpenBSD loopback: address family
            if end - p < 4:
                status[k] = 2
                continue
            fam = _u32(buf, p)
            if fam > 0xFFFF:  # written in the other byte order
                fam = (
                    (fam >> 24)
                    | ((fam >> 8) & 0xFF00)
                    | ((fam << 8) & 0xFF0000)
                    | ((fam << 24) & 0xFF000000)
                )
            p += 4
            if fam == 2:
                et = ETHERTYPE_IPV4
            elif fam == 10 or fam == 24 or fam == 28 or fam == 30:
                et = ETHERTYPE_IPV6
            else:
                et = -1
        elif lt == 101 or lt == 12 or lt == 14 or lt == 228 or lt == 229:  # raw IP
            if end - p < 1:
                status[k] = 2
                continue
            v = buf[p] >> 4
            if v == 4:
                et = ETHERTYPE_IPV4
            elif v == 6:
                et = ETHERTYPE_IPV6
            else:
                status[k] = 13
                continue
        else:
            status[k] = 1
            continue
        # ---- VLAN tags, PPPoE session, MPLS ----
        bad = False
        while et == 0x8100 or et == 0x88A8 or et == 0x9100:
            if end - p < 4:
                status[k] = 3
                bad = True
                break
            if vlan[k] < 0:
                vlan[k] = _u16(buf, p) & 0x0FFF
            et = _u16(buf, p + 2)
            p += 4
        if bad:
            continue
        if et == 0x8864:  # PPPoE session: 6-byte header, then a 2-byte PPP protocol
            if end - p < 8:
                status[k] = 2
                continue
            ppp = _u16(buf, p + 6)
            p += 8
            if ppp == 0x0021:
                et = ETHERTYPE_IPV4
            elif ppp == 0x0057:
                et = ETHERTYPE_IPV6
            else:
                et = 0x8864
        if et == 0x8847:  # MPLS unicast: pop to the bottom of the stack, guess IP by version
            while True:
                if end - p < 4:
                    status[k] = 2
                    bad = True
                    break
                bos = buf[p + 2] & 1
                p += 4
                if bos:
                    break
            if bad:
                continue
            if end - p >= 1 and buf[p] >> 4 == 4:
                et = ETHERTYPE_IPV4
            elif end - p >= 1 and buf[p] >> 4 == 6:
                et = ETHERTYPE_IPV6
        ethertype[k] = et
        # ---- network layer ----
        proto = -1
        l4_end = end
        wire_end = end  # where the IP payload ends on the wire, past a short snaplen
        if et == ETHERTYPE_ARP:
            if end - p < 28:
                status[k] = 4
                continue
            arp_opcode[k] = _u16(buf, p + 6)
            if _u16(buf, p) == 1 and _u16(buf, p + 2) == 0x0800:
                src_mac[k] = _u48(buf, p + 8) if src_mac[k] == 0 else src_mac[k]
                src_ip_lo[k] = np.uint64(_u32(buf, p + 14))
                dst_ip_lo[k] = np.uint64(_u32(buf, p + 24))
            continue
        elif et == ETHERTYPE_IPV4:
            if end - p < 20:
                status[k] = 5
                continue
            if buf[p] >> 4 != 4:
                status[k] = 13
                continue
            ihl = (buf[p] & 0x0F) * 4
            total = _u16(buf, p + 2)
            ip_version[k] = 4
            src_ip_lo[k] = np.uint64(_u32(buf, p + 12))
            dst_ip_lo[k] = np.uint64(_u32(buf, p + 16))
            proto = buf[p + 9]
            protocol[k] = proto
            if ihl < 20 or total < ihl:
                status[k] = 6
                continue
            if end - p < ihl:
                status[k] = 5
                continue
            flags_frag = _u16(buf, p + 6)
            frag_offset = flags_frag & 0x1FFF
            more = (flags_frag >> 13) & 1
            # TSO-captured packets carry total length 0: trust the capture then
            if total > 0:
                wire_end = p + total
                if wire_end < l4_end:
                    l4_end = wire_end
            p += ihl
            if frag_offset != 0:
                fragment[k] = FRAG_LATER
                payload_offset[k] = p
                payload_length[k] = max(0, l4_end - p)
                continue
            if more:
                fragment[k] = FRAG_FIRST
        elif et == ETHERTYPE_IPV6:
            if end - p < 40:
                status[k] = 7
                continue
            if buf[p] >> 4 != 6:
                status[k] = 13
                continue
            ip_version[k] = 6
            src_ip_hi[k] = _u64(buf, p + 8)
            src_ip_lo[k] = _u64(buf, p + 16)
            dst_ip_hi[k] = _u64(buf, p + 24)
            dst_ip_lo[k] = _u64(buf, p + 32)
            plen = _u16(buf, p + 4)
            nxt = buf[p + 6]
            if plen > 0:
                wire_end = p + 40 + plen
                if wire_end < l4_end:
                    l4_end = wire_end
            p += 40
            later_fragment = False
            # extension headers: hop-by-hop, routing, fragment, destination options, AH
            while nxt == 0 or nxt == 43 or nxt == 44 or nxt == 60 or nxt == 51 or nxt == 135:
                if l4_end - p < 8:
                    status[k] = 8
                    bad = True
                    break
                if nxt == 44:
                    frag_offset = _u16(buf, p + 2) >> 3
                    if frag_offset != 0:
                        later_fragment = True
                    elif _u16(buf, p + 2) & 1:
                        fragment[k] = FRAG_FIRST
                    nxt = buf[p]
                    p += 8
                    if later_fragment:
                        break
                elif nxt == 51:
                    hlen = (buf[p + 1] + 2) * 4
                    nxt = buf[p]
                    p += hlen
                else:
                    hlen = (buf[p + 1] + 1) * 8
                    nxt = buf[p]
                    p += hlen
            protocol[k] = nxt
            proto = nxt
            if bad:
                continue
            if p > l4_end:
                status[k] = 8
                continue
            if later_fragment:
                fragment[k] = FRAG_LATER
                payload_offset[k] = p
                payload_length[k] = max(0, l4_end - p)
                continue
        else:
            continue
        # ---- transport layer ----
        have = l4_end - p
        if proto == PROTO_TCP:
            if have >= 4:
                src_port[k] = _u16(buf, p)
                dst_port[k] = _u16(buf, p + 2)
            doff = 0
            if have >= 14:  # data offset and flags: enough to know a handshake and a payload
                doff = (buf[p + 12] >> 4) * 4
                tcp_flags[k] = buf[p + 13]
                if doff >= 20:
                    payload_wire_length[k] = max(0, wire_end - p - doff)
            if have < 20:
                status[k] = 9
                continue
            if doff < 20:
                status[k] = 10
                continue
            if have < doff:
                status[k] = 9
                continue
            payload_offset[k] = p + doff
            payload_length[k] = l4_end - p - doff
        elif proto == PROTO_UDP:
            if have >= 6:
                ulen = _u16(buf, p + 4)
                payload_wire_length[k] = ulen - 8 if ulen >= 8 else max(0, wire_end - p - 8)
            if have < 8:
                if have >= 4:
                    src_port[k] = _u16(buf, p)
                    dst_port[k] = _u16(buf, p + 2)
                status[k] = 11
                continue
            src_port[k] = _u16(buf, p)
            dst_port[k] = _u16(buf, p + 2)
            payload_offset[k] = p + 8
            ulen = _u16(buf, p + 4)
            avail = l4_end - p - 8
            if ulen >= 8 and ulen - 8 < avail:
                avail = ulen - 8
            payload_length[k] = avail
        elif proto == PROTO_ICMP or proto == PROTO_ICMPV6:
            if l4_end - p < 4:
                status[k] = 12
                continue
            icmp_type[k] = buf[p]
            payload_offset[k] = p + 4
            payload_length[k] = l4_end - p - 4
            payload_wire_length[k] = max(0, wire_end - p - 4)


def decode_headers(batch: FrameBatch) -> PacketTable:
    """Decode every frame of ``batch`` into a ``PacketTable``."""
    n = len(batch)
    table = PacketTable(
        timestamps_ns=batch.timestamps_ns,
        wire_length=batch.wirelens,
        src_mac=np.zeros(n, np.int64),
        dst_mac=np.zeros(n, np.int64),
        vlan=np.empty(n, np.int32),
        ethertype=np.empty(n, np.int32),
        ip_version=np.zeros(n, np.uint8),
        src_ip_hi=np.zeros(n, np.uint64),
        src_ip_lo=np.zeros(n, np.uint64),
        dst_ip_hi=np.zeros(n, np.uint64),
        dst_ip_lo=np.zeros(n, np.uint64),
        protocol=np.zeros(n, np.uint8),
        src_port=np.zeros(n, np.int32),
        dst_port=np.zeros(n, np.int32),
        tcp_flags=np.zeros(n, np.uint8),
        icmp_type=np.empty(n, np.int32),
        fragment=np.zeros(n, np.uint8),
        arp_opcode=np.empty(n, np.int32),
        payload_offset=np.zeros(n, np.int64),
        payload_length=np.zeros(n, np.int32),
        payload_wire_length=np.zeros(n, np.int32),
        status=np.zeros(n, np.uint8),
    )
    if n:
        _decode(
            batch.buffer,
            batch.offsets,
            batch.caplens,
            batch.linktypes,
            table.src_mac,
            table.dst_mac,
            table.vlan,
            table.ethertype,
            table.ip_version,
            table.src_ip_hi,
            table.src_ip_lo,
            table.dst_ip_hi,
            table.dst_ip_lo,
            table.protocol,
            table.src_port,
            table.dst_port,
            table.tcp_flags,
            table.icmp_type,
            table.fragment,
            table.arp_opcode,
            table.payload_offset,
            table.payload_length,
            table.payload_wire_length,
            table.status,
        )
    return table
