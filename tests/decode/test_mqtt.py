"""Tests for monitor.decode.mqtt: CONNECT packets from paho-mqtt to a mosquitto broker on
loopback (MQTT 3.1, 3.1.1 and 5 with properties) recorded by tcpdump and checked against
tshark, hand-built packets, and robustness."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.decode import Malformed
from monitor.decode.mqtt import MqttInfo, looks_like, parse
from tests.support.pcap_payloads import tcp_payloads
from tests.support.robustness import check_truncations, mutated, outcome
from tests.support.tcpdump import recording


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def utf8(text: str) -> bytes:
    raw = text.encode()
    return len(raw).to_bytes(2, "big") + raw


def connect(level: int, client_id: str, flags: int = 0x02, properties: bytes = b"") -> bytes:
    name = utf8("MQIsdp" if level == 3 else "MQTT")
    variable = name + bytes([level, flags]) + (60).to_bytes(2, "big")
    if level == 5:
        variable += varint(len(properties)) + properties
    body = variable + utf8(client_id)
    if flags & 0x80:
        body += utf8("nurse-station")
    if flags & 0x40:
        body += utf8("hunter2")
    return b"\x10" + varint(len(body)) + body


# A user property pair of 200 bytes makes the property length a two-byte varint.
LONG_PROPS = b"\x11\x00\x00\x0e\x10" + b"\x26" + utf8("site") + utf8("x" * 200)
V5 = connect(5, "pump-17", flags=0xC2, properties=LONG_PROPS)
SAMPLES = [connect(3, "a"), connect(4, "vitals-bridge"), V5]


def test_v5_properties_with_multibyte_length_are_skipped() -> None:
    assert len(LONG_PROPS) > 127
    assert parse(V5) == MqttInfo(
        protocol_name="MQTT",
        protocol_level=5,
        client_id="pump-17",
        keep_alive=60,
        clean_start=True,
        will=False,
        username=True,
        password=True,
    )
    assert "hunter2" not in repr(parse(V5)) and "nurse" not in repr(parse(V5))


def test_v31_and_v311() -> None:
    old = parse(connect(3, "legacy"))
    assert old is not None and (old.protocol_name, old.protocol_level) == ("MQIsdp", 3)
    new = parse(connect(4, ""))
    assert new is not None and (new.protocol_level, new.client_id) == (4, "")


def test_other_packets_are_not_connects() -> None:
    assert parse(b"\x30\x05\x00\x01tab") is None  # PUBLISH
    assert parse(b"\x20\x02\x00\x00") is None  # CONNACK
    assert parse(b"\x10\x05\x00\x03abc") is None
    assert looks_like(V5)


def test_reserved_flag_and_truncation_are_malformed() -> None:
    with pytest.raises(Malformed) as exc:
        parse(connect(4, "x", flags=0x03))
    assert exc.value.reason == "mqtt_bad_flags"
    with pytest.raises(Malformed) as exc:
        parse(V5[:-30])
    assert exc.value.reason == "mqtt_truncated"


def test_every_truncation_gives_info_none_or_malformed() -> None:
    check_truncations(parse, MqttInfo, SAMPLES)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=300),
        st.binary(max_size=300).map(lambda b: b"\x10\x80\x01\x00\x04MQTT\x05" + b),
        mutated(SAMPLES),
    )
)
def test_random_bytes_never_escape_the_contract(data: bytes) -> None:
    outcome(parse, MqttInfo, data)


# ---- paho-mqtt against mosquitto ----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def paho_connects(port: int) -> None:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 300
    props.UserProperty = [("ward", "icu-7"), ("bed", "b" * 150)]
    for protocol, client_id in (
        (mqtt.MQTTv31, "legacy-gw"),
        (mqtt.MQTTv311, "vitals-bridge"),
        (mqtt.MQTTv5, "pump-17"),
    ):
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id, protocol=protocol)
        client.username_pw_set("nurse-station", "hunter2")
        if protocol == mqtt.MQTTv5:
            client.connect("127.0.0.1", port, keepalive=30, properties=props)
        else:
            client.connect("127.0.0.1", port, keepalive=30)
        client.loop_start()
        deadline = time.monotonic() + 5
        while not client.is_connected() and time.monotonic() < deadline:
            time.sleep(0.02)
        client.disconnect()
        client.loop_stop()


def test_paho_connects_to_mosquitto_equal_tsharks_dissection(tmp_path: Path) -> None:
    for tool in ("mosquitto", "tcpdump", "tshark"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    port = free_port()
    config = tmp_path / "mosquitto.conf"
    config.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n")
    broker = subprocess.Popen(
        ["mosquitto", "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        with recording(tmp_path / "mqtt.pcap", port, check_free=False) as pcap:
            paho_connects(port)
    finally:
        broker.terminate()
        broker.wait(timeout=10)

    cmd = ["tshark", "-r", str(pcap), "-d", f"tcp.port=={port},mqtt", "-Y", "mqtt.msgtype == 1"]
    cmd += ["-T", "fields", "-E", "separator=\t", "-e", "frame.number", "-e", "mqtt.protoname"]
    cmd += ["-e", "mqtt.ver", "-e", "mqtt.clientid", "-e", "mqtt.kalive"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rows = [line.split("\t") for line in out.split("\n") if line]
    payloads = {p.frame: p.data for p in tcp_payloads(pcap)}
    check_truncations(parse, MqttInfo, list(payloads.values()))
    seen = []
    for number, name, level, client_id, keep_alive in rows:
        info = parse(payloads[int(number)])
        assert info is not None
        assert (info.protocol_name, info.protocol_level, info.client_id, info.keep_alive) == (
            name,
            int(level),
            client_id,
            int(keep_alive),
        )
        assert info.username and info.password and "hunter2" not in repr(info)
        seen.append((info.protocol_level, info.client_id))
    assert seen == [(3, "legacy-gw"), (4, "vitals-bridge"), (5, "pump-17")]
