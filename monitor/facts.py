"""Learned facts: what a device was seen doing, with first seen, last seen and count.

The inventory, the baselines and the signature matcher all speak in facts, keyed by a
fact *kind* (one of ``FACT_KINDS``) and a *value* (a short normalised string). Values are
metadata only: names, addresses, ports, identifiers — never payload content.
"""

from __future__ import annotations

from dataclasses import dataclass

# kind -> what its values look like
FACT_KINDS: dict[str, str] = {
    "ip": "an IP address the device used as source: '10.1.2.3', 'fe80::1'",
    "hostname": "a name the device announced or was given (DHCP option 12, mDNS, DNS PTR)",
    "peer": "a peer: an inventory device id, or 'ext:203.0.113.9' for an external address",
    "peer_name": "a DNS or TLS SNI name of a peer the device talked to",
    "service_offered": "a port the device answers on: 'tcp/443', 'udp/161'",
    "service_used": "a port the device connects to on a peer: 'tcp/2575'",
    "protocol": "an application or network protocol: 'hl7', 'dicom', 'mqtt', 'tls', 'http', "
    "'dns', 'mdns', 'dhcp', 'ssdp', 'arp', 'icmp', 'icmpv6', 'tcp', 'udp'",
    "dns_query": "a DNS or mDNS name the device asked for",
    "tls_sni": "a TLS server name the device asked for in a ClientHello",
    "tls_ja4": "a JA4 fingerprint of the device's ClientHello",
    "http_host": "an HTTP Host header the device sent",
    "http_user_agent": "an HTTP User-Agent the device sent",
    "ssdp_server": "an SSDP SERVER header the device announced",
    "ssdp_type": "an SSDP NT or ST the device announced or searched",
    "mdns_service": "an mDNS service type the device announced: '_http._tcp.local'",
    "dhcp_vendor_class": "DHCP option 60",
    "dhcp_param_list": "DHCP option 55 as comma-separated decimals: '1,3,6,15'",
    "dhcp_client_id": "DHCP option 61, hex",
    "hl7_sending_application": "MSH-3^MSH-4 of messages the device sent",
    "hl7_receiving_application": "MSH-5^MSH-6 of messages the device sent",
    "hl7_message_type": "MSH-9 of messages the device sent: 'ORU^R01'",
    "hl7_version": "MSH-12",
    "dicom_calling_ae": "the AE title the device used as caller",
    "dicom_called_ae": "the AE title the device called",
    "dicom_sop_class": "an abstract syntax UID the device proposed",
    "dicom_implementation": "implementation class UID and version name: 'UID|NAME'",
    "dicom_command": "a DIMSE command the device sent: 'C-STORE-RQ'",
    "mqtt_client_id": "an MQTT CONNECT client id",
    "mqtt_protocol_level": "the MQTT protocol level of a CONNECT",
}


@dataclass(slots=True)
class Fact:
    """One learned value of one kind, with when it was first and last seen and how often."""

    first_seen: float
    last_seen: float
    count: int = 1

    def see(self, when: float, times: int = 1) -> None:
        if when < self.first_seen:
            self.first_seen = when
        if when > self.last_seen:
            self.last_seen = when
        self.count += times


FactTable = dict[str, dict[str, Fact]]
"""kind -> value -> Fact."""

# Values kept per kind per device. A device seen by the whole internet (a scan) or a server
# with every workstation as a peer must not grow without end: past the bound, the values
# seen least recently make room, an eighth at a time.
MAX_VALUES_PER_KIND = 1024
evicted_values = 0  # values dropped by that bound in this process


def record_fact(
    table: FactTable, kind: str, value: str, when: float, times: int = 1, last: float | None = None
) -> bool:
    """Record ``times`` sightings from ``when`` to ``last`` (default: all at ``when``);
    returns True when the value is new for that kind."""
    values = table.setdefault(kind, {})
    fact = values.get(value)
    if fact is None:
        if len(values) >= MAX_VALUES_PER_KIND:
            _forget_stalest(values)
        values[value] = Fact(when, when if last is None else max(when, last), times)
        return True
    fact.see(when, times)
    if last is not None and last > fact.last_seen:
        fact.last_seen = last
    return False


def _forget_stalest(values: dict[str, Fact]) -> None:
    global evicted_values
    stalest = sorted(values, key=lambda v: values[v].last_seen)[: MAX_VALUES_PER_KIND // 8]
    for value in stalest:
        del values[value]
    evicted_values += len(stalest)
