"""What goes wrong in the ward, played with real tools, and the ground truth of each event.

``play(ward, event)`` performs one scenario event and records it (capture start and end
time, the device the anomaly is about, the devices involved, the anomaly kind it should
raise):

==================  =============================================  ========================
event               how                                            anomaly
==================  =============================================  ========================
port_scan           ``nmap -sS`` from the source's namespace       port_scan
arp_spoof           scapy ARP replies claiming another host's IP   arp_spoofing
telnet_login        the ``telnet`` client typing default logins    cleartext_remote_admin
ftp_login           busybox ``ftpget`` with default logins         cleartext_remote_admin
dicom_cfind         pynetdicom C-FIND from an unknown AE title     dicom_unknown_ae
new_external_peer   one HTTPS request to a new internet address    new_external_peer
exfiltration        one large HTTPS POST to an internet address    exfiltration
silence             the device's applications stopped; host up     silence_app
unplug              the device's switch port set down              silence_gone
firmware_transfer   ``in.tftpd``/busybox ``tftp`` or busybox
                    ``httpd``/``wget``                             firmware_transfer
new_device          a namespace plugged in, DHCP, chatter          new_device
ip_change           DHCP client stopped, new static address,
                    gratuitous ARP                                 ip_change
==================  =============================================  ========================

Also here, the two small servers and the ARP spoofer the events need inside namespaces
(agent roles ``legacy-server`` and ``arp-spoof``): a device's legacy telnet/FTP service that
refuses every login, like an old embedded stack would.
"""

from __future__ import annotations

import os
import socket
import socketserver
import subprocess
import threading
import time
from typing import TYPE_CHECKING, Any

from monitor.lab.agent import Config
from monitor.lab.netns import HOST_IF
from monitor.lab.scenario import (
    ArpSpoof,
    DicomFind,
    Exfiltration,
    FirmwareTransfer,
    IpChange,
    LoginAttempts,
    NewDevice,
    NewExternalPeer,
    PortScan,
    Silence,
)

if TYPE_CHECKING:
    from monitor.lab.runner import Ward

# Default credentials an attacker tries first (public lists; no real secret).
DEFAULT_LOGINS = [("admin", "admin"), ("root", "root"), ("service", "service"), ("admin", "1234")]


def _wait(ward: Ward, process: Any, timeout: float) -> int:
    try:
        return int(process.popen.wait(timeout=timeout))
    except subprocess.TimeoutExpired:
        ward.lab.stop(process)
        return -1


def play(ward: Ward, event: Any) -> None:
    """Perform ``event`` now and record its truth (see the module docstring)."""
    match event:
        case PortScan():
            _port_scan(ward, event)
        case ArpSpoof():
            _arp_spoof(ward, event)
        case LoginAttempts():
            _logins(ward, event)
        case DicomFind():
            _dicom_find(ward, event)
        case NewExternalPeer():
            _https_to_external(ward, event, upload=False)
        case Exfiltration():
            _https_to_external(ward, event, upload=True)
        case Silence():
            _silence(ward, event)
        case FirmwareTransfer():
            _firmware(ward, event)
        case NewDevice():
            _new_device(ward, event)
        case IpChange():
            _ip_change(ward, event)
        case _:
            raise ValueError(f"unknown event kind {type(event).__name__}")


def close_open_events(ward: Ward, end: float) -> None:
    """Record the events still going on at the end of the play (silence without a duration)."""
    for kind, start, device, details in ward.open_events:
        ward.record_event(kind, start, end, device, [device], details)
    ward.open_events.clear()


def _port_scan(ward: Ward, e: PortScan) -> None:
    target = ward.ip_of(e.target)
    source = ward.hosts[e.source]
    start = ward.now()
    scan = ward.lab.spawn(
        f"event-{e.source}-nmap",
        source.ns,
        [
            "nmap",
            "-sS",
            "-Pn",
            "-n",
            "-T4",
            "--max-rate",
            "300",
            "--max-retries",
            "1",
            "-p",
            e.ports,
            target,
        ],
    )
    code = _wait(ward, scan, 120)
    end = ward.now()
    ward.record_event(
        e.kind, start, end, e.source, [e.source, e.target],
        {"tool": "nmap -sS", "ports": e.ports, "target_ip": target, "exit": code},
    )  # fmt: skip


def _arp_spoof(ward: Ward, e: ArpSpoof) -> None:
    claimed = ward.gateway if e.impersonate == "gateway" else ward.ip_of(e.impersonate)
    source = ward.hosts[e.source]
    duration = ward.wall(e.duration)
    start = ward.now()
    spoof = ward.agent(
        f"event-{e.source}-arpspoof",
        source.ns,
        "arp-spoof",
        {"iface": HOST_IF, "mac": source.mac, "claimed_ip": claimed, "duration": duration},
    )
    _wait(ward, spoof, duration + 30)
    end = ward.now()
    ward.record_event(
        e.kind, start, end, e.source, [e.source, e.impersonate],
        {"tool": "scapy ARP is-at", "claimed_ip": claimed, "spoofer_mac": source.mac},
    )  # fmt: skip


