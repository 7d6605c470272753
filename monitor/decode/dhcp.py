"""DHCP (BOOTP with the DHCP magic cookie) metadata: message type, client MAC and the options
that identify a device (12 hostname, 50 requested address, 55 parameter request list, 57 maximum
message size, 60 vendor class, 61 client identifier).

Promise: ``parse`` reads only those fields; it returns ``None`` for a UDP payload that is not
BOOTP/DHCP and raises only ``Malformed`` with a fixed reason. Option overload (option 52) is
followed into the ``file`` and ``sname`` fields; repeated instances of an option are joined as
RFC 3396 asks.
"""

from __future__ import annotations

from dataclasses import dataclass

from monitor.decode import Malformed
from monitor.decode._text import text

# Every reason ``parse`` may raise ``Malformed`` with (label values of the error counter).
REASONS = frozenset(
    {
        "dhcp_truncated_options",
        "dhcp_truncated_overload",
    }
)

_COOKIE = b"\x63\x82\x53\x63"
_SNAME = slice(44, 108)
_FILE = slice(108, 236)

MESSAGE_TYPES: dict[int, str] = {
    1: "DISCOVER",
    2: "OFFER",
    3: "REQUEST",
    4: "DECLINE",
    5: "ACK",
    6: "NAK",
    7: "RELEASE",
    8: "INFORM",
    9: "FORCERENEW",
    10: "LEASEQUERY",
    11: "LEASEUNASSIGNED",
    12: "LEASEUNKNOWN",
    13: "LEASEACTIVE",
    14: "BULKLEASEQUERY",
    15: "LEASEQUERYDONE",
    16: "ACTIVELEASEQUERY",
    17: "LEASEQUERYSTATUS",
    18: "TLS",
}

# Only these options are kept; everything else is skipped unread.
_WANTED = frozenset({12, 50, 52, 53, 55, 57, 60, 61})
_MAX_PARAMS = 255


@dataclass(frozen=True, slots=True)
class DhcpInfo:
    """Identity metadata of one DHCP message."""

    op: int  # 1 request (client to server), 2 reply
    message_type: int | None  # option 53
    message_type_name: str  # "DISCOVER" .. or "BOOTP" without option 53, "UNKNOWN" otherwise
    client_mac: str | None  # chaddr, when the hardware is Ethernet-like (hlen 6)
    hostname: str | None  # option 12
    requested_ip: str | None  # option 50
    param_list: tuple[int, ...]  # option 55, in the client's order
    max_message_size: int | None  # option 57
    vendor_class: str | None  # option 60
    client_id: str | None  # option 61, lower-case hex of the whole option value


def looks_like(payload: bytes) -> bool:
    """BOOTP op 1/2 with the DHCP magic cookie where it belongs."""
    return len(payload) >= 240 and payload[236:240] == _COOKIE and payload[0] in (1, 2)


def _walk(area: bytes, found: dict[int, bytearray], reason: str) -> None:
    i = 0
    end = len(area)
    while i < end:
        code = area[i]
        if code == 255:
            return
        if code == 0:
            i += 1
            continue
        if i + 1 >= end:
            raise Malformed(reason)
        length = area[i + 1]
        start = i + 2
        if start + length > end:
            raise Malformed(reason)
        if code in _WANTED:
            found.setdefault(code, bytearray()).extend(area[start : start + length])
        i = start + length
    # No end option: tolerated (many stacks pad to a fixed size and some omit it).


def cache_key(payload: bytes) -> bytes:
    """The bytes ``parse`` reads: op, hardware type and length, the client MAC, and from the
    ``sname`` field on (options may overload ``sname`` and ``file``). A client's retries and
    renewals differ in their transaction id, seconds and addresses alone, and share a key.
    Equal keys give equal answers: they come from payloads of one length, or of lengths too
    short to be DHCP."""
    return payload[:3] + payload[28:34] + payload[44:]


def parse(payload: bytes) -> DhcpInfo | None:
    """Decode the identity fields of a DHCP message, or ``None`` if it is not one."""
    if not looks_like(payload):
        return None
    found: dict[int, bytearray] = {}
    _walk(payload[240:], found, "dhcp_truncated_options")
    overload = found.pop(52, None)
    if overload is not None and len(overload) == 1:
        if overload[0] in (1, 3):
            _walk(payload[_FILE], found, "dhcp_truncated_overload")
        if overload[0] in (2, 3):
            _walk(payload[_SNAME], found, "dhcp_truncated_overload")

    mt_raw = found.get(53)
    message_type = mt_raw[0] if mt_raw and len(mt_raw) == 1 else None
    if message_type is None:
        name = "BOOTP" if mt_raw is None else "UNKNOWN"
    else:
        name = MESSAGE_TYPES.get(message_type, "UNKNOWN")

    htype, hlen = payload[1], payload[2]
    client_mac = None
    if hlen == 6 and htype in (1, 6):  # Ethernet, IEEE 802
        client_mac = payload[28:34].hex(":")

    def opt_text(code: int) -> str | None:
        raw = found.get(code)
        return None if raw is None else text(bytes(raw).rstrip(b"\x00"))

    req = found.get(50)
    requested_ip = ".".join(str(b) for b in req) if req is not None and len(req) == 4 else None
    mms = found.get(57)
    max_size = int.from_bytes(mms, "big") if mms is not None and len(mms) == 2 else None
    client_id = found.get(61)
    return DhcpInfo(
        op=payload[0],
        message_type=message_type,
        message_type_name=name,
        client_mac=client_mac,
        hostname=opt_text(12),
        requested_ip=requested_ip,
        param_list=tuple(found.get(55, b"")[:_MAX_PARAMS]),
        max_message_size=max_size,
        vendor_class=opt_text(60),
        client_id=None if client_id is None else bytes(client_id[:64]).hex(),
    )
