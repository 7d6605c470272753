"""DICOM: an imaging modality storing images on a PACS (pynetdicom + pydicom).

The modality associates with the PACS, verifies it (C-ECHO) and sends freshly generated
images (C-STORE) of a canary patient, then releases — at a steady cadence. The PACS accepts
storage, verification and patient-root C-FIND from any calling AE title (like many real
ones), which is what a harvesting client abuses (``find``).

Config: server ``ae_title``, ``port``; client ``server`` (name), ``port``, ``calling_ae``,
``called_ae``, ``every``, ``images``, ``image_size``, ``modality``, ``implementation_uid``,
``implementation_version``, ``dns_server``; find ``server``, ``port``, ``calling_ae``,
``called_ae``.
"""

from __future__ import annotations

import logging
import random
import sys
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE, evt
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    CTImageStorage,
    MRImageStorage,
    PatientRootQueryRetrieveInformationModelFind,
    SecondaryCaptureImageStorage,
    UltrasoundImageStorage,
    Verification,
)

from monitor.lab.agent import CANARY_PATIENTS, Config, cadence, patient, resolve

SOP_OF_MODALITY = {
    "CT": CTImageStorage,
    "MR": MRImageStorage,
    "US": UltrasoundImageStorage,
}

# pynetdicom logs dataset summaries at debug level; keep its logger quiet.
logging.getLogger("pynetdicom").setLevel(logging.WARNING)


def make_image(modality: str, size: int, bed: int, study_uid: str, series_uid: str) -> Dataset:
    """A small 16-bit monochrome image of the canary patient ``bed``, ready to C-STORE."""
    p = patient(bed)
    sop_class = SOP_OF_MODALITY.get(modality, SecondaryCaptureImageStorage)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.PatientName = f"{p['family']}^{p['given']}"
    ds.PatientID = p["mrn"]
    ds.PatientBirthDate = p["dob"]
    ds.PatientSex = "O"
    ds.AccessionNumber = f"CNRYACC{bed:04d}"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.StudyDate = time.strftime("%Y%m%d")
    ds.StudyTime = time.strftime("%H%M%S")
    ds.Modality = modality
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.Rows = size
    ds.Columns = size
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    yy, xx = np.mgrid[0:size, 0:size]
    phantom = ((xx - size / 2) ** 2 + (yy - size / 2) ** 2 < (size / 3) ** 2) * 1000
    noise = np.random.default_rng().integers(0, 60, (size, size))
    ds.PixelData = (phantom + noise).astype("<u2").tobytes()
    return ds


def _ae(cfg: Config, title: str) -> AE:
    ae = AE(ae_title=title)
    if cfg.get("implementation_uid"):
        ae.implementation_class_uid = cfg["implementation_uid"]
    if cfg.get("implementation_version"):
        ae.implementation_version_name = cfg["implementation_version"]
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 15
    return ae


def serve(cfg: Config) -> None:
    """The PACS: storage, verification and C-FIND SCP on ``port``, for any calling AE."""
    ae = _ae(cfg, str(cfg.get("ae_title", "PACS")))
    for context in SOP_OF_MODALITY.values():
        ae.add_supported_context(context, ExplicitVRLittleEndian)
        ae.add_supported_context(context)
    ae.add_supported_context(SecondaryCaptureImageStorage)
    ae.add_supported_context(Verification)
    ae.add_supported_context(PatientRootQueryRetrieveInformationModelFind)

    def on_store(event: Any) -> int:
        return 0x0000  # stored (the lab keeps nothing)

    def on_find(event: Any) -> Iterator[tuple[int, Dataset | None]]:
        for p in CANARY_PATIENTS:
            match = Dataset()
            match.QueryRetrieveLevel = "PATIENT"
            match.PatientName = f"{p['family']}^{p['given']}"
            match.PatientID = p["mrn"]
            match.PatientBirthDate = p["dob"]
            yield 0xFF00, match
        yield 0x0000, None

    handlers: list[Any] = [(evt.EVT_C_STORE, on_store), (evt.EVT_C_FIND, on_find)]
    address = (str(cfg.get("bind", "0.0.0.0")), int(cfg.get("port", 104)))
    ae.start_server(address, evt_handlers=handlers, block=True)


def client(cfg: Config) -> None:
    """The modality: associate, C-ECHO, C-STORE ``images`` new images, release; repeat."""
    modality = str(cfg.get("modality", "CT"))
    ae = _ae(cfg, str(cfg["calling_ae"]))
    ae.add_requested_context(Verification)
    ae.add_requested_context(SOP_OF_MODALITY.get(modality, SecondaryCaptureImageStorage))
    count = int(cfg.get("images", 1))
    size = int(cfg.get("image_size", 64))
    bed = random.randrange(len(CANARY_PATIENTS))

    def study() -> None:
        nonlocal bed
        address = resolve(cfg, str(cfg["server"]))
        assoc = ae.associate(address, int(cfg.get("port", 104)), ae_title=cfg["called_ae"])
        if not assoc.is_established:
            raise ConnectionError("association refused")
        try:
            assoc.send_c_echo()
            study_uid, series_uid = generate_uid(), generate_uid()
            for _ in range(count):
                status = assoc.send_c_store(make_image(modality, size, bed, study_uid, series_uid))
                if not status or status.Status != 0:
                    print("store not accepted", file=sys.stderr, flush=True)
        finally:
            assoc.release()
        bed += 1

    cadence(float(cfg["every"]), study, first=float(cfg.get("first", 0.0)))


def find(cfg: Config) -> int:
    """One patient-root C-FIND for every patient (``*``): what a harvesting client does."""
    ae = _ae(cfg, str(cfg["calling_ae"]))
    ae.add_requested_context(PatientRootQueryRetrieveInformationModelFind)
    assoc = ae.associate(str(cfg["server"]), int(cfg.get("port", 104)), ae_title=cfg["called_ae"])
    if not assoc.is_established:
        return 1
    query = Dataset()
    query.QueryRetrieveLevel = "PATIENT"
    query.PatientName = "*"
    query.PatientID = ""
    query.PatientBirthDate = ""
    matches = 0
    try:
        for status, _identifier in assoc.send_c_find(
            query, PatientRootQueryRetrieveInformationModelFind
        ):
            if status and status.Status in (0xFF00, 0xFF01):
                matches += 1
    finally:
        assoc.release()
    print(f"c-find matches: {matches}", flush=True)
    return 0
