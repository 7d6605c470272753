"""TLS ClientHello metadata: server name (SNI), ALPN protocols and the JA4 fingerprint.

JA4 follows the FoxIO specification (``technical_details/JA4.md`` in FoxIO-LLC/ja4): ``t``
(TLS over TCP), the version (highest non-GREASE supported_versions entry, else the
ClientHello version), ``d``/``i`` for SNI present or not, two-digit cipher and extension counts
(GREASE ignored, capped at 99), the first and last characters of the first ALPN value (hex
when not alphanumeric, ``00`` when none), then the 12-hex-digit truncated SHA-256 of the
sorted cipher list and of the sorted extension list without SNI and ALPN followed by the
signature algorithms in their original order.

Promise: only the ClientHello of the first TLS record is read; ``parse`` returns ``None`` for
anything that is not a TLS handshake record starting a ClientHello and raises only
``Malformed`` with a fixed reason. A ClientHello longer than the payload (split over TCP
segments) raises ``Malformed("tls_truncated")``: ``record_length`` tells a caller how many
bytes to gather first.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

from monitor.decode import Malformed
from monitor.decode._text import text

# Every reason ``parse`` may raise ``Malformed`` with (label values of the error counter).
REASONS = frozenset(
    {
        "tls_bad_alpn",
        "tls_bad_extensions",
        "tls_bad_hello",
        "tls_bad_sni",
        "tls_fragmented_hello",
        "tls_truncated",
    }
)

_VERSIONS: dict[int, str] = {
    0x0304: "13",
    0x0303: "12",
    0x0302: "11",
    0x0301: "10",
    0x0300: "s3",
    0x0002: "s2",
    0xFEFF: "d1",
    0xFEFD: "d2",
    0xFEFC: "d3",
}
_MAX_ALPN = 16
_EXT_SNI = 0x0000
_EXT_ALPN = 0x0010
_EXT_SIGALGS = 0x000D
_EXT_VERSIONS = 0x002B


@dataclass(frozen=True, slots=True)
class TlsInfo:
    sni: str | None
    alpn: tuple[str, ...]
    version: str  # JA4's two-character version: "13", "12", ...
    ja4: str
    ja4_r: str  # the raw (sorted, unhashed) form, for checking and forensic look-ups


def is_grease(value: int) -> bool:
    """RFC 8701 GREASE values: 0x0a0a, 0x1a1a, ... 0xfafa."""
    return (value & 0x0F0F) == 0x0A0A and (value >> 8) == (value & 0xFF)


_GREASE = frozenset(v for v in range(0x0A0A, 0x10000, 0x1010) if is_grease(v))


def looks_like(payload: bytes) -> bool:
    """A TLS handshake record (type 22, version 3.x) whose first message is a ClientHello."""
    return (
        len(payload) >= 6
        and payload[0] == 0x16
        and payload[1] == 0x03
        and payload[2] <= 0x04
        and payload[5] == 0x01
    )


def record_length(payload: bytes) -> int | None:
    """Bytes the first record needs (header included), or ``None`` if not a ClientHello record."""
    if not looks_like(payload):
        return None
    return 5 + ((payload[3] << 8) | payload[4])


def _u16_list(data: bytes) -> list[int]:
    return list(struct.unpack_from(f">{len(data) // 2}H", data))


def _hex_list(values: list[int]) -> str:
    """'002f,0035' from [0x2f, 0x35]: JA4's four-digit lower-case hex, comma separated."""
    return struct.pack(f">{len(values)}H", *values).hex(",", 2)


def _alpn_chars(first: bytes) -> str:
    if not first:
        return "00"
    a, b = first[0], first[-1]
    if chr(a).isascii() and chr(a).isalnum() and chr(b).isascii() and chr(b).isalnum():
        return chr(a) + chr(b)
    hexed = first.hex()
    return hexed[0] + hexed[-1]


def _hash12(value: str) -> str:
    return hashlib.sha256(value.encode("ascii")).hexdigest()[:12]


