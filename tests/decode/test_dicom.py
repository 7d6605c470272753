"""Tests for monitor.decode.dicom: PDUs encoded by pynetdicom and pydicom, robustness, and a
real pynetdicom association (C-ECHO, C-STORE) recorded by tcpdump on a standard and a
non-standard port."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset
from pynetdicom import pdu, pdu_primitives
from pynetdicom.dsutils import encode
from pynetdicom.presentation import build_context

from monitor.decode import Malformed
from monitor.decode.dicom import PDU_TYPES, DicomInfo, DimseCommand, looks_like, parse
from tests.support import medical_traffic as mt
from tests.support.pcap_payloads import tcp_payloads
from tests.support.robustness import check_truncations, mutated, outcome
from tests.support.tcpdump import recording

DCMTK_UID = "1.2.276.0.7230010.3.0.3.6.4"


def associate_rq() -> bytes:
    prim = pdu_primitives.A_ASSOCIATE()
    prim.application_context_name = "1.2.840.10008.3.1.1.1"
    prim.calling_ae_title = "ECHOSCU"
    prim.called_ae_title = "ANY-SCP"
    contexts = []
    for number, uid in enumerate((mt.VERIFICATION_SOP_CLASS, mt.CT_IMAGE_STORAGE)):
        context = build_context(uid)
        context.context_id = 2 * number + 1
        contexts.append(context)
    prim.presentation_context_definition_list = contexts
    max_length = pdu_primitives.MaximumLengthNotification()
    max_length.maximum_length_received = 16384
    impl = pdu_primitives.ImplementationClassUIDNotification()
    impl.implementation_class_uid = DCMTK_UID
    version = pdu_primitives.ImplementationVersionNameNotification()
    version.implementation_version_name = "OFFIS_DCMTK_364"
    identity = pdu_primitives.UserIdentityNegotiation()
    identity.user_identity_type = 2
    identity.primary_field = b"radiographer"
    identity.secondary_field = b"s3cret-pw"
    prim.user_information = [max_length, impl, version, identity]
    rq = pdu.A_ASSOCIATE_RQ()
    rq.from_primitive(prim)
    return bytes(rq.encode())


def command_set(field: int, sop_class: str, status: int | None = None) -> bytes:
    ds = Dataset()
    ds.AffectedSOPClassUID = sop_class
    ds.CommandField = field
    ds.MessageIDBeingRespondedTo = 1
    ds.CommandDataSetType = 0x0101
    if status is not None:
        ds.Status = status
    body = encode(ds, True, True)
    assert body is not None
    return bytes(body)


def pdata(*pdvs: tuple[int, int, bytes]) -> bytes:
    """A P-DATA-TF PDU of (context id, control header, fragment) PDVs."""
    items = b"".join(struct.pack(">IBB", len(f) + 2, cid, ctl) + f for cid, ctl, f in pdvs)
    return struct.pack(">BBI", 4, 0, len(items)) + items


def canary_dataset_bytes() -> bytes:
    ds = Dataset()
    ds.PatientName = mt.CANARY_PATIENT_NAME
    ds.PatientID = mt.CANARY_PATIENT_ID
    body = encode(ds, True, True)
    assert body is not None
    return bytes(body)


ASSOC_RQ = associate_rq()
STORE_RQ = pdata((3, 0x03, command_set(0x0001, mt.CT_IMAGE_STORAGE)), (3, 0x02, b"\x00" * 40))
SAMPLES = [
    ASSOC_RQ,
    STORE_RQ,
    bytes.fromhex("03000000000400010107"),
    bytes.fromhex("05000000000400000000"),
]


def no_canary(info: object) -> None:
    for shown in (repr(info), str(info)):
        for canary in (*mt.CANARY_STRINGS, "radiographer", "s3cret"):
            assert canary not in shown


def test_associate_request_gives_ae_titles_syntaxes_and_implementation() -> None:
    info = parse(ASSOC_RQ)
    assert info is not None
    assert info.pdu_types == ("A-ASSOCIATE-RQ",)
    assert (info.calling_ae, info.called_ae) == ("ECHOSCU", "ANY-SCP")
    assert info.application_context == "1.2.840.10008.3.1.1.1"
    assert info.abstract_syntaxes == mt.EXPECTED_DICOM_SOP_CLASSES
    assert (info.implementation_class_uid, info.implementation_version) == (
        DCMTK_UID,
        "OFFIS_DCMTK_364",
    )
    no_canary(info)  # the user identity (name, password) is never read


def test_command_pdv_gives_dimse_name_and_sop_class_but_dataset_is_skipped() -> None:
    info = parse(STORE_RQ)
    assert info is not None
    assert info.commands == (DimseCommand("C-STORE-RQ", mt.CT_IMAGE_STORAGE, None),)


def test_responses_carry_status() -> None:
    info = parse(pdata((1, 0x03, command_set(0x8030, mt.VERIFICATION_SOP_CLASS, 0xA700))))
    assert info is not None
    assert info.commands == (DimseCommand("C-ECHO-RSP", mt.VERIFICATION_SOP_CLASS, 0xA700),)


@pytest.mark.parametrize(
    ("field", "name"),
    [(0x0020, "C-FIND-RQ"), (0x8021, "C-MOVE-RSP"), (0x0FFF, "C-CANCEL-RQ"), (0x1234, "UNKNOWN")],
)
def test_command_field_names(field: int, name: str) -> None:
    info = parse(pdata((1, 0x03, command_set(field, "1.2.3"))))
    assert info is not None and info.commands[0].command == name


def test_dataset_pdv_is_never_read_even_when_it_looks_like_a_command() -> None:
    disguised = command_set(0x0001, "1.2.3") + canary_dataset_bytes()
    info = parse(pdata((1, 0x02, disguised)))
    assert info is not None and info.commands == ()
    no_canary(info)


def test_reject_abort_and_several_pdus_in_one_segment() -> None:
    rj = parse(bytes.fromhex("03000000000400010107"))
    assert rj is not None and rj.reject == (1, 1, 7)
    both = parse(bytes.fromhex("06000000000400000000" + "07000000000400000200"))
    assert both is not None
    assert both.pdu_types == ("A-RELEASE-RP", "A-ABORT") and both.abort == (2, 0)


def test_pdata_longer_than_the_segment_is_read_as_far_as_it_goes() -> None:
    big = pdata((1, 0x03, command_set(0x0001, mt.CT_IMAGE_STORAGE)), (1, 0x00, b"\x00" * 5000))
    info = parse(big[:1000])
    assert info is not None and info.commands[0].command == "C-STORE-RQ"


def test_truncated_association_request_is_malformed() -> None:
    with pytest.raises(Malformed) as exc:
        parse(ASSOC_RQ[:200])
    assert exc.value.reason == "dicom_truncated"


def test_other_protocols_are_not_dicom() -> None:
    assert parse(b"GET / HTTP/1.1\r\n\r\n") is None
    assert parse(b"\x0bMSH|^~\\&|") is None
    assert not looks_like(b"\x01\x00\x00\x00\x00\x10\x00\x02" + b"\x00" * 80)  # version 2
    assert looks_like(ASSOC_RQ) and looks_like(STORE_RQ)


def test_every_truncation_gives_info_none_or_malformed() -> None:
    check_truncations(parse, DicomInfo, SAMPLES)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=300),
        st.binary(max_size=300).map(lambda b: b"\x04\x00\x00\x00\x01\x00" + b),
        mutated(SAMPLES),
    )
)
def test_random_bytes_never_escape_the_contract(data: bytes) -> None:
    outcome(parse, DicomInfo, data)


# ---- real pynetdicom association --------------------------------------------------------------


@pytest.mark.parametrize("port", [mt.DICOM_STANDARD_PORT, 4100])
def test_real_association_decodes_by_content_on_any_port(tmp_path: Path, port: int) -> None:
    missing = mt.missing_tools()
    if missing:
        pytest.skip(f"needs {', '.join(missing)}")
    pcap = mt.capture_dicom(tmp_path, port)
    payloads = tcp_payloads(pcap)
    check_truncations(parse, DicomInfo, [p.data for p in payloads])
    infos = [parse(p.data) for p in payloads if looks_like(p.data)]
    decoded = [i for i in infos if i is not None]
    kinds = [k for i in decoded for k in i.pdu_types]
    assert kinds[:2] == ["A-ASSOCIATE-RQ", "A-ASSOCIATE-AC"]
    assert kinds[-2:] == ["A-RELEASE-RQ", "A-RELEASE-RP"]
    request = decoded[0]
    assert (request.calling_ae, request.called_ae) == (mt.DICOM_SCU_AE, mt.DICOM_SCP_AE)
    assert request.abstract_syntaxes == mt.EXPECTED_DICOM_SOP_CLASSES
    assert (
        request.implementation_class_uid,
        request.implementation_version,
    ) == mt.expected_dicom_implementation()
    accept = decoded[1]
    assert (accept.calling_ae, accept.called_ae) == (mt.DICOM_SCU_AE, mt.DICOM_SCP_AE)
    commands = [c for i in decoded for c in i.commands]
    assert tuple(c.command for c in commands) == mt.EXPECTED_DICOM_COMMANDS
    assert [c.sop_class_uid for c in commands] == [
        mt.VERIFICATION_SOP_CLASS,
        mt.VERIFICATION_SOP_CLASS,
        mt.CT_IMAGE_STORAGE,
        mt.CT_IMAGE_STORAGE,
    ]
    assert [c.status for c in commands if c.command.endswith("RSP")] == [0, 0]
    raw = pcap.read_bytes()
    assert mt.CANARY_PATIENT_ID.encode() in raw and b"CANARYZZ" in raw
    for info in decoded:
        no_canary(info)
    if shutil.which("tshark") is not None:
        assert_equals_tshark(pcap, port)


def assert_equals_tshark(pcap: Path, port: int) -> None:
    """PDU types, AE titles, abstract syntaxes, implementation and DIMSE commands per frame
    equal what Wireshark's DICOM dissector shows."""
    cmd = ["tshark", "-r", str(pcap), "-d", f"tcp.port=={port},dicom", "-Y", "dicom"]
    cmd += ["-T", "fields", "-E", "separator=\t"]
    for field in ("frame.number", "dicom.pdu.type", "dicom.assoc.ae.called"):
        cmd += ["-e", field]
    for field in ("dicom.assoc.ae.calling", "dicom.pctx.abss.syntax", "dicom.userinfo.uid"):
        cmd += ["-e", field]
    cmd += ["-e", "dicom.userinfo.version", "-e", "_ws.col.Info"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rows = [line.split("\t") for line in out.split("\n") if line]
    assert len(rows) >= 8
    payloads = {p.frame: p.data for p in tcp_payloads(pcap)}
    for number, pdu_type, called, calling, syntaxes, impl_uid, impl_version, column in rows:
        info = parse(payloads[int(number)])
        assert info is not None, number
        assert PDU_TYPES[int(pdu_type, 16)] == info.pdu_types[0]
        if info.pdu_types[0] in ("A-ASSOCIATE-RQ", "A-ASSOCIATE-AC"):
            assert (info.called_ae, info.calling_ae) == (called.strip(), calling.strip())
            # tshark shows "Name (UID)"; keep the UID
            uids = tuple(s.rsplit("(", 1)[-1].rstrip(")") for s in syntaxes.split(",") if s)
            assert info.abstract_syntaxes == uids
            assert (info.implementation_class_uid, info.implementation_version) == (
                impl_uid,
                impl_version,
            )
        for command in info.commands:
            assert f"{command.command} " in column, column


def test_nmap_dicom_ping_is_seen_as_echoscu_to_any_scp(tmp_path: Path) -> None:
    """The recon signature of the research notes: nmap's dicom-ping associates as ECHOSCU."""
    for tool in ("nmap", "tcpdump"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    from pynetdicom import AE
    from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

    scp = AE(ae_title="ANY-SCP")
    scp.add_supported_context(Verification)
    scp.require_called_aet = False
    port = 2345  # dicom-ping runs only on the ports it believes DICOM: 104, 2345, 4242, 11112...
    with recording(tmp_path / "nmap.pcap", port) as pcap:
        server = scp.start_server(("127.0.0.1", port), block=False)
        try:
            subprocess.run(
                [
                    "nmap",
                    "-n",
                    "-Pn",
                    "-sT",
                    "-p",
                    str(port),
                    "--script",
                    "dicom-ping",
                    "127.0.0.1",
                ],
                capture_output=True,
                timeout=120,
                check=True,
            )
        finally:
            if server is not None:
                server.shutdown()
    requests = [
        info
        for p in tcp_payloads(pcap)
        if looks_like(p.data) and (info := parse(p.data)) is not None
        if "A-ASSOCIATE-RQ" in info.pdu_types
    ]
    assert requests, "nmap sent no association request"
    assert (requests[0].calling_ae, requests[0].called_ae) == ("ECHOSCU", "ANY-SCP")
    assert requests[0].abstract_syntaxes == (mt.VERIFICATION_SOP_CLASS,)
