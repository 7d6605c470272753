"""Write a deterministic pcap of synthetic hospital traffic, fast, for the benchmarks.

    python3 bench/generate_traffic.py OUT.pcap [--packets 1000000] [--seed 1] [--seconds 600]
    python3 bench/generate_traffic.py OUT.pcap --flows 1000000 --devices 100000

The default mode writes exactly ``--packets`` Ethernet/IPv4 frames spread over ``--seconds``
of capture time, as a SPAN port of a hospital core switch would see them: about 300 devices
on 10.20.0.0/16 (infusion pumps and patient monitors sending HL7 v2 over MLLP to an
interface engine, imaging modalities storing studies on a PACS over DICOM, workstations on
HTTPS and DNS, telemetry sensors on MQTT, the servers they talk to), with DHCP, SSDP and mDNS
announcements, ARP and ICMP. Long-lived flows carry most packets (DICOM bulk, TLS downloads,
HL7 and MQTT connections); DNS lookups and short HTTPS sessions make most of the flows
(about 20,000 per million packets). Every packet count is a share of ``--packets``, so a
small file has the same mix.

``--flows F --devices D`` writes instead F distinct UDP/TCP flows among D devices, a few
packets each (DNS-like requests and answers, short TCP exchanges), for the memory bound.

Promises: the same arguments give the same bytes; headers are valid (lengths, IPv4 header
checksum, TCP sequence numbers per direction) so tcpdump and tshark decode every frame and
tshark reassembles the TCP streams; the HL7 and DICOM content names only the synthetic patient
``BENCH^SYNTHETIC`` (no real patient data). Packets are built from byte templates and numpy
arrays, not a packet library, so a million take a few seconds.
"""

from __future__ import annotations

import argparse
import struct
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numba
import numpy as np
import numpy.typing as npt

KIND_TCP, KIND_UDP, KIND_ICMP, KIND_ARP = 0, 1, 2, 3
SYN, FIN, RST, PSH, ACK = 0x02, 0x01, 0x04, 0x08, 0x10
MSS = 1448
T0_NS = 1_796_461_200 * 10**9  # 2026-12-05 09:00:00 UTC: a weekday morning
SYNTHETIC_PATIENT = ("BENCH^SYNTHETIC", "BENCH-0000001")

# Share of the packets of each kind of traffic; DICOM takes what the others leave.
MIX = {
    "tls": 0.25,
    "hl7": 0.15,
    "mqtt": 0.12,
    "dns": 0.035,
    "discovery": 0.02,
    "arp": 0.015,
    "icmp": 0.008,
    "dhcp": 0.003,
}


@dataclass(frozen=True, slots=True)
class Host:
    mac: int
    ip: int
    name: str


def ip4(text: str) -> int:
    a, b, c, d = (int(x) for x in text.split("."))
    return a << 24 | b << 16 | c << 8 | d


def mac(prefix: int, suffix: int) -> int:
    return (prefix << 24) | (suffix & 0xFFFFFF)


class Trace:
    """Packets as rows of header fields plus a payload reference into one byte pool."""

    FIELDS = ("t", "kind", "smac", "dmac", "sip", "dip", "sport", "dport", "seq", "ack")
    FIELDS2 = ("flags", "off", "len")

    def __init__(self) -> None:
        self.rows: list[tuple[int, ...]] = []
        self.chunks: list[tuple[int, dict[str, npt.NDArray[np.int64] | int]]] = []
        self._chunk_packets = 0
        self.pool = bytearray()
        self._interned: dict[bytes, int] = {}

    def payload(self, data: bytes) -> tuple[int, int]:
        """A reference (offset, length) to ``data`` in the pool; equal payloads share bytes."""
        off = self._interned.get(data)
        if off is None:
            off = len(self.pool)
            self.pool += data
            if len(data) < 4096:
                self._interned[data] = off
        return off, len(data)

    def add(
        self,
        t: int,
        kind: int,
        src: Host,
        dst: Host,
        sport: int = 0,
        dport: int = 0,
        seq: int = 0,
        ack: int = 0,
        flags: int = 0,
        ref: tuple[int, int] = (0, 0),
        dmac: int | None = None,
    ) -> None:
        self.rows.append(
            (
                t,
                kind,
                src.mac,
                dst.mac if dmac is None else dmac,
                src.ip,
                dst.ip,
                sport,
                dport,
                seq & 0xFFFFFFFF,
                ack & 0xFFFFFFFF,
                flags,
                ref[0],
                ref[1],
            )
        )

    def add_many(self, **columns: npt.NDArray[np.int64] | int) -> None:
        """Packets given as columns: arrays of one length, or scalars for all of them."""
        n = max(np.size(v) for v in columns.values())
        self.chunks.append((n, columns))
        self._chunk_packets += n

    def __len__(self) -> int:
        return len(self.rows) + self._chunk_packets

    def columns(self) -> dict[str, npt.NDArray[np.int64]]:
        names = self.FIELDS + self.FIELDS2
        table = np.array(self.rows, np.int64).reshape(-1, len(names))
        total = len(self)
        out = {}
        for i, name in enumerate(names):
            column = np.empty(total, np.int64)
            column[: table.shape[0]] = table[:, i]
            pos = table.shape[0]
            for n, values in self.chunks:
                column[pos : pos + n] = values[name]
                pos += n
            out[name] = column
        return out


