"""Tests for monitor.decode.ssdp: hand-written announcements and searches, robustness, and
equality of the kind and headers with tshark on shared captures."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.decode import Malformed
from monitor.decode.ssdp import SsdpInfo, looks_like, parse
from tests.support.pcap_payloads import udp_payloads
from tests.support.robustness import check_truncations, mutated, outcome

NOTIFY = (
    b"NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nCACHE-CONTROL: max-age=1800\r\n"
    b"LOCATION: http://10.0.0.9:80/desc.xml\r\nNT: urn:schemas-philips-com:device:Monitor:1\r\n"
    b"NTS: ssdp:alive\r\nSERVER: Linux/3.10 UPnP/1.0 IntelliVue/K.2\r\n"
    b"USN: uuid:1234::urn:schemas-philips-com:device:Monitor:1\r\n\r\n"
)
SEARCH = (
    b'M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: "ssdp:discover"\r\nMX: 2\r\n'
    b"ST: ssdp:all\r\n\r\n"
)
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=100\r\nEXT:\r\nLOCATION: http://10.0.0.5/d.xml\r\n"
    b"server: FreeRTOS/6.0 UPnP/1.0 IpBridge/1.17\r\nst: upnp:rootdevice\r\n"
    b"usn: uuid:2f402f80::upnp:rootdevice\r\n\r\n"
)
SAMPLES = [NOTIFY, SEARCH, RESPONSE]


def test_notify_gives_server_and_notification_type() -> None:
    assert parse(NOTIFY) == SsdpInfo(
        kind="NOTIFY",
        server="Linux/3.10 UPnP/1.0 IntelliVue/K.2",
        nt="urn:schemas-philips-com:device:Monitor:1",
        nts="ssdp:alive",
        st=None,
        usn="uuid:1234::urn:schemas-philips-com:device:Monitor:1",
        location="http://10.0.0.9:80/desc.xml",
    )


def test_search_gives_search_target() -> None:
    info = parse(SEARCH)
    assert info is not None and (info.kind, info.st, info.server) == ("M-SEARCH", "ssdp:all", None)


def test_response_headers_are_case_insensitive() -> None:
    info = parse(RESPONSE)
    assert info is not None
    assert (info.kind, info.st, info.server) == (
        "RESPONSE",
        "upnp:rootdevice",
        "FreeRTOS/6.0 UPnP/1.0 IpBridge/1.17",
    )


def test_plain_http_response_and_other_protocols_are_not_ssdp() -> None:
    assert parse(b"HTTP/1.1 404 Not Found\r\nServer: nginx\r\n\r\n") is None
    assert parse(b"GET / HTTP/1.1\r\n\r\n") is None
    assert looks_like(NOTIFY) and looks_like(SEARCH)


def test_bad_start_line_is_malformed() -> None:
    with pytest.raises(Malformed) as exc:
        parse(b"NOTIFY * SIP/2.0\r\nNT: x\r\n\r\n")
    assert exc.value.reason == "ssdp_bad_start_line"


def test_header_values_are_bounded_and_controls_neutralised() -> None:
    info = parse(b"NOTIFY * HTTP/1.1\r\nSERVER: " + b"A" * 5000 + b"\x1b[2J\r\n\r\n")
    assert info is not None and info.server is not None
    assert len(info.server) == 255 and "\x1b" not in info.server


def test_every_truncation_gives_info_none_or_malformed() -> None:
    check_truncations(parse, SsdpInfo, SAMPLES)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=300),
        st.binary(max_size=300).map(lambda b: b"NOTIFY * " + b),
        mutated(SAMPLES),
    )
)
def test_random_bytes_never_escape_the_contract(data: bytes) -> None:
    outcome(parse, SsdpInfo, data)


# ---- against tshark ---------------------------------------------------------------------------

SSDP_CAPTURES = [
    "iot-sentinel/EdimaxCam1/Setup-A-1-STA.pcap",
    "iot-sentinel/D-LinkCam/Setup-A-1-STA.pcap",
    "iot-sentinel/D-LinkDayCam/Setup-A-1-STA.pcap",
    "iot-sentinel/D-LinkHomeHub/Setup-A-1-STA.pcap",
]
SEP = "\x1e"


def tshark_ssdp(path: Path) -> dict[int, list[str]]:
    cmd = ["tshark", "-r", str(path), "-Y", "ssdp && !icmp", "-T", "fields"]
    cmd += ["-E", "separator=\t", "-E", f"aggregator={SEP}"]
    for field in ("frame.number", "http.request.method", "http.response.code"):
        cmd += ["-e", field]
    # tshark 4.0 puts the other header lines in one of these fields, depending on the frame.
    for field in ("http.server", "http.location", "http.unknown_header", "http.request.line"):
        cmd += ["-e", field]
    cmd += ["-e", "http.response.line"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return {int(line.split("\t")[0]): line.split("\t")[1:] for line in out.split("\n") if line}


@pytest.mark.shared
@pytest.mark.parametrize("name", SSDP_CAPTURES)
def test_kind_and_headers_equal_tsharks(shared_pcaps: Path, name: str) -> None:
    if shutil.which("tshark") is None:
        pytest.skip("tshark is not installed")
    path = shared_pcaps / name
    if not path.is_file():
        pytest.skip(f"{name} is not in the shared corpus")
    expected = tshark_ssdp(path)
    assert expected
    payloads = {p.frame: p.data for p in udp_payloads(path)}
    for number, (method, code, server, location, *header_lines) in expected.items():
        where = f"{name} frame {number}"
        info = parse(payloads[number])
        assert info is not None, where
        assert info.kind == (method or ("RESPONSE" if code else "?")), where
        assert (info.server or "", info.location or "") == (server, location), where
        others: dict[str, str] = {}
        for header in SEP.join(h for h in header_lines if h).split(SEP):
            key, _, value = header.removesuffix("\\r\\n").partition(":")
            others.setdefault(key.strip().lower(), value.strip())
        for key in ("nt", "nts", "st", "usn"):
            assert getattr(info, key) == others.get(key), f"{where} {key}"
