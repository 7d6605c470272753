"""MQTT CONNECT metadata: protocol name and level (3 = 3.1, 4 = 3.1.1, 5 = 5.0), connect flags,
keep-alive and client identifier.

Promise: MQTT 5 properties are skipped by their declared length, and the will message, user
name and password that may follow the client id are never read (only their presence flags
are kept). ``parse`` returns ``None`` for anything that is not an MQTT CONNECT packet and
raises only ``Malformed`` with a fixed reason.
"""

from __future__ import annotations

from dataclasses import dataclass

from monitor.decode import Malformed
from monitor.decode._text import text

# Every reason ``parse`` may raise ``Malformed`` with (label values of the error counter).
REASONS = frozenset(
    {
        "mqtt_bad_flags",
        "mqtt_bad_varint",
        "mqtt_truncated",
    }
)

_NAMES = {b"MQTT": "MQTT", b"MQIsdp": "MQIsdp"}


@dataclass(frozen=True, slots=True)
class MqttInfo:
    protocol_name: str  # 'MQTT' (3.1.1, 5) or 'MQIsdp' (3.1)
    protocol_level: int
    client_id: str
    keep_alive: int
    clean_start: bool
    will: bool
    username: bool  # a user name is present (its value is not read)
    password: bool  # a password is present (its value is not read)


def _varint(data: bytes, pos: int, reason: str) -> tuple[int, int]:
    """MQTT variable byte integer at ``pos``: value and the offset after it."""
    value = 0
    for i in range(4):
        if pos + i >= len(data):
            raise Malformed(reason)
        byte = data[pos + i]
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            return value, pos + i + 1
    raise Malformed("mqtt_bad_varint")


def _header(payload: bytes) -> int | None:
    """Offset of the protocol name after a CONNECT fixed header, or None if not one."""
    if len(payload) < 2 or payload[0] != 0x10:
        return None
    for i in range(1, min(5, len(payload))):
        if not payload[i] & 0x80:
            return i + 1
    return None


def looks_like(payload: bytes) -> bool:
    """A CONNECT fixed header followed by the protocol name 'MQTT' or 'MQIsdp'."""
    pos = _header(payload)
    if pos is None:
        return False
    name = payload[pos : pos + 8]
    return name.startswith(b"\x00\x04MQTT") or name == b"\x00\x06MQIsdp"


def parse(payload: bytes) -> MqttInfo | None:
    """Decode an MQTT CONNECT packet, or ``None`` if the payload does not start with one."""
    if not looks_like(payload):
        return None
    remaining, pos = _varint(payload, 1, "mqtt_truncated")
    end = pos + remaining
    if end > len(payload):
        raise Malformed("mqtt_truncated")
    packet = payload[:end]
    name_len = (payload[pos] << 8) | payload[pos + 1]
    if pos + 2 + name_len > end:
        raise Malformed("mqtt_truncated")
    name = _NAMES[bytes(packet[pos + 2 : pos + 2 + name_len])]
    pos += 2 + name_len
    if pos + 4 > end:
        raise Malformed("mqtt_truncated")
    level = packet[pos]
    flags = packet[pos + 1]
    keep_alive = (packet[pos + 2] << 8) | packet[pos + 3]
    pos += 4
    if flags & 0x01:
        raise Malformed("mqtt_bad_flags")  # the reserved bit must be zero
    if level == 5:
        props, pos = _varint(packet, pos, "mqtt_truncated")
        pos += props
    if pos + 2 > end:
        raise Malformed("mqtt_truncated")
    id_len = (packet[pos] << 8) | packet[pos + 1]
    if pos + 2 + id_len > end:
        raise Malformed("mqtt_truncated")
    return MqttInfo(
        protocol_name=name,
        protocol_level=level,
        client_id=text(packet[pos + 2 : pos + 2 + id_len]),
        keep_alive=keep_alive,
        clean_start=bool(flags & 0x02),
        will=bool(flags & 0x04),
        username=bool(flags & 0x80),
        password=bool(flags & 0x40),
    )
