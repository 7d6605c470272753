"""Check a lab recording against its ground truth, with Wireshark's dissectors (``tshark``).

``verify(directory)`` reads ``capture.pcap`` with ``tshark`` once and checks ``truth.json``
against it:

- every device is on the wire with its MAC: it sends ARP, DHCP (if it takes a lease), DNS and
  NTP chatter from its own MAC, and each conversation it starts shows up dissected as its
  protocol (DICOM, HL7, MQTT, TLS) from its MAC;
- every event is visible where and when the truth says (see ``_EVENT_CHECKS``).

It returns the problems found, one line each (empty when the capture matches its truth).
Nothing from payloads is printed: the lines name devices, protocols and times only.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SLACK = 1.0  # seconds of tolerance around an event's start and end
WIRESHARK_PORTS = {"dicom": 104, "hl7": 2575, "mqtt": 1883}
DISSECTOR = {"dicom": "dicom", "hl7": "hl7", "mqtt": "mqtt", "https": "tls"}
FIELDS = [
    "frame.time_epoch",
    "eth.src",
    "arp.opcode",
    "arp.src.hw_mac",
    "arp.src.proto_ipv4",
    "ip.src",
    "ip.dst",
    "tcp.srcport",
    "tcp.dstport",
    "udp.srcport",
    "udp.dstport",
    "tcp.flags.syn",
    "tcp.flags.ack",
    "tcp.len",
    "udp.length",
    "frame.protocols",
    "dicom.assoc.ae.calling",
]


@dataclass(frozen=True, slots=True)
class Frame:
    time: float
    mac: str
    arp_op: int
    arp_mac: str
    arp_ip: str
    src: str
    dst: str
    sport: int
    dport: int
    syn: bool
    ack: bool
    payload: int
    protocols: frozenset[str]
    calling_ae: str

    @property
    def udp(self) -> bool:
        return "udp" in self.protocols


def _int(text: str) -> int:
    text = text.split(",")[0]
    try:
        return int(text, 0)
    except ValueError:
        return 0


def read_frames(pcap: Path, decode_as: list[str] | None = None) -> list[Frame]:
    """One tshark pass over ``pcap``; ``decode_as`` are ``-d`` arguments (``tcp.port==N,hl7``)."""
    argv = ["tshark", "-r", str(pcap), "-n", "-T", "fields", "-E", "separator=\t"]
    for rule in decode_as or []:
        argv += ["-d", rule]
    for name in FIELDS:
        argv += ["-e", name]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"tshark failed on {pcap} (exit {done.returncode})")
    frames = []
    for line in done.stdout.splitlines():
        cols = line.split("\t")
        cols += [""] * (len(FIELDS) - len(cols))
        tcp_len = _int(cols[13])
        udp_len = max(0, _int(cols[14]) - 8)
        frames.append(
            Frame(
                time=float(cols[0]),
                mac=cols[1].lower(),
                arp_op=_int(cols[2]),
                arp_mac=cols[3].lower(),
                arp_ip=cols[4],
                src=cols[5],
                dst=cols[6],
                sport=_int(cols[7] or cols[9]),
                dport=_int(cols[8] or cols[10]),
                syn=cols[11] in ("1", "True"),
                ack=cols[12] in ("1", "True"),
                payload=tcp_len or udp_len,
                protocols=frozenset(cols[15].split(":")),
                calling_ae=cols[16].strip(),
            )
        )
    return frames


def decode_as_rules(truth: dict[str, Any]) -> list[str]:
    """``-d`` rules for services the scenario put on ports Wireshark does not know them by."""
    rules = set()
    for entity in [*truth["devices"], *truth.get("externals", [])]:
        for serve in entity.get("serves", []):
            protocol, port = serve["protocol"], serve["port"]
            if protocol in WIRESHARK_PORTS and WIRESHARK_PORTS[protocol] != port:
                rules.add(f"tcp.port=={port},{protocol}")
    return sorted(rules)


class _Capture:
    def __init__(self, frames: list[Frame], truth: dict[str, Any]) -> None:
        self.frames = frames
        self.truth = truth

    def within(self, start: float, end: float) -> list[Frame]:
        return [f for f in self.frames if start <= f.time <= end]

    def before(self, when: float) -> list[Frame]:
        return [f for f in self.frames if f.time < when]

    def after(self, when: float) -> list[Frame]:
        return [f for f in self.frames if f.time > when]


# -- device checks ----------------------------------------------------------------------------
def _check_devices(cap: _Capture) -> list[str]:
    problems = []
    by_mac: dict[str, list[Frame]] = {}
    for frame in cap.frames:
        by_mac.setdefault(frame.mac, []).append(frame)
    for device in cap.truth["devices"]:
        name, mac = device["name"], device["mac"]
        sent = by_mac.get(mac, [])
        if not sent:
            problems.append(f"device {name}: no frame from {mac}")
            continue
        protocols = set().union(*(f.protocols for f in sent))
        if "arp" not in protocols:
            problems.append(f"device {name}: no ARP from its MAC")
        if device["address"] == "dhcp" and "dhcp" not in protocols:
            problems.append(f"device {name}: no DHCP from its MAC")
        if name != "router":
            for chatter in ("dns", "ntp"):
                if chatter not in protocols:
                    problems.append(f"device {name}: no {chatter.upper()} from its MAC")
            ips = {f.src for f in sent if f.src}
            if not set(device["ips"]) <= ips:
                missing = sorted(set(device["ips"]) - ips)
                problems.append(f"device {name}: never used {', '.join(missing)}")
        for talk in device.get("talks", []):
            dissector = DISSECTOR[talk["protocol"]]
            if not any(dissector in f.protocols and f.dport == talk["port"] for f in sent):
                problems.append(f"device {name}: no {dissector} to tcp/{talk['port']}")
    return problems


# -- event checks -----------------------------------------------------------------------------
def _window(cap: _Capture, event: dict[str, Any]) -> list[Frame]:
    return cap.within(event["start"] - SLACK, event["end"] + SLACK)


def _port_scan(cap: _Capture, e: dict[str, Any]) -> str | None:
    source, target = e["device"]["mac"], e["details"]["target_ip"]
    probed = {
        f.dport
        for f in _window(cap, e)
        if f.mac == source and f.dst == target and f.syn and not f.ack
    }
    if len(probed) < 20:
        return f"only {len(probed)} ports probed in the window"
    return None


def _arp_spoofing(cap: _Capture, e: dict[str, Any]) -> str | None:
    mac, claimed = e["details"]["spoofer_mac"], e["details"]["claimed_ip"]

    def spoofed(frames: list[Frame]) -> list[Frame]:
        return [f for f in frames if f.arp_op == 2 and f.arp_mac == mac and f.arp_ip == claimed]

    if len(spoofed(_window(cap, e))) < 2:
        return "fewer than 2 forged ARP replies in the window"
    if spoofed(cap.before(e["start"] - SLACK)):
        return "forged ARP replies before the event"
    return None


def _cleartext_remote_admin(cap: _Capture, e: dict[str, Any]) -> str | None:
    attacker = next(d for d in e["involved"] if d["name"] != e["device"]["name"])
    port = int(e["details"]["service"].split("/")[1])
    dissector = "telnet" if e["kind"] == "telnet_login" else "ftp"
    sessions = {
        f.sport
        for f in _window(cap, e)
        if f.mac == attacker["mac"] and f.dport == port and dissector in f.protocols
    }
    if len(sessions) < e["details"]["attempts"]:
        return f"{len(sessions)} {dissector} sessions in the window"
    return None


def _dicom_unknown_ae(cap: _Capture, e: dict[str, Any]) -> str | None:
    ae = e["details"]["calling_ae"]
    mac = e["device"]["mac"]
    if not any(f.calling_ae == ae and f.mac == mac for f in _window(cap, e)):
        return f"no association from calling AE {ae} in the window"
    if any(f.calling_ae == ae for f in cap.before(e["start"] - SLACK)):
        return f"calling AE {ae} seen before the event"
    return None


def _new_external_peer(cap: _Capture, e: dict[str, Any]) -> str | None:
    mac, peer = e["device"]["mac"], e["details"]["peer_ip"]
    if not any(f.mac == mac and f.dst == peer and "tls" in f.protocols for f in _window(cap, e)):
        return "no TLS to the peer in the window"
    if any(f.mac == mac and f.dst == peer for f in cap.before(e["start"] - SLACK)):
        return "the device talked to the peer before the event"
    return None


def _exfiltration(cap: _Capture, e: dict[str, Any]) -> str | None:
    mac, peer = e["device"]["mac"], e["details"]["peer_ip"]
    sent = sum(f.payload for f in _window(cap, e) if f.mac == mac and f.dst == peer)
    if sent < e["details"]["bytes"]:
        return f"only {sent} bytes uploaded in the window"
    return None


def _app_ports(cap: _Capture, name: str) -> set[int]:
    device = next(d for d in cap.truth["devices"] if d["name"] == name)
    return {t["port"] for t in device.get("talks", [])}


def _silence_app(cap: _Capture, e: dict[str, Any]) -> str | None:
    mac = e["device"]["mac"]
    ports = _app_ports(cap, e["device"]["name"])
    quiet = cap.within(e["start"] + SLACK, e["end"] - SLACK)
    if any(f.mac == mac and f.dport in ports and f.payload for f in quiet):
        return "application traffic during the silence"
    if not any(f.mac == mac and f.dport in ports for f in cap.before(e["start"])):
        return "no application traffic before the silence"
    if not any(f.mac == mac for f in quiet):
        return "the host sent nothing during the silence (it should stay up)"
    return None


def _silence_gone(cap: _Capture, e: dict[str, Any]) -> str | None:
    mac = e["device"]["mac"]
    if any(f.mac == mac for f in cap.within(e["start"] + 0.2, e["end"] - 0.2)):
        return "frames from the device while unplugged"
    if not any(f.mac == mac for f in cap.before(e["start"])):
        return "no frames from the device before it was unplugged"
    return None


def _firmware_transfer(cap: _Capture, e: dict[str, Any]) -> str | None:
    server, device = e["details"]["server_ip"], e["device"]["ip"]
    proto, port = e["details"]["service"].split("/")
    window = _window(cap, e)
    if not any(f.dst == server and f.dport == int(port) for f in window):
        return f"no request to {proto}/{port} on the server in the window"
    moved = sum(f.payload for f in window if f.src == server and f.dst == device)
    if moved < e["details"]["bytes"]:
        return f"only {moved} bytes from the server in the window"
    return None


def _new_device(cap: _Capture, e: dict[str, Any]) -> str | None:
    mac = e["device"]["mac"]
    if any(f.mac == mac for f in cap.before(e["start"] - SLACK)):
        return "the device was on the wire before it joined"
    if not any(f.mac == mac and "dhcp" in f.protocols for f in _window(cap, e)):
        return "no DHCP from the device when it joined"
    return None


def _ip_change(cap: _Capture, e: dict[str, Any]) -> str | None:
    mac, old, new = e["device"]["mac"], e["details"]["old_ip"], e["details"]["new_ip"]
    if any(f.mac == mac and (f.src == new or f.arp_ip == new) for f in cap.before(e["start"])):
        return "the new address was used before the change"
    if not any(f.mac == mac and f.src == old for f in cap.before(e["start"])):
        return "the old address was not used before the change"
    if not any(f.mac == mac and f.src == new for f in cap.after(e["start"])):
        return "the new address was not used after the change"
    if any(f.mac == mac and f.src == old for f in cap.after(e["end"] + SLACK)):
        return "the old address was still used after the change"
    return None


_EVENT_CHECKS: dict[str, Callable[[_Capture, dict[str, Any]], str | None]] = {
    "port_scan": _port_scan,
    "arp_spoofing": _arp_spoofing,
    "cleartext_remote_admin": _cleartext_remote_admin,
    "dicom_unknown_ae": _dicom_unknown_ae,
    "new_external_peer": _new_external_peer,
    "exfiltration": _exfiltration,
    "silence_app": _silence_app,
    "silence_gone": _silence_gone,
    "firmware_transfer": _firmware_transfer,
    "new_device": _new_device,
    "ip_change": _ip_change,
}


def check(frames: list[Frame], truth: dict[str, Any]) -> list[str]:
    """Problems between ``frames`` (from ``read_frames``) and ``truth``."""
    cap = _Capture(frames, truth)
    problems = _check_devices(cap)
    for index, event in enumerate(truth["events"]):
        checker = _EVENT_CHECKS.get(event["anomaly"])
        problem = checker(cap, event) if checker else f"no check for anomaly {event['anomaly']!r}"
        if problem:
            problems.append(f"event {index} ({event['kind']}): {problem}")
    return problems


def verify(directory: Path) -> list[str]:
    """Check ``directory/capture.pcap`` against ``directory/truth.json``."""
    truth = json.loads((directory / "truth.json").read_text(encoding="utf-8"))
    frames = read_frames(directory / truth.get("capture", "capture.pcap"), decode_as_rules(truth))
    return check(frames, truth)
