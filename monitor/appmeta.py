"""Application metadata: picks the decoder for a payload and turns its info into facts.

The pipeline hands a payload here with what it knows (the flow's recognised protocol, the
transport and ports). UDP services are chosen by port (DHCP, DNS/mDNS, SSDP); TCP protocols
by content (HL7 runs on 2575 and on any site port; DICOM on 104, 11112 and others), so a
decoder's cheap ``looks_like`` comes first.

Promise: the facts returned name only metadata (``monitor.facts`` kinds); an HL7 message
yields its MSH routing fields and type, never a segment's content.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from monitor.decode import Malformed, dhcp, dicom, dns, hl7, http, mqtt, ssdp, tls

__all__ = ["FLOW_PROTOCOLS", "UDP_DECODER_PORTS", "AppFact", "Malformed", "decode", "decoder_rank"]

# protocols that describe a whole TCP flow once recognised
FLOW_PROTOCOLS = frozenset({"tls", "http", "hl7", "dicom", "mqtt"})


@dataclass(frozen=True, slots=True)
class AppFact:
    """A fact for the inventory. ``about``: 'sender' (the packet's sender), 'peer' (its
    receiver) or 'client_mac' (the device whose MAC is in ``extra``); kind 'resolved' is a
    DNS answer, ``value`` the address and ``extra`` the name."""

    kind: str
    value: str
    about: str = "sender"
    extra: str = ""


Decoded = tuple[str, list[AppFact]]


def _dhcp(info: dhcp.DhcpInfo) -> list[AppFact]:
    facts: list[AppFact] = []
    if info.op != 1:
        return [AppFact("service_offered", "udp/67")]
    about, extra = ("client_mac", info.client_mac) if info.client_mac else ("sender", "")
    if info.hostname:
        facts.append(AppFact("hostname", info.hostname, about, extra))
    if info.vendor_class:
        facts.append(AppFact("dhcp_vendor_class", info.vendor_class, about, extra))
    if info.param_list:
        joined = ",".join(str(code) for code in info.param_list)
        facts.append(AppFact("dhcp_param_list", joined, about, extra))
    if info.client_id:
        facts.append(AppFact("dhcp_client_id", info.client_id, about, extra))
    return facts


def _dns(info: dns.DnsInfo, multicast: bool) -> list[AppFact]:
    facts: list[AppFact] = []
    if not info.is_response:
        facts.extend(AppFact("dns_query", q.name) for q in info.questions if q.name)
    for record in info.records:
        if record.rtype in (1, 28) and record.target:
            if multicast:
                facts.append(AppFact("hostname", record.name))
            else:
                facts.append(AppFact("resolved", record.target, "sender", record.name))
    if multicast and info.is_response:
        facts.extend(AppFact("mdns_service", s) for s in info.service_types)
    return facts


def _ssdp(info: ssdp.SsdpInfo) -> list[AppFact]:
    facts: list[AppFact] = []
    if info.server:
        facts.append(AppFact("ssdp_server", info.server))
    for value in (info.nt, info.st):
        if value:
            facts.append(AppFact("ssdp_type", value))
    return facts


def _tls(info: tls.TlsInfo) -> list[AppFact]:
    facts = [AppFact("tls_ja4", info.ja4)]
    if info.sni:
        facts.append(AppFact("tls_sni", info.sni))
        facts.append(AppFact("peer_name", info.sni))
    return facts


def _http(info: http.HttpInfo) -> list[AppFact]:
    facts: list[AppFact] = []
    if info.host:
        facts.append(AppFact("http_host", info.host))
    if info.user_agent:
        facts.append(AppFact("http_user_agent", info.user_agent))
    return facts


def _hl7(info: hl7.Hl7Info) -> list[AppFact]:
    facts: list[AppFact] = []
    if info.ack_code is not None:
        # an acknowledgment says who the engine is; its type is ACK
        facts.append(AppFact("hl7_message_type", info.message_type or "ACK"))
        return facts
    sending = "^".join(p for p in (info.sending_application, info.sending_facility) if p)
    receiving = "^".join(p for p in (info.receiving_application, info.receiving_facility) if p)
    if sending:
        facts.append(AppFact("hl7_sending_application", sending))
    if receiving:
        facts.append(AppFact("hl7_receiving_application", receiving))
    if info.message_type:
        facts.append(AppFact("hl7_message_type", info.message_type))
    if info.version:
        facts.append(AppFact("hl7_version", info.version))
    return facts


def _dicom(info: dicom.DicomInfo) -> list[AppFact]:
    facts: list[AppFact] = []
    if "A-ASSOCIATE-RQ" in info.pdu_types:
        if info.calling_ae:
            facts.append(AppFact("dicom_calling_ae", info.calling_ae))
        if info.called_ae:
            facts.append(AppFact("dicom_called_ae", info.called_ae))
        facts.extend(AppFact("dicom_sop_class", uid) for uid in info.abstract_syntaxes)
    if info.implementation_class_uid or info.implementation_version:
        implementation = (
            f"{info.implementation_class_uid or ''}|{info.implementation_version or ''}"
        )
        facts.append(AppFact("dicom_implementation", implementation))
    facts.extend(AppFact("dicom_command", c.command) for c in info.commands)
    return facts


def _mqtt(info: mqtt.MqttInfo) -> list[AppFact]:
    facts = [AppFact("mqtt_protocol_level", str(info.protocol_level))]
    if info.client_id:
        facts.append(AppFact("mqtt_client_id", info.client_id))
    return facts


_TCP_DECODERS: tuple[tuple[str, Callable[[bytes], bool], Callable[[bytes], Any], Any], ...] = (
    ("tls", tls.looks_like, tls.parse, _tls),
    ("http", http.looks_like, http.parse, _http),
    ("hl7", hl7.looks_like, hl7.parse, _hl7),
    ("dicom", dicom.looks_like, dicom.parse, _dicom),
    ("mqtt", mqtt.looks_like, mqtt.parse, _mqtt),
)
_BY_NAME = {entry[0]: entry for entry in _TCP_DECODERS}


# Announcements (mDNS, SSDP, DHCP retries) and repeated DNS lookups repeat byte for byte, an
# HL7 feed sends the same header all day, a device's TLS stack sends the same ClientHello on
# every connection but for its random and session id, and a device polling over HTTP the same
# headers but for the URL: decode each once.
_CACHE_ENTRIES = 4096
_cache: dict[tuple[Any, ...], Decoded | str | None] = {}
# ClientHellos in a cache of their own: a TLS 1.3 client's fresh key share makes each of its
# ClientHellos distinct, and a site full of them must not flush the others out
_HELLO_CACHE_ENTRIES = 1024
_hello_cache: dict[tuple[Any, ...], Decoded | str | None] = {}
# HTTP requests by what their decoding depends on (their target aside), in a cache of their
# own: requests that carry a cookie or a date each are new entries, as fresh ClientHellos are
_REQUEST_CACHE_ENTRIES = 1024
_request_cache: dict[tuple[Any, ...], Decoded | str | None] = {}


def decode(
    app: str | None, transport: int, ports: tuple[int, int], payload: bytes, content: int = 0
) -> Decoded | None:
    """Decode one payload; returns (protocol, facts) or None. Raises only ``Malformed``.

    ``content``, when not 0, is a hash the caller made of everything the decoding of this
    payload depends on (the pipeline hashes an HL7 message's header without its time and
    control id, a DNS message without its id and TTLs): payloads with the same hash are
    decoded once."""
    key: tuple[Any, ...]
    cache, entries = _cache, _CACHE_ENTRIES
    if transport != 17:
        if content:
            key = (app, content)
        elif (hello := _client_hello_key(payload)) is not None:
            key = (app, hello)
            cache, entries = _hello_cache, _HELLO_CACHE_ENTRIES
        elif len(payload) <= _KEPT_BYTES and (request := http.request_key(payload)) is not None:
            key = (app, request)
            cache, entries = _request_cache, _REQUEST_CACHE_ENTRIES
        else:
            return _decode(app, transport, ports, payload)
    else:  # (three items: a UDP key is never a TCP one)
        protocol = _udp_protocol(ports)
        dns_message = protocol in ("dns", "mdns")
        if content and dns_message:
            key = (transport, protocol, content)
        elif dns_message:
            # a DNS message's first two bytes are its id, which no fact depends on: repeated
            # queries and answers for one name share an entry
            key = (transport, protocol, payload[2:])
        elif protocol == "dhcp":
            key = (transport, protocol, dhcp.cache_key(payload))
        else:
            key = (transport, protocol, payload)
    cached = cache.get(key, _MISSING)
    if cached is _MISSING:
        try:
            cached = _decode(app, transport, ports, payload)
        except Malformed as error:
            cached = error.reason
        if len(cache) >= entries:
            cache.clear()
        cache[key] = cached
    if isinstance(cached, str):
        raise Malformed(cached)
    return cached  # type: ignore[no-any-return]


_MISSING: Any = object()

# where a ClientHello's session id length is: after the record header (5 bytes), the handshake
# header (4), the client version (2) and the random (32)
_SESSION_ID_LENGTH_AT = 43
# a longer payload is decoded but not remembered, so the ClientHello and request caches stay
# within 4 MiB each whatever they are sent (a ClientHello is a few hundred bytes, about 2,000
# with a post-quantum key share, whose fresh key makes it a new entry anyway; a request's
# headers a few hundred)
_KEPT_BYTES = 4096


def _client_hello_key(payload: bytes) -> bytes | None:
    """A TLS ClientHello without its random and session id bytes, which nothing decoded from
    it depends on (the length of the session id stays in); None for any other payload, and
    for a ClientHello cut inside its session id or longer than ``_KEPT_BYTES``."""
    if not _SESSION_ID_LENGTH_AT < len(payload) <= _KEPT_BYTES or not tls.looks_like(payload):
        return None
    after = _SESSION_ID_LENGTH_AT + 1 + payload[_SESSION_ID_LENGTH_AT]
    if after > len(payload):
        return None
    return (
        payload[:11] + payload[_SESSION_ID_LENGTH_AT : _SESSION_ID_LENGTH_AT + 1] + payload[after:]
    )


# The UDP decoders by port, in the order they claim a datagram: one between a DHCP port and
# port 53 is DHCP, one between 5353 and 53 mDNS. The pipeline groups datagrams for decoding
# by the same order (``decoder_rank``).
UDP_DECODER_PORTS: tuple[tuple[str, frozenset[int]], ...] = (
    ("dhcp", frozenset({67, 68})),
    ("mdns", frozenset({5353})),
    ("dns", frozenset({53, 5355})),
    ("ssdp", frozenset({1900})),
)
_NO_DECODER = len(UDP_DECODER_PORTS)
_DECODER_RANK: dict[int, int] = {}
for _rank, (_, _ports) in enumerate(UDP_DECODER_PORTS):
    for _port in _ports:
        _DECODER_RANK.setdefault(_port, _rank)  # the first decoder to claim a port keeps it


def decoder_rank(port: int) -> int:
    """The rank in ``UDP_DECODER_PORTS`` of the first decoder that claims ``port``, or the
    number of decoders: a datagram goes to the decoder of its ports' lower rank."""
    return _DECODER_RANK.get(port, _NO_DECODER)


