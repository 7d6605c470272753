"""Tests for monitor.decode.dns: scapy-built DNS and mDNS messages, compression abuse,
robustness, and equality of names and targets with tshark on shared captures."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.dns import DNS, DNSQR, DNSRR, DNSRRSRV, dns_compress

from monitor.decode import Malformed
from monitor.decode.dns import DnsInfo, DnsQuestion, DnsRecord, looks_like, parse, parse_tcp
from tests.support.pcap_payloads import udp_payloads
from tests.support.robustness import check_truncations, mutated, outcome

QUERY = bytes(DNS(id=7, rd=1, qd=DNSQR(qname="pacs.hospital.example", qtype="A")))
RESPONSE = bytes(
    DNS(
        id=7,
        qr=1,
        qd=DNSQR(qname="pacs.hospital.example", qtype="A"),
        an=[
            DNSRR(rrname="pacs.hospital.example", type="CNAME", rdata="store.hospital.example"),
            DNSRR(rrname="store.hospital.example", type="A", rdata="10.1.2.3"),
            DNSRR(rrname="store.hospital.example", type="AAAA", rdata="2001:db8::7"),
        ],
    )
)
MDNS = bytes(
    DNS(
        id=0,
        qr=1,
        aa=1,
        an=[
            DNSRR(rrname="_services._dns-sd._udp.local", type="PTR", rdata="_dicom._tcp.local"),
            DNSRR(rrname="_dicom._tcp.local", type="PTR", rdata="Ultrasound 3._dicom._tcp.local"),
            DNSRRSRV(rrname="Ultrasound 3._dicom._tcp.local", target="us3.local", port=104),
            DNSRR(rrname="us3.local", type="A", rdata="169.254.10.3"),
            DNSRR(rrname="_printer._sub._http._tcp.local", type="PTR", rdata="P._http._tcp.local"),
        ],
    )
)
COMPRESSED = bytes(dns_compress(DNS(MDNS)))  # type: ignore[no-untyped-call]
SAMPLES = [QUERY, RESPONSE, MDNS, COMPRESSED]
MDNS_HEADER = bytes.fromhex("000084000001000200000000")


def test_query_gives_question_and_qr_clear() -> None:
    info = parse(QUERY)
    assert info is not None
    assert not info.is_response
    assert info.questions == (DnsQuestion("pacs.hospital.example", 1),)
    assert info.records == ()


def test_response_gives_cname_a_and_aaaa_targets() -> None:
    info = parse(RESPONSE)
    assert info is not None and info.is_response and info.rcode == 0
    assert info.records == (
        DnsRecord("pacs.hospital.example", 5, "store.hospital.example"),
        DnsRecord("store.hospital.example", 1, "10.1.2.3"),
        DnsRecord("store.hospital.example", 28, "2001:db8::7"),
    )


def test_mdns_gives_service_types_ptr_and_srv_targets() -> None:
    info = parse(MDNS)
    assert info is not None
    assert info.service_types == ("_dicom._tcp.local", "_http._tcp.local")
    targets = {(r.rtype, r.target) for r in info.records}
    assert (33, "us3.local") in targets and (1, "169.254.10.3") in targets
    assert (12, "Ultrasound 3._dicom._tcp.local") in targets


def test_compression_pointers_give_the_same_names_as_plain_ones() -> None:
    assert len(COMPRESSED) < len(MDNS) - 40  # scapy did compress
    assert parse(COMPRESSED) == parse(MDNS)


def test_a_pointer_to_a_name_read_before_gives_its_labels_and_the_root_none() -> None:
    header = b"\x00\x01\x84\x00\x00\x02\x00\x02\x00\x00\x00\x00"
    root_question = b"\x00" + b"\x00\x02\x00\x01"  # at offset 12
    named_question = b"\x04pacs\x07example\x00" + b"\x00\x01\x00\x01"  # at offset 17
    address = b"\x00\x01\x00\x01" + b"\x00\x00\x00\x3c" + b"\x00\x04" + bytes([10, 0, 0, 1])
    answers = b"\x04host\xc0\x0c" + address + b"\x05store\xc0\x11" + address
    info = parse(header + root_question + named_question + answers)
    assert info is not None
    assert [q.name for q in info.questions] == ["", "pacs.example"]
    assert [r.name for r in info.records] == ["host", "store.pacs.example"]


def test_pointer_loop_is_malformed_not_a_hang() -> None:
    header = b"\x00\x01\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00"
    for name in (b"\xc0\x0c", b"\x01a\xc0\x0c", b"\x01a\xc0\x0e\x01b\xc0\x0c"):
        with pytest.raises(Malformed) as exc:
            parse(header + name + b"\x00\x01\x00\x01")
        assert exc.value.reason in ("dns_pointer_loop", "dns_name_too_long")


def test_reserved_label_type_is_malformed() -> None:
    with pytest.raises(Malformed) as exc:
        parse(b"\x00\x01\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x41abc\x00\x00\x01\x00\x01")
    assert exc.value.reason == "dns_bad_label"


def test_counts_beyond_the_data_are_truncation() -> None:
    with pytest.raises(Malformed) as exc:
        parse(QUERY[:-3])
    assert exc.value.reason == "dns_truncated"


def test_dns_over_tcp_length_prefix() -> None:
    info = parse_tcp(len(RESPONSE).to_bytes(2, "big") + RESPONSE)
    assert info is not None and info.records[1].target == "10.1.2.3"


def test_not_dns() -> None:
    assert parse(b"\x00" * 12) is None  # no entries at all
    assert parse(b"short") is None
    assert looks_like(QUERY)


def test_every_truncation_gives_info_none_or_malformed() -> None:
    check_truncations(parse, DnsInfo, SAMPLES)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=300),
        st.binary(max_size=300).map(lambda b: MDNS_HEADER + b),
        mutated(SAMPLES),
    )
)
def test_random_bytes_never_escape_the_contract(data: bytes) -> None:
    outcome(parse, DnsInfo, data)


# ---- against tshark ---------------------------------------------------------------------------

DNS_CAPTURES = [
    "chrissanders-packets/arppoison.pcapng",
    "iot-sentinel/D-LinkCam/Setup-A-1-STA.pcap",
    "iot-sentinel/D-LinkCam/Setup-B-1-STA.pcap",
    "iot-sentinel/D-LinkHomeHub/Setup-A-1-STA.pcap",
    "iot-sentinel/D-LinkDayCam/Setup-A-1-STA.pcap",
]
SEP = "\x1e"
FIELDS = ["dns.qry.name", "dns.resp.name", "dns.a", "dns.aaaa", "dns.ptr.domain_name"]
FIELDS += ["dns.srv.target", "dns.flags.response"]


def tshark_dns(path: Path) -> dict[int, list[list[str]]]:
    cmd = ["tshark", "-r", str(path), "-Y", "(dns || mdns) && udp && !icmp", "-T", "fields"]
    cmd += ["-E", f"aggregator={SEP}", "-E", "separator=\t", "-e", "frame.number"]
    for field in FIELDS:
        cmd += ["-e", field]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rows: dict[int, list[list[str]]] = {}
    for line in out.split("\n"):  # not splitlines(): it also splits on the aggregator
        if not line:
            continue
        number, *values = line.split("\t")
        rows[int(number)] = [v.split(SEP) if v else [] for v in values]
    return rows


@pytest.mark.shared
@pytest.mark.parametrize("name", DNS_CAPTURES)
def test_names_and_targets_equal_tsharks(shared_pcaps: Path, name: str) -> None:
    if shutil.which("tshark") is None:
        pytest.skip("tshark is not installed")
    path = shared_pcaps / name
    if not path.is_file():
        pytest.skip(f"{name} is not in the shared corpus")
    expected = tshark_dns(path)
    assert expected, "no DNS in a capture chosen for its DNS"
    payloads = {p.frame: p.data for p in udp_payloads(path)}
    for number, (qnames, rnames, a, aaaa, ptr, srv, response) in expected.items():
        where = f"{name} frame {number}"
        decoded = parse(payloads[number])
        assert decoded is not None, where
        info: DnsInfo = decoded
        assert [q.name for q in info.questions] == qnames, where
        # tshark 4.0 splits an SRV owner into service/proto/name and gives no dns.resp.name.
        names = [r.name or "<Root>" for r in info.records if r.rtype != 33]
        assert names == rnames, where

        def targets(rtype: int, info: DnsInfo = info) -> list[str]:
            return [r.target or "" for r in info.records if r.rtype == rtype]

        assert targets(1) == a, where
        assert targets(28) == aaaa, where
        assert targets(12) == ptr, where
        assert targets(33) == srv, where
        assert info.is_response == (response == ["1"]), where
