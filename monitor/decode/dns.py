"""DNS and mDNS message metadata: the QR flag, question names and types, answer names with the
targets of A/AAAA/PTR/SRV/CNAME records, and the DNS-SD service types (``_ipp._tcp.local``)
that the names carry.

Promise: names are followed through compression pointers with a bound on jumps and labels, so
a pointer loop or a name bomb ends in ``Malformed("dns_pointer_loop")`` rather than a hang;
at most ``MAX_RECORDS`` records are read. ``parse`` takes a UDP payload, ``parse_tcp`` a DNS
over TCP payload (two-byte length prefix). TXT and other record data are never read.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass
from typing import NamedTuple

from monitor.decode import Malformed
from monitor.decode._text import MAX_TEXT, text

# Every reason ``parse`` may raise ``Malformed`` with (label values of the error counter).
REASONS = frozenset(
    {
        "dns_bad_label",
        "dns_bad_srv",
        "dns_name_too_long",
        "dns_pointer_loop",
        "dns_truncated",
    }
)

MAX_RECORDS = 64
_HEADER = struct.Struct(">6H")
_RECORD = struct.Struct(">H6xH")  # a record's type and data length, after its name
_MAX_JUMPS = 32
_MAX_LABELS = 128

TYPE_NAMES: dict[int, str] = {
    1: "A",
    2: "NS",
    5: "CNAME",
    6: "SOA",
    12: "PTR",
    13: "HINFO",
    15: "MX",
    16: "TXT",
    28: "AAAA",
    33: "SRV",
    41: "OPT",
    47: "NSEC",
    65: "HTTPS",
    255: "ANY",
}


# A question and a record are named tuples: a busy mDNS answer carries a dozen records, and
# a frozen dataclass took five times as long to make as a tuple.
class DnsQuestion(NamedTuple):
    name: str
    rtype: int


class DnsRecord(NamedTuple):
    """One answer/authority/additional record: its owner name, type and, for A, AAAA, PTR,
    SRV and CNAME, its target (an address or a name); ``None`` for other types."""

    name: str
    rtype: int
    target: str | None


@dataclass(frozen=True, slots=True)
class DnsInfo:
    is_response: bool  # QR flag
    opcode: int
    rcode: int
    questions: tuple[DnsQuestion, ...]
    records: tuple[DnsRecord, ...]  # answers, then authority, then additional
    service_types: tuple[str, ...]  # DNS-SD service types named anywhere, in first-seen order


def looks_like(payload: bytes) -> bool:
    """A DNS header with a standard opcode, a sane question count and at least one entry."""
    if len(payload) < 12:
        return False
    _, flags, qd, an, ns, ar = _HEADER.unpack_from(payload)
    return (flags >> 11) & 0x0F in (0, 2, 4, 5) and qd <= 16 and qd + an + ns + ar > 0


# offset of a name already read -> its dotted bytes
_Memo = dict[int, bytes]


def _name(msg: bytes, pos: int, memo: _Memo) -> tuple[str, int]:
    """Read a possibly compressed name at ``pos``; return it and the offset after it.

    ``memo`` keeps each name read by where it starts: a compressed message's names point at
    the names before them again and again, mostly at where they start (a pointer into the
    middle of a name reads the few labels from there again).
    """
    start = pos
    labels: list[bytes] = []
    end = -1
    jumps = 0
    seen = 0
    size = 0
    n = len(msg)
    while True:
        if pos >= n:
            raise Malformed("dns_truncated")
        length = msg[pos]
        if length >= 0xC0:
            if pos + 1 >= n:
                raise Malformed("dns_truncated")
            jumps += 1
            if jumps > _MAX_JUMPS:
                raise Malformed("dns_pointer_loop")
            if end < 0:
                end = pos + 2
            pos = ((length & 0x3F) << 8) | msg[pos + 1]
            known = memo.get(pos)
            if known is not None:
                if known:  # (the root name adds no label)
                    labels.append(known)
                break
            continue
        if length & 0xC0:
            raise Malformed("dns_bad_label")
        if length == 0:
            if end < 0:
                end = pos + 1
            break
        if pos + 1 + length > n:
            raise Malformed("dns_truncated")
        seen += 1
        if seen > _MAX_LABELS:
            raise Malformed("dns_name_too_long")
        if size < MAX_TEXT:
            label = msg[pos + 1 : pos + 1 + length]
            # A dot inside a label is escaped so the dotted form stays unambiguous.
            labels.append(label.replace(b".", b"\\.") if b"." in label else label)
            size += length + 1
        pos += 1 + length
    dotted = b".".join(labels)
    if size < MAX_TEXT:  # a name cut at the size bound is not worth remembering
        memo[start] = dotted
    return text(dotted), end


def _service_type(name: str) -> str | None:
    if "._" not in name:
        return None
    labels = name.split(".")
    for i in range(len(labels) - 1, 0, -1):
        if labels[i].lower() in ("_tcp", "_udp") and labels[i - 1].startswith("_"):
            service = ".".join(labels[i - 1 :])
            # The DNS-SD meta-query names no service of its own.
            return None if labels[i - 1].lower() == "_dns-sd" else service
    return None


def parse(payload: bytes) -> DnsInfo | None:
    """Decode a DNS/mDNS message carried in UDP, or ``None`` if it does not look like one."""
    if not looks_like(payload):
        return None
    msg = payload
    _, flags, qd, an, ns, ar = _HEADER.unpack_from(msg)
    pos = 12
    questions: list[DnsQuestion] = []
    services: dict[str, None] = {}
    memo: _Memo = {}
    size = len(msg)

    def note(name: str) -> None:
        service = _service_type(name)
        if service is not None and len(services) < MAX_RECORDS:
            services.setdefault(service, None)

    for _ in range(qd):
        name, pos = _name(msg, pos, memo)
        if pos + 4 > size:
            raise Malformed("dns_truncated")
        questions.append(DnsQuestion(name, (msg[pos] << 8) | msg[pos + 1]))
        if "._" in name:  # (only such a name can carry a service type)
            note(name)
        pos += 4

    records: list[DnsRecord] = []
    for _ in range(min(an + ns + ar, MAX_RECORDS)):
        name, pos = _name(msg, pos, memo)
        if pos + 10 > size:
            raise Malformed("dns_truncated")
        rtype, rdlength = _RECORD.unpack_from(msg, pos)
        rdata = pos + 10
        if rdata + rdlength > size:
            raise Malformed("dns_truncated")
        target: str | None = None
        if rtype == 1 and rdlength == 4:
            target = socket.inet_ntop(socket.AF_INET, msg[rdata : rdata + 4])
        elif rtype == 28 and rdlength == 16:
            target = socket.inet_ntop(socket.AF_INET6, msg[rdata : rdata + 16])
        elif rtype in (5, 12):
            target, _ = _name(msg, rdata, memo)
        elif rtype == 33:
            if rdlength < 7:
                raise Malformed("dns_bad_srv")
            target, _ = _name(msg, rdata + 6, memo)
        records.append(DnsRecord(name, rtype, target))
        if "._" in name and rtype != 41:  # OPT's owner is the root
            note(name)
        if rtype == 12 and target is not None and "._" in target:
            note(target)
        pos = rdata + rdlength

    return DnsInfo(
        is_response=bool(flags & 0x8000),
        opcode=(flags >> 11) & 0x0F,
        rcode=flags & 0x0F,
        questions=tuple(questions),
        records=tuple(records),
        service_types=tuple(services),
    )


def parse_tcp(payload: bytes) -> DnsInfo | None:
    """Decode the first DNS message of a DNS-over-TCP payload (two-byte length prefix)."""
    if len(payload) < 14:
        return None
    length = (payload[0] << 8) | payload[1]
    if length < 12:
        return None
    return parse(payload[2 : 2 + length])