def _udp_protocol(ports: tuple[int, int]) -> str | None:
    """Which decoder reads a UDP payload between these ports."""
    rank = min(_DECODER_RANK.get(ports[0], _NO_DECODER), _DECODER_RANK.get(ports[1], _NO_DECODER))
    return UDP_DECODER_PORTS[rank][0] if rank < _NO_DECODER else None


def _decode(
    app: str | None, transport: int, ports: tuple[int, int], payload: bytes
) -> Decoded | None:
    if transport == 17:
        protocol = _udp_protocol(ports)
        if protocol == "dhcp":
            info = dhcp.parse(payload)
            return ("dhcp", _dhcp(info)) if info is not None else None
        if protocol in ("dns", "mdns"):
            info_dns = dns.parse(payload)
            if info_dns is None:
                return None
            multicast = protocol == "mdns"
            return (protocol, _dns(info_dns, multicast))
        if protocol == "ssdp":
            info_ssdp = ssdp.parse(payload)
            return ("ssdp", _ssdp(info_ssdp)) if info_ssdp is not None else None
        return None
    candidates = (_BY_NAME[app],) if app in _BY_NAME else _TCP_DECODERS
    if app is not None and app not in _BY_NAME:
        return None
    for name, looks_like, parse, to_facts in candidates:
        if looks_like(payload):
            info_any = parse(payload)
            if info_any is not None:
                return name, to_facts(info_any)
    return None
