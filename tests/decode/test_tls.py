"""Tests for monitor.decode.tls: the FoxIO JA4 specification's own example, robustness, and
ClientHellos from real clients (openssl, curl, Python ssl) and shared captures checked against
the fields tshark dissects.

tshark 4.0 on this machine has no ``tls.handshake.ja4`` field (it arrived in Wireshark 4.2),
so the JA4 check recomputes JA4 from tshark's own cipher, extension, signature algorithm, ALPN
and supported-versions lists and compares it, and the raw form, with ours; where tshark does
have the field, its JA4 and JA4_r are compared as well.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import shutil
import socket
import ssl
import struct
import subprocess
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.decode import Malformed
from monitor.decode.tls import TlsInfo, is_grease, looks_like, parse, record_length
from tests.support.medical_traffic import recording
from tests.support.pcap_payloads import tcp_payloads
from tests.support.robustness import check_truncations, mutated, outcome


def ext(etype: int, data: bytes) -> bytes:
    return struct.pack(">HH", etype, len(data)) + data


def u16s(values: list[int]) -> bytes:
    return b"".join(struct.pack(">H", v) for v in values)


def client_hello(
    ciphers: list[int],
    extensions: list[bytes],
    version: int = 0x0303,
) -> bytes:
    body = struct.pack(">H", version) + bytes(32) + b"\x20" + bytes(32)
    body += struct.pack(">H", 2 * len(ciphers)) + u16s(ciphers) + b"\x01\x00"
    exts = b"".join(extensions)
    body += struct.pack(">H", len(exts)) + exts
    handshake = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + struct.pack(">H", len(handshake)) + handshake


# The example of technical_details/JA4.md: ciphers and extensions in the order it lists them.
SPEC_CIPHERS = [0x1301, 0x1302, 0x1303, 0xC02B, 0xC02F, 0xC02C, 0xC030, 0xCCA9, 0xCCA8]
SPEC_CIPHERS += [0xC013, 0xC014, 0x009C, 0x009D, 0x002F, 0x0035]
SPEC_SIGALGS = [0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601]


def spec_extensions(sni: bool = True, alpn: bytes | None = b"h2") -> list[bytes]:
    server_name = b"\x00\x11" + b"\x00\x00\x0e" + b"pacs.example.org"[:14]
    alpn_data = b"" if alpn is None else bytes([len(alpn)]) + alpn + b"\x08http/1.1"
    by_type = {
        0x001B: ext(0x001B, b"\x02\x00\x02"),
        0x0000: ext(0x0000, server_name),
        0x0033: ext(0x0033, b"\x00\x00"),
        0x0010: ext(0x0010, struct.pack(">H", len(alpn_data)) + alpn_data),
        0x4469: ext(0x4469, b"\x00\x03\x02h2"),
        0x0017: ext(0x0017, b""),
        0x002D: ext(0x002D, b"\x01\x01"),
        0x000D: ext(0x000D, struct.pack(">H", 16) + u16s(SPEC_SIGALGS)),
        0x0005: ext(0x0005, b"\x01\x00\x00\x00\x00"),
        0x0023: ext(0x0023, b""),
        0x0012: ext(0x0012, b""),
        0x002B: ext(0x002B, b"\x06\x3a\x3a\x03\x04\x03\x03"),  # GREASE, 1.3, 1.2
        0xFF01: ext(0xFF01, b"\x00"),
        0x000B: ext(0x000B, b"\x01\x00"),
        0x000A: ext(0x000A, b"\x00\x04\x00\x1d\x00\x17"),
        0x0015: ext(0x0015, b"\x00\x00"),
    }
    order = [0x001B, 0x0000, 0x0033, 0x0010, 0x4469, 0x0017, 0x002D, 0x000D, 0x0005]
    order += [0x0023, 0x0012, 0x002B, 0xFF01, 0x000B, 0x000A, 0x0015]
    out = [ext(0x0A0A, b"")]  # a leading GREASE extension, as Chrome sends
    for etype in order:
        if (etype == 0x0000 and not sni) or (etype == 0x0010 and alpn is None):
            continue
        out.append(by_type[etype])
    return [*out, ext(0xFAFA, b"\x00")]


SPEC_HELLO = client_hello([0x2A2A, *SPEC_CIPHERS], spec_extensions())
SAMPLES = [SPEC_HELLO, client_hello([0x002F], [])]


def test_the_specification_example_gives_its_ja4_and_raw_form() -> None:
    info = parse(SPEC_HELLO)
    assert info is not None
    assert info.ja4 == "t13d1516h2_8daaf6152771_e5627efa2ab1"
    assert info.ja4_r == (
        "t13d1516h2_002f,0035,009c,009d,1301,1302,1303,c013,c014,c02b,c02c,c02f,c030,cca8,cca9_"
        "0005,000a,000b,000d,0012,0015,0017,001b,0023,002b,002d,0033,4469,ff01_"
        "0403,0804,0401,0503,0805,0501,0806,0601"
    )
    assert info.alpn == ("h2", "http/1.1")
    assert info.sni == "pacs.example.o"
    assert info.version == "13"


def test_no_sni_gives_i_and_no_alpn_gives_00() -> None:
    info = parse(client_hello(SPEC_CIPHERS, spec_extensions(sni=False, alpn=None)))
    assert info is not None
    assert info.ja4.startswith("t13i151400_8daaf6152771_")
    assert info.sni is None and info.alpn == ()


@pytest.mark.parametrize(
    ("alpn", "chars"),
    [(b"http/1.1", "h1"), (b"\xab", "ab"), (b"\xab\xcd", "ad"), (b"\x30\xab", "3b"),
     (b"0\xab\xcd1", "01"), (b"x", "xx"), (b"", "00")],
)  # fmt: skip
def test_alpn_characters_follow_the_specification(alpn: bytes, chars: str) -> None:
    info = parse(client_hello(SPEC_CIPHERS, spec_extensions(alpn=alpn)))
    assert info is not None and info.ja4[8:10] == chars


def test_without_supported_versions_the_hello_version_counts() -> None:
    info = parse(client_hello([0x002F, 0x0035], [], version=0x0301))
    assert info is not None
    assert (
        info.ja4 == "t10i020000_" + hashlib.sha256(b"002f,0035").hexdigest()[:12] + "_" + "0" * 12
    )


def test_grease_values() -> None:
    assert all(is_grease(v) for v in (0x0A0A, 0x1A1A, 0xFAFA))
    assert not any(is_grease(v) for v in (0x0A1A, 0x1301, 0x0000))


def test_hello_split_over_segments_is_truncated_and_record_length_says_how_much() -> None:
    assert record_length(SPEC_HELLO) == len(SPEC_HELLO)
    with pytest.raises(Malformed) as exc:
        parse(SPEC_HELLO[:100])
    assert exc.value.reason == "tls_truncated"


def test_other_records_are_not_client_hellos() -> None:
    assert parse(b"\x17\x03\x03\x00\x10" + bytes(16)) is None  # application data
    assert parse(b"\x16\x03\x03\x00\x10\x02" + bytes(15)) is None  # ServerHello
    assert not looks_like(b"GET / HTTP/1.1\r\n")


def test_every_truncation_gives_info_none_or_malformed() -> None:
    check_truncations(parse, TlsInfo, SAMPLES)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=300),
        st.binary(max_size=300).map(lambda b: b"\x16\x03\x01\x01\x00\x01\x00\x00\xfc\x03\x03" + b),
        mutated(SAMPLES),
    )
)
def test_random_bytes_never_escape_the_contract(data: bytes) -> None:
    outcome(parse, TlsInfo, data)


# ---- against tshark -----------------------------------------------------------------------------

TSHARK_FIELDS = [
    "frame.number",
    "tls.handshake.version",
    "tls.handshake.ciphersuite",
    "tls.handshake.extension.type",
    "tls.handshake.sig_hash_alg",
    "tls.handshake.extensions_server_name",
    "tls.handshake.extensions_alpn_str",
    "tls.handshake.extensions.supported_version",
]
VERSIONS = {0x0304: "13", 0x0303: "12", 0x0302: "11", 0x0301: "10", 0x0300: "s3"}


def tshark_hellos(path: Path, port: int | None = None) -> dict[int, list[str]]:
    cmd = ["tshark", "-r", str(path), "-Y", "tls.handshake.type == 1", "-T", "fields"]
    cmd += ["-E", "separator=\t"]
    if port is not None:
        cmd += ["-d", f"tcp.port=={port},tls"]
    for field in TSHARK_FIELDS:
        cmd += ["-e", field]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return {int(line.split("\t")[0]): line.split("\t")[1:] for line in out.split("\n") if line}


def ja4_from_tshark(row: list[str]) -> tuple[str, str, str, str]:
    """JA4 and its raw form computed from tshark's dissection, with SNI and first ALPN."""
    version, ciphers, exts, sigalgs, sni, alpn, supported = row

    def ints(text: str, base: int) -> list[int]:
        return [int(v, base) for v in text.split(",") if v]

    cs = [c for c in ints(ciphers, 16) if not is_grease(c)]
    es = [e for e in ints(exts, 10) if not is_grease(e)]
    vs = [v for v in ints(supported, 16) if not is_grease(v)]
    first_alpn = alpn.split(",")[0] if alpn else ""
    chars = first_alpn[0] + first_alpn[-1] if first_alpn else "00"
    ver = VERSIONS.get(max(vs) if vs else int(version, 16), "00")
    head = f"t{ver}{'d' if 0 in es else 'i'}{min(len(cs), 99):02d}{min(len(es), 99):02d}{chars}"
    c_raw = ",".join(f"{c:04x}" for c in sorted(cs))
    e_raw = ",".join(f"{e:04x}" for e in sorted(es) if e not in (0, 16))
    if sigalgs:
        e_raw += "_" + ",".join(f"{s:04x}" for s in ints(sigalgs, 16))
    c_hash = hashlib.sha256(c_raw.encode()).hexdigest()[:12] if cs else "0" * 12
    e_hash = hashlib.sha256(e_raw.encode()).hexdigest()[:12] if e_raw.split("_")[0] else "0" * 12
    return f"{head}_{c_hash}_{e_hash}", f"{head}_{c_raw}_{e_raw}", sni, first_alpn


