"""Play a scenario for real: build the ward, record the bridge, run the events, write truth.

``run_scenario(scenario, out)`` builds the lab (``monitor.lab.netns``), starts the router
(``dnsmasq`` for DHCP and DNS, an SNTP server), the servers, then the devices — each with
busybox ``udhcpc`` (its class's vendor class and parameter list), background chatter and its
application clients — records the bridge with ``tcpdump`` into ``OUT/capture.pcap``, fires the
events at their times (``monitor.lab.events``) and writes ``OUT/truth.json``.

Promise: whatever happens — success, an exception, SIGINT or SIGTERM — every namespace, link
and process of the lab is gone when ``run_scenario`` returns or raises. The capture clock is
the wall clock (``time.time()``), so the times in ``truth.json`` are capture times.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import netaddr

from monitor.lab import events as lab_events
from monitor.lab import mqtt
from monitor.lab.agent import CANARIES
from monitor.lab.https import make_certificate
from monitor.lab.netns import HOST_IF, Lab, LabError, Process, remove_stale
from monitor.lab.scenario import ANOMALY_OF_EVENT, Device, Scenario
from monitor.lab.signals import (
    ignored,
    join_thread,
    raised_as_interrupted,
    start_thread,
)

WAN_ROUTER = "192.0.2.1/30"
WAN_INET = "192.0.2.2/30"
MIN_INTERVAL = 0.2  # wall seconds: faster than this a "cadence" is a flood

# Parameter request lists (option 55) per class, in the shape of real embedded clients.
DHCP_PARAMS: dict[str, list[int]] = {
    "infusion_pump": [1, 3, 6, 15, 42],
    "insulin_pump": [1, 3, 6, 42],
    "cgm_gateway": [1, 3, 6, 12, 15, 42],
    "patient_monitor": [1, 3, 6, 12, 15, 28, 42, 43],
    "central_station": [1, 3, 6, 12, 15, 28, 42, 44],
    "ventilator": [1, 3, 6, 42, 43],
    "imaging_modality": [1, 3, 6, 12, 15, 28, 42, 44],
    "lab_analyser": [1, 3, 6, 12, 15],
    "point_of_care": [1, 3, 6, 15],
    "clinical_workstation": [1, 3, 6, 12, 15, 28, 33, 42, 44, 119, 121],
    "generic_it": [1, 3, 6, 12, 15, 28, 42],
    "generic_iot": [1, 3, 6],
}
DEFAULT_PARAMS = [1, 3, 6, 12, 15]


@dataclass
class Host:
    """A device of the scenario as played: where it lives and what runs for it."""

    spec: Device
    mac: str
    ns: str = ""
    ip: str | None = None
    ips: list[str] = field(default_factory=list)
    joined: float | None = None
    udhcpc: Process | None = None
    chatter: Process | None = None
    apps: list[Process] = field(default_factory=list)
    servers: list[Process] = field(default_factory=list)


def _port(serve: Any) -> int:
    if serve.port is not None:
        return int(serve.port)
    return 23 if serve.protocol == "telnet" else 21


def vendor_of(mac: str) -> str | None:
    """The IEEE registry organisation of ``mac`` (what the inventory should find)."""
    try:
        return str(netaddr.EUI(mac).oui.registration().org)
    except (netaddr.NotRegisteredError, netaddr.AddrFormatError, IndexError):
        return None


def mac_for(device: Device, seed: int) -> str:
    """The device's MAC: given, or its vendor OUI and three octets derived from its name."""
    if device.mac is not None:
        return device.mac
    assert device.oui is not None
    digest = hashlib.sha256(f"{seed}:{device.name}".encode()).digest()
    return device.oui + ":" + ":".join(f"{b:02x}" for b in digest[:3])


