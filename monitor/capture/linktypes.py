"""Names of link-layer header types, for messages about captures.

Promise: ``linktype_name(n)`` returns a short human name for any integer (``"unknown"`` for
numbers it does not know); it never raises. Numbers and names follow
https://www.tcpdump.org/linktypes.html.
"""

from __future__ import annotations

from monitor.capture import SUPPORTED_LINKTYPES

_NAMES: dict[int, str] = {
    0: "BSD loopback",
    1: "Ethernet",
    3: "AX.25",
    6: "IEEE 802.5 Token Ring",
    7: "ARCNET",
    8: "SLIP",
    9: "PPP",
    10: "FDDI",
    12: "Raw IP",
    14: "Raw IP",
    50: "PPP in HDLC framing",
    51: "PPPoE",
    100: "ATM RFC 1483",
    101: "Raw IP",
    104: "Cisco HDLC",
    105: "IEEE 802.11",
    107: "Frame Relay",
    108: "OpenBSD loopback",
    113: "Linux cooked (SLL)",
    114: "LocalTalk",
    117: "OpenBSD pflog",
    119: "IEEE 802.11 Prism",
    122: "IP over Fibre Channel",
    127: "IEEE 802.11 radiotap",
    138: "IP over IEEE 1394",
    139: "MTP2 with pseudo-header",
    143: "DOCSIS",
    163: "IEEE 802.11 AVS",
    165: "BACnet MS/TP",
    166: "PPP with direction",
    187: "Bluetooth HCI H4",
    189: "USB Linux",
    192: "PPI",
    195: "IEEE 802.15.4 with FCS",
    201: "Bluetooth HCI H4 with pseudo-header",
    215: "IEEE 802.15.4 non-ASK PHY",
    220: "USB Linux memory-mapped",
    227: "SocketCAN",
    228: "Raw IPv4",
    229: "Raw IPv6",
    230: "IEEE 802.15.4 without FCS",
    231: "D-Bus",
    235: "DVB-CI",
    239: "Linux netlink (NFLOG)",
    247: "InfiniBand",
    249: "USBPcap",
    251: "Bluetooth LE link layer",
    253: "Linux netlink",
    254: "Bluetooth Linux monitor",
    256: "Bluetooth LE link layer with pseudo-header",
    263: "Wattstopper DLM",
    264: "ISO 14443",
    266: "Linux vsock",
    270: "Docsis 3.1",
    272: "Nordic BLE",
    274: "Ethernet with PHY pseudo-header",
    276: "Linux cooked v2 (SLL2)",
    279: "Ethernet with MAC pseudo-header",
    283: "IEEE 802.15.4 TAP",
    289: "Ethernet MPACKET",
}
_NAMES.update({n: f"user {n - 147}" for n in range(147, 163)})


def linktype_name(linktype: int) -> str:
    """A short name for link type ``linktype``, ``"unknown"`` when not listed."""
    return _NAMES.get(linktype, "unknown")


def describe(linktype: int) -> str:
    """``"272 (Nordic BLE)"``: the number and its name, for one-line messages."""
    return f"{linktype} ({linktype_name(linktype)})"


def is_supported(linktype: int) -> bool:
    """Whether the decoder knows how to read frames of this link type."""
    return linktype in SUPPORTED_LINKTYPES
