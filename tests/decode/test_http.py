"""Tests for monitor.decode.http: hand-written requests, robustness, a real curl request
recorded by tcpdump, and equality with tshark on shared captures."""

from __future__ import annotations

import http.server
import shutil
import subprocess
import threading
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from monitor.decode import Malformed
from monitor.decode.http import REASONS, HttpInfo, looks_like, parse, request_key
from tests.support.pcap_payloads import tcp_payloads
from tests.support.robustness import check_truncations, mutated, outcome
from tests.support.tcpdump import recording

GET = (
    b"GET /fhir/Patient?identifier=SNTL-CANARY-8841 HTTP/1.1\r\nHost: ehr.hospital.example\r\n"
    b"User-Agent: PumpGateway/2.4 (VxWorks)\r\nAccept: */*\r\n\r\n"
)
POST = b"POST /upload HTTP/1.0\r\nuser-agent: x\r\nHOST: 10.0.0.1:8080\r\n\r\n{}"
SAMPLES = [GET, POST]


def test_method_host_and_user_agent_and_nothing_else() -> None:
    info = parse(GET)
    assert info == HttpInfo("GET", "ehr.hospital.example", "PumpGateway/2.4 (VxWorks)")
    assert "CANARY" not in repr(info)  # the request target is never kept


def test_header_names_are_case_insensitive() -> None:
    assert parse(POST) == HttpInfo("POST", "10.0.0.1:8080", "x")


def test_header_line_cut_by_the_segment_end_is_not_kept() -> None:
    cut = GET[: GET.index(b"(VxWorks)")]
    info = parse(cut)
    assert info == HttpInfo("GET", "ehr.hospital.example", None)


def test_request_line_cut_by_the_segment_end_is_not_an_error() -> None:
    assert parse(b"POST ") is None
    assert parse(b"GET /very/long/path") is None


def test_endless_request_line_or_wrong_version_is_malformed_with_a_declared_reason() -> None:
    raised = set()
    for data, reason in (
        (b"GET /" + b"a" * 17000, "http_request_line_too_long"),
        (b"GET / SPDY/3\r\n\r\n", "http_bad_request_line"),
    ):
        with pytest.raises(Malformed) as exc:
            parse(data)
        assert exc.value.reason == reason
        raised.add(reason)
    # the error counter's label values: each reason raised is declared, none is declared idle
    assert raised == REASONS


def test_responses_ssdp_and_binary_are_not_requests() -> None:
    assert parse(b"HTTP/1.1 200 OK\r\n\r\n") is None
    assert parse(b"M-SEARCH * HTTP/1.1\r\n\r\n") is None
    assert parse(b"\x16\x03\x01\x00") is None
    assert looks_like(GET) and not looks_like(b"GETX / HTTP/1.1")


def test_every_truncation_gives_info_none_or_malformed() -> None:
    check_truncations(parse, HttpInfo, SAMPLES)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=300),
        st.binary(max_size=300).map(lambda b: b"GET " + b),
        mutated(SAMPLES),
    )
)
def test_random_bytes_never_escape_the_contract(data: bytes) -> None:
    outcome(parse, HttpInfo, data)


def _parsed(data: bytes) -> object:
    try:
        return parse(data)
    except Malformed as error:
        return error.reason


_LINE_PARTS = st.sampled_from([b"GET", b"POST", b" ", b"/", b"a", b"HTTP/1.1", b"HTTP/1.0", b"\r"])


@settings(max_examples=300, deadline=None)
@given(
    st.lists(_LINE_PARTS, max_size=8).map(b"".join),
    st.lists(_LINE_PARTS, max_size=8).map(b"".join),
    st.one_of(st.binary(max_size=80), st.sampled_from([GET[GET.index(b"\n") :], b"\n"])),
)
@example(b"GET HTTP/1.1", b"GET /a HTTP/1.1", b"\r\n\r\n")  # the version as the target
def test_requests_with_one_key_parse_alike(first: bytes, second: bytes, rest: bytes) -> None:
    """The decode cache trusts the key: two payloads with one key give one answer."""
    one, other = first + rest, second + rest
    key = request_key(one)
    if key is not None and key == request_key(other):
        assert _parsed(one) == _parsed(other)


def test_a_request_s_key_leaves_out_its_target_alone() -> None:
    key = request_key(GET)
    assert key is not None and b"SNTL-CANARY" not in key
    assert key == request_key(GET.replace(b"/fhir/Patient?identifier=SNTL-CANARY-8841", b"/x"))
    assert key != request_key(GET.replace(b"HTTP/1.1\r\n", b"HTTP/2\r\n", 1))
    assert key != request_key(GET.replace(b"PumpGateway", b"PumpGateway2"))
    assert request_key(b"GET /a HTTP/1.1") is None  # no line end yet
    assert request_key(b"HTTP/1.1 200 OK\r\n\r\n") is None  # a response
    assert request_key(GET + bytes(16384)) is None  # longer than parse reads


CURL = ["curl", "-s", "-A", "SantinelProbe/1.0", "-H", "Host: pacs.hospital.example"]


def test_real_curl_request_is_decoded(tmp_path: Path) -> None:
    for tool in ("curl", "tcpdump"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")

    class Quiet(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Quiet)
    port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        with recording(tmp_path / "http.pcap", port, check_free=False) as pcap:
            subprocess.run(
                [*CURL, f"http://127.0.0.1:{port}/wado?patient=x"],
                check=True,
                timeout=10,
            )
    finally:
        server.shutdown()
        thread.join()
    requests = [parse(p.data) for p in tcp_payloads(pcap) if looks_like(p.data)]
    assert requests == [HttpInfo("GET", "pacs.hospital.example", "SantinelProbe/1.0")]


# ---- against tshark ---------------------------------------------------------------------------

HTTP_CAPTURES = [
    "chrissanders-packets/tcp_ports.pcapng",
    "chrissanders-packets/arppoison.pcapng",
    "iot-sentinel/Aria/Setup-A-1-STA.pcap",
    "iotsec-lab-medical/babymonitor/wifi/3_1.pcap",
]


@pytest.mark.shared
@pytest.mark.parametrize("name", HTTP_CAPTURES)
def test_method_host_and_user_agent_equal_tsharks(shared_pcaps: Path, name: str) -> None:
    if shutil.which("tshark") is None:
        pytest.skip("tshark is not installed")
    path = shared_pcaps / name
    if not path.is_file():
        pytest.skip(f"{name} is not in the shared corpus")
    # Without reassembly tshark, like the decoder, looks at one segment at a time.
    cmd = ["tshark", "-r", str(path), "-o", "tcp.desegment_tcp_streams:FALSE"]
    cmd += ["-Y", "http.request", "-T", "fields", "-E", "separator=\t", "-e", "frame.number"]
    cmd += ["-e", "http.request.method", "-e", "http.host", "-e", "http.user_agent"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rows = [line.split("\t") for line in out.split("\n") if line]
    assert rows
    payloads = {p.frame: p.data for p in tcp_payloads(path)}
    for number, method, host, agent in rows:
        info = parse(payloads[int(number)])
        assert info is not None, f"{name} frame {number}"
        assert (info.method, info.host or "", info.user_agent or "") == (method, host, agent)