class Ward:
    """One play of a scenario; ``run()`` does it all (see the module docstring)."""

    def __init__(self, scenario: Scenario, out: Path, log: Any = None) -> None:
        self.s = scenario
        self.out = out
        self.log_stream = log if log is not None else sys.stderr
        self.work = Path(tempfile.mkdtemp(prefix="snlab-"))
        self.lab = Lab(out)
        self.lan = ipaddress.IPv4Network(scenario.network.lan)
        self.gateway = scenario.network.gateway
        self.hosts: dict[str, Host] = {}
        self.addresses: dict[str, str] = {}  # name -> ip (devices with a static ip, externals)
        self.dns_names: dict[str, str] = {}  # name -> DNS name
        self.truth_events: list[dict[str, Any]] = []
        self.open_events: list[tuple[str, float, str, dict[str, Any]]] = []
        self.threads: list[threading.Thread] = []
        self.errors: list[str] = []
        self.t0 = 0.0
        self.capture: Process | None = None
        self.lock = threading.Lock()
        self._next_dhcp = 100
        self.ntp_name = f"ntp.{scenario.network.domain}"

    # -- small helpers ------------------------------------------------------------------------
    def say(self, message: str) -> None:
        print(f"lab: {message}", file=self.log_stream, flush=True)

    def wall(self, scenario_seconds: float) -> float:
        return self.s.wall(scenario_seconds)

    def now(self) -> float:
        return time.time()

    def config(self, name: str, cfg: dict[str, Any]) -> Path:
        path = self.work / "cfg" / f"{name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        cfg.setdefault("seed", f"{self.s.seed}:{name}")
        cfg.setdefault("dns_server", self.gateway)
        path.write_text(json.dumps(cfg), encoding="utf-8")
        return path

    def agent(self, name: str, ns: str, role: str, cfg: dict[str, Any]) -> Process:
        path = self.config(name, cfg)
        env = {"PYTHONPATH": str(Path(__file__).resolve().parents[2]), "PYTHONUNBUFFERED": "1"}
        return self.lab.spawn(
            name, ns, [sys.executable, "-m", "monitor.lab.agent", role, str(path)], env=env
        )

    def ip_of(self, name: str) -> str:
        if name in self.addresses:
            return self.addresses[name]
        host = self.hosts[name]
        if host.ip is None:
            raise LabError(f"{name} has no address yet")
        return host.ip

    def name_of(self, name: str) -> str:
        return self.dns_names.get(name, name)

    # -- building -----------------------------------------------------------------------------
    def _plan(self) -> None:
        domain = self.s.network.domain
        for d in self.s.devices:
            self.hosts[d.name] = Host(d, mac_for(d, self.s.seed))
            self.dns_names[d.name] = d.dns_name or f"{d.name}.{domain}"
            if d.ip:
                self.addresses[d.name] = d.ip
        for e in self.s.externals:
            self.addresses[e.name] = e.ip
            self.dns_names[e.name] = e.dns_name or e.ip
        macs = [h.mac for h in self.hosts.values()] + [self.s.network.router_mac]
        if len(set(macs)) != len(macs):
            raise LabError("two devices got the same MAC; give one of them an explicit mac")

    def _start_capture(self) -> None:
        pcap = self.out / "capture.pcap"
        with contextlib.suppress(FileNotFoundError):
            pcap.unlink()
        self.capture = self.lab.spawn(
            "tcpdump",
            self.lab.switch,
            [
                "tcpdump", "-i", "snlabbr0", "-w", str(pcap), "-n", "-s", "0", "-B", "65536",
                "--immediate-mode", "-Z", "root",
            ],
        )  # fmt: skip
        log = self.out / "logs" / "tcpdump.log"
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if "listening on" in log.read_text(errors="replace"):
                return
            if not self.capture.alive():
                break
            time.sleep(0.05)
        raise LabError("tcpdump did not start on the bridge (see logs/tcpdump.log)")

    def _start_router(self) -> None:
        net = self.s.network
        router = self.lab.add_host("router", net.router_mac)
        self.lab.add_address("router", f"{self.gateway}/{self.lan.prefixlen}")
        self.lab.build_internet("router", str(self.lan), WAN_ROUTER, WAN_INET, net.external)
        hosts = list(self.lan.hosts())
        argv = [
            "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--user=root",
            "--log-facility=-", f"--interface={HOST_IF}", "--bind-interfaces", "--no-resolv",
            "--no-hosts", "--no-ping", "--dhcp-authoritative", f"--domain={net.domain}",
            f"--local=/{net.domain}/", "--local=/example/", "--local-ttl=60",
            f"--dhcp-leasefile={self.work / 'dnsmasq.leases'}",
            f"--pid-file={self.work / 'dnsmasq.pid'}",
            f"--dhcp-range={hosts[-55]},{hosts[-5]},{self.lan.netmask},{net.dhcp_lease}",
            f"--dhcp-option=option:router,{self.gateway}",
            f"--dhcp-option=option:dns-server,{self.gateway}",
            f"--dhcp-option=option:ntp-server,{self.gateway}",
        ]  # fmt: skip
        argv.append(f"--host-record={self.ntp_name},{self.gateway}")
        for name, address in self.addresses.items():
            argv.append(f"--host-record={self.dns_names[name]},{address}")
        for host in self.hosts.values():
            if host.spec.ip is None and host.spec.present:
                reserved = str(self.lan.network_address + self._next_dhcp)
                self._next_dhcp += 1
                host.ip = reserved
                argv.append(f"--dhcp-host={host.mac},{reserved}")
                argv.append(f"--host-record={self.dns_names[host.spec.name]},{reserved}")
        self.lab.spawn("dnsmasq", router, argv)
        self.agent("sntp", router, "sntp-server", {"reference": "127.127.1.0"})
        # internet servers
        inet = self.lab.ns("inet")
        for e in self.s.externals:
            for serve in e.serves:
                self._serve(e.name, inet, serve, e.ip)

    def _serve(self, name: str, ns: str, serve: Any, ip: str) -> Process:
        """Start one service of ``name``, listening on its own address ``ip`` only (the
        internet namespace holds many endpoints, each with its own address)."""
        label = f"{name}-{serve.protocol}-server"
        cfg: dict[str, Any] = {"bind": ip, "port": serve.port}
        if serve.protocol == "dicom":
            cfg |= {
                "ae_title": serve.ae_title,
                "implementation_uid": serve.implementation_uid,
                "implementation_version": serve.implementation_version,
            }
            return self.agent(label, ns, "dicom-server", cfg)
        if serve.protocol == "hl7":
            return self.agent(label, ns, "hl7-server", cfg | {"application": serve.application})
        if serve.protocol == "mqtt":
            conf = mqtt.broker_config(self.work / f"{name}-mosquitto.conf", ip, serve.port)
            return self.lab.spawn(label, ns, ["mosquitto", "-c", str(conf)])
        if serve.protocol == "https":
            cert_ip = ip if ip != "0.0.0.0" else (self.hosts[name].ip or "127.0.0.1")
            cert, key = make_certificate(self.work / "certs", self.name_of(name), cert_ip)
            return self.agent(label, ns, "https-server", cfg | {"cert": str(cert), "key": str(key)})
        # telnet / ftp
        cfg["port"] = serve.port or (23 if serve.protocol == "telnet" else 21)
        return self.agent(
            label, ns, "legacy-server", cfg | {"protocol": serve.protocol, "banner": serve.banner}
        )

    def _wait_listening(self, timeout: float = 20.0) -> None:
        """Wait until every TCP service of the scenario accepts connections."""
        expected: list[tuple[str, str, int]] = []
        for host in self.hosts.values():
            if host.spec.present:
                for serve in host.spec.serves:
                    expected.append((host.spec.name, host.ns, _port(serve)))
        for e in self.s.externals:
            expected += [(e.name, self.lab.ns("inet"), _port(x)) for x in e.serves]
        deadline = time.monotonic() + timeout
        for name, ns, port in expected:
            while True:
                out = self.lab.exec(ns, ["ss", "-Hltn", f"sport = :{port}"], check=False)
                if out.strip():
                    break
                if time.monotonic() > deadline:
                    raise LabError(f"{name} does not listen on tcp/{port} (see its log)")
                time.sleep(0.1)

    def _udhcpc(self, host: Host) -> Process:
        d = host.spec
        script = self.work / "udhcpc.sh"
        if not script.exists():
            script.write_text(
                "#!/bin/sh\n"
                "# busybox udhcpc event script: configure the lease, remember the address\n"
                'case "$1" in\n'
                "  bound|renew)\n"
                '    ip addr replace "$ip/$mask" dev "$interface"\n'
                '    [ -n "$router" ] && ip route replace default via "${router%% *}"\n'
                f'    echo "$ip" > "{self.work}/ip-$LAB_HOST"\n'
                "    ;;\n"
                "esac\n",
                encoding="utf-8",
            )
            script.chmod(0o755)
        params = d.dhcp.params or DHCP_PARAMS.get(d.device_class, DEFAULT_PARAMS)
        vendor_class = d.dhcp.vendor_class or d.model
        argv = ["busybox", "udhcpc", "-f", "-i", HOST_IF, "-s", str(script), "-V", vendor_class]
        argv += ["-t", "10", "-T", "1", "-A", "1", "-o"]
        for option in params:
            argv += ["-O", str(option)]
        argv += ["-x", f"hostname:{d.hostname or d.name}"]
        return self.lab.spawn(f"{d.name}-udhcpc", host.ns, argv, env={"LAB_HOST": d.name})

    def _wait_address(self, host: Host, timeout: float = 30.0) -> str:
        path = self.work / f"ip-{host.spec.name}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if path.exists() and (text := path.read_text().strip()):
                return text
            time.sleep(0.05)
        raise LabError(f"{host.spec.name} got no DHCP lease in {timeout:.0f} s")

    def plug_in(self, name: str) -> None:
        """Bring a device up: namespace, cable, address (static or DHCP), servers."""
        host = self.hosts[name]
        d = host.spec
        host.ns = self.lab.add_host(name, host.mac)
        if d.ip is not None:
            self.lab.add_address(name, f"{d.ip}/{self.lan.prefixlen}", self.gateway)
            host.ip = d.ip
            # Announce the address like a booting host does (gratuitous ARP).
            self.lab.exec(
                host.ns, ["busybox", "arping", "-U", "-c", "1", "-I", HOST_IF, d.ip], check=False
            )
        else:
            host.udhcpc = self._udhcpc(host)
        for serve in d.serves:
            # A DHCP device's services listen on every address (it has but one, its lease).
            host.servers.append(self._serve(name, host.ns, serve, d.ip or "0.0.0.0"))

    def start_behaviour(self, name: str) -> None:
        """Chatter and application clients of a device that has its address."""
        host = self.hosts[name]
        d = host.spec
        address = d.ip if d.ip is not None else self._wait_address(host)
        host.ip = address
        if address not in host.ips:
            host.ips.append(address)
        # Every device resolves its time server's name before polling it, as NTP clients do.
        names = [self.ntp_name, *d.chatter.dns] + [self.name_of(t.to) for t in d.talks]
        host.chatter = self.agent(
            f"{name}-chatter",
            host.ns,
            "chatter",
            {
                "names": sorted(set(names)),
                "ntp_server": self.gateway,
                "dns_every": max(MIN_INTERVAL, self.wall(d.chatter.dns_every)),
                "ntp_every": max(MIN_INTERVAL, self.wall(d.chatter.ntp_every)),
            },
        )
        self.start_apps(name)

    def start_apps(self, name: str, delay: float = 0.0) -> None:
        host = self.hosts[name]
        for index, talk in enumerate(host.spec.talks):
            cfg: dict[str, Any] = {
                "server": self.name_of(talk.to),
                "every": max(MIN_INTERVAL, self.wall(talk.every)),
                "first": delay + self.wall(talk.start_after) + 0.3 * index,
            }
            target = self._serving(talk.to, talk.protocol)
            cfg["port"] = target.port
            if talk.protocol == "dicom":
                cfg |= {
                    "calling_ae": talk.calling_ae,
                    "called_ae": target.ae_title,
                    "images": talk.images,
                    "image_size": talk.image_size,
                    "modality": talk.modality,
                    "implementation_uid": talk.implementation_uid,
                    "implementation_version": talk.implementation_version,
                }
                role = "dicom-client"
            elif talk.protocol == "hl7":
                cfg |= {"sending_application": talk.sending_application, "beds": talk.beds,
                        "receiver": target.application,
                        "facility": self.s.network.domain.split(".")[0].upper()}  # fmt: skip
                role = "hl7-client"
            elif talk.protocol == "mqtt":
                cfg |= {
                    "client_id": talk.client_id,
                    "topic": talk.topic,
                    "keepalive": max(2.0, self.wall(talk.keepalive)),
                }
                role = "mqtt-client"
            else:
                cfg |= {
                    "path": talk.path,
                    "user_agent": talk.user_agent,
                    "device": f"{host.spec.model} {name}",
                    "ca": str(self.work / "certs" / f"{self.name_of(talk.to)}.crt"),
                }
                role = "https-client"
            host.apps.append(self.agent(f"{name}-{talk.protocol}-{index}", host.ns, role, cfg))

    def _serving(self, name: str, protocol: str) -> Any:
        serves = (
            self.hosts[name].spec.serves if name in self.hosts else self.s.external(name).serves
        )
        return next(x for x in serves if x.protocol == protocol)

    def stop_apps(self, name: str) -> None:
        host = self.hosts[name]
        for process in host.apps:
            self.lab.stop(process)
        host.apps = []

    # -- events -------------------------------------------------------------------------------
    def record_event(
        self,
        kind: str,
        start: float,
        end: float,
        device: str,
        involved: list[str],
        details: dict[str, Any],
    ) -> None:
        entry = {
            "kind": kind,
            "anomaly": ANOMALY_OF_EVENT[kind],
            "start": round(start, 6),
            "end": round(end, 6),
            "device": self.describe(device),
            "involved": [self.describe(n) for n in involved],
            "details": details,
        }
        with self.lock:
            self.truth_events.append(entry)

    def describe(self, name: str) -> dict[str, Any]:
        if name in self.hosts:
            host = self.hosts[name]
            return {"name": name, "mac": host.mac, "ip": host.ip}
        if name == "gateway":
            return {"name": "router", "mac": self.s.network.router_mac, "ip": self.gateway}
        return {"name": name, "mac": None, "ip": self.addresses.get(name)}

    def _fire(self, index: int, event: Any) -> None:
        try:
            lab_events.play(self, event)
        except Exception as error:  # an event that fails is reported, the play goes on
            with self.lock:
                self.errors.append(f"event {index} ({event.kind}): {error}")
            self.say(f"event {index} ({event.kind}) failed: {error}")

    # -- the play -----------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        s = self.s
        self.out.mkdir(parents=True, exist_ok=True)
        # Logs of an earlier run into the same directory would mix with this one's.
        shutil.rmtree(self.out / "logs", ignore_errors=True)
        removed = remove_stale()
        if removed:
            self.say(f"removed {len(removed)} namespaces left by a dead lab")
        self._plan()
        self.say(f"building {len(self.hosts)} devices on {self.lan} ({self.lab.tag})")
        self.lab.build_switch()
        self._start_capture()
        capture_start = self.now()
        self._start_router()
        present = [n for n, h in self.hosts.items() if h.spec.present]
        servers = [n for n in present if self.hosts[n].spec.serves]
        for name in servers + [n for n in present if n not in servers]:
            self.plug_in(name)
        self._wait_listening()
        for name in present:
            self.start_behaviour(name)
            self.hosts[name].joined = self.now()
        self.t0 = self.now()
        end_at = self.t0 + self.wall(s.duration)
        self.say(f"playing '{s.name}' for {self.wall(s.duration):.0f} s of wall time")
        pending = sorted(enumerate(s.events), key=lambda pair: pair[1].at)
        while True:
            now = self.now()
            while pending and self.t0 + self.wall(pending[0][1].at) <= now:
                index, event = pending.pop(0)
                self.threads.append(start_thread(self._fire, index, event))
            if now >= end_at:
                break
            wake = min([end_at] + [self.t0 + self.wall(e.at) for _, e in pending[:1]])
            time.sleep(max(0.02, min(0.5, wake - now)))
        for thread in self.threads:
            join_thread(thread, timeout=max(1.0, end_at + 60 - self.now()))
        end = self.now()
        lab_events.close_open_events(self, end)
        self.say("stopping devices")
        self._stop_devices()
        time.sleep(0.5)
        capture_end = self.now()
        if self.capture is not None:
            self.lab.stop(self.capture, signal.SIGINT, grace=5.0)
        truth = self.truth(capture_start, capture_end, end)
        truth["capture_dropped"] = self._dropped()
        return truth

    def _dropped(self) -> int | None:
        """Packets the kernel dropped before tcpdump could write them (from its last words)."""
        log = (self.out / "logs" / "tcpdump.log").read_text(errors="replace")
        counts = re.findall(r"(\d+) packets? dropped by kernel", log)
        return int(counts[-1]) if counts else None

    def _stop_devices(self) -> None:
        for host in self.hosts.values():
            for process in [*host.apps, *([host.chatter] if host.chatter else [])]:
                self.lab.stop(process, grace=2.0)

    def truth(self, capture_start: float, capture_end: float, end: float) -> dict[str, Any]:
        devices: list[dict[str, Any]] = [
            {
                "name": "router",
                "mac": self.s.network.router_mac,
                "ip": self.gateway,
                "ips": [self.gateway],
                "class": "generic_it",
                "vendor": vendor_of(self.s.network.router_mac),
                "model": "lab router (dnsmasq DHCP/DNS, SNTP)",
                "hostname": None,
                "address": "static",
                "joined": round(capture_start, 6),
                "serves": [{"protocol": "dns", "port": 53}, {"protocol": "dhcp", "port": 67}],
                "talks": [],
            }
        ]
        for name, host in self.hosts.items():
            if host.joined is None:
                continue
            devices.append(
                {
                    "name": name,
                    "mac": host.mac,
                    "ip": host.ips[0] if host.ips else host.ip,
                    "ips": host.ips,
                    "class": host.spec.device_class,
                    "vendor": vendor_of(host.mac),
                    "model": host.spec.model,
                    "hostname": host.spec.hostname or (None if host.spec.ip else name),
                    "address": "static" if host.spec.ip else "dhcp",
                    "joined": round(host.joined, 6),
                    "serves": [
                        {"protocol": x.protocol, "port": _port(x)} for x in host.spec.serves
                    ],
                    "talks": [
                        {
                            "protocol": t.protocol,
                            "to": t.to,
                            "port": _port(self._serving(t.to, t.protocol)),
                            "every": round(self.wall(t.every), 3),
                        }
                        for t in host.spec.talks
                    ],
                }
            )
        return {
            "scenario": self.s.name,
            "time_scale": self.s.time_scale,
            "capture": "capture.pcap",
            "capture_start": round(capture_start, 6),
            "start": round(self.t0, 6),
            "end": round(end, 6),
            "capture_end": round(capture_end, 6),
            "network": {
                "lan": str(self.lan),
                "gateway": self.gateway,
                "domain": self.s.network.domain,
                "external": list(self.s.network.external),
            },
            "devices": devices,
            "externals": [
                {
                    "name": e.name,
                    "ip": e.ip,
                    "dns_name": e.dns_name,
                    "serves": [{"protocol": x.protocol, "port": _port(x)} for x in e.serves],
                }
                for e in self.s.externals
            ],
            "events": sorted(self.truth_events, key=lambda e: e["start"]),
            "canaries": CANARIES,
            "errors": self.errors,
        }

    def close(self) -> None:
        self.lab.close()
        shutil.rmtree(self.work, ignore_errors=True)


def run_scenario(scenario: Scenario, out: Path, log: Any = None) -> dict[str, Any]:
    """Play ``scenario``, writing ``out/capture.pcap`` and ``out/truth.json``; returns truth."""
    if os.geteuid() != 0:
        raise LabError("the lab needs root (network namespaces)")
    for tool in ("ip", "tcpdump", "dnsmasq", "busybox", "openssl"):
        if shutil.which(tool) is None:
            raise LabError(f"the lab needs '{tool}', which is not installed")
    ward = Ward(scenario, out, log)
    try:
        with raised_as_interrupted():
            truth = ward.run()
    finally:
        # Signals stay blocked-as-exceptions off here: a second Ctrl-C must not skip cleanup.
        with ignored():
            ward.close()
    (out / "truth.json").write_text(json.dumps(truth, indent=2) + "\n", encoding="utf-8")
    return truth
