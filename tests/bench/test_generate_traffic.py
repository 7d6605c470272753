"""bench/generate_traffic.py: the file it writes is what it says, tools decode it, a seed
fixes its bytes."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from monitor.pipeline import analyze_captures

REPO = Path(__file__).resolve().parents[2]
GENERATOR = REPO / "bench" / "generate_traffic.py"
PACKETS = 5000


def generate(out: Path, *args: str) -> Path:
    subprocess.run(
        [sys.executable, str(GENERATOR), str(out), *args],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return out


def need(tool: str) -> None:
    if shutil.which(tool) is None:
        pytest.skip(f"needs {tool}, which is not installed")


@pytest.fixture(scope="module")
def hospital(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("generated") / "hospital.pcap"
    return generate(out, "--packets", str(PACKETS), "--seed", "3")


def test_tcpdump_reads_exactly_the_packets_asked_for(hospital: Path) -> None:
    need("tcpdump")
    done = subprocess.run(
        ["tcpdump", "-nr", str(hospital)], capture_output=True, text=True, check=True
    )
    lines = done.stdout.splitlines()
    assert len(lines) == PACKETS
    assert not [line for line in lines if "truncated" in line or "bad-len" in line]


def test_tshark_decodes_hl7_dicom_tls_mqtt_and_finds_nothing_malformed(hospital: Path) -> None:
    need("tshark")
    done = subprocess.run(
        ["tshark", "-n", "-r", str(hospital), "-T", "fields", "-e", "frame.protocols"],
        capture_output=True,
        text=True,
        check=True,
    )
    layers = {layer for line in done.stdout.splitlines() for layer in line.split(":")}
    assert {"hl7", "dicom", "tls", "mqtt", "dns", "dhcp", "ssdp", "mdns", "arp"} <= layers
    malformed = subprocess.run(
        ["tshark", "-n", "-r", str(hospital), "-Y", "_ws.malformed"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert malformed.stdout.strip() == ""


def test_santinel_finds_the_application_metadata_the_traffic_carries(hospital: Path) -> None:
    analysis = analyze_captures([hospital])
    facts: dict[str, set[str]] = {}
    for device in analysis.devices.values():
        for kind, values in device.facts.items():
            facts.setdefault(kind, set()).update(values)
    assert {"ORU^R01", "ORU^R40"} <= facts["hl7_message_type"]
    assert "PACS_MAIN" in facts["dicom_called_ae"]
    assert "C-STORE-RQ" in facts["dicom_command"]
    assert len(facts["tls_sni"]) >= 3
    assert len(facts["tls_ja4"]) >= 2  # TLS 1.2-only and TLS 1.3 clients
    assert any(cid.startswith("bedsensor-") for cid in facts["mqtt_client_id"])
    assert analysis.packets == PACKETS


def test_a_seed_fixes_the_bytes(hospital: Path, tmp_path: Path) -> None:
    again = generate(tmp_path / "again.pcap", "--packets", str(PACKETS), "--seed", "3")
    other = generate(tmp_path / "other.pcap", "--packets", str(PACKETS), "--seed", "4")
    assert again.read_bytes() == hospital.read_bytes()
    assert other.read_bytes() != hospital.read_bytes()


def test_many_flows_mode_writes_distinct_flows_among_the_devices_asked_for(
    tmp_path: Path,
) -> None:
    out = generate(tmp_path / "flows.pcap", "--flows", "300", "--devices", "30")
    analysis = analyze_captures([out])
    assert len(analysis.flows) == 300
    assert len(analysis.devices) == 30
