"""A short run of the CI scenario: it records a capture in which Wireshark sees every device's
protocols and every event of the truth file, and it leaves nothing behind — also when it is
interrupted."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from monitor.lab.agent import CANARY_FAMILY, CANARY_PATIENTS
from monitor.lab.scenario import ANOMALY_OF_EVENT
from monitor.lab.verify import verify

from .conftest import CI_WARD, REPO, LabRun, lab_requirements, leftovers, tag_of

pytestmark = pytest.mark.netns


def tshark_count(pcap: Path, display_filter: str, *extra: str) -> int:
    done = subprocess.run(
        ["tshark", "-r", str(pcap), "-n", *extra, "-Y", display_filter],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-300:]
    return len(done.stdout.splitlines())


def test_the_run_succeeds_and_writes_capture_and_truth(ci_run: LabRun) -> None:
    assert ci_run.result.returncode == 0, ci_run.result.stderr[-2000:]
    assert ci_run.pcap.stat().st_size > 100_000
    assert ci_run.truth["errors"] == []
    assert ci_run.truth["capture_dropped"] == 0
    names = {d["name"] for d in ci_run.truth["devices"]}
    assert names == {"router", "pacs", "engine", "broker", "pumpserver", "ct1", "monitor1",
                     "pump1", "cgm1", "laptop", "newbie"}  # fmt: skip
    assert {e["kind"] for e in ci_run.truth["events"]} == set(ANOMALY_OF_EVENT)


def test_the_run_leaves_no_namespace_link_or_process(ci_run: LabRun) -> None:
    assert ci_run.left == []


def test_truth_devices_carry_mac_ip_class_and_registry_vendor(ci_run: LabRun) -> None:
    pump = ci_run.device("pump1")
    assert pump["mac"].startswith("00:12:21:")
    assert pump["vendor"] == "B.Braun Melsungen AG"
    assert pump["class"] == "infusion_pump"
    assert pump["ip"].startswith("10.42.0.")
    assert ci_run.device("monitor1")["ips"] == ["10.42.0.100", "10.42.0.150"]
    assert ci_run.device("newbie")["vendor"] == "Raspberry Pi Foundation"


@pytest.mark.parametrize(
    ("device", "display_filter"),
    [
        ("ct1", 'dicom.assoc.ae.calling contains "CT_CI"'),
        ("ct1", 'dicom.userinfo.version contains "REVOLUTION_2_1"'),
        ("ct1", 'dicom.userinfo.uid == "1.2.840.113619.6.374"'),
        ("monitor1", 'hl7.message.type == "ORU" && hl7.event.type == "R01"'),
        ("engine", 'hl7.message.type == "ACK"'),
        ("cgm1", "mqtt.msgtype == 3"),
        ("cgm1", "mqtt.msgtype == 12"),
        ("pump1", "tls.handshake.type == 1"),
        ("monitor1", 'dhcp.option.vendor_class_id == "Philips IntelliVue MX800"'),
        ("monitor1", "dhcp.option.request_list_item == 43"),
        ("pump1", "dns.flags.response == 0"),
        ("pump1", "ntp.flags.mode == 3"),
        ("laptop", "arp.opcode == 1"),
        ("router", "dhcp.option.dhcp == 5"),
        ("router", "dns.flags.response == 1 && dns.a == 10.42.0.13"),
        ("router", "ntp.flags.mode == 4"),
        ("pump1", 'tls.handshake.extensions_server_name == "pumpserver.ward.example"'),
        ("pumpserver", "tls.handshake.type == 2"),
    ],
)
def test_wireshark_dissects_each_protocol_from_the_expected_device(
    ci_run: LabRun, device: str, display_filter: str
) -> None:
    mac = ci_run.device(device)["mac"]
    assert tshark_count(ci_run.pcap, f"eth.src == {mac} && ({display_filter})") > 0


def test_the_capture_matches_its_truth_for_every_device_and_event(ci_run: LabRun) -> None:
    assert verify(ci_run.out) == []


def test_canary_patients_are_on_the_wire_in_hl7_dicom_and_mqtt(ci_run: LabRun) -> None:
    assert tshark_count(ci_run.pcap, f'hl7 && frame contains "{CANARY_FAMILY}"') > 0
    assert tshark_count(ci_run.pcap, f'dicom && frame contains "{CANARY_FAMILY}"') > 0
    mrns = " || ".join(f'frame contains "{p["mrn"]}"' for p in CANARY_PATIENTS)
    assert tshark_count(ci_run.pcap, f"mqtt && ({mrns})") > 0


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_run_cleans_up_everything(tmp_path: Path, sig: signal.Signals) -> None:
    reason = lab_requirements()
    if reason:
        pytest.skip(reason)
    process = subprocess.Popen(
        [sys.executable, "-m", "monitor", "lab", "run", str(CI_WARD), "--out", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        assert process.stderr is not None
        deadline = time.monotonic() + 90
        seen = ""
        while time.monotonic() < deadline:
            line = process.stderr.readline()
            seen += line
            if "playing" in line or not line:
                break
        tag = tag_of(seen)
        time.sleep(3)  # devices up, traffic flowing
        assert process.poll() is None
        process.send_signal(sig)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == (130 if sig == signal.SIGINT else 143), err
    assert "cleaned up" in err
    assert leftovers(tag) == []
