"""SSDP (UPnP discovery over UDP 1900) metadata: the kind of message (M-SEARCH, NOTIFY or a
search response) and the headers that describe a device: SERVER, NT, NTS, ST, USN and
LOCATION.

Promise: only the start line and those headers are read, each cut to a bounded length;
``parse`` returns ``None`` for anything that is not an SSDP message and raises only
``Malformed`` with a fixed reason.
"""

from __future__ import annotations

from dataclasses import dataclass

from monitor.decode import Malformed
from monitor.decode._text import text

# Every reason ``parse`` may raise ``Malformed`` with (label values of the error counter).
REASONS = frozenset(
    {
        "ssdp_bad_start_line",
    }
)

_HEADERS = {
    b"server": "server",
    b"nt": "nt",
    b"nts": "nts",
    b"st": "st",
    b"usn": "usn",
    b"location": "location",
}
_MAX_LINES = 64
_STARTS = (b"M-SEARCH * ", b"NOTIFY * ", b"HTTP/1.")


@dataclass(frozen=True, slots=True)
class SsdpInfo:
    kind: str  # "M-SEARCH", "NOTIFY" or "RESPONSE"
    server: str | None
    nt: str | None
    nts: str | None
    st: str | None
    usn: str | None
    location: str | None


def looks_like(payload: bytes) -> bool:
    """Starts like ``M-SEARCH * HTTP/1.1``, ``NOTIFY * HTTP/1.1`` or an HTTP/1.x response."""
    return payload[:12].startswith(_STARTS)


def parse(payload: bytes) -> SsdpInfo | None:
    """Decode the describing headers of an SSDP datagram, or ``None`` if it is not one."""
    if not looks_like(payload):
        return None
    lines = payload.split(b"\n", _MAX_LINES)
    start = lines[0].rstrip(b"\r")
    if start.startswith(b"HTTP/1."):
        kind = "RESPONSE"
    else:
        kind = "M-SEARCH" if start.startswith(b"M-SEARCH") else "NOTIFY"
        if not start.endswith((b" HTTP/1.1", b" HTTP/1.0")):
            raise Malformed("ssdp_bad_start_line")
    values: dict[str, str] = {}
    for line in lines[1:_MAX_LINES]:
        line = line.rstrip(b"\r")
        if not line:
            break
        key, sep, value = line.partition(b":")
        if not sep:
            continue
        field = _HEADERS.get(key.strip().lower())
        if field is not None and field not in values:
            values[field] = text(value.strip())
    if kind == "RESPONSE" and "st" not in values and "usn" not in values:
        return None  # an ordinary HTTP response, not a search answer
    return SsdpInfo(
        kind=kind,
        server=values.get("server"),
        nt=values.get("nt"),
        nts=values.get("nts"),
        st=values.get("st"),
        usn=values.get("usn"),
        location=values.get("location"),
    )
