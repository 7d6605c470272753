"""Tests for monitor.decode.dhcp: scapy-built messages, robustness, and equality with tshark on
the shared DHCP captures."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.inet import UDP
from scapy.utils import rdpcap

from monitor.decode import Malformed
from monitor.decode.dhcp import DhcpInfo, cache_key, looks_like, parse
from tests.support.robustness import check_truncations, mutated, outcome

MAC = "00:1b:63:84:45:e6"


def dhcp_bytes(options: list[object], op: int = 1) -> bytes:
    mac = bytes.fromhex(MAC.replace(":", ""))
    return bytes(BOOTP(op=op, chaddr=mac, xid=0x1234) / DHCP(options=options))


DISCOVER = dhcp_bytes(
    [
        ("message-type", "discover"),
        ("hostname", b"infusion-pump-7"),
        ("requested_addr", "10.20.30.40"),
        ("param_req_list", [1, 3, 6, 15, 119, 252]),
        ("max_dhcp_size", 1500),
        ("vendor_class_id", b"MSFT 5.0"),
        ("client_id", b"\x01" + bytes.fromhex("001b638445e6")),
        "end",
    ]
)
ACK = dhcp_bytes([("message-type", "ack"), ("server_id", "10.0.0.1"), "end"], op=2)
SAMPLES = [DISCOVER, ACK]


def test_discover_fields_come_out_as_sent() -> None:
    info = parse(DISCOVER)
    assert info == DhcpInfo(
        op=1,
        message_type=1,
        message_type_name="DISCOVER",
        client_mac=MAC,
        hostname="infusion-pump-7",
        requested_ip="10.20.30.40",
        param_list=(1, 3, 6, 15, 119, 252),
        max_message_size=1500,
        vendor_class="MSFT 5.0",
        client_id="01001b638445e6",
    )


def test_reply_has_type_and_no_client_options() -> None:
    info = parse(ACK)
    assert info is not None
    assert (info.op, info.message_type_name, info.hostname, info.param_list) == (2, "ACK", None, ())


def test_plain_bootp_without_option_53_is_named_bootp() -> None:
    info = parse(dhcp_bytes(["end"]))
    assert info is not None and info.message_type_name == "BOOTP"


def test_option_overload_into_file_field_is_followed() -> None:
    file_field = bytes([12, 4]) + b"pump" + b"\xff"
    data = bytearray(dhcp_bytes([("message-type", "request"), ("dhcp-option-overload", 1), "end"]))
    data[108 : 108 + len(file_field)] = file_field
    info = parse(bytes(data))
    assert info is not None and info.hostname == "pump"


def test_option_running_past_the_payload_is_malformed() -> None:
    cut = DISCOVER[: DISCOVER.index(b"infusion") + 4]
    with pytest.raises(Malformed) as exc:
        parse(cut)
    assert exc.value.reason == "dhcp_truncated_options"


def test_non_dhcp_payloads_are_not_claimed() -> None:
    assert parse(b"\x01" * 300) is None
    assert parse(b"") is None
    assert not looks_like(DISCOVER[:239])
    assert looks_like(DISCOVER)


def test_every_truncation_gives_info_none_or_malformed() -> None:
    check_truncations(parse, DhcpInfo, SAMPLES)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=400),
        st.binary(max_size=300).map(lambda b: b"\x01\x01\x06\x00" + bytes(232) + b"c\x82Sc" + b),
        mutated(SAMPLES),
    )
)
def test_random_bytes_never_escape_the_contract(data: bytes) -> None:
    outcome(parse, DhcpInfo, data)


def _outcome(data: bytes) -> object:
    try:
        return parse(data)
    except Malformed as error:
        return error.reason


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(st.binary(max_size=400), mutated(SAMPLES), st.sampled_from(SAMPLES)),
    st.binary(min_size=35, max_size=35),
)
def test_payloads_with_one_cache_key_parse_alike(data: bytes, elsewhere: bytes) -> None:
    """The decode cache trusts the key: what it leaves out (hops, transaction id, seconds,
    flags, the four addresses, the MAC's padding) changes nothing ``parse`` says."""
    other = bytearray(data)
    for i, byte in zip((*range(3, 28), *range(34, 44)), elsewhere, strict=True):
        if i < len(other):
            other[i] = byte
    assert cache_key(bytes(other)) == cache_key(data)
    assert _outcome(bytes(other)) == _outcome(data)


def test_a_cache_key_keeps_what_parse_reads() -> None:
    """Op, hardware type and length, the client MAC, sname and file (which options may
    overload), the options: each changes the key."""
    key = cache_key(DISCOVER)
    for at in (0, 1, 2, *range(28, 34), 44, 107, 108, 235, 240, len(DISCOVER) - 1):
        changed = bytearray(DISCOVER)
        changed[at] ^= 0xFF
        assert cache_key(bytes(changed)) != key, at
    assert cache_key(DISCOVER.replace(b"infusion-pump-7", b"infusion-pump-8")) != key
    assert cache_key(DISCOVER[:-1]) != key


# ---- against tshark on the shared DHCP captures -------------------------------------------

IOT_DEVICES = [
    "Aria",
    "D-LinkCam",
    "D-LinkHomeHub",
    "EdimaxCam1",
    "EdnetGateway",
    "HueBridge",
    "MAXGateway",
    "SmarterCoffee",
    "TP-LinkPlugHS110",
    "Withings",
]
DHCP_CAPTURES = [
    "arkime/wireshark-dhcp.pcap",
    "chrissanders-packets/dhcp_inlease_renewal.pcapng",
    "chrissanders-packets/dhcp_nolease_initialization.pcapng",
    *(f"iot-sentinel/{d}/Setup-A-1-STA.pcap" for d in IOT_DEVICES),
]


def tshark_dhcp(path: Path) -> dict[int, tuple[str, str, str]]:
    """frame number -> (hostname, vendor class, request list) as tshark shows them."""
    out = subprocess.run(
        [
            "tshark",
            "-r",
            str(path),
            "-Y",
            "dhcp && !icmp",  # not the copies quoted inside ICMP errors
            "-T",
            "fields",
            "-E",
            "separator=\t",
            "-e",
            "frame.number",
            "-e",
            "dhcp.option.hostname",
            "-e",
            "dhcp.option.vendor_class_id",
            "-e",
            "dhcp.option.request_list_item",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows: dict[int, tuple[str, str, str]] = {}
    for line in out.splitlines():
        number, hostname, vendor, params = line.split("\t")
        rows[int(number)] = (hostname, vendor, params)
    return rows


@pytest.mark.shared
@pytest.mark.parametrize("name", DHCP_CAPTURES)
def test_hostname_vendor_class_and_parameter_list_equal_tsharks(
    shared_pcaps: Path, name: str
) -> None:
    if shutil.which("tshark") is None:
        pytest.skip("tshark is not installed")
    path = shared_pcaps / name
    if not path.is_file():
        pytest.skip(f"{name} is not in the shared corpus")
    expected = tshark_dhcp(path)
    assert expected, "tshark found no DHCP in a capture listed as DHCP"
    packets = rdpcap(str(path))
    for number, (hostname, vendor, params) in expected.items():
        udp = packets[number - 1][UDP]
        payload = bytes(udp.payload)[: udp.len - 8]
        info = parse(payload)
        assert info is not None, f"frame {number}"
        assert (info.hostname or "", info.vendor_class or "", info.param_list) == (
            hostname,
            vendor,
            tuple(int(p) for p in params.split(",") if p),
        ), f"{name} frame {number}"
