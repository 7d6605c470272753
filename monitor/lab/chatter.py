"""Background chatter every device makes besides its application: DNS look-ups and NTP.

DHCP (busybox ``udhcpc`` against ``dnsmasq``) and ARP (the kernel) are the runner's; this
module sends real DNS queries to the lab's resolver and SNTP (RFC 4330) requests to the
router, which answers them with ``serve_sntp``.

Config keys: ``dns_server``, ``ntp_server``, ``names`` (list), ``dns_every``, ``ntp_every``
(wall seconds).
"""

from __future__ import annotations

import random
import socket
import struct
import sys
import time

from monitor.lab.agent import Config, dns_query

NTP_EPOCH_OFFSET = 2208988800  # seconds from 1900-01-01 to 1970-01-01


def _ntp_stamp(when: float) -> bytes:
    seconds = int(when) + NTP_EPOCH_OFFSET
    fraction = int((when % 1) * (1 << 32))
    return struct.pack("!II", seconds & 0xFFFFFFFF, fraction & 0xFFFFFFFF)


def sntp_query(server: str, timeout: float = 2.0) -> float:
    """One SNTP client exchange; returns the server's transmit time (epoch seconds)."""
    request = bytes([0x23]) + bytes(39) + _ntp_stamp(time.time())  # LI 0, VN 4, mode 3
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(request, (server, 123))
        reply, _ = sock.recvfrom(512)
    if len(reply) < 48:
        raise ValueError("short NTP reply")
    seconds, fraction = struct.unpack("!II", reply[40:48])
    return float(seconds - NTP_EPOCH_OFFSET + fraction / (1 << 32))


def serve_sntp(cfg: Config) -> None:
    """A stratum-2 SNTP server on UDP/123 of every address of the namespace."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("0.0.0.0", 123))
        while True:
            request, peer = sock.recvfrom(512)
            if len(request) < 48 or request[0] & 0x07 != 3:
                continue
            now = time.time()
            reply = (
                bytes([0x24, 2, request[2], 0xEC])  # LI 0, VN 4, mode 4; stratum 2; poll; prec
                + struct.pack("!II", 0, 0x100)  # root delay, root dispersion
                + socket.inet_aton(cfg.get("reference", "127.127.1.0"))
                + _ntp_stamp(now - 30)  # reference time
                + request[40:48]  # originate = the client's transmit
                + _ntp_stamp(now)  # receive
                + _ntp_stamp(time.time())  # transmit
            )
            sock.sendto(reply, peer)


def run_chatter(cfg: Config) -> None:
    """DNS look-ups of ``names`` and SNTP polls, each at its own cadence, until stopped."""
    names: list[str] = list(cfg.get("names", []))
    dns_every = float(cfg.get("dns_every", 600.0))
    ntp_every = float(cfg.get("ntp_every", 900.0))
    # Devices boot at different moments: start each schedule at a random phase.
    next_dns = time.monotonic() + random.uniform(0.2, 1.0)
    next_ntp = time.monotonic() + random.uniform(0.2, 1.5)
    while True:
        now = time.monotonic()
        if names and now >= next_dns:
            for name in names:
                try:
                    dns_query(name, cfg["dns_server"])
                except OSError as error:
                    print(f"dns failed: {type(error).__name__}", file=sys.stderr, flush=True)
            next_dns = now + dns_every * random.uniform(0.9, 1.1)
        if cfg.get("ntp_server") and now >= next_ntp:
            try:
                sntp_query(cfg["ntp_server"])
            except (OSError, ValueError) as error:
                print(f"ntp failed: {type(error).__name__}", file=sys.stderr, flush=True)
            next_ntp = now + ntp_every * random.uniform(0.9, 1.1)
        wake = min(next_ntp, next_dns if names else next_ntp)
        time.sleep(max(0.05, wake - time.monotonic()))
