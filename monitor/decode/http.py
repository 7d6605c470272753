"""HTTP/1.x request metadata: the method, the Host header and the User-Agent header.

Promise: the request target (path and query, which may carry identifiers) and every other
header are never kept. ``parse`` returns ``None`` for a payload that does not start with an
HTTP request line and raises only ``Malformed`` with a fixed reason. A request whose headers
continue in a later segment still yields what the first segment holds.
"""

from __future__ import annotations

from dataclasses import dataclass

from monitor.decode import Malformed
from monitor.decode._text import text

# Every reason ``parse`` may raise ``Malformed`` with (label values of the error counter).
REASONS = frozenset(
    {
        "http_bad_request_line",
        "http_request_line_too_long",
    }
)

METHODS = (
    b"GET",
    b"POST",
    b"PUT",
    b"HEAD",
    b"DELETE",
    b"OPTIONS",
    b"PATCH",
    b"CONNECT",
    b"TRACE",
    b"PROPFIND",
    b"PROPPATCH",
    b"MKCOL",
    b"COPY",
    b"MOVE",
    b"LOCK",
    b"UNLOCK",
    b"REPORT",
    b"SUBSCRIBE",
    b"UNSUBSCRIBE",
)
_PREFIXES = tuple(m + b" " for m in METHODS)
_MAX_HEADER_BYTES = 16384
_MAX_LINES = 128


@dataclass(frozen=True, slots=True)
class HttpInfo:
    method: str
    host: str | None
    user_agent: str | None


def looks_like(payload: bytes) -> bool:
    """Starts with a known method and a space."""
    return payload[:12].startswith(_PREFIXES)


def request_key(payload: bytes) -> bytes | None:
    """What ``parse``'s answer for ``payload`` depends on, as bytes: the method, whether the
    request line ends in a version, and everything after that line. Requests that differ in
    their target alone (a device polling a URL with a counter or a time in it) share a key.
    ``None`` where no key is made: not a request, no line end yet, or longer than the part
    ``parse`` reads (whose cut then falls elsewhere in the headers)."""
    if len(payload) > _MAX_HEADER_BYTES or not looks_like(payload):
        return None
    eol = payload.find(b"\n")
    if eol < 0:
        return None
    method, _, rest = payload[:eol].rstrip(b"\r").partition(b" ")
    versioned = rest.endswith((b" HTTP/1.1", b" HTTP/1.0"))
    return method + (b" 1" if versioned else b" 0") + payload[eol:]


def parse(payload: bytes) -> HttpInfo | None:
    """Decode method, Host and User-Agent of an HTTP request, or ``None`` if it is not one."""
    if not looks_like(payload):
        return None
    head = payload[:_MAX_HEADER_BYTES]
    eol = head.find(b"\n")
    if eol < 0:
        if len(payload) < _MAX_HEADER_BYTES:
            # Clients often send the method in a segment of its own ("POST "): the request
            # line goes on in the next segment, which is not broken, just not ours to read.
            return None
        raise Malformed("http_request_line_too_long")
    request_line = head[:eol].rstrip(b"\r")
    method, _, rest = request_line.partition(b" ")
    if not rest.endswith((b" HTTP/1.1", b" HTTP/1.0")):
        raise Malformed("http_bad_request_line")
    host: str | None = None
    agent: str | None = None
    # The last piece has no line end yet: it may be cut by the segment boundary, so skip it.
    for line in head[eol + 1 :].split(b"\n", _MAX_LINES)[:-1]:
        line = line.rstrip(b"\r")
        if not line:
            break
        key, sep, value = line.partition(b":")
        if not sep:
            continue
        key = key.strip().lower()
        if key == b"host" and host is None:
            host = text(value.strip())
        elif key == b"user-agent" and agent is None:
            agent = text(value.strip())
    return HttpInfo(method=method.decode("ascii"), host=host, user_agent=agent)