def _logins(ward: Ward, e: LoginAttempts) -> None:
    target = ward.ip_of(e.target)
    source = ward.hosts[e.source]
    serve = ward._serving(e.target, "telnet" if e.kind == "telnet_login" else "ftp")
    port = serve.port or (23 if e.kind == "telnet_login" else 21)
    start = ward.now()
    for attempt in range(e.attempts):
        user, password = DEFAULT_LOGINS[attempt % len(DEFAULT_LOGINS)]
        if e.kind == "telnet_login":
            # The real telnet client, typing at the prompts as a person would.
            script = (
                f"(sleep 1; printf '{user}\\r\\n'; sleep 0.5; printf '{password}\\r\\n'; sleep 1)"
                f" | telnet {target} {port}"
            )
            argv = ["sh", "-c", script]
        else:
            argv = ["busybox", "ftpget", "-P", str(port), "-u", user, "-p", password,
                    target, "/dev/null", "firmware.bin"]  # fmt: skip
        attempt_process = ward.lab.spawn(f"event-{e.source}-{e.kind}-{attempt}", source.ns, argv)
        _wait(ward, attempt_process, 20)
    end = ward.now()
    ward.record_event(
        e.kind, start, end, e.target, [e.source, e.target],
        {"service": f"tcp/{port}", "attempts": e.attempts, "target_ip": target},
    )  # fmt: skip


def _dicom_find(ward: Ward, e: DicomFind) -> None:
    serve = ward._serving(e.target, "dicom")
    source = ward.hosts[e.source]
    start = ward.now()
    find = ward.agent(
        f"event-{e.source}-cfind",
        source.ns,
        "dicom-find",
        {
            "server": ward.ip_of(e.target),
            "port": serve.port,
            "calling_ae": e.calling_ae,
            "called_ae": serve.ae_title,
        },
    )
    code = _wait(ward, find, 60)
    end = ward.now()
    ward.record_event(
        e.kind, start, end, e.source, [e.source, e.target],
        {"calling_ae": e.calling_ae, "called_ae": serve.ae_title, "exit": code},
    )  # fmt: skip


def _https_to_external(ward: Ward, e: NewExternalPeer | Exfiltration, upload: bool) -> None:
    host = ward.hosts[e.device]
    address = ward.ip_of(e.to)
    serve = ward._serving(e.to, "https")
    cfg: dict[str, Any] = {
        "address": address,
        "server_name": ward.name_of(e.to),
        "port": serve.port,
    }
    if upload:
        assert isinstance(e, Exfiltration)
        cfg["size"] = e.size
    start = ward.now()
    process = ward.agent(
        f"event-{e.device}-{e.kind}", host.ns, "https-upload" if upload else "https-once", cfg
    )
    code = _wait(ward, process, 300)
    end = ward.now()
    details: dict[str, Any] = {"peer_ip": address, "service": f"tcp/{serve.port}", "exit": code}
    if upload:
        details["bytes"] = cfg["size"]
    ward.record_event(e.kind, start, end, e.device, [e.device, e.to], details)


def _silence(ward: Ward, e: Silence) -> None:
    start = ward.now()
    if e.kind == "silence":
        ward.stop_apps(e.device)
        details: dict[str, Any] = {"how": "application processes stopped; host up"}
    else:
        ward.lab.set_link(e.device, up=False)
        details = {"how": "switch port down (cable unplugged)"}
    if e.duration is None:
        ward.open_events.append((e.kind, start, e.device, details))
        return
    time.sleep(ward.wall(e.duration))
    end = ward.now()
    if e.kind == "silence":
        ward.start_apps(e.device)
    else:
        ward.lab.set_link(e.device, up=True)
    ward.record_event(e.kind, start, end, e.device, [e.device], details)


def _firmware(ward: Ward, e: FirmwareTransfer) -> None:
    server = ward.hosts[e.server]
    device = ward.hosts[e.device]
    address = ward.ip_of(e.server)
    directory = ward.work / f"firmware-{e.server}"
    directory.mkdir(parents=True, exist_ok=True)
    image = directory / "firmware.bin"
    image.write_bytes(os.urandom(e.size))
    if e.method == "tftp":
        serve_argv = ["in.tftpd", "--foreground", "--listen", "--address", f"{address}:69",
                      "--secure", str(directory)]  # fmt: skip
        fetch_argv = ["busybox", "tftp", "-g", "-b", "1428", "-r", "firmware.bin",
                      "-l", "/dev/null", address]  # fmt: skip
        service = "udp/69"
    else:
        serve_argv = ["busybox", "httpd", "-f", "-p", f"{address}:8080", "-h", str(directory)]
        fetch_argv = ["busybox", "wget", "-q", "-O", "/dev/null",
                      f"http://{address}:8080/firmware.bin"]  # fmt: skip
        service = "tcp/8080"
    server_process = ward.lab.spawn(f"event-{e.server}-{e.method}d", server.ns, serve_argv)
    time.sleep(0.5)
    start = ward.now()
    fetch = ward.lab.spawn(f"event-{e.device}-{e.method}", device.ns, fetch_argv)
    code = _wait(ward, fetch, 300)
    end = ward.now()
    ward.lab.stop(server_process)
    ward.record_event(
        e.kind, start, end, e.device, [e.device, e.server],
        {"method": e.method, "service": service, "bytes": e.size, "server_ip": address,
         "exit": code},
    )  # fmt: skip


