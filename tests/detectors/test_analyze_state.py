"""``santinel analyze --state DB``: the anomalies of a capture against learned baselines,
exit status 1 when there are any, 0 when the traffic matches its baselines, 2 for a missing
state file; the state file is only read."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from tests.conftest import run_santinel
from tests.detectors.helpers import LAPTOP, PUMP, T0, syn, ward, write


def _learn(capture: Path, state: Path) -> None:
    learned = run_santinel("learn", str(capture), "--state", str(state), "--window", "5",
                           "--min-duration", "60", "--min-windows", "8", "--quiet")  # fmt: skip
    assert learned.returncode == 0, learned.stderr


def test_anomalies_are_printed_and_exit_status_is_1(tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    _learn(write(tmp_path / "normal.pcap", ward(T0, T0 + 200)), state)
    before = hashlib.sha256(state.read_bytes()).hexdigest()
    packets = ward(T0 + 200, T0 + 300)
    packets += [syn(LAPTOP, PUMP, T0 + 250 + port / 1000, port) for port in range(1, 201)]
    incident = write(tmp_path / "incident.pcap", packets)
    result = run_santinel("analyze", str(incident), "--state", str(state), "--window", "5",
                          "--format", "json")  # fmt: skip
    assert result.returncode == 1, result.stderr
    record = json.loads(result.stdout)
    scans = [a for a in record["anomalies"] if a["detector"] == "port_scan"]
    assert {a["device"] for a in scans} == {LAPTOP[0], PUMP[0]}
    assert record["devices"]  # the inventory is still there
    table = run_santinel("analyze", str(incident), "--state", str(state), "--window", "5")
    assert table.returncode == 1 and "port_scan" in table.stdout and "anomalies" in table.stdout
    assert hashlib.sha256(state.read_bytes()).hexdigest() == before


def test_traffic_matching_its_baselines_exits_0(tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    _learn(write(tmp_path / "normal.pcap", ward(T0, T0 + 200)), state)
    again = write(tmp_path / "again.pcap", ward(T0 + 200, T0 + 300))
    # no signature library: the synthetic pump's policy is not what this test is about
    empty = tmp_path / "no-signatures"
    empty.mkdir()
    result = run_santinel("analyze", str(again), "--state", str(state), "--window", "5",
                          "--signatures", str(empty))  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:]
    assert "no anomalies" in result.stdout


def test_missing_state_file_is_a_usage_error(tmp_path: Path) -> None:
    capture = write(tmp_path / "normal.pcap", ward(T0, T0 + 20))
    result = run_santinel("analyze", str(capture), "--state", str(tmp_path / "absent.db"))
    assert result.returncode == 2
    assert "absent.db" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "absent.db").exists()