@functools.cache
def tshark_has_ja4() -> bool:
    """Wireshark 4.2 and later compute JA4 themselves (``tls.handshake.ja4``)."""
    fields = subprocess.run(["tshark", "-G", "fields"], capture_output=True, text=True).stdout
    return "\ttls.handshake.ja4\t" in fields


def tshark_ja4(path: Path, port: int | None) -> dict[int, tuple[str, str]]:
    cmd = ["tshark", "-r", str(path), "-Y", "tls.handshake.type == 1", "-T", "fields"]
    if port is not None:
        cmd += ["-d", f"tcp.port=={port},tls"]
    cmd += ["-e", "frame.number", "-e", "tls.handshake.ja4", "-e", "tls.handshake.ja4_r"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rows = (line.split("\t") for line in out.split("\n") if line)
    return {int(number): (ja4, ja4_r) for number, ja4, ja4_r in rows}


def check_against_tshark(path: Path, port: int | None = None) -> int:
    expected = tshark_hellos(path, port)
    # Where Wireshark computes JA4 itself, ours must equal its values too.
    wireshark_ja4 = tshark_ja4(path, port) if tshark_has_ja4() else {}
    payloads = {p.frame: p.data for p in tcp_payloads(path)}
    checked = 0
    for number, row in expected.items():
        if payloads[number][0] & 0x80:
            # An SSLv2-compatible hello (old OpenSSL): JA4 defines nothing for it; not decoded.
            assert parse(payloads[number]) is None
            continue
        info = parse(payloads[number])
        assert info is not None, f"{path} frame {number}"
        checked += 1
        ja4, ja4_r, sni, first_alpn = ja4_from_tshark(row)
        assert (info.ja4, info.ja4_r) == (ja4, ja4_r), f"{path} frame {number}"
        assert (info.sni or "", info.alpn[0] if info.alpn else "") == (sni, first_alpn)
        if number in wireshark_ja4:
            assert (info.ja4, info.ja4_r) == wireshark_ja4[number], f"{path} frame {number}"
    return checked


TLS_CAPTURES = [
    "iot-sentinel/D-LinkSensor/Setup-A-1-STA.pcap",
    "iot-sentinel/WeMoSwitch/Setup-A-1-STA.pcap",
    "iot-sentinel/D-LinkHomeHub/Setup-A-1-STA.pcap",
    "iot-sentinel/TP-LinkPlugHS100/Setup-A-1-STA.pcap",
    "iot-sentinel/WeMoLink/Setup-A-1-STA.pcap",
    "iotsec-lab-medical/babymonitor/wifi/1_1.pcap",
]


@pytest.mark.shared
@pytest.mark.parametrize("name", TLS_CAPTURES)
def test_shared_capture_hellos_equal_tsharks_dissection(shared_pcaps: Path, name: str) -> None:
    if shutil.which("tshark") is None:
        pytest.skip("tshark is not installed")
    path = shared_pcaps / name
    if not path.is_file():
        pytest.skip(f"{name} is not in the shared corpus")
    assert check_against_tshark(path) > 0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def python_client(port: int) -> None:
    context = ssl.create_default_context()
    context.set_alpn_protocols(["h2", "http/1.1"])
    # The listener never answers the hello: only the hello matters.
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        contextlib.suppress(ssl.SSLError, OSError),
    ):
        context.wrap_socket(raw, server_hostname="pacs.hospital.example")


