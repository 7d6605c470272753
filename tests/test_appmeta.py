"""Application metadata dispatch: which decoder a payload goes to, and its decode cache."""

from __future__ import annotations

import struct

import pytest
from scapy.layers.dns import DNS, DNSQR, DNSRR

from monitor import appmeta


def dns_bytes(message_id: int, name: str, answer: str | None = None) -> bytes:
    if answer is None:
        return bytes(DNS(id=message_id, rd=1, qd=DNSQR(qname=name)))
    return bytes(
        DNS(id=message_id, qr=1, qd=DNSQR(qname=name), an=DNSRR(rrname=name, rdata=answer))
    )


def test_repeated_lookups_with_other_ids_give_the_same_facts() -> None:
    first = appmeta.decode(None, 17, (53001, 53), dns_bytes(1, "pacs.ward.example"))
    again = appmeta.decode(None, 17, (53002, 53), dns_bytes(2, "pacs.ward.example"))
    assert first == again
    assert first is not None and first[0] == "dns"


def test_lookups_for_other_names_or_answers_do_not_share_a_cache_entry() -> None:
    def facts(payload: bytes) -> set[tuple[str, str, str]]:
        found = appmeta.decode(None, 17, (53, 53001), payload)
        assert found is not None
        return {(f.kind, f.value, f.extra) for f in found[1]}

    pacs = facts(dns_bytes(7, "pacs.ward.example", "10.1.0.9"))
    assert ("resolved", "10.1.0.9", "pacs.ward.example") in pacs
    other = facts(dns_bytes(7, "pacs.ward.example", "10.1.0.10"))
    assert ("resolved", "10.1.0.10", "pacs.ward.example") in other
    assert pacs != other
    query = facts(dns_bytes(7, "lis.ward.example"))
    assert ("dns_query", "lis.ward.example", "") in query


