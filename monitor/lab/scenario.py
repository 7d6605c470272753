"""Lab scenarios: a YAML file describing a small ward and what goes wrong when.

A scenario names its devices (class, vendor OUI or MAC, model, static or DHCP address), the
services each one offers (``serves``) and the conversations it starts (``talks``), the external
endpoints in the "internet", and events at times relative to the start. Every duration is
*scenario time* (``"5m"``, ``"90s"``, ``"2h"`` or seconds as a number); the lab plays it
``time_scale`` times faster, so ``every: 5m`` with ``time_scale: 60`` sends every 5 s of wall time.

Promise: ``load_scenario`` returns a fully validated ``Scenario`` or raises ``ScenarioError``
whose lines are ``FILE:LINE: where: what`` — unknown keys, wrong types, bad durations, addresses
and references between devices are all errors. YAML is read with a safe loader, duplicate keys
are refused, and messages never echo the offending value.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import netaddr
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from monitor.signatures import DEVICE_CLASSES
from monitor.yamlfile import (
    YamlModelError,
    dotted,
    line_of,
    parse_yaml,
    read_text,
    validate,
)

MAX_FILE_BYTES = 1 << 20
Loc = tuple[str | int, ...]


class ScenarioError(Exception):
    """A scenario that does not parse or validate; ``errors`` holds one line per problem."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        super().__init__("\n".join(errors))


# -- value types ---------------------------------------------------------------------------------
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def _duration(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("a duration must be a number of seconds or a string like '5m'")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION_RE.match(value)):
        seconds = float(match.group(1)) * _UNIT[match.group(2)]
    else:
        raise ValueError("a duration must be a number of seconds or a string like '5m'")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