OPENSSL = ["openssl", "s_client", "-connect"]
ALPN = ["-alpn", "h2,http/1.1"]
CURL = ["curl", "-sk", "--max-time", "3", "--resolve"]
CLIENTS = {
    "openssl": lambda port: subprocess.run(
        [*OPENSSL, f"127.0.0.1:{port}", "-servername", "pacs.hospital.example", *ALPN],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=10,
        check=False,
    ),
    "curl": lambda port: subprocess.run(
        [
            *CURL,
            f"pacs.hospital.example:{port}:127.0.0.1",
            f"https://pacs.hospital.example:{port}/",
        ],
        capture_output=True,
        timeout=10,
        check=False,
    ),
    "python-ssl": python_client,
}


@pytest.mark.parametrize("client", sorted(CLIENTS))
def test_real_client_hello_equals_tsharks_dissection(tmp_path: Path, client: str) -> None:
    tool = {"openssl": "openssl", "curl": "curl"}.get(client)
    for needed in ("tcpdump", "tshark", *([tool] if tool else [])):
        if shutil.which(needed) is None:
            pytest.skip(f"{needed} is not installed")
    port = free_port()
    listener = socket.create_server(("127.0.0.1", port))
    listener.settimeout(10)

    def swallow() -> None:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(2)
            with contextlib.suppress(OSError):
                conn.recv(65536)

    with listener, recording(tmp_path / "hello.pcap", port, check_free=False) as pcap:
        thread = threading.Thread(target=swallow)
        thread.start()
        CLIENTS[client](port)
        thread.join(timeout=15)
    assert check_against_tshark(pcap, port) == 1
    check_truncations(parse, TlsInfo, [p.data for p in tcp_payloads(pcap)])
    hello = next(parse(p.data) for p in tcp_payloads(pcap) if looks_like(p.data))
    assert hello is not None and hello.sni == "pacs.hospital.example"