@pytest.fixture
def decoded(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The payloads the decoders are given from now on, with empty decode caches."""
    monkeypatch.setattr(appmeta, "_cache", {})
    monkeypatch.setattr(appmeta, "_hello_cache", {})
    monkeypatch.setattr(appmeta, "_request_cache", {})
    payloads: list[bytes] = []
    real = appmeta._decode

    def counting(
        app: str | None, transport: int, ports: tuple[int, int], payload: bytes
    ) -> appmeta.Decoded | None:
        payloads.append(payload)
        return real(app, transport, ports, payload)

    monkeypatch.setattr(appmeta, "_decode", counting)
    return payloads


def test_tcp_payloads_with_one_content_hash_decode_once_and_others_anew(
    decoded: list[bytes],
) -> None:
    """The caller's content hash stands for what the decoding depends on: a second message
    with the hash is not decoded again (its control id differs, its facts do not), a
    message with another hash is; without a hash every payload is decoded."""
    oru = b"\x0bMSH|^~\\&|MON|WARD|ENG|HOSP|20261205||ORU^R01|%d|P|2.5\r\x1c\r"
    adt = b"\x0bMSH|^~\\&|ADM|WARD|ENG|HOSP|20261205||ADT^A01|1|P|2.5\r\x1c\r"
    first = appmeta.decode("hl7", 6, (40001, 2575), oru % 1, content=11)
    again = appmeta.decode("hl7", 6, (40001, 2575), oru % 2, content=11)
    other = appmeta.decode("hl7", 6, (40001, 2575), adt, content=12)
    assert first == again and first is not None and first[0] == "hl7"
    assert other is not None and other != first
    assert decoded == [oru % 1, adt]
    appmeta.decode("hl7", 6, (40001, 2575), oru % 3)
    appmeta.decode("hl7", 6, (40001, 2575), oru % 3)
    assert len(decoded) == 4


def test_a_malformed_message_is_remembered_by_its_content_hash(decoded: list[bytes]) -> None:
    bad = b"\x0bMSH1^~\\&|MON\r\x1c\r"  # an alphanumeric field separator
    for _ in range(2):
        with pytest.raises(appmeta.Malformed, match="hl7_bad_separators"):
            appmeta.decode("hl7", 6, (40001, 2575), bad, content=13)
    assert decoded == [bad]


def test_dns_messages_with_one_content_hash_decode_once_per_decoder(
    decoded: list[bytes],
) -> None:
    """The pipeline's DNS hash leaves out the id and the TTLs: an answer with another of
    each decodes once. The same hash between mDNS ports is an mDNS message, decoded apart,
    and a hash given for a payload that another decoder reads (DHCP's ports) is not used."""
    answer = bytes(
        DNS(id=1, qr=1, qd=DNSQR(qname="pacs.local"), an=DNSRR(rrname="pacs.local", ttl=120))
    )
    later = bytes(
        DNS(id=2, qr=1, qd=DNSQR(qname="pacs.local"), an=DNSRR(rrname="pacs.local", ttl=119))
    )
    first = appmeta.decode(None, 17, (53, 40001), answer, content=21)
    again = appmeta.decode(None, 17, (53, 40002), later, content=21)
    assert first == again and first is not None and first[0] == "dns"
    assert decoded == [answer]
    multicast = appmeta.decode(None, 17, (5353, 5353), later, content=21)
    assert multicast is not None and multicast[0] == "mdns"
    assert decoded == [answer, later]
    for payload in (answer, later):
        assert appmeta.decode(None, 17, (67, 53), payload, content=22) is None
    assert decoded == [answer, later, answer, later]


def client_hello(server_name: bytes, random: bytes, session_id: bytes) -> bytes:
    """A ClientHello of one cipher suite and one extension, SNI, as an embedded stack sends."""
    names = struct.pack(">HBH", len(server_name) + 3, 0, len(server_name)) + server_name
    extensions = struct.pack(">HH", 0, len(names)) + names
    body = b"\x03\x03" + random + bytes([len(session_id)]) + session_id
    body += b"\x00\x02\xc0\x2f" + b"\x01\x00" + struct.pack(">H", len(extensions)) + extensions
    handshake = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + struct.pack(">H", len(handshake)) + handshake


def sni_of(found: appmeta.Decoded | None) -> list[str]:
    assert found is not None and found[0] == "tls"
    return [fact.value for fact in found[1] if fact.kind == "tls_sni"]


def test_a_client_hello_sent_again_with_a_fresh_random_and_session_id_decodes_once(
    decoded: list[bytes],
) -> None:
    pump = b"pumpserver.ward.example"
    first = appmeta.decode(None, 6, (40001, 443), client_hello(pump, bytes(32), b"\x01" * 32))
    again = appmeta.decode(None, 6, (40002, 443), client_hello(pump, b"\x07" * 32, b"\x02" * 32))
    assert sni_of(first) == ["pumpserver.ward.example"]
    assert again == first
    assert len(decoded) == 1


def test_client_hellos_that_differ_past_their_session_id_are_each_decoded(
    decoded: list[bytes],
) -> None:
    pump1 = client_hello(b"pump1.ward.example", bytes(32), b"\x01" * 32)
    pump2 = client_hello(b"pump2.ward.example", bytes(32), b"\x01" * 32)  # as long
    shorter = client_hello(b"pump1.ward.example", bytes(32), b"\x01" * 16)
    assert sni_of(appmeta.decode(None, 6, (40001, 443), pump1)) == ["pump1.ward.example"]
    assert sni_of(appmeta.decode(None, 6, (40001, 443), pump2)) == ["pump2.ward.example"]
    assert sni_of(appmeta.decode(None, 6, (40001, 443), shorter)) == ["pump1.ward.example"]
    assert decoded == [pump1, pump2, shorter]


def test_a_client_hello_cut_inside_its_session_id_is_decoded_each_time(
    decoded: list[bytes],
) -> None:
    cut = client_hello(b"pumpserver.ward.example", bytes(32), b"\x01" * 32)[:60]
    for _ in range(2):
        with pytest.raises(appmeta.Malformed, match="tls_truncated"):
            appmeta.decode(None, 6, (40001, 443), cut)
    assert decoded == [cut, cut]


def test_a_client_hello_too_long_to_keep_is_decoded_each_time(decoded: list[bytes]) -> None:
    name = b"pump1.ward.example"
    hello = client_hello(name, bytes(32), b"\x01" * 32)
    padded = hello + bytes(appmeta._KEPT_BYTES - len(hello) + 1)  # after the record
    kept = hello + bytes(appmeta._KEPT_BYTES - len(hello))
    for _ in range(2):
        assert sni_of(appmeta.decode(None, 6, (40001, 443), padded)) == [name.decode()]
        assert sni_of(appmeta.decode(None, 6, (40001, 443), kept)) == [name.decode()]
    assert decoded == [padded, kept, padded]


def test_client_hellos_that_are_all_distinct_do_not_flush_other_messages_from_the_cache(
    decoded: list[bytes],
) -> None:
    """A TLS 1.3 client's key share makes each of its ClientHellos new: more of them than the
    cache holds must not make a DNS answer decode again."""
    answer = dns_bytes(7, "pacs.ward.example", "10.1.0.9")
    appmeta.decode(None, 17, (53, 53001), answer)
    for n in range(appmeta._CACHE_ENTRIES + 1):
        name = b"host%05d.ward.example" % n
        appmeta.decode(None, 6, (40001, 443), client_hello(name, bytes(32), b""))
    appmeta.decode(None, 17, (53, 53002), answer)
    assert decoded.count(answer) == 1


def _request(target: bytes, agent: bytes = b"Dalvik/2.1.0", version: bytes = b"HTTP/1.1") -> bytes:
    return (
        b"GET " + target + b" " + version + b"\r\nUser-Agent: " + agent + b"\r\n"
        b"Host: 10.10.10.6\r\nConnection: Keep-Alive\r\n\r\n"
    )


def test_http_requests_that_differ_in_their_target_alone_decode_once(
    decoded: list[bytes],
) -> None:
    """A device polls one server with the same headers and a new URL each time: the target
    is never kept, so its requests decode once; another User-Agent decodes anew."""
    first = appmeta.decode(None, 6, (40001, 80), _request(b"/poll?n=1"))
    again = appmeta.decode(None, 6, (40002, 80), _request(b"/poll?n=2&t=1764998400"))
    assert first == again and first is not None and first[0] == "http"
    assert {(f.kind, f.value) for f in first[1]} == {
        ("http_host", "10.10.10.6"),
        ("http_user_agent", "Dalvik/2.1.0"),
    }
    other = appmeta.decode(None, 6, (40003, 80), _request(b"/poll?n=3", b"Dalvik/1.6.0"))
    assert other is not None and other != first
    assert decoded == [_request(b"/poll?n=1"), _request(b"/poll?n=3", b"Dalvik/1.6.0")]


def test_a_request_line_without_a_version_is_malformed_after_a_good_one_with_its_headers(
    decoded: list[bytes],
) -> None:
    assert appmeta.decode(None, 6, (40001, 80), _request(b"/a")) is not None
    for _ in range(2):
        with pytest.raises(appmeta.Malformed, match="http_bad_request_line"):
            appmeta.decode(None, 6, (40001, 80), _request(b"/a", version=b"SPDY/3"))
    # "GET HTTP/1.1" has no target: the version is where the target would be, and the
    # request is as bad as the one above (which it shares an entry with)
    with pytest.raises(appmeta.Malformed, match="http_bad_request_line"):
        appmeta.decode(None, 6, (40001, 80), b"GET HTTP/1.1" + _request(b"/a").partition(b"1.1")[2])
    assert len(decoded) == 2


def test_an_http_request_is_decoded_by_the_flow_s_decoder_or_not_at_all(
    decoded: list[bytes],
) -> None:
    """The cache keys a request by the flow's known protocol too: in an HL7 flow a payload
    that looks like a request is not an HTTP request."""
    assert appmeta.decode(None, 6, (40001, 80), _request(b"/a")) is not None
    assert appmeta.decode("hl7", 6, (40001, 2575), _request(b"/a")) is None
    assert len(decoded) == 2


def test_a_request_too_long_to_keep_is_decoded_each_time(decoded: list[bytes]) -> None:
    long = _request(b"/a", b"x" * appmeta._KEPT_BYTES)
    for _ in range(2):
        assert appmeta.decode(None, 6, (40001, 80), long) is not None
    assert decoded == [long, long]


def test_a_dhcp_client_s_retries_decode_once(decoded: list[bytes]) -> None:
    """A client sends its DISCOVER again with a new transaction id and the seconds it has
    waited: nothing it says about itself changed, so it decodes once."""
    from tests.decode.test_dhcp import DISCOVER

    retry = bytearray(DISCOVER)
    retry[4:10] = b"\x99\x88\x77\x66\x00\x04"  # transaction id, seconds
    first = appmeta.decode(None, 17, (68, 67), DISCOVER)
    again = appmeta.decode(None, 17, (68, 67), bytes(retry))
    assert first == again and first is not None and first[0] == "dhcp"
    assert decoded == [DISCOVER]


@pytest.mark.parametrize(
    ("ports", "decoder"),
    [
        ((68, 67), "dhcp"),
        ((67, 53), "dhcp"),  # a DHCP port claims the datagram before DNS's
        ((5353, 5353), "mdns"),
        ((53, 5353), "mdns"),
        ((40001, 53), "dns"),
        ((5355, 40001), "dns"),
        ((1900, 40001), "ssdp"),
        ((1900, 5353), "mdns"),
        ((40001, 40002), None),
    ],
)
def test_a_datagram_goes_to_the_first_decoder_that_claims_one_of_its_ports(
    ports: tuple[int, int], decoder: str | None
) -> None:
    assert appmeta._udp_protocol(ports) == decoder
    assert appmeta._udp_protocol(ports[::-1]) == decoder
