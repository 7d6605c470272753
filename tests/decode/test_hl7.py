"""Tests for monitor.decode.hl7: hand-built messages, robustness, and a real MLLP exchange
(python-hl7) recorded by tcpdump on a standard and a non-standard port."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.decode import Malformed
from monitor.decode.hl7 import Hl7Info, looks_like, parse, parse_all
from tests.support import medical_traffic as mt
from tests.support.pcap_payloads import tcp_payloads
from tests.support.robustness import check_truncations, mutated, outcome

ORU = mt.HL7_MESSAGES[0].encode()
ADT = mt.HL7_MESSAGES[1].encode()
MLLP_ORU = b"\x0b" + ORU + b"\x1c\x0d"
SAMPLES = [MLLP_ORU, ADT, b"\x0b" + ADT + b"\x1c\x0d"]


def no_canary(info: object) -> None:
    for shown in (repr(info), str(info)):
        for canary in mt.CANARY_STRINGS:
            assert canary not in shown


def test_mllp_oru_gives_msh_fields_and_counts_patient_segments() -> None:
    info = parse(MLLP_ORU)
    assert info is not None
    assert (info.framed, info.complete) == (True, True)
    assert info.sending_application == "SNTL_MONITOR"
    assert info.sending_facility == "ICU_WARD7"
    assert info.receiving_application == "SNTL_HIS"
    assert info.receiving_facility == "CENTRAL_HOSP"
    assert info.message_type == "ORU^R01"
    assert info.version == "2.5.1"
    assert info.patient_segments == 5
    assert dict(info.segment_counts) == {"MSH": 1, "PID": 1, "PV1": 1, "OBR": 1, "OBX": 2}
    no_canary(info)


def test_bare_message_without_mllp_is_decoded() -> None:
    info = parse(ADT)
    assert info is not None
    assert (info.framed, info.message_type, info.patient_segments) == (False, "ADT^A01", 3)


def test_site_specific_separators_are_taken_from_msh1_and_msh2() -> None:
    msg = b"MSH#$!@%#LAB^X#SITE#EHR#HOSP#2026##ORU$R01$ORU_R01#1#P#2.3\rPID#1##42$$$A\r"
    info = parse(msg)
    assert info is not None
    assert (info.field_separator, info.encoding_characters) == ("#", "$!@%")
    assert info.sending_application == "LAB^X"
    assert info.message_type == "ORU^R01"
    assert info.version == "2.3"
    assert info.patient_segments == 1


def test_lf_and_crlf_segment_ends_are_tolerated() -> None:
    for sep in (b"\n", b"\r\n"):
        info = parse(ORU.replace(b"\r", sep))
        assert info is not None and info.patient_segments == 5


def test_message_cut_by_segment_boundary_is_described_as_incomplete() -> None:
    cut = MLLP_ORU[: MLLP_ORU.index(b"OBX")]
    info = parse(cut)
    assert info is not None
    assert (info.complete, info.message_type, info.patient_segments) == (False, "ORU^R01", 3)


def test_parse_all_describes_every_coalesced_mllp_frame() -> None:
    commit_ack = b"\x0b\x06\x1c\x0d"
    mllp_adt = b"\x0b" + ADT + b"\x1c\x0d"
    cut = mllp_adt[: mllp_adt.index(b"PID") + 5]
    infos = parse_all(MLLP_ORU + commit_ack + mllp_adt + cut)
    assert [i.message_type for i in infos] == ["ORU^R01", "ADT^A01", "ADT^A01"]
    assert [i.complete for i in infos] == [True, True, False]
    assert len(parse_all(MLLP_ORU + mllp_adt[:60])) == 1  # cut inside MSH: ends the list
    assert parse_all(ADT) == (parse(ADT),)
    assert parse_all(b"not hl7") == ()


def test_ack_code_is_read_from_msa() -> None:
    ack = b"\x0bMSH|^~\\&|HIS|H|MON|W|2026||ACK^R01^ACK|9|P|2.5.1\rMSA|AE|SNTL0001\r\x1c\r"
    info = parse(ack)
    assert info is not None and (info.message_type, info.ack_code) == ("ACK^R01", "AE")


def test_batch_header_before_msh_is_skipped() -> None:
    info = parse(b"FHS|^~\\&|A\rBHS|^~\\&|A\r" + ORU)
    assert info is not None and info.message_type == "ORU^R01"


def test_mllp_commit_ack_and_other_protocols_are_not_hl7() -> None:
    assert parse(b"\x0b\x06\x1c\x0d") is None
    assert parse(b"GET / HTTP/1.1\r\n\r\n") is None
    assert not looks_like(b"\x0bMS")
    assert looks_like(MLLP_ORU) and looks_like(ORU)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"MSH|^~\\&|A|B", "hl7_truncated"),
        (b"MSHa^~\\&|A|B|C|D|E|F|G|H", "hl7_bad_separators"),
        (b"MSH|ab|A|B|C|D|E|F|G|H", "hl7_bad_separators"),
        (b"BHS|^~\\&\rXYZ|1\rABC|2\rMSH|^~\\&|A|B|C|D|E|F|G|H", "hl7_no_msh"),
    ],
)
def test_broken_headers_raise_malformed_with_fixed_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(Malformed) as exc:
        parse(payload)
    assert exc.value.reason == reason


def test_every_truncation_gives_info_none_or_malformed() -> None:
    check_truncations(parse, Hl7Info, SAMPLES)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=300),
        st.binary(max_size=200).map(lambda b: b"\x0bMSH" + b),
        mutated(SAMPLES),
    )
)
def test_random_bytes_never_escape_the_contract(data: bytes) -> None:
    if outcome(parse, Hl7Info, data) == "info":
        no_canary(parse(data))
        no_canary(parse_all(data))


# ---- real MLLP exchange ---------------------------------------------------------------------


@pytest.mark.parametrize("port", [mt.HL7_STANDARD_PORT, 6661])
def test_real_mllp_exchange_decodes_by_content_on_any_port(tmp_path: Path, port: int) -> None:
    missing = mt.missing_tools()
    if missing:
        pytest.skip(f"needs {', '.join(missing)}")
    pcap = mt.capture_hl7(tmp_path, port)
    payloads = tcp_payloads(pcap)
    check_truncations(parse, Hl7Info, [p.data for p in payloads])
    infos = [parse(p.data) for p in payloads if looks_like(p.data)]
    decoded = [i for i in infos if i is not None]
    sent = [i for i in decoded if i.ack_code is None]
    acks = [i for i in decoded if i.ack_code is not None]
    assert tuple(i.message_type for i in sent) == mt.EXPECTED_HL7_MESSAGE_TYPES
    assert tuple(i.message_type for i in acks) == mt.EXPECTED_HL7_ACK_TYPES
    assert all(i.ack_code == "AA" for i in acks)
    for info in sent:
        assert (info.sending_application, info.sending_facility) == (
            mt.HL7_SENDING_APPLICATION,
            mt.HL7_SENDING_FACILITY,
        )
        assert (info.receiving_application, info.receiving_facility) == (
            mt.HL7_RECEIVING_APPLICATION,
            mt.HL7_RECEIVING_FACILITY,
        )
        assert info.version == mt.HL7_VERSION
        assert info.patient_segments == mt.EXPECTED_HL7_PATIENT_SEGMENTS[info.message_type]
    for info in acks:  # the server answers as the receiver
        assert info.sending_application == mt.HL7_RECEIVING_APPLICATION
    # The canary is on the wire, and nowhere in what the decoder says about it.
    raw = pcap.read_bytes()
    assert mt.CANARY_PATIENT_ID.encode() in raw and b"CANARYZZ" in raw
    for info in decoded:
        no_canary(info)
    if shutil.which("tshark") is not None:
        # Wireshark's HL7 dissector summarises each message as "ORU (R01)".
        cmd = ["tshark", "-r", str(pcap), "-d", f"tcp.port=={port},hl7", "-Y", "hl7"]
        cmd += ["-T", "fields", "-e", "_ws.col.Info"]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        shown = [line.replace(" (", "^").rstrip(")") for line in out.split("\n") if line]
        assert shown == [i.message_type for i in decoded]
