"""Real HL7 and DICOM traffic on loopback, recorded by tcpdump, for decoder and end-to-end tests.

``capture_hl7(out_dir, port)`` runs an MLLP exchange with python-hl7 (an asyncio MLLP server
that answers every message with the ACK python-hl7 builds, and a client sending an ORU^R01 and
an ADT^A01 about a synthetic *canary* patient). ``capture_dicom(out_dir, port)`` runs
pynetdicom: a storage SCP and an SCU that associates, sends C-ECHO and C-STORE of a generated
CT image of the same canary patient, and releases. Both return the pcap that
``tcpdump -i lo`` wrote, filtered on the port.

The canary constants let a test prove that the patient's name and ID are in the capture but
in no output; the ``EXPECTED_*`` constants are the metadata a decoder must find.
``missing_tools()`` names what is absent so a test can skip with a clear message;
``recording`` (from ``tests.support.tcpdump``) is re-exported for other loopback captures.
"""

from __future__ import annotations

import asyncio
import importlib.util
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from tests.support.tcpdump import recording

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

CANARY_PATIENT_NAME = "CANARYZZ^QUENTIN"
CANARY_PATIENT_ID = "SNTL-CANARY-8841"
CANARY_BIRTH_DATE = "19470229"  # not a real date: it cannot belong to anyone
CANARY_STRINGS = (CANARY_PATIENT_NAME, "CANARYZZ", CANARY_PATIENT_ID, CANARY_BIRTH_DATE)

# --- HL7 -------------------------------------------------------------------------------------
HL7_SENDING_APPLICATION = "SNTL_MONITOR"
HL7_SENDING_FACILITY = "ICU_WARD7"
HL7_RECEIVING_APPLICATION = "SNTL_HIS"
HL7_RECEIVING_FACILITY = "CENTRAL_HOSP"
HL7_VERSION = "2.5.1"

_MSH = (
    f"MSH|^~\\&|{HL7_SENDING_APPLICATION}|{HL7_SENDING_FACILITY}|{HL7_RECEIVING_APPLICATION}|"
    f"{HL7_RECEIVING_FACILITY}|20261204101500||{{type}}|{{control}}|P|{HL7_VERSION}"
)
_PID = f"PID|1||{CANARY_PATIENT_ID}^^^SNTL^MR||{CANARY_PATIENT_NAME}||{CANARY_BIRTH_DATE}|F"
HL7_MESSAGES: tuple[str, ...] = (
    "\r".join(
        [
            _MSH.format(type="ORU^R01^ORU_R01", control="SNTL0001"),
            _PID,
            "PV1|1|I|ICU^07^B",
            "OBR|1||SNTL-OBS-1|8867-4^Heart rate^LN",
            "OBX|1|NM|8867-4^Heart rate^LN||72|/min|||||F",
            "OBX|2|NM|2708-6^SpO2^LN||97|%|||||F",
        ]
    ),
    "\r".join(
        [
            _MSH.format(type="ADT^A01^ADT_A01", control="SNTL0002"),
            "EVN|A01|20261204101500",
            _PID,
            f"NK1|1|{CANARY_PATIENT_NAME}|SPO",
            "PV1|1|I|ICU^07^B",
        ]
    ),
)
# What a decoder must report for the messages above, in order, then for the two ACKs.
EXPECTED_HL7_MESSAGE_TYPES = ("ORU^R01", "ADT^A01")
EXPECTED_HL7_ACK_TYPES = ("ACK^R01", "ACK^A01")
EXPECTED_HL7_PATIENT_SEGMENTS = {"ORU^R01": 5, "ADT^A01": 3}  # PID PV1 OBR OBX OBX / PID NK1 PV1
# The same, in the form of monitor.facts values ('MSH-3^MSH-4'), for end-to-end tests.
EXPECTED_HL7_SENDING_FACT = f"{HL7_SENDING_APPLICATION}^{HL7_SENDING_FACILITY}"
EXPECTED_HL7_RECEIVING_FACT = f"{HL7_RECEIVING_APPLICATION}^{HL7_RECEIVING_FACILITY}"
HL7_STANDARD_PORT = 2575

# --- DICOM -----------------------------------------------------------------------------------
DICOM_SCU_AE = "SNTL_MODALITY"
DICOM_SCP_AE = "SNTL_PACS"
VERIFICATION_SOP_CLASS = "1.2.840.10008.1.1"
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
EXPECTED_DICOM_SOP_CLASSES = (VERIFICATION_SOP_CLASS, CT_IMAGE_STORAGE)
EXPECTED_DICOM_COMMANDS = ("C-ECHO-RQ", "C-ECHO-RSP", "C-STORE-RQ", "C-STORE-RSP")
DICOM_STANDARD_PORT = 104