def _mac(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("a MAC address must be a string like '00:12:21:0a:0b:0c'")
    try:
        eui = netaddr.EUI(value, version=48)
    except (netaddr.AddrFormatError, TypeError, ValueError):
        raise ValueError("not a MAC address") from None
    if int(eui) >> 40 & 1:
        raise ValueError("a multicast MAC address cannot be a device's")
    return str(eui).replace("-", ":").lower()


def _oui(value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(
        r"[0-9A-Fa-f]{2}([:-]?[0-9A-Fa-f]{2}){2}", value
    ):
        raise ValueError("an OUI must be three octets like '00:12:21'")
    digits = re.sub(r"[:-]", "", value).lower()
    return ":".join(digits[i : i + 2] for i in range(0, 6, 2))


def _ipv4(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("an IPv4 address must be a string")
    try:
        return str(ipaddress.IPv4Address(value))
    except ValueError:
        raise ValueError("not an IPv4 address") from None


def _network(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("a network must be a string like '10.42.0.0/24'")
    try:
        return str(ipaddress.IPv4Network(value, strict=True))
    except ValueError:
        raise ValueError("not an IPv4 network with its host bits zero") from None


def _name(value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[a-z][a-z0-9-]{0,19}", value):
        raise ValueError("a name is 1-20 characters: lower-case letters, digits and '-'")
    return value


def _shorthand(value: Any) -> Any:
    # `serves: [hl7, mqtt]` is short for `serves: [{protocol: hl7}, {protocol: mqtt}]`
    return {"protocol": value} if isinstance(value, str) else value


Duration = Annotated[float, BeforeValidator(_duration)]
Mac = Annotated[str, BeforeValidator(_mac)]
Oui = Annotated[str, BeforeValidator(_oui)]
IPv4 = Annotated[str, BeforeValidator(_ipv4)]
Network = Annotated[str, BeforeValidator(_network)]
Name = Annotated[str, BeforeValidator(_name)]
AETitle = Annotated[str, Field(pattern=r"^[A-Za-z0-9_\- ]{1,16}$")]
DnsName = Annotated[
    str, Field(pattern=r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$")
]
Port = Annotated[int, Field(ge=1, le=65535)]


def _device_class(value: Any) -> str:
    if not isinstance(value, str) or value not in DEVICE_CLASSES:
        raise ValueError("not a device class of monitor.signatures.DEVICE_CLASSES")
    return value


# The vocabulary is the signature library's, so a truth file's classes are ones Santinel uses.
DeviceClass = Annotated[str, BeforeValidator(_device_class)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


# -- services a device offers ------------------------------------------------------------------
DicomUid = Annotated[str, Field(pattern=r"^[0-9]+(\.[0-9]+)*$", max_length=64)]
DicomVersion = Annotated[str, Field(pattern=r"^[A-Za-z0-9_\-. ]{1,16}$")]


class ServeDicom(Strict):
    protocol: Literal["dicom"]
    ae_title: AETitle = "PACS"
    port: Port = 104
    implementation_uid: DicomUid | None = None  # absent: pynetdicom's own
    implementation_version: DicomVersion | None = None


class ServeHl7(Strict):
    protocol: Literal["hl7"]
    port: Port = 2575
    application: str = Field(default="ENGINE^HOSPITAL", pattern=r"^[A-Za-z0-9_\-.^ ]{1,40}$")


class ServeMqtt(Strict):
    protocol: Literal["mqtt"]
    port: Port = 1883


class ServeHttps(Strict):
    protocol: Literal["https"]
    port: Port = 443


class ServeLegacy(Strict):
    """Cleartext remote administration an old device still offers (banners, failed logins)."""

    protocol: Literal["telnet", "ftp"]
    port: Port | None = None
    banner: str = Field(default="VxWorks", pattern=r"^[A-Za-z0-9_\-. ()]{1,40}$")


Serve = Annotated[
    Annotated[
        ServeDicom | ServeHl7 | ServeMqtt | ServeHttps | ServeLegacy,
        Field(discriminator="protocol"),
    ],
    BeforeValidator(_shorthand),
]


# -- conversations a device starts -------------------------------------------------------------
class TalkBase(Strict):
    to: Name  # a device or an external endpoint that serves the protocol
    every: Duration = 300.0
    start_after: Duration = 0.0


class TalkDicom(TalkBase):
    protocol: Literal["dicom"]
    calling_ae: AETitle
    images: int = Field(default=1, ge=0, le=20)
    image_size: int = Field(default=64, ge=8, le=512)  # pixels per side, 16-bit monochrome
    modality: Literal["CT", "MR", "US", "CR", "DX", "NM"] = "CT"
    implementation_uid: DicomUid | None = None  # absent: pynetdicom's own
    implementation_version: DicomVersion | None = None


class TalkHl7(TalkBase):
    protocol: Literal["hl7"]
    sending_application: str = Field(pattern=r"^[A-Za-z0-9_\-.^ ]{1,40}$")
    beds: int = Field(default=1, ge=1, le=16)  # ORU^R01 per send, one per bed


class TalkMqtt(TalkBase):
    protocol: Literal["mqtt"]
    client_id: str = Field(pattern=r"^[A-Za-z0-9_\-.:]{1,40}$")
    topic: str = Field(default="ward/telemetry", pattern=r"^[A-Za-z0-9_\-./]{1,80}$")
    keepalive: Duration = 120.0


class TalkHttps(TalkBase):
    protocol: Literal["https"]
    path: str = Field(default="/api/v1/status", pattern=r"^/[A-Za-z0-9_\-./]{0,80}$")
    user_agent: str = Field(default="DeviceAgent/1.0", pattern=r"^[A-Za-z0-9_\-./ ();]{1,60}$")


Talk = Annotated[TalkDicom | TalkHl7 | TalkMqtt | TalkHttps, Field(discriminator="protocol")]


class Dhcp(Strict):
    vendor_class: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_\-./ ():]{1,60}$")
    params: list[Annotated[int, Field(ge=1, le=254)]] | None = Field(default=None, min_length=1)


class Chatter(Strict):
    """Background traffic every device makes: DNS look-ups and NTP."""

    dns: list[DnsName] = Field(default_factory=list)
    dns_every: Duration = 600.0
    ntp_every: Duration = 900.0


class Device(Strict):
    name: Name
    device_class: DeviceClass = Field(alias="class")
    model: str = Field(pattern=r"^[A-Za-z0-9_\-./ ()+]{1,60}$")
    mac: Mac | None = None
    oui: Oui | None = None
    ip: IPv4 | None = None  # static; absent means DHCP
    hostname: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9-]{0,62}$")
    dns_name: DnsName | None = None  # the name dnsmasq answers for this device
    dhcp: Dhcp = Field(default_factory=Dhcp)
    chatter: Chatter = Field(default_factory=Chatter)
    serves: list[Serve] = Field(default_factory=list)
    talks: list[Talk] = Field(default_factory=list)
    present: bool = True  # False: joins only through a new_device event

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, populate_by_name=True)


class External(Strict):
    """An endpoint in the internet namespace."""

    name: Name
    ip: IPv4
    dns_name: DnsName | None = None
    serves: list[Serve] = Field(default_factory=list)


class NetworkSpec(Strict):
    lan: Network = "10.42.0.0/24"
    gateway: IPv4 = "10.42.0.1"
    router_mac: Mac = "00:1b:54:42:00:01"
    domain: DnsName = "ward.example"
    external: list[Network] = Field(default_factory=lambda: ["198.51.100.0/24", "203.0.113.0/24"])
    dhcp_lease: int = Field(default=120, ge=120, le=86400)  # wall seconds (dnsmasq minimum 120)


# -- events -----------------------------------------------------------------------------------
class EventBase(Strict):
    at: Duration


class PortScan(EventBase):
    kind: Literal["port_scan"]
    source: Name
    target: Name
    ports: str = Field(default="1-1024", pattern=r"^[0-9,\-]{1,60}$")


class ArpSpoof(EventBase):
    kind: Literal["arp_spoof"]
    source: Name
    impersonate: Name | Literal["gateway"] = "gateway"
    duration: Duration = 30.0


class LoginAttempts(EventBase):
    kind: Literal["telnet_login", "ftp_login"]
    source: Name
    target: Name
    attempts: int = Field(default=3, ge=1, le=20)


class DicomFind(EventBase):
    kind: Literal["dicom_cfind"]
    source: Name
    target: Name
    calling_ae: AETitle = "HARVEST"


class NewExternalPeer(EventBase):
    kind: Literal["new_external_peer"]
    device: Name
    to: Name  # an external endpoint serving https


class Exfiltration(EventBase):
    kind: Literal["exfiltration"]
    device: Name
    to: Name  # an external endpoint serving https
    size: int = Field(default=5_000_000, ge=10_000, le=200_000_000)  # bytes


class Silence(EventBase):
    kind: Literal["silence", "unplug"]
    device: Name
    duration: Duration | None = None  # None: until the end


class FirmwareTransfer(EventBase):
    kind: Literal["firmware_transfer"]
    device: Name
    server: Name
    method: Literal["tftp", "http"] = "tftp"
    size: int = Field(default=300_000, ge=1000, le=50_000_000)


class NewDevice(EventBase):
    kind: Literal["new_device"]
    device: Name  # a device with present: false


class IpChange(EventBase):
    kind: Literal["ip_change"]
    device: Name
    new_ip: IPv4


Event = Annotated[
    PortScan
    | ArpSpoof
    | LoginAttempts
    | DicomFind
    | NewExternalPeer
    | Exfiltration
    | Silence
    | FirmwareTransfer
    | NewDevice
    | IpChange,
    Field(discriminator="kind"),
]

ANOMALY_OF_EVENT = {
    "port_scan": "port_scan",
    "arp_spoof": "arp_spoofing",
    "telnet_login": "cleartext_remote_admin",
    "ftp_login": "cleartext_remote_admin",
    "dicom_cfind": "dicom_unknown_ae",
    "new_external_peer": "new_external_peer",
    "exfiltration": "exfiltration",
    "silence": "silence_app",
    "unplug": "silence_gone",
    "firmware_transfer": "firmware_transfer",
    "new_device": "new_device",
    "ip_change": "ip_change",
}


class Scenario(Strict):
    name: Name
    description: str = ""
    time_scale: float = Field(default=1.0, gt=0, le=3600)
    duration: Duration
    seed: int = 1
    network: NetworkSpec = Field(default_factory=NetworkSpec)
    devices: list[Device] = Field(min_length=1)
    externals: list[External] = Field(default_factory=list)
    events: list[Event] = Field(default_factory=list)

    def wall(self, scenario_seconds: float) -> float:
        """Wall-clock seconds for a span of scenario time."""
        return scenario_seconds / self.time_scale

    def device(self, name: str) -> Device:
        for device in self.devices:
            if device.name == name:
                return device
        raise KeyError(name)

    def external(self, name: str) -> External:
        for external in self.externals:
            if external.name == name:
                return external
        raise KeyError(name)


# -- YAML with line numbers: monitor.yamlfile, as for the daemon's config ---------------------
def _clean_loc(loc: tuple[Any, ...]) -> Loc:
    # Discriminated unions add the tag and validator names to the path; drop them.
    out: list[str | int] = []
    for part in loc:
        if isinstance(part, str) and (
            part.startswith(("function-", "tagged-union"))
            or part in ANOMALY_OF_EVENT
            or part in {"dicom", "hl7", "mqtt", "https", "telnet", "ftp"}
        ):
            continue
        out.append(part)
    return tuple(out)


def parse_scenario(text: str, name: str) -> Scenario:
    """Parse and validate scenario text; ``name`` is used in error lines."""
    try:
        data, table = parse_yaml(text, name)
        if not isinstance(data, dict):
            raise ScenarioError([f"{name}:1: a scenario must be a mapping of keys to values"])
        scenario = validate(Scenario, data, table, name, clean_loc=_clean_loc)
    except YamlModelError as error:
        raise ScenarioError(error.errors) from None
    problems = _check_references(scenario)
    if problems:
        raise ScenarioError(
            [f"{name}:{line_of(loc, table)}: {dotted(loc)}: {what}" for loc, what in problems]
        )
    return scenario


def load_scenario(path: Path) -> Scenario:
    """Read, parse and validate a scenario file; every failure is a ``ScenarioError``."""
    try:
        text = read_text(path)
    except YamlModelError as error:
        raise ScenarioError(error.errors) from None
    return parse_scenario(text, str(path))


# -- cross-references -------------------------------------------------------------------------
def _check_references(s: Scenario) -> list[tuple[Loc, str]]:
    problems: list[tuple[Loc, str]] = []
    lan = ipaddress.IPv4Network(s.network.lan)
    gateway = ipaddress.IPv4Address(s.network.gateway)
    if gateway not in lan:
        problems.append((("network", "gateway"), "the gateway is not in the lan network"))
    if lan.prefixlen > 24:
        problems.append((("network", "lan"), "the lan must be a /24 or larger"))
        return problems
    # DHCP addresses: reservations from .100 up (one per DHCP device), then a dynamic pool
    # in the last 55 addresses; static addresses must stay out of both.
    dhcp_devices = sum(1 for d in s.devices if d.ip is None and d.present)
    first_host = int(lan.network_address)
    reserved = range(first_host + 100, first_host + 100 + dhcp_devices)
    pool = range(int(lan.broadcast_address) - 55, int(lan.broadcast_address))

    def in_dhcp(address: str) -> bool:
        value = int(ipaddress.IPv4Address(address))
        return value in reserved or value in pool

    externals = [ipaddress.IPv4Network(n) for n in s.network.external]
    for i, net in enumerate(externals):
        if net.overlaps(lan):
            problems.append((("network", "external", i), "overlaps the lan network"))

    names: dict[str, Loc] = {}
    serves: dict[str, set[str]] = {}
    used_ips: dict[str, Loc] = {s.network.gateway: ("network", "gateway")}
    used_macs: dict[str, Loc] = {s.network.router_mac: ("network", "router_mac")}
    for i, d in enumerate(s.devices):
        loc: Loc = ("devices", i)
        if d.name in names or d.name in {"sw", "router", "inet"}:
            problems.append(((*loc, "name"), "name already used (or reserved)"))
        names[d.name] = loc
        serves[d.name] = {x.protocol for x in d.serves}
        if (d.mac is None) == (d.oui is None):
            problems.append((loc, "give exactly one of mac and oui"))
        if d.mac is not None:
            if d.mac in used_macs:
                problems.append(((*loc, "mac"), "MAC address used twice"))
            used_macs[d.mac] = (*loc, "mac")
        if d.ip is not None:
            if ipaddress.IPv4Address(d.ip) not in lan:
                problems.append(((*loc, "ip"), "not in the lan network"))
            if d.ip in used_ips:
                problems.append(((*loc, "ip"), "address used twice"))
            if in_dhcp(d.ip):
                problems.append(((*loc, "ip"), "inside the DHCP reservations or pool"))
            used_ips[d.ip] = (*loc, "ip")
    for i, e in enumerate(s.externals):
        loc = ("externals", i)
        if e.name in names:
            problems.append(((*loc, "name"), "name already used"))
        names[e.name] = loc
        serves[e.name] = {x.protocol for x in e.serves}
        if not any(ipaddress.IPv4Address(e.ip) in net for net in externals):
            problems.append(((*loc, "ip"), "not in any network.external prefix"))

    def need(loc: Loc, target: str, protocol: str | None) -> None:
        if target not in names:
            problems.append((loc, "no device or external endpoint has this name"))
        elif protocol is not None and protocol not in serves[target]:
            problems.append((loc, f"that endpoint does not serve {protocol}"))

    def device(loc: Loc, target: str) -> None:
        if target not in names or names[target][0] != "devices":
            problems.append((loc, "no device has this name"))

    for i, d in enumerate(s.devices):
        for j, t in enumerate(d.talks):
            need(("devices", i, "talks", j, "to"), t.to, t.protocol)
    for i, ev in enumerate(s.events):
        loc = ("events", i)
        if ev.at > s.duration:
            problems.append(((*loc, "at"), "after the end of the scenario"))
        for key in ("source", "device"):
            if hasattr(ev, key):
                device((*loc, key), getattr(ev, key))
        match ev:
            case PortScan() | LoginAttempts() | DicomFind():
                device((*loc, "target"), ev.target)
                protocol = {"telnet_login": "telnet", "ftp_login": "ftp", "dicom_cfind": "dicom"}
                need((*loc, "target"), ev.target, protocol.get(ev.kind))
            case ArpSpoof() if ev.impersonate != "gateway":
                device((*loc, "impersonate"), ev.impersonate)
            case NewExternalPeer() | Exfiltration():
                need((*loc, "to"), ev.to, "https")
                if ev.to in names and names[ev.to][0] != "externals":
                    problems.append(((*loc, "to"), "must be an external endpoint"))
            case FirmwareTransfer():
                device((*loc, "server"), ev.server)
                known = ev.server in names and names[ev.server][0] == "devices"
                if known and s.device(ev.server).ip is None:
                    problems.append(((*loc, "server"), "the server needs a static ip"))
            case NewDevice():
                known = ev.device in names and names[ev.device][0] == "devices"
                if known and s.device(ev.device).present:
                    problems.append(((*loc, "device"), "must be a device with present: false"))
            case IpChange():
                if ipaddress.IPv4Address(ev.new_ip) not in lan:
                    problems.append(((*loc, "new_ip"), "not in the lan network"))
                if ev.new_ip in used_ips:
                    problems.append(((*loc, "new_ip"), "address already used"))
                if in_dhcp(ev.new_ip):
                    problems.append(((*loc, "new_ip"), "inside the DHCP reservations or pool"))
            case _:
                pass
    joiners = {ev.device for ev in s.events if isinstance(ev, NewDevice)}
    for i, d in enumerate(s.devices):
        if not d.present and d.name not in joiners:
            problems.append((("devices", i, "present"), "no new_device event brings it in"))
    return problems