def _new_device(ward: Ward, e: NewDevice) -> None:
    start = ward.now()
    ward.plug_in(e.device)
    ward.start_behaviour(e.device)
    host = ward.hosts[e.device]
    host.joined = start
    end = ward.now()
    ward.record_event(
        e.kind, start, end, e.device, [e.device],
        {"ip": host.ip, "class": host.spec.device_class, "model": host.spec.model},
    )  # fmt: skip


def _ip_change(ward: Ward, e: IpChange) -> None:
    host = ward.hosts[e.device]
    old = host.ip
    start = ward.now()
    if host.udhcpc is not None:
        ward.lab.stop(host.udhcpc)
        host.udhcpc = None
    prefix = ward.lan.prefixlen
    ward.lab.exec(host.ns, ["ip", "addr", "flush", "dev", HOST_IF])
    ward.lab.exec(host.ns, ["ip", "addr", "add", f"{e.new_ip}/{prefix}", "dev", HOST_IF])
    ward.lab.exec(host.ns, ["ip", "route", "replace", "default", "via", ward.gateway])
    ward.lab.exec(
        host.ns, ["busybox", "arping", "-U", "-c", "2", "-I", HOST_IF, e.new_ip], check=False
    )
    host.ip = e.new_ip
    host.ips.append(e.new_ip)
    end = ward.now()
    ward.record_event(e.kind, start, end, e.device, [e.device], {"old_ip": old, "new_ip": e.new_ip})


# -- agent roles --------------------------------------------------------------------------------
class _Legacy(socketserver.BaseRequestHandler):
    protocol = "telnet"
    banner = "VxWorks"

    def _line(self, sock: socket.socket) -> str:
        data = b""
        while not data.endswith(b"\n") and len(data) < 256:
            chunk = sock.recv(1)
            if not chunk:
                raise ConnectionError("closed")
            if chunk == b"\xff":  # telnet IAC: skip the 2-byte option negotiation
                sock.recv(2)
                continue
            data += chunk
        return data.decode("latin-1").strip()

    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.settimeout(30)
        try:
            if self.protocol == "telnet":
                sock.sendall(b"\xff\xfb\x01\xff\xfb\x03")  # WILL ECHO, WILL SUPPRESS-GO-AHEAD
                for _ in range(3):
                    sock.sendall(f"\r\n{self.banner} login: ".encode())
                    self._line(sock)
                    sock.sendall(b"Password: ")
                    self._line(sock)
                    time.sleep(0.3)
                    sock.sendall(b"\r\nLogin incorrect\r\n")
            else:
                sock.sendall(f"220 {self.banner} FTP server ready.\r\n".encode())
                while True:
                    verb = self._line(sock).split(" ", 1)[0].upper()
                    if verb == "USER":
                        sock.sendall(b"331 Password required.\r\n")
                    elif verb == "PASS":
                        time.sleep(0.3)
                        sock.sendall(b"530 Login incorrect.\r\n")
                    elif verb == "QUIT":
                        sock.sendall(b"221 Bye.\r\n")
                        return
                    else:
                        sock.sendall(b"530 Please login with USER and PASS.\r\n")
        except (OSError, ConnectionError):
            return


class _Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def serve_legacy(cfg: Config) -> None:
    """A telnet or FTP service with a stack banner that refuses every login."""
    _Legacy.protocol = str(cfg["protocol"])
    _Legacy.banner = str(cfg.get("banner", "VxWorks"))
    with _Server((str(cfg.get("bind", "0.0.0.0")), int(cfg["port"])), _Legacy) as server:
        server.serve_forever()


def arp_spoof(cfg: Config) -> None:
    """Broadcast ARP replies claiming ``claimed_ip`` is at our MAC, every second."""
    from scapy.layers.l2 import ARP, Ether  # scapy is slow to import; only this role needs it
    from scapy.sendrecv import sendp

    frame = Ether(src=cfg["mac"], dst="ff:ff:ff:ff:ff:ff") / ARP(
        op=2, hwsrc=cfg["mac"], psrc=cfg["claimed_ip"], hwdst="ff:ff:ff:ff:ff:ff",
        pdst=cfg["claimed_ip"],
    )  # fmt: skip
    stop = threading.Event()
    deadline = time.monotonic() + float(cfg["duration"])
    while time.monotonic() < deadline and not stop.is_set():
        sendp(frame, iface=cfg["iface"], verbose=False)
        time.sleep(1.0)
