"""Generated DICOM images: valid datasets of a canary patient that pydicom can write and read."""

from __future__ import annotations

from pathlib import Path

from pydicom import dcmread
from pydicom.uid import generate_uid

from monitor.lab.agent import CANARY_FAMILY
from monitor.lab.dicom import SOP_OF_MODALITY, make_image


def test_a_generated_image_round_trips_through_a_dicom_file(tmp_path: Path) -> None:
    study, series = generate_uid(), generate_uid()
    image = make_image("CT", 32, 2, study, series)
    image.save_as(tmp_path / "ct.dcm", enforce_file_format=True)
    back = dcmread(tmp_path / "ct.dcm")
    assert back.SOPClassUID == SOP_OF_MODALITY["CT"]
    assert str(back.PatientName).startswith(f"{CANARY_FAMILY}^")
    assert back.PatientID.startswith("CNRY-")
    assert back.pixel_array.shape == (32, 32)
    assert (back.StudyInstanceUID, back.SeriesInstanceUID) == (study, series)


def test_each_image_is_a_new_instance() -> None:
    study, series = generate_uid(), generate_uid()
    first = make_image("MR", 16, 0, study, series)
    second = make_image("MR", 16, 0, study, series)
    assert first.SOPInstanceUID != second.SOPInstanceUID