def expected_dicom_implementation() -> tuple[str, str]:
    """Implementation class UID and version name that pynetdicom announces (both sides)."""
    import pynetdicom

    return (
        str(pynetdicom.PYNETDICOM_IMPLEMENTATION_UID),
        str(pynetdicom.PYNETDICOM_IMPLEMENTATION_VERSION),
    )


def expected_dicom_implementation_fact() -> str:
    """The ``dicom_implementation`` fact value: 'UID|NAME'."""
    return "|".join(expected_dicom_implementation())


_TIMEOUT = 20.0
__all__ = ["capture_dicom", "capture_hl7", "missing_tools", "recording"]


def missing_tools() -> list[str]:
    """What this module needs and cannot find: empty when every capture can run."""
    missing = [tool for tool in ("tcpdump",) if shutil.which(tool) is None]
    for module in ("hl7", "pynetdicom", "pydicom"):
        if importlib.util.find_spec(module) is None:
            missing.append(f"python package {module}")
    return missing


async def _hl7_exchange(port: int) -> list[str]:
    import hl7
    import hl7.mllp

    async def answer(reader: hl7.mllp.HL7StreamReader, writer: hl7.mllp.HL7StreamWriter) -> None:
        try:
            while not reader.at_eof():
                message = await reader.readmessage()
                writer.writemessage(message.create_ack())
                await writer.drain()
        except asyncio.IncompleteReadError:
            pass
        finally:
            writer.close()

    server = await hl7.mllp.start_hl7_server(answer, host="127.0.0.1", port=port)
    acks: list[str] = []
    try:
        reader, writer = await hl7.mllp.open_hl7_connection("127.0.0.1", port)
        for text in HL7_MESSAGES:
            writer.writemessage(hl7.parse(text))
            await writer.drain()
            ack = await asyncio.wait_for(reader.readmessage(), _TIMEOUT)
            acks.append(str(ack.segment("MSA")[1]))
        writer.close()
        await writer.wait_closed()
    finally:
        server.close()
        await server.wait_closed()
    return acks


def capture_hl7(out_dir: Path, port: int = HL7_STANDARD_PORT) -> Path:
    """Run the MLLP exchange on 127.0.0.1:``port`` and return the pcap of it."""
    pcap = Path(out_dir) / f"hl7-{port}.pcap"
    with recording(pcap, port):
        acks = asyncio.run(asyncio.wait_for(_hl7_exchange(port), _TIMEOUT))
    if acks != ["AA"] * len(HL7_MESSAGES):
        raise RuntimeError(f"the MLLP server did not accept every message: {acks}")
    return pcap


def canary_dataset() -> Dataset:
    """A small CT image of the canary patient, ready for C-STORE (a pydicom Dataset)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(CT_IMAGE_STORAGE)
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CT_IMAGE_STORAGE
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientName = CANARY_PATIENT_NAME
    ds.PatientID = CANARY_PATIENT_ID
    ds.PatientBirthDate = CANARY_BIRTH_DATE
    ds.Modality = "CT"
    ds.Rows = ds.Columns = 8
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelRepresentation = 0
    ds.PixelData = bytes(range(128))
    return ds


def capture_dicom(out_dir: Path, port: int = DICOM_STANDARD_PORT) -> Path:
    """Run association, C-ECHO, C-STORE and release on 127.0.0.1:``port``; return the pcap."""
    from pynetdicom import AE, evt
    from pynetdicom.sop_class import CTImageStorage, Verification  # type: ignore[attr-defined]

    stored: list[str] = []

    def on_store(event: evt.Event) -> int:
        stored.append(str(event.dataset.PatientID == CANARY_PATIENT_ID))
        return 0x0000

    scp = AE(ae_title=DICOM_SCP_AE)
    scp.add_supported_context(Verification)
    scp.add_supported_context(CTImageStorage)
    pcap = Path(out_dir) / f"dicom-{port}.pcap"
    with recording(pcap, port):
        server = scp.start_server(
            ("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_STORE, on_store)]
        )
        if server is None:
            raise RuntimeError("the DICOM storage SCP did not start")
        try:
            scu = AE(ae_title=DICOM_SCU_AE)
            scu.add_requested_context(Verification)
            scu.add_requested_context(CTImageStorage)
            assoc = scu.associate("127.0.0.1", port, ae_title=DICOM_SCP_AE)
            if not assoc.is_established:
                raise RuntimeError("the DICOM association was not established")
            echo = assoc.send_c_echo()
            store = assoc.send_c_store(canary_dataset())
            assoc.release()
        finally:
            server.shutdown()
    if echo.Status != 0 or store.Status != 0 or stored != ["True"]:
        raise RuntimeError("the DICOM exchange did not complete")
    return pcap
