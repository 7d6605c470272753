"""``santinel analyze``: every shared capture without a traceback, unsupported and broken
files named in one line each, JSON and table output, medical metadata without patient data."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tests.conftest import run_santinel
from tests.support.packets import write_capture


def test_every_shared_capture_is_read_without_a_traceback(shared_pcaps: Path) -> None:
    with (shared_pcaps / "MANIFEST.tsv").open() as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    captures = [str(shared_pcaps / r["path"]) for r in rows]
    result = run_santinel("analyze", "--format", "json", *captures, timeout=900)
    assert "Traceback" not in result.stderr
    unsupported = {r["path"] for r in rows if r["linktype"] == "Nordic BLE"}
    reported = [line for line in result.stderr.splitlines() if "unsupported link type" in line]
    assert len(reported) == len(unsupported)
    assert all("272" in line for line in reported)
    assert result.returncode == 2
    record = json.loads(result.stdout)
    errors = {c["file"]: c["error"] for c in record["captures"]}
    assert {f for f, e in errors.items() if e} == {str(shared_pcaps / p) for p in unsupported}
    assert record["summary"]["devices"] > 100


def test_a_broken_file_is_named_and_the_others_still_count(tmp_path: Path) -> None:
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether

    good = write_capture(
        tmp_path / "good.pcap",
        [Ether(src="00:09:fb:00:00:01") / IP(src="10.0.0.5", dst="10.0.0.9") / UDP(dport=53)],
    )
    garbage = tmp_path / "garbage.pcap"
    garbage.write_bytes(b"this is not a capture at all" * 10)
    truncated = tmp_path / "truncated.pcap"
    truncated.write_bytes(good.read_bytes()[:-5])
    result = run_santinel("analyze", "--format", "json", str(garbage), str(good), str(truncated))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2
    assert str(garbage) in lines[0] and "Traceback" not in result.stderr
    assert str(truncated) in lines[1]
    record = json.loads(result.stdout)
    assert [d["id"] for d in record["devices"]] == ["00:09:fb:00:00:01"]
    assert record["devices"][0]["vendor"] == "Philips Patient Monitoring"


def test_table_output_lists_devices_and_a_summary(shared_pcaps: Path) -> None:
    capture = shared_pcaps / "iot-sentinel/HueBridge/Setup-A-1-STA.pcap"
    result = run_santinel("analyze", str(capture))
    assert result.returncode == 0
    assert result.stdout.splitlines()[0].startswith("DEVICE")
    assert "00:17:88:" in result.stdout  # Philips Lighting's OUI
    assert "packets" in result.stdout.splitlines()[-2]


def test_missing_file_is_bad_input(tmp_path: Path) -> None:
    result = run_santinel("analyze", str(tmp_path / "absent.pcap"))
    assert result.returncode == 2
    assert "absent.pcap" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("bad", [["analyze"], ["analyze", "--format", "xml", "x.pcap"]])
def test_bad_usage_exits_2(bad: list[str]) -> None:
    assert run_santinel(*bad).returncode == 2


# ---------------------------------------------------------------- medical protocols, real stacks
def _skip_without_medical_tools() -> None:
    from tests.support.medical_traffic import missing_tools

    missing = missing_tools()
    if missing:
        pytest.skip(f"needs {', '.join(missing)}")


def _all_output(result: object) -> str:
    return f"{result.stdout}\n{result.stderr}"  # type: ignore[attr-defined]


@pytest.mark.parametrize("port", [2575, 6661], ids=["standard-port", "site-port"])
def test_hl7_from_a_real_mllp_pair_gives_its_metadata_and_no_patient_data(
    tmp_path: Path, port: int
) -> None:
    _skip_without_medical_tools()
    from tests.support import medical_traffic as med

    capture = med.capture_hl7(tmp_path, port)
    assert med.CANARY_PATIENT_ID.encode() in capture.read_bytes()  # the traffic is real
    result = run_santinel("analyze", "--format", "json", str(capture))
    assert result.returncode == 0, result.stderr
    (device,) = json.loads(result.stdout)["devices"]
    facts = device["facts"]
    assert "hl7" in device["protocols"]
    assert set(facts["hl7_message_type"]) >= {"ORU^R01", "ADT^A01"}
    assert set(facts["hl7_sending_application"]) == {
        f"{med.HL7_SENDING_APPLICATION}^{med.HL7_SENDING_FACILITY}"
    }
    assert set(facts["hl7_receiving_application"]) == {
        f"{med.HL7_RECEIVING_APPLICATION}^{med.HL7_RECEIVING_FACILITY}"
    }
    assert f"tcp/{port}" in device["services_offered"]
    table = run_santinel("analyze", str(capture))
    for output in (_all_output(result), _all_output(table)):
        for canary in med.CANARY_STRINGS:
            assert canary not in output


@pytest.mark.parametrize("port", [104, 4100], ids=["standard-port", "site-port"])
def test_dicom_from_pynetdicom_gives_ae_titles_sop_classes_and_no_patient_data(
    tmp_path: Path, port: int
) -> None:
    _skip_without_medical_tools()
    from tests.support import medical_traffic as med

    capture = med.capture_dicom(tmp_path, port)
    assert med.CANARY_PATIENT_ID.encode() in capture.read_bytes()
    result = run_santinel("analyze", "--format", "json", str(capture))
    assert result.returncode == 0, result.stderr
    (device,) = json.loads(result.stdout)["devices"]
    facts = device["facts"]
    assert "dicom" in device["protocols"]
    assert set(facts["dicom_calling_ae"]) == {med.DICOM_SCU_AE}
    assert set(facts["dicom_called_ae"]) == {med.DICOM_SCP_AE}
    assert set(facts["dicom_sop_class"]) >= set(med.EXPECTED_DICOM_SOP_CLASSES)
    assert set(facts["dicom_command"]) >= set(med.EXPECTED_DICOM_COMMANDS)
    uid, version = med.expected_dicom_implementation()
    assert f"{uid}|{version}" in facts["dicom_implementation"]
    table = run_santinel("analyze", str(capture))
    for output in (_all_output(result), _all_output(table)):
        for canary in med.CANARY_STRINGS:
            assert canary not in output


def test_no_lab_canary_patient_reaches_any_output_of_analyze(tmp_path: Path) -> None:
    demo = Path(__file__).resolve().parents[1] / "data" / "lab-demo"
    truth = json.loads((demo / "truth.json").read_text())
    capture = demo / "capture.pcap"
    raw = capture.read_bytes()
    canaries = truth["canaries"]
    assert any(c.encode() in raw for c in canaries)  # the patients really are on the wire
    state = tmp_path / "state.db"
    learned = run_santinel("learn", str(capture), "--state", str(state))
    outputs = [
        learned,
        run_santinel("analyze", str(capture)),
        run_santinel("analyze", "--format", "json", str(capture)),
        run_santinel("analyze", "--state", str(state), "--format", "json", str(capture)),
        run_santinel("baseline", "export", "--state", str(state)),
    ]
    assert all(result.returncode in (0, 1) for result in outputs), [r.stderr for r in outputs]
    texts = [_all_output(result) for result in outputs]
    texts += [f.read_bytes().decode("latin-1") for f in tmp_path.glob("state.db*")]
    for text in texts:
        for canary in canaries:
            assert canary not in text
