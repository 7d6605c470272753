"""The process that plays one behaviour of one device inside its network namespace.

``python -m monitor.lab.agent ROLE CONFIG.json`` runs ``ROLE`` (a client or server of one
protocol, the background chatter, or one event action) with the JSON config the runner wrote.
SIGTERM and SIGINT end it cleanly (``SystemExit``), so the runner can stop a device's
application while its host stays up.

Also here: the small helpers every behaviour shares (cadence loop, DNS look-up through the
lab's resolver, canary patients).
"""

from __future__ import annotations

import importlib
import json
import random
import signal
import socket
import struct
import sys
import time
from collections.abc import Callable
from typing import Any

Config = dict[str, Any]

# role -> "module:function"
ROLES = {
    "chatter": "monitor.lab.chatter:run_chatter",
    "sntp-server": "monitor.lab.chatter:serve_sntp",
    "dicom-server": "monitor.lab.dicom:serve",
    "dicom-client": "monitor.lab.dicom:client",
    "dicom-find": "monitor.lab.dicom:find",
    "hl7-server": "monitor.lab.hl7:serve",
    "hl7-client": "monitor.lab.hl7:client",
    "mqtt-client": "monitor.lab.mqtt:client",
    "https-server": "monitor.lab.https:serve",
    "https-client": "monitor.lab.https:client",
    "https-once": "monitor.lab.https:once",
    "https-upload": "monitor.lab.https:upload",
    "legacy-server": "monitor.lab.events:serve_legacy",
    "arp-spoof": "monitor.lab.events:arp_spoof",
}

# Synthetic patients. The names and identifiers are canaries: tests search the capture for
# them (proof the traffic is real) and Santinel's outputs for them (proof nothing leaks).
CANARY_FAMILY = "ZZCANARY"
CANARY_PATIENTS = [
    {"family": CANARY_FAMILY, "given": f"PHI{word}", "mrn": f"CNRY-{n:07d}", "dob": "19010101"}
    for n, word in enumerate(
        ["ONE", "TWO", "THREE", "FOUR", "FIVE", "SIX", "SEVEN", "EIGHT"], start=1
    )
]
CANARIES = [CANARY_FAMILY] + [p["mrn"] for p in CANARY_PATIENTS]


def patient(index: int) -> dict[str, str]:
    return CANARY_PATIENTS[index % len(CANARY_PATIENTS)]


def _exit(signum: int, _frame: object) -> None:
    raise SystemExit(0)


def cadence(interval: float, action: Callable[[], None], *, first: float = 0.0) -> None:
    """Call ``action`` every ``interval`` seconds (±5 % jitter) until the process is stopped.

    An action that fails is logged by type only and retried at the next tick: a device keeps
    its rhythm when its server is briefly away.
    """
    time.sleep(first)
    next_at = time.monotonic()
    while True:
        try:
            action()
        except (OSError, EOFError, TimeoutError, ConnectionError, RuntimeError, ValueError) as e:
            print(f"action failed: {type(e).__name__}", file=sys.stderr, flush=True)
        next_at += interval * random.uniform(0.95, 1.05)
        time.sleep(max(0.0, next_at - time.monotonic()))


def dns_query(name: str, server: str, qtype: int = 1, timeout: float = 2.0) -> list[str]:
    """Ask ``server`` for the A records of ``name`` (a real DNS query over UDP/53)."""
    ident = random.randrange(65536)
    question = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    packet = struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0) + question
    packet += struct.pack("!HH", qtype, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(packet, (server, 53))
        reply, _ = sock.recvfrom(4096)
    answers: list[str] = []
    if len(reply) < 12 or struct.unpack("!H", reply[:2])[0] != ident:
        return answers
    count = struct.unpack("!H", reply[6:8])[0]
    offset = 12 + len(question) + 4
    for _ in range(count):
        if offset >= len(reply):
            break
        if reply[offset] & 0xC0 == 0xC0:
            offset += 2
        else:
            while offset < len(reply) and reply[offset]:
                offset += reply[offset] + 1
            offset += 1
        rtype, _cls, _ttl, length = struct.unpack("!HHIH", reply[offset : offset + 10])
        offset += 10
        if rtype == 1 and length == 4:
            answers.append(socket.inet_ntoa(reply[offset : offset + 4]))
        offset += length
    return answers


def resolve(cfg: Config, name: str) -> str:
    """The address of ``name``: through the lab's DNS server when the config names one."""
    server = cfg.get("dns_server")
    if server:
        answers = dns_query(name, server)
        if answers:
            return answers[0]
        raise OSError("name did not resolve")
    return name


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] not in ROLES:
        print(f"usage: agent ROLE CONFIG.json; roles: {', '.join(ROLES)}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _exit)
    signal.signal(signal.SIGINT, _exit)
    with open(args[1], encoding="utf-8") as handle:
        cfg: Config = json.load(handle)
    random.seed(cfg.get("seed"))
    module_name, function_name = ROLES[args[0]].split(":")
    function = getattr(importlib.import_module(module_name), function_name)
    result = function(cfg)
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