def parse(payload: bytes) -> TlsInfo | None:
    """Decode SNI, ALPN and JA4 from a ClientHello, or ``None`` if there is none."""
    if not looks_like(payload):
        return None
    rec_end = 5 + ((payload[3] << 8) | payload[4])
    if len(payload) < 9:
        raise Malformed("tls_truncated")
    hs_len = (payload[6] << 16) | (payload[7] << 8) | payload[8]
    end = 9 + hs_len
    if end > rec_end:
        # A ClientHello spread over several records is legal but never seen in practice.
        raise Malformed("tls_fragmented_hello")
    if end > len(payload):
        raise Malformed("tls_truncated")
    body = payload[9:end]
    if len(body) < 35:
        raise Malformed("tls_truncated")
    legacy_version = (body[0] << 8) | body[1]
    pos = 34
    sid_len = body[pos]
    pos += 1 + sid_len
    if sid_len > 32 or pos + 2 > len(body):
        raise Malformed("tls_bad_hello")
    cs_len = (body[pos] << 8) | body[pos + 1]
    pos += 2
    if cs_len % 2 or pos + cs_len > len(body):
        raise Malformed("tls_bad_hello")
    ciphers = [c for c in _u16_list(body[pos : pos + cs_len]) if c not in _GREASE]
    pos += cs_len
    if pos >= len(body):
        raise Malformed("tls_bad_hello")
    pos += 1 + body[pos]  # compression methods
    if pos > len(body):
        raise Malformed("tls_bad_hello")

    extensions: list[int] = []
    sni: str | None = None
    alpn: list[bytes] = []
    sigalgs: list[int] = []
    versions: list[int] = []
    if pos + 2 <= len(body):
        ext_end = pos + 2 + ((body[pos] << 8) | body[pos + 1])
        if ext_end > len(body):
            raise Malformed("tls_bad_extensions")
        pos += 2
        while pos < ext_end:
            if pos + 4 > ext_end:
                raise Malformed("tls_bad_extensions")
            etype = (body[pos] << 8) | body[pos + 1]
            elen = (body[pos + 2] << 8) | body[pos + 3]
            data = body[pos + 4 : pos + 4 + elen]
            pos += 4 + elen
            if pos > ext_end:
                raise Malformed("tls_bad_extensions")
            if etype in _GREASE:
                continue
            extensions.append(etype)
            if etype == _EXT_SNI and sni is None:
                sni = _server_name(data)
            elif etype == _EXT_ALPN and not alpn:
                alpn = _alpn_list(data)
            elif etype == _EXT_SIGALGS and not sigalgs and len(data) >= 2:
                sigalgs = _u16_list(data[2 : 2 + ((data[0] << 8) | data[1])])
            elif etype == _EXT_VERSIONS and not versions and data:
                versions = [v for v in _u16_list(data[1 : 1 + data[0]]) if v not in _GREASE]

    version = _VERSIONS.get(max(versions) if versions else legacy_version, "00")
    alpn_part = _alpn_chars(alpn[0]) if alpn else "00"
    head = (
        f"t{version}{'d' if _EXT_SNI in extensions else 'i'}"
        f"{min(len(ciphers), 99):02d}{min(len(extensions), 99):02d}{alpn_part}"
    )
    cipher_list = _hex_list(sorted(ciphers))
    ext_list = _hex_list(sorted(e for e in extensions if e not in (_EXT_SNI, _EXT_ALPN)))
    ext_part = ext_list
    if sigalgs:
        ext_part += "_" + _hex_list(sigalgs)
    ja4 = (
        f"{head}_{_hash12(cipher_list) if ciphers else '0' * 12}"
        f"_{_hash12(ext_part) if ext_list else '0' * 12}"
    )
    return TlsInfo(
        sni=sni,
        alpn=tuple(text(a) for a in alpn[:_MAX_ALPN]),
        version=version,
        ja4=ja4,
        ja4_r=f"{head}_{cipher_list}_{ext_part}",
    )


def _server_name(data: bytes) -> str | None:
    # server_name_list: u16 length, then (u8 type, u16 length, name)*; only host_name (0).
    pos = 2
    end = min(len(data), 2 + ((data[0] << 8) | data[1])) if len(data) >= 2 else 0
    while pos + 3 <= end:
        ntype = data[pos]
        nlen = (data[pos + 1] << 8) | data[pos + 2]
        name = data[pos + 3 : pos + 3 + nlen]
        if pos + 3 + nlen > end:
            raise Malformed("tls_bad_sni")
        if ntype == 0:
            return text(name)
        pos += 3 + nlen
    return None


def _alpn_list(data: bytes) -> list[bytes]:
    if len(data) < 2:
        raise Malformed("tls_bad_alpn")
    end = 2 + ((data[0] << 8) | data[1])
    if end > len(data):
        raise Malformed("tls_bad_alpn")
    out: list[bytes] = []
    pos = 2
    while pos < end:
        n = data[pos]
        if pos + 1 + n > end:
            raise Malformed("tls_bad_alpn")
        out.append(data[pos + 1 : pos + 1 + n])
        pos += 1 + n
    return out