class Tcp:
    """One TCP connection between ``client`` and ``server`` (side 0 and side 1)."""

    def __init__(
        self,
        trace: Trace,
        rng: np.random.Generator,
        client: Host,
        server: Host,
        ports: tuple[int, int],
    ) -> None:
        self.trace = trace
        self.hosts = (client, server)
        self.ports = ports
        self.seq = [int(rng.integers(1, 2**32)), int(rng.integers(1, 2**32))]
        self.rtt = int(rng.uniform(0.15e6, 0.6e6))  # ns: one switch, two hops
        self.packets = 0

    def segment(self, t: int, side: int, flags: int, data: bytes = b"") -> None:
        ref = self.trace.payload(data) if data else (0, 0)
        src, dst = self.hosts[side], self.hosts[1 - side]
        self.trace.add(
            t,
            KIND_TCP,
            src,
            dst,
            self.ports[side],
            self.ports[1 - side],
            self.seq[side],
            self.seq[1 - side],
            flags,
            ref,
        )
        self.seq[side] += len(data) + (1 if flags & (SYN | FIN) else 0)
        self.packets += 1

    def open(self, t: int) -> int:
        self.segment(t, 0, SYN)
        self.segment(t + self.rtt // 2, 1, SYN | ACK)
        self.segment(t + self.rtt, 0, ACK)
        return t + self.rtt

    def send(self, t: int, side: int, data: bytes, ack_now: bool = False) -> int:
        """One application message, cut at the MSS; the peer acknowledges the last segment
        (at once when ``ack_now``, else as a delayed ACK) and every second one."""
        pieces = [data[i : i + MSS] for i in range(0, len(data), MSS)] or [b""]
        for i, piece in enumerate(pieces):
            last = i == len(pieces) - 1
            self.segment(t, side, ACK | (PSH if last else 0), piece)
            if i % 2 == 1 and not last:
                self.segment(t + 20_000, 1 - side, ACK)
            t += 12_000
        if ack_now:
            self.segment(t + self.rtt // 2, 1 - side, ACK)
        return t

    def bulk(self, t: int, side: int, template: tuple[int, int], count: int, gap_ns: int) -> int:
        """``count`` copies of one pooled message (a DICOM P-DATA PDU, TLS records) back to
        back at ``gap_ns`` per segment, the peer acknowledging every second segment."""
        off, length = template
        cuts = np.arange(0, length, MSS)
        seg_len = np.minimum(MSS, length - cuts)
        per = cuts.shape[0]
        n = per * count
        if n == 0:
            return t
        lens = np.tile(seg_len, count)
        offs = off + np.tile(cuts, count)
        flags = np.where(np.arange(n) % per == per - 1, ACK | PSH, ACK)
        times = t + np.arange(n, dtype=np.int64) * gap_ns
        seqs = self.seq[side] + np.concatenate(([0], np.cumsum(lens)[:-1]))
        src, dst = self.hosts[side], self.hosts[1 - side]
        common = {
            "kind": KIND_TCP,
            "smac": src.mac,
            "dmac": dst.mac,
            "sip": src.ip,
            "dip": dst.ip,
            "sport": self.ports[side],
            "dport": self.ports[1 - side],
        }
        self.trace.add_many(
            t=times,
            seq=seqs & 0xFFFFFFFF,
            ack=self.seq[1 - side] & 0xFFFFFFFF,
            flags=flags,
            off=offs,
            len=lens,
            **common,
        )
        acked = np.arange(1, n, 2)  # an ACK after every second segment
        if n % 2 == 1:
            acked = np.append(acked, n - 1)
        back = {
            "kind": KIND_TCP,
            "smac": dst.mac,
            "dmac": src.mac,
            "sip": dst.ip,
            "dip": src.ip,
            "sport": self.ports[1 - side],
            "dport": self.ports[side],
        }
        self.trace.add_many(
            t=times[acked] + self.rtt // 2,
            seq=self.seq[1 - side] & 0xFFFFFFFF,
            ack=(seqs[acked] + lens[acked]) & 0xFFFFFFFF,
            flags=ACK,
            off=0,
            len=0,
            **back,
        )
        self.seq[side] += int(lens.sum())
        self.packets += n + acked.shape[0]
        return int(times[-1]) + gap_ns

    def close(self, t: int) -> int:
        self.segment(t, 0, FIN | ACK)
        self.segment(t + self.rtt // 2, 1, FIN | ACK)
        self.segment(t + self.rtt, 0, ACK)
        return t + self.rtt


# ----------------------------------------------------------------------------- payloads
def mllp(segments: list[str]) -> bytes:
    return b"\x0b" + "\r".join(segments).encode() + b"\r\x1c\r"


def hl7_oru(
    sender: tuple[str, str], stamp: str, control: str, kind: str, values: list[str]
) -> bytes:
    pid = f"PID|1||{SYNTHETIC_PATIENT[1]}^^^BENCH^MR||{SYNTHETIC_PATIENT[0]}||19000101|U"
    segments = [
        f"MSH|^~\\&|{sender[0]}|{sender[1]}|HL7ENGINE|GENERAL_HOSP|{stamp}||{kind}|{control}|P|2.6",
        pid,
        "PV1|1|I|ICU^07^B",
        f"OBR|1|{control}||69837-4^Vital signs^LN|||{stamp}",
    ]
    segments += [f"OBX|{i + 1}|NM|{v}|||||F" for i, v in enumerate(values)]
    return mllp(segments)


def hl7_ack(stamp: str, control: str, trigger: str) -> bytes:
    return mllp(
        [
            f"MSH|^~\\&|HL7ENGINE|GENERAL_HOSP|||{stamp}||ACK^{trigger}^ACK|A{control}|P|2.6",
            f"MSA|AA|{control}",
        ]
    )


def hl7_stamp(t_ns: int) -> str:
    return time.strftime("%Y%m%d%H%M%S", time.gmtime(t_ns // 10**9))


def _item(kind: int, value: bytes) -> bytes:
    return struct.pack(">BBH", kind, 0, len(value)) + value


def dicom_associate(
    kind: int, called: str, calling: str, syntaxes: list[str], implementation: tuple[str, str]
) -> bytes:
    """A-ASSOCIATE-RQ (``kind`` 1) or -AC (2): PS3.8 9.3.2/9.3.3."""
    explicit_le = b"1.2.840.10008.1.2.1"
    items = _item(0x10, b"1.2.840.10008.3.1.1.1")
    for i, uid in enumerate(syntaxes):
        ctx_id = 2 * i + 1
        if kind == 1:
            sub = _item(0x30, uid.encode()) + _item(0x40, explicit_le)
            items += _item(0x20, bytes([ctx_id, 0, 0, 0]) + sub)
        else:
            items += _item(0x21, bytes([ctx_id, 0, 0, 0]) + _item(0x40, explicit_le))
    user = (
        _item(0x51, struct.pack(">I", 16384))
        + _item(0x52, implementation[0].encode())
        + _item(0x55, implementation[1].encode())
    )
    items += _item(0x50, user)
    body = (
        struct.pack(">HH", 1, 0)
        + called.ljust(16).encode()
        + calling.ljust(16).encode()
        + bytes(32)
        + items
    )
    return struct.pack(">BBI", kind, 0, len(body)) + body


def _element(group: int, elem: int, value: bytes) -> bytes:
    if len(value) % 2:
        value += b"\x00"
    return struct.pack("<HHI", group, elem, len(value)) + value


def dimse_command(
    field: int, message_id: int, sop_class: str, instance: str | None, status: int | None
) -> bytes:
    body = _element(0, 0x0002, sop_class.encode()) + _element(0, 0x0100, struct.pack("<H", field))
    if field & 0x8000:
        body += _element(0, 0x0120, struct.pack("<H", message_id))
    else:
        body += _element(0, 0x0110, struct.pack("<H", message_id))
    if field == 0x0001:
        body += _element(0, 0x0700, struct.pack("<H", 0))
    body += _element(0, 0x0800, struct.pack("<H", 0x0000 if field == 0x0001 else 0x0101))
    if status is not None:
        body += _element(0, 0x0900, struct.pack("<H", status))
    if instance is not None:
        body += _element(0, 0x1000, instance.encode())
    command = _element(0, 0x0000, struct.pack("<I", len(body))) + body
    return pdata([(1, 0x03, command)])


def dicom_dataset_head(sop_class: str, instance: str, modality: str) -> bytes:
    """Explicit VR little endian attributes of a synthetic image, before its pixel data."""

    def attribute(group: int, elem: int, vr: bytes, value: bytes) -> bytes:
        if len(value) % 2:
            value += b"\x00" if vr == b"UI" else b" "
        return struct.pack("<HH2sH", group, elem, vr, len(value)) + value

    return (
        attribute(0x0008, 0x0016, b"UI", sop_class.encode())
        + attribute(0x0008, 0x0018, b"UI", instance.encode())
        + attribute(0x0008, 0x0060, b"CS", modality.encode())
        + attribute(0x0010, 0x0010, b"PN", SYNTHETIC_PATIENT[0].encode())
        + attribute(0x0010, 0x0020, b"LO", SYNTHETIC_PATIENT[1].encode())
        + attribute(0x0028, 0x0010, b"US", struct.pack("<H", 512))
        + attribute(0x0028, 0x0011, b"US", struct.pack("<H", 512))
        + attribute(0x0028, 0x0100, b"US", struct.pack("<H", 16))
    )


def pdata(pdvs: list[tuple[int, int, bytes]]) -> bytes:
    """A P-DATA-TF PDU of (presentation context id, message control header, fragment)."""
    body = b"".join(struct.pack(">IBB", len(v) + 2, ctx, ctl) + v for ctx, ctl, v in pdvs)
    return struct.pack(">BBI", 4, 0, len(body)) + body


def tls_client_hello(rng: np.random.Generator, sni: str, modern: bool, alpn: bool) -> bytes:
    """A ClientHello: TLS 1.3-capable (``modern``) or TLS 1.2-only, with SNI."""
    if modern:
        suites = [0x1301, 0x1302, 0x1303, 0xC02B, 0xC02F, 0xC02C, 0xC030, 0xCCA9, 0xCCA8]
    else:
        suites = [0xC02F, 0xC030, 0xC027, 0xC028, 0xC013, 0xC014, 0x009C, 0x009D, 0x002F, 0x0035]
    name = sni.encode()
    ext = _ext(0, struct.pack(">HBH", len(name) + 3, 0, len(name)) + name)
    ext += _ext(10, struct.pack(">H", 6) + struct.pack(">HHH", 0x001D, 0x0017, 0x0018))
    ext += _ext(11, b"\x01\x00")
    sigs = [0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601]
    ext += _ext(13, struct.pack(">H", 2 * len(sigs)) + struct.pack(f">{len(sigs)}H", *sigs))
    if alpn:
        protos = b"\x02h2\x08http/1.1"
        ext += _ext(16, struct.pack(">H", len(protos)) + protos)
    ext += _ext(23, b"")
    if modern:
        ext += _ext(43, b"\x04\x03\x04\x03\x03")
        ext += _ext(45, b"\x01\x01")
        key = rng.bytes(32)
        ext += _ext(51, struct.pack(">HHH", 36, 0x001D, 32) + key)
    body = (
        b"\x03\x03"
        + rng.bytes(32)
        + b"\x20"
        + rng.bytes(32)
        + struct.pack(">H", 2 * len(suites))
        + struct.pack(f">{len(suites)}H", *suites)
        + b"\x01\x00"
        + struct.pack(">H", len(ext))
        + ext
    )
    handshake = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + struct.pack(">H", len(handshake)) + handshake


def _ext(kind: int, value: bytes) -> bytes:
    return struct.pack(">HH", kind, len(value)) + value


def tls_server_flight(rng: np.random.Generator, modern: bool) -> bytes:
    suite = 0x1301 if modern else 0xC02F
    ext = (
        _ext(43, b"\x03\x04") + _ext(51, struct.pack(">HH", 0x001D, 32) + rng.bytes(32))
        if modern
        else _ext(23, b"")
    )
    body = (
        b"\x03\x03"
        + rng.bytes(32)
        + b"\x20"
        + rng.bytes(32)
        + struct.pack(">HB", suite, 0)
        + struct.pack(">H", len(ext))
        + ext
    )
    hello = b"\x02" + len(body).to_bytes(3, "big") + body
    if modern:
        return (
            tls_record(0x16, hello) + tls_record(0x14, b"\x01") + tls_record(0x17, rng.bytes(2400))
        )
    certificate = b"\x0b\x00\x00\x03\x00\x00\x00"
    done = b"\x0e\x00\x00\x00"
    return tls_record(0x16, hello + certificate + done)


def tls_client_finish(rng: np.random.Generator, modern: bool) -> bytes:
    if modern:
        return tls_record(0x14, b"\x01") + tls_record(0x17, rng.bytes(53))
    exchange = b"\x10\x00\x00\x21\x20" + rng.bytes(32)
    return tls_record(0x16, exchange) + tls_record(0x14, b"\x01") + tls_record(0x16, rng.bytes(40))


def tls_record(kind: int, body: bytes) -> bytes:
    return struct.pack(">BHH", kind, 0x0303, len(body)) + body


def dns_name(name: str) -> bytes:
    return b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\x00"


def dns_query(ident: int, name: str) -> bytes:
    return struct.pack(">HHHHHH", ident, 0x0100, 1, 0, 0, 0) + dns_name(name) + b"\x00\x01\x00\x01"


def dns_answer(ident: int, name: str, address: int) -> bytes:
    answer = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 300, 4) + struct.pack(">I", address)
    question = dns_name(name) + b"\x00\x01\x00\x01"
    return struct.pack(">HHHHHH", ident, 0x8180, 1, 1, 0, 0) + question + answer


def mdns_announce(host: str, service: str, address: int) -> bytes:
    """An unsolicited mDNS response: PTR for the service, A for the host."""
    ptr_target = dns_name(f"{host}.{service}")
    records = dns_name(service) + struct.pack(">HHIH", 12, 1, 4500, len(ptr_target)) + ptr_target
    records += dns_name(f"{host}.local") + struct.pack(">HHIH", 1, 0x8001, 120, 4)
    records += struct.pack(">I", address)
    return struct.pack(">HHHHHH", 0, 0x8400, 0, 2, 0, 0) + records


def ssdp_notify(location: str, server: str, usn: str) -> bytes:
    return (
        "NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nCACHE-CONTROL: max-age=1800\r\n"
        f"LOCATION: {location}\r\nNT: upnp:rootdevice\r\nNTS: ssdp:alive\r\n"
        f"SERVER: {server}\r\nUSN: {usn}::upnp:rootdevice\r\n\r\n"
    ).encode()


def dhcp_message(
    op: int,
    kind: int,
    xid: int,
    client: Host,
    yiaddr: int,
    server: Host,
    vendor: str,
    hostname: str,
) -> bytes:
    chaddr = client.mac.to_bytes(6, "big") + bytes(10)
    head = struct.pack(
        ">BBBBIHHIIII", op, 1, 6, 0, xid, 0, 0x8000 if op == 1 else 0, 0, yiaddr, 0, 0
    )
    options = b"\x63\x82\x53\x63" + bytes([53, 1, kind])
    if op == 1:
        options += bytes([61, 7, 1]) + client.mac.to_bytes(6, "big")
        name = hostname.encode()
        options += bytes([12, len(name)]) + name
        klass = vendor.encode()
        options += bytes([60, len(klass)]) + klass
        options += bytes([55, 4, 1, 3, 6, 15])
        if kind == 3:
            options += bytes([50, 4]) + client.ip.to_bytes(4, "big")
            options += bytes([54, 4]) + server.ip.to_bytes(4, "big")
    else:
        options += bytes([54, 4]) + server.ip.to_bytes(4, "big")
        options += bytes([51, 4]) + (86400).to_bytes(4, "big")
        options += bytes([1, 4]) + ip4("255.255.0.0").to_bytes(4, "big")
        options += bytes([3, 4]) + ip4("10.20.0.1").to_bytes(4, "big")
        options += bytes([6, 4]) + ip4("10.20.1.53").to_bytes(4, "big")
    options += b"\xff"
    return head + chaddr + bytes(192) + options


def mqtt_connect(client_id: str, keepalive: int) -> bytes:
    cid = client_id.encode()
    body = (
        b"\x00\x04MQTT\x04\x02" + struct.pack(">H", keepalive) + struct.pack(">H", len(cid)) + cid
    )
    return b"\x10" + _varint(len(body)) + body


def mqtt_publish(topic: str, payload: bytes) -> bytes:
    name = topic.encode()
    body = struct.pack(">H", len(name)) + name + payload
    return b"\x30" + _varint(len(body)) + body


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        digit, n = n % 128, n // 128
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


# ----------------------------------------------------------------------------- the hospital
@dataclass(slots=True)
class Device:
    host: Host
    role: str
    vendor_class: str
    hostname: str
    detail: str = ""


def hospital(rng: np.random.Generator) -> tuple[dict[str, Host], list[Device]]:
    """Servers and about 300 devices on 10.20.0.0/16 (prefixes are real vendor OUIs)."""
    vm = 0x005056
    servers = {
        "gateway": Host(mac(0x00005E, 0x000114), ip4("10.20.0.1"), "gw"),
        "hl7": Host(mac(vm, 0x0A0110), ip4("10.20.1.10"), "hl7-engine"),
        "pacs": Host(mac(vm, 0x0A0130), ip4("10.20.1.30"), "pacs"),
        "broker": Host(mac(vm, 0x0A0120), ip4("10.20.1.20"), "mqtt-broker"),
        "dns": Host(mac(vm, 0x0A0153), ip4("10.20.1.53"), "resolver"),
        "dhcp": Host(mac(vm, 0x0A0167), ip4("10.20.1.67"), "dhcp"),
        "pumpserver": Host(mac(vm, 0x0A0170), ip4("10.20.1.70"), "pump-manager"),
        "nms": Host(mac(vm, 0x0A0180), ip4("10.20.1.80"), "monitoring"),
        "web": Host(mac(vm, 0x0A0140), ip4("10.20.1.40"), "intranet"),
    }
    devices: list[Device] = []

    def add(count: int, oui: int, subnet: int, role: str, vendor_class: str, prefix: str) -> None:
        for i in range(count):
            host = Host(mac(oui, 0x100000 + subnet * 256 + i), ip4(f"10.20.{subnet}.{10 + i}"), "")
            name = f"{prefix}-{subnet:02d}{i:03d}"
            devices.append(Device(Host(host.mac, host.ip, name), role, vendor_class, name))

    add(100, 0x00D075, 10, "pump", "CareFusion Alaris PCU", "alaris")
    add(20, 0x5842E4, 11, "pump_mqtt", "Baxter Spectrum IQ", "spectrum")
    add(80, 0x0009FB, 12, "monitor", "IntelliVue MX800", "mx800")
    add(6, 0x444B5D, 20, "modality_ge", "GE CT", "ct")
    add(4, 0x884B39, 21, "modality_siemens", "Siemens MR", "mr")
    add(60, 0x001B21, 30, "workstation", "MSFT 5.0", "ws")
    add(30, 0x001B21, 31, "sensor", "udhcp 1.36.1", "bedsensor")
    order = rng.permutation(len(devices))
    return servers, [devices[i] for i in order]


WORKSTATION_SNI = [
    "ehr.general-hosp.example",
    "pacs-viewer.general-hosp.example",
    "login.microsoftonline.com",
    "outlook.office365.com",
    "teams.microsoft.com",
    "www.google.com",
    "ocsp.digicert.com",
    "update.googleapis.com",
    "lab-portal.general-hosp.example",
    "intranet.general-hosp.example",
    "cdn.jsdelivr.net",
    "api.drug-reference.example",
]
DEVICE_SNI = {
    "pump": ["drug-library.alaris.example", "alaris-sm.general-hosp.example"],
    "pump_mqtt": ["spectrum-iq.baxter.example"],
    "monitor": ["intellibridge.philips.example", "time.general-hosp.example"],
    "modality_ge": ["insite.gehealthcare.example"],
    "modality_siemens": ["srs.siemens-healthineers.example"],
    "sensor": ["telemetry.bedsensors.example"],
}


class Hospital:
    """Generates each kind of traffic into one ``Trace`` for a share of the packets."""

    def __init__(self, packets: int, seconds: float, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.target = packets
        self.span = int(seconds * 1e9)
        self.trace = Trace()
        self.servers, self.devices = hospital(self.rng)
        self.by_role: dict[str, list[Device]] = {}
        for device in self.devices:
            self.by_role.setdefault(device.role, []).append(device)
        self.externals = [
            Host(self.servers["gateway"].mac, ip4(f"{net}.{i}"), "")
            for net in ("198.51.100", "203.0.113")
            for i in range(10, 60)
        ]
        self._ephemeral = 40000

    def port(self) -> int:
        self._ephemeral = 49152 + (self._ephemeral - 49152 + 7919) % 16000
        return self._ephemeral

    def when(self) -> int:
        return T0_NS + int(self.rng.integers(0, self.span))

    def budget(self, kind: str) -> int:
        return int(self.target * MIX[kind])

    # ---- HL7 over MLLP: pumps and monitors keep one connection to the engine
    def hl7(self) -> None:
        senders = self.by_role["pump"] + self.by_role["monitor"]
        messages = max(1, self.budget("hl7") // 3)
        per = max(1, messages // len(senders))
        engine = self.servers["hl7"]
        control = 0
        for device in senders[: max(1, min(len(senders), messages))]:
            conn = Tcp(self.trace, self.rng, device.host, engine, (self.port(), 2575))
            fresh = self.rng.random() < 0.2  # most connections were open before the capture
            interval = self.span // per
            t = T0_NS + int(self.rng.integers(0, max(1, interval)))
            if fresh:
                t = conn.open(t)
            if device.role == "pump":
                sender, kind, trigger = (
                    ("ALARIS_PCU", device.hostname.upper()),
                    "ORU^R40^ORU_R40",
                    "R40",
                )
            else:
                sender, kind, trigger = ("IntelliVue_MX800", "ICU_WARD7"), "ORU^R01^ORU_R01", "R01"
            for k in range(per):
                control += 1
                stamp = hl7_stamp(t)
                ident = f"B{control:09d}"
                hr = 60 + (control * 7) % 40
                values = [f"8867-4^Heart rate^LN||{hr}|/min", f"2708-6^SpO2^LN||{95 + k % 5}|%"]
                if device.role == "pump":
                    values = [
                        "MDC_FLOW_FLUID_PUMP^^MDC||12.5|mL/h",
                        "MDC_VOL_FLUID_TBI_REMAIN^^MDC||250|mL",
                    ]
                t = conn.send(t, 0, hl7_oru(sender, stamp, ident, kind, values))
                t = conn.send(t + 3_000_000, 1, hl7_ack(stamp, ident, trigger), ack_now=True)
                t += interval + int(self.rng.integers(-interval // 10, interval // 10 + 1))

    # ---- DICOM: modalities store studies on the PACS; C-ECHO now and then
    def dicom(self, packets: int) -> None:
        modalities = self.by_role["modality_ge"] + self.by_role["modality_siemens"]
        pacs = self.servers["pacs"]
        ct = "1.2.840.10008.5.1.4.1.1.2"
        mr = "1.2.840.10008.5.1.4.1.1.4"
        verification = "1.2.840.10008.1.1"
        pdu_len = 16384
        image_pdus = 32  # a 512x512x16-bit slice in PDUs of 16 KiB
        fill = np.random.default_rng(7).integers(0, 256, pdu_len, np.uint8).tobytes()
        fragment = pdu_len - 12  # PDU and PDV headers take 12 bytes
        middle = self.trace.payload(pdata([(1, 0x00, fill[:fragment])]))
        last_fragment = fragment - 500
        last = self.trace.payload(pdata([(1, 0x02, fill[:last_fragment])]))
        per_pdu = (pdu_len + 6 + MSS - 1) // MSS
        per_image = image_pdus * per_pdu * 3 // 2 + 8
        remaining = packets
        study = 0
        while remaining > 0:
            device = modalities[study % len(modalities)]
            study += 1
            ge = device.role == "modality_ge"
            sop = ct if ge else mr
            impl = (
                ("1.2.840.113619.6.374", "CT_EXCITE_24")
                if ge
                else ("1.3.12.2.1107.5.2.43", "MR_VE11C")
            )
            calling = f"{'CT' if ge else 'MR'}_{device.hostname[-3:]}"
            conn = Tcp(self.trace, self.rng, device.host, pacs, (self.port(), 104))
            t = self.when()
            t = conn.open(t)
            rq = dicom_associate(1, "PACS_MAIN", calling, [sop, verification], impl)
            t = conn.send(t, 0, rq)
            ac = dicom_associate(
                2,
                "PACS_MAIN",
                calling,
                [sop, verification],
                ("1.2.276.0.7230010.3.0.3.6.8", "OFFIS_DCMTK_368"),
            )
            t = conn.send(t + 2_000_000, 1, ac, ack_now=True)
            images = max(1, min(60, (remaining - 20) // per_image))
            if remaining < per_image:
                images = 0
            for n in range(images):
                instance = f"1.2.826.0.1.3680043.10.999.{study}.{n + 1}"
                t = conn.send(t + 1_000_000, 0, dimse_command(0x0001, n + 1, sop, instance, None))
                # a whole data set: its attributes, then pixel data up to the last fragment
                head = dicom_dataset_head(sop, instance, "CT" if ge else "MR")
                pixels = fragment - len(head) - 12 + (image_pdus - 2) * fragment + last_fragment
                head += struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OW", 0, pixels)
                first = self.trace.payload(pdata([(1, 0x00, head + fill[: fragment - len(head)])]))
                t = conn.bulk(t, 0, first, 1, 15_000)
                t = conn.bulk(t, 0, middle, image_pdus - 2, 15_000)
                t = conn.bulk(t, 0, last, 1, 15_000)
                rsp = dimse_command(0x8001, n + 1, sop, instance, 0)
                t = conn.send(t + 4_000_000, 1, rsp, ack_now=True)
            if images == 0:
                t = conn.send(t + 1_000_000, 0, dimse_command(0x0030, 1, verification, None, None))
                t = conn.send(
                    t + 1_000_000, 1, dimse_command(0x8030, 1, verification, None, 0), ack_now=True
                )
            t = conn.send(t + 1_000_000, 0, b"\x05\x00\x00\x00\x00\x04\x00\x00\x00\x00")
            t = conn.send(
                t + 1_000_000, 1, b"\x06\x00\x00\x00\x00\x04\x00\x00\x00\x00", ack_now=True
            )
            conn.close(t + 1_000_000)
            remaining -= conn.packets

    # ---- HTTPS: short sessions from everyone, a few long downloads
    def tls(self) -> None:
        budget = self.budget("tls")
        sent = 0
        rng = self.rng
        record_templates = {
            n: self.trace.payload(tls_record(0x17, rng.bytes(n))) for n in (MSS - 5, 4 * MSS - 5)
        }
        hellos: dict[tuple[str, str], bytes] = {}
        while sent < budget:
            device = self.devices[int(rng.integers(0, len(self.devices)))]
            if device.role == "workstation":
                sni = WORKSTATION_SNI[int(rng.integers(0, len(WORKSTATION_SNI)))]
            else:
                names = DEVICE_SNI.get(device.role, ["telemetry.bedsensors.example"])
                sni = names[int(rng.integers(0, len(names)))]
            modern = device.role in ("workstation", "sensor", "pump_mqtt")
            key = (device.role, sni)
            if key not in hellos:
                hellos[key] = tls_client_hello(rng, sni, modern, alpn=device.role == "workstation")
            internal = sni.endswith("general-hosp.example")
            server = (
                self.servers["web"]
                if internal
                else self.externals[zlib.crc32(sni.encode()) % len(self.externals)]
            )
            server = Host(server.mac if internal else self.servers["gateway"].mac, server.ip, "")
            conn = Tcp(self.trace, rng, device.host, server, (self.port(), 443))
            t = conn.open(self.when())
            t = conn.send(t, 0, hellos[key])
            t = conn.send(t + 20_000_000, 1, tls_server_flight(rng, modern))
            t = conn.send(t + conn.rtt, 0, tls_client_finish(rng, modern))
            if not modern:
                t = conn.send(
                    t + conn.rtt, 1, tls_record(0x14, b"\x01") + tls_record(0x16, rng.bytes(40))
                )
            long_download = rng.random() < 0.002
            exchanges = int(rng.integers(1, 6))
            for _ in range(exchanges):
                t = conn.send(
                    t + 5_000_000, 0, tls_record(0x17, rng.bytes(int(rng.integers(200, 900))))
                )
                t = conn.bulk(
                    t + 10_000_000,
                    1,
                    record_templates[4 * MSS - 5],
                    int(rng.integers(1, 6)),
                    40_000,
                )
            if long_download:
                count = int(min(budget - sent, rng.integers(2_000, 20_000)) // 6)
                t = conn.bulk(t, 1, record_templates[4 * MSS - 5], max(1, count), 30_000)
            conn.close(t + 50_000_000)
            sent += conn.packets

    # ---- MQTT telemetry: sensors and pumps publish every few seconds, reconnect now and then
    def mqtt(self) -> None:
        budget = self.budget("mqtt")
        clients = (self.by_role["sensor"] + self.by_role["pump_mqtt"])[: max(1, budget // 40)]
        broker = self.servers["broker"]
        publishes = max(1, budget // 2)
        per_client = max(1, publishes // len(clients))
        interval = self.span // per_client
        for device in clients:
            t = T0_NS + int(self.rng.integers(0, max(1, interval)))
            left = per_client
            prefix = "bedsensor" if device.role == "sensor" else "spectrum-iq"
            while left > 0:
                conn = Tcp(self.trace, self.rng, device.host, broker, (self.port(), 1883))
                t = conn.open(t)
                t = conn.send(t, 0, mqtt_connect(f"{prefix}-{device.host.mac & 0xFFFFFF:06x}", 60))
                t = conn.send(t + 1_000_000, 1, b"\x20\x02\x00\x00", ack_now=True)
                session = min(left, int(self.rng.integers(20, 400)))
                for k in range(session):
                    value = f'{{"seq":{k},"hr":{60 + k % 30},"occupied":{k % 2}}}'.encode()
                    topic = f"ward7/{device.hostname}/vitals"
                    t = conn.send(t + interval, 0, mqtt_publish(topic, value), ack_now=k % 5 == 0)
                    if k % 5 != 0:
                        conn.segment(t + 40_000_000, 1, ACK)
                left -= session
                conn.send(t + 1_000_000, 0, b"\xe0\x00")
                t = conn.close(t + 2_000_000) + int(self.rng.integers(1, 5)) * 1_000_000_000

    # ---- DNS: everyone asks the resolver; each query a new flow
    def dns(self) -> None:
        resolver = self.servers["dns"]
        names = (
            WORKSTATION_SNI
            + [n for v in DEVICE_SNI.values() for n in v]
            + ["pacs.general-hosp.example", "ntp.general-hosp.example"]
        )
        for _ in range(self.budget("dns") // 2):
            device = self.devices[int(self.rng.integers(0, len(self.devices)))]
            name = names[int(self.rng.integers(0, len(names)))]
            ident = int(self.rng.integers(0, 65536))
            sport = self.port()
            t = self.when()
            address = self.externals[zlib.crc32(name.encode()) % len(self.externals)].ip
            self.trace.add(
                t,
                KIND_UDP,
                device.host,
                resolver,
                sport,
                53,
                ref=self.trace.payload(dns_query(ident, name)),
            )
            self.trace.add(
                t + 800_000,
                KIND_UDP,
                resolver,
                device.host,
                53,
                sport,
                ref=self.trace.payload(dns_answer(ident, name, address)),
            )

    # ---- SSDP and mDNS announcements, ARP, ICMP, DHCP
    def discovery(self) -> None:
        ssdp_group = Host(0x01005E7FFFFA, ip4("239.255.255.250"), "")
        mdns_group = Host(0x01005E0000FB, ip4("224.0.0.251"), "")
        for _ in range(self.budget("discovery")):
            device = self.devices[int(self.rng.integers(0, len(self.devices)))]
            t = self.when()
            if device.role == "pump":
                # Alaris device discovery: the pump manager answers each pump (udp/3613)
                manager = self.servers["pumpserver"]
                hello = self.trace.payload(b"ALRS" + device.hostname.encode().ljust(16, b"\0"))
                self.trace.add(t, KIND_UDP, device.host, manager, 3613, 3613, ref=hello)
                ok = self.trace.payload(b"ALRS\x00\x01")
                self.trace.add(t + 900_000, KIND_UDP, manager, device.host, 3613, 3613, ref=ok)
            elif device.role in ("workstation", "sensor"):
                data = ssdp_notify(
                    f"http://{_dotted(device.host.ip)}:49152/desc.xml",
                    "Linux/5.10 UPnP/1.0 BedSensor/2.1"
                    if device.role == "sensor"
                    else "Microsoft-Windows/10.0 UPnP/1.0",
                    f"uuid:{device.host.mac:012x}-0000-1000-8000-000000000000",
                )
                self.trace.add(
                    t, KIND_UDP, device.host, ssdp_group, 1900, 1900, ref=self.trace.payload(data)
                )
            else:
                service = "_ipp._tcp.local" if device.role == "workstation" else "_mdap._udp.local"
                data = mdns_announce(device.hostname, service, device.host.ip)
                self.trace.add(
                    t, KIND_UDP, device.host, mdns_group, 5353, 5353, ref=self.trace.payload(data)
                )

    def arp(self) -> None:
        gateway = self.servers["gateway"]
        for _ in range(self.budget("arp") // 2):
            device = self.devices[int(self.rng.integers(0, len(self.devices)))]
            t = self.when()
            self.trace.add(t, KIND_ARP, gateway, device.host, seq=1, dmac=0xFFFFFFFFFFFF)
            self.trace.add(t + 300_000, KIND_ARP, device.host, gateway, seq=2)

    def icmp(self) -> None:
        nms = self.servers["nms"]
        for k in range(self.budget("icmp") // 2):
            device = self.devices[k % len(self.devices)]
            t = self.when()
            data = self.trace.payload(bytes(range(48)))
            self.trace.add(t, KIND_ICMP, nms, device.host, seq=k, flags=8, ref=data)
            self.trace.add(t + 400_000, KIND_ICMP, device.host, nms, seq=k, flags=0, ref=data)

    def dhcp(self) -> None:
        server = self.servers["dhcp"]
        broadcast = Host(0xFFFFFFFFFFFF, 0xFFFFFFFF, "")
        for k in range(max(1, self.budget("dhcp") // 4)):
            device = self.devices[k % len(self.devices)]
            t = self.when()
            xid = int(self.rng.integers(0, 2**32))
            client = device.host
            for step, (op, kind) in enumerate(((1, 1), (2, 2), (1, 3), (2, 5))):
                data = dhcp_message(
                    op,
                    kind,
                    xid,
                    client,
                    client.ip if op == 2 else 0,
                    server,
                    device.vendor_class,
                    device.hostname,
                )
                ref = self.trace.payload(data)
                when = t + step * 2_000_000
                if op == 1:
                    self.trace.add(
                        when, KIND_UDP, Host(client.mac, 0, ""), broadcast, 68, 67, ref=ref
                    )
                else:
                    self.trace.add(
                        when, KIND_UDP, server, Host(client.mac, client.ip, ""), 67, 68, ref=ref
                    )

    def build(self) -> Trace:
        """Every kind of traffic; ``self.mix`` says how many packets each made."""
        self.mix: dict[str, int] = {}
        for kind in ("hl7", "mqtt", "tls", "dns", "discovery", "arp", "icmp", "dhcp"):
            before = len(self.trace)
            getattr(self, kind)()
            self.mix[kind] = len(self.trace) - before
        # at least a few associations however small the file: truncation trims the excess
        before = len(self.trace)
        self.dicom(max(self.target - before, self.target // 5))
        self.mix["dicom"] = len(self.trace) - before
        return self.trace


def _dotted(address: int) -> str:
    return ".".join(str(address >> s & 255) for s in (24, 16, 8, 0))


# ----------------------------------------------------------------------------- many flows
def many_flows(flows: int, devices: int, seed: int, seconds: float) -> Trace:
    """``flows`` distinct flows among ``devices`` devices on 10.64.0.0/10, three packets
    each on average (UDP request/answer pairs and three-packet TCP exchanges), vectorised."""
    rng = np.random.default_rng(seed)
    trace = Trace()
    span = int(seconds * 1e9)
    # each device's flows differ by source port (distinct while flows < 64,000 x devices)
    dev = np.arange(flows) % devices
    peer = (dev + 1 + rng.integers(0, devices - 1, flows)) % devices
    base_mac = 0x02B000000000
    base_ip = ip4("10.64.0.0")
    sport = 1024 + (np.arange(flows) // devices) % 64000
    dport = np.array([53, 443, 2575, 1883, 8080, 161])[rng.integers(0, 6, flows)]
    tcp = dport != 53
    t = T0_NS + np.sort(rng.integers(0, span, flows))
    query = trace.payload(dns_query(0x1234, "bench.general-hosp.example"))
    answer = trace.payload(dns_answer(0x1234, "bench.general-hosp.example", ip4("10.64.0.1")))
    hello = trace.payload(b"\x00\x01opaque-bench-request")

    def side(
        a: npt.NDArray[np.int64], b: npt.NDArray[np.int64]
    ) -> dict[str, npt.NDArray[np.int64]]:
        return {
            "smac": base_mac + a,
            "dmac": base_mac + b,
            "sip": base_ip + 16 + a,
            "dip": base_ip + 16 + b,
        }

    for rows, kind in ((np.flatnonzero(~tcp), KIND_UDP), (np.flatnonzero(tcp), KIND_TCP)):
        a, b = dev[rows], peer[rows]
        isn = rng.integers(1, 2**31, rows.shape[0])
        ref_out = query if kind == KIND_UDP else hello
        ref_back = answer if kind == KIND_UDP else (0, 0)
        flags_out = 0 if kind == KIND_UDP else SYN
        trace.add_many(
            t=t[rows],
            kind=kind,
            **side(a, b),
            sport=sport[rows],
            dport=dport[rows],
            seq=isn,
            ack=0,
            flags=flags_out,
            off=0 if kind == KIND_TCP else ref_out[0],
            len=0 if kind == KIND_TCP else ref_out[1],
        )
        trace.add_many(
            t=t[rows] + 500_000,
            kind=kind,
            **side(b, a),
            sport=dport[rows],
            dport=sport[rows],
            seq=isn + 7,
            ack=isn + 1,
            flags=0 if kind == KIND_UDP else SYN | ACK,
            off=ref_back[0],
            len=ref_back[1],
        )
        if kind == KIND_TCP:
            trace.add_many(
                t=t[rows] + 900_000,
                kind=kind,
                **side(a, b),
                sport=sport[rows],
                dport=dport[rows],
                seq=isn + 1,
                ack=isn + 8,
                flags=ACK | PSH,
                off=ref_out[0],
                len=ref_out[1],
            )
    return trace


# ----------------------------------------------------------------------------- writing
def write_pcap(trace: Trace, path: Path, limit: int | None = None) -> tuple[int, int, int]:
    """Sort by time, keep the first ``limit`` packets, write a pcap (µs); returns
    (packets, flows, bytes on the wire)."""
    cols = trace.columns()
    order = np.argsort(cols["t"], kind="stable")
    if limit is not None:
        order = order[:limit]
    c = {k: v[order] for k, v in cols.items()}
    n = order.shape[0]
    kind = c["kind"]
    plen = c["len"]
    l4 = np.select([kind == KIND_TCP, kind == KIND_ARP], [20, 0], 8)
    ip_total = 20 + l4 + plen
    frame = np.where(kind == KIND_ARP, 42, 14 + ip_total)

    head = np.zeros((n, 70), np.uint8)  # 16 record + 14 Ethernet + 20 IPv4 + 20 TCP at most
    ts_us = c["t"] // 1000
    rec = head[:, :16].view("<u4")
    rec[:, 0] = ts_us // 1_000_000
    rec[:, 1] = ts_us % 1_000_000
    rec[:, 2] = frame
    rec[:, 3] = frame
    head[:, 16:22] = _be(c["dmac"], 6)
    head[:, 22:28] = _be(c["smac"], 6)
    head[:, 28:30] = _be(np.where(kind == KIND_ARP, 0x0806, 0x0800), 2)

    ip = head[:, 30:50]
    ip[:, 0] = 0x45
    ip[:, 2:4] = _be(ip_total, 2)
    ip[:, 4:6] = _be(np.arange(n) & 0xFFFF, 2)
    ip[:, 6] = 0x40
    ip[:, 8] = 64
    ip[:, 9] = np.select([kind == KIND_TCP, kind == KIND_UDP], [6, 17], 1)
    ip[:, 12:16] = _be(c["sip"], 4)
    ip[:, 16:20] = _be(c["dip"], 4)
    words = ip.reshape(n, 10, 2).astype(np.uint32)
    total = (words[:, :, 0] << 8 | words[:, :, 1]).sum(axis=1)
    total = (total & 0xFFFF) + (total >> 16)
    total = (total & 0xFFFF) + (total >> 16)
    ip[:, 10:12] = _be(~total & 0xFFFF, 2)

    l4h = head[:, 50:70]
    l4h[:, 0:2] = _be(c["sport"], 2)
    l4h[:, 2:4] = _be(c["dport"], 2)
    tcp = kind == KIND_TCP
    l4h[tcp, 4:8] = _be(c["seq"][tcp], 4)
    l4h[tcp, 8:12] = _be(c["ack"][tcp], 4)
    l4h[tcp, 12] = 0x50
    l4h[tcp, 13] = c["flags"][tcp]
    l4h[tcp, 14:16] = _be(np.full(int(tcp.sum()), 64240), 2)
    udp = kind == KIND_UDP
    l4h[udp, 4:6] = _be(8 + plen[udp], 2)
    icmp = kind == KIND_ICMP
    l4h[icmp, 0] = c["flags"][icmp]  # type: 8 echo request, 0 reply
    l4h[icmp, 1:4] = 0
    l4h[icmp, 4:6] = _be(np.full(int(icmp.sum()), 0x5353), 2)
    l4h[icmp, 6:8] = _be(c["seq"][icmp] & 0xFFFF, 2)
    arp = kind == KIND_ARP
    body = head[arp, 30:58]  # ARP replaces IPv4: request (seq 1) or reply (seq 2)
    body[:, 0:2] = _be(np.full(int(arp.sum()), 1), 2)
    body[:, 2:4] = _be(np.full(int(arp.sum()), 0x0800), 2)
    body[:, 4] = 6
    body[:, 5] = 4
    body[:, 6:8] = _be(c["seq"][arp], 2)
    body[:, 8:14] = _be(c["smac"][arp], 6)
    body[:, 14:18] = _be(c["sip"][arp], 4)
    body[:, 18:24] = _be(np.where(c["seq"][arp] == 1, 0, c["dmac"][arp]), 6)
    body[:, 24:28] = _be(c["dip"][arp], 4)
    head[arp, 30:58] = body

    head_len = (16 + frame - plen).astype(np.int64)
    wire = int(frame.sum())
    out = np.empty(24 + int(head_len.sum()) + int(plen.sum()), np.uint8)
    out[:24] = np.frombuffer(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1), np.uint8)
    pool = np.frombuffer(bytes(trace.pool), np.uint8)
    _assemble(out, 24, head, head_len, pool, c["off"], plen)
    out.tofile(path)
    return n, count_flows(c), wire


@numba.njit(cache=True)  # type: ignore[misc]
def _assemble(
    out: npt.NDArray[np.uint8],
    start: int,
    head: npt.NDArray[np.uint8],
    head_len: npt.NDArray[np.int64],
    pool: npt.NDArray[np.uint8],
    offs: npt.NDArray[np.int64],
    lens: npt.NDArray[np.int64],
) -> None:
    """Each packet's header bytes then its payload from the pool, back to back."""
    pos = start
    for i in range(head.shape[0]):
        for j in range(head_len[i]):
            out[pos + j] = head[i, j]
        pos += head_len[i]
        src = offs[i]
        for j in range(lens[i]):
            out[pos + j] = pool[src + j]
        pos += lens[i]


def _be(values: npt.NDArray[np.int64] | np.ndarray, width: int) -> npt.NDArray[np.uint8]:
    """Big-endian bytes of each value, ``width`` of them per row."""
    v = np.asarray(values).astype(np.uint64)
    shifts = np.arange(width - 1, -1, -1, dtype=np.uint64) * np.uint64(8)
    return ((v[:, None] >> shifts) & np.uint64(0xFF)).astype(np.uint8)


def count_flows(c: dict[str, npt.NDArray[np.int64]]) -> int:
    """Distinct (protocol, endpoint, endpoint) of the IP packets, direction-free."""
    ip = c["kind"] != KIND_ARP
    a = (c["sip"][ip] << 16 | c["sport"][ip]).astype(np.uint64)
    b = (c["dip"][ip] << 16 | c["dport"][ip]).astype(np.uint64)
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    with np.errstate(over="ignore"):  # a 64-bit hash: wrapping is intended
        key = (
            lo * np.uint64(0x9E3779B97F4A7C15)
            ^ hi
            ^ c["kind"][ip].astype(np.uint64) << np.uint64(60)
        )
    return int(np.unique(key).shape[0])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="pcap file to write")
    parser.add_argument("--packets", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=600.0, help="capture time covered")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--flows", type=int, help="many-flows mode: this many distinct flows")
    parser.add_argument("--devices", type=int, default=100_000, help="devices in many-flows mode")
    args = parser.parse_args(argv)
    if args.packets < 1000 and args.flows is None:
        parser.error("--packets: at least 1000 (the mix needs room)")
    if args.flows is not None and (args.flows < 1 or args.devices < 2):
        parser.error("--flows needs at least 1 flow and --devices at least 2")
    if not args.out.parent.is_dir():
        print(f"generate_traffic: {args.out.parent}: no such directory", file=sys.stderr)
        return 2
    began = time.perf_counter()
    mix = "many flows"
    if args.flows is not None:
        trace = many_flows(args.flows, args.devices, args.seed, args.seconds)
        limit = None
    else:
        generator = Hospital(args.packets, args.seconds, args.seed)
        trace = generator.build()
        limit = args.packets
        mix = ", ".join(f"{k} {v / len(trace):.0%}" for k, v in generator.mix.items())
    built = time.perf_counter() - began
    try:
        packets, flows, wire = write_pcap(trace, args.out, limit)
    except OSError as error:
        print(f"generate_traffic: {args.out}: {error.strerror}", file=sys.stderr)
        return 2
    seconds = time.perf_counter() - began
    print(
        f"{args.out}: {packets:,} packets, {flows:,} flows, {wire:,} bytes on the wire, "
        f"{seconds:.1f} s ({built:.1f} s building, {seconds - built:.1f} s writing)"
    )
    print(f"  packets generated by kind (before trimming to the count): {mix}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
