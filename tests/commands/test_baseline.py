"""``santinel baseline``: export/import round trip, approve, reset, freeze, show, and refusals,
all through the command line as a person runs them."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import yaml

from monitor.baseline import BaselineConfig, BaselineStore
from monitor.state import State
from tests.conftest import run_santinel
from tests.synthetic import device_id, window_profiles

NEW_PEER = "ext:198.51.100.77"


@pytest.fixture
def state(tmp_path: Path) -> Path:
    """A state with 4 devices, enforcing after 10 windows of a synthetic stream."""
    path = tmp_path / "state.db"
    store = BaselineStore(BaselineConfig(min_duration=600.0, min_windows=5))
    for i in range(30):
        store.learn_window(window_profiles(5, i, devices=4))
    with State(path) as db:
        db.checkpoint(store)
    return path


def santinel_ok(*args: str) -> str:
    result = run_santinel(*args)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout


def santinel_fails(*args: str) -> str:
    result = run_santinel(*args)
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("santinel: ")
    return lines[0]


def test_export_import_export_gives_identical_files(state: Path, tmp_path: Path) -> None:
    first = santinel_ok("baseline", "export", "--state", str(state))
    exported = tmp_path / "baselines.yml"
    exported.write_text(first)
    fresh = tmp_path / "fresh.db"
    santinel_ok("baseline", "import", str(exported), "--state", str(fresh))
    assert santinel_ok("baseline", "export", "--state", str(fresh)) == first
    # and back into the original, too
    santinel_ok("baseline", "import", str(exported), "--state", str(state))
    assert santinel_ok("baseline", "export", "--state", str(state)) == first


def test_export_is_reviewable_yaml_one_device_per_document(state: Path) -> None:
    text = santinel_ok("baseline", "export", "--state", str(state))
    docs = list(yaml.safe_load_all(text))
    assert [d["device"] for d in docs] == sorted(device_id(d) for d in range(4))
    for doc in docs:
        assert doc["state"] == "enforcing"
        assert all(entry["count"] > 0 for entry in doc["facts"]["peer"])
    one = santinel_ok("baseline", "export", "--state", str(state), "--device", device_id(2))
    assert [d["device"] for d in yaml.safe_load_all(one)] == [device_id(2)]


def test_an_edited_reviewed_file_is_what_gets_imported(state: Path, tmp_path: Path) -> None:
    docs = list(yaml.safe_load_all(santinel_ok("baseline", "export", "--state", str(state))))
    docs[0]["facts"]["peer"] = [docs[0]["facts"]["peer"][0]]  # reviewer removed all but one
    edited = tmp_path / "edited.yml"
    edited.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    santinel_ok("baseline", "import", str(edited), "--state", str(state))
    with State(state, create=False) as db:
        baseline = db.load_baseline(docs[0]["device"])
    assert baseline is not None and len(baseline.facts["peer"]) == 1


def deviating_peers(state: Path, device: str) -> list[str]:
    profile = window_profiles(5, 31, devices=4)[0]
    assert profile.device_id == device
    profile.peers.add(NEW_PEER)
    with State(state, create=False) as db:
        baseline = db.load_baseline(device)
    assert baseline is not None and baseline.enforcing
    return [d.value for d in baseline.deviations(profile) if d.kind == "peer"]


def test_an_approved_fact_stops_the_matching_deviation(state: Path) -> None:
    device = device_id(0)
    assert NEW_PEER in deviating_peers(state, device)
    santinel_ok(
        "baseline",
        "approve",
        "--state",
        str(state),
        "--device",
        device,
        "--kind",
        "peer",
        "--value",
        NEW_PEER,
        "--by",
        "alice",
        "--why",
        "new PACS gateway, CHG-1234",
    )
    assert NEW_PEER not in deviating_peers(state, device)
    text = santinel_ok("baseline", "export", "--state", str(state), "--device", device)
    doc = next(yaml.safe_load_all(text))
    entry = next(e for e in doc["facts"]["peer"] if e["value"] == NEW_PEER)
    assert entry["approved_by"] == "alice" and entry["why"] == "new PACS gateway, CHG-1234"
    shown = santinel_ok("baseline", "show", "--state", str(state), "--device", device)
    assert "approved by alice: new PACS gateway, CHG-1234" in shown


def test_reset_makes_the_device_learn_again(state: Path) -> None:
    device = device_id(1)
    santinel_ok("baseline", "reset", "--state", str(state), "--device", device)
    with State(state, create=False) as db:
        assert db.load_baseline(device) is None
        assert len(db.baseline_ids()) == 3
    line = santinel_fails("baseline", "show", "--state", str(state), "--device", device)
    assert "no baseline for device" in line


def test_freeze_is_kept_in_the_state(state: Path) -> None:
    device = device_id(3)
    santinel_ok("baseline", "freeze", "--state", str(state), "--device", device)
    assert "(frozen: not learning)" in santinel_ok(
        "baseline", "show", "--state", str(state), "--device", device
    )
    santinel_ok("baseline", "unfreeze", "--state", str(state), "--device", device)
    with State(state, create=False) as db:
        baseline = db.load_baseline(device)
    assert baseline is not None and not baseline.frozen


def test_show_prints_state_facts_cadence_and_volumes(state: Path) -> None:
    shown = santinel_ok("baseline", "show", "--state", str(state), "--device", device_id(0))
    assert shown.startswith(f"device {device_id(0)}\n  state     enforcing since ")
    assert "ext:192.0.2.0|tcp/443" in shown and "every      5.0" in shown
    assert "tx_packets" in shown and "dns_query" in shown


def test_a_corrupt_state_is_refused_in_one_line_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.write_bytes(b"SQLite format 3\x00" + b"\xff" * 4000)
    before = path.read_bytes()
    line = santinel_fails("baseline", "export", "--state", str(path))
    assert str(path) in line and "corrupt" in line
    assert path.read_bytes() == before


def test_a_newer_state_is_refused(state: Path) -> None:
    db = sqlite3.connect(state)
    db.execute("PRAGMA user_version=99")
    db.commit()
    db.close()
    line = santinel_fails("baseline", "show", "--state", str(state), "--device", device_id(0))
    assert "newer santinel (schema 99" in line


def test_a_missing_state_is_not_created_by_a_read(tmp_path: Path) -> None:
    line = santinel_fails("baseline", "export", "--state", str(tmp_path / "none.db"))
    assert "no such state file" in line
    assert not (tmp_path / "none.db").exists()


def test_importing_a_bad_file_changes_nothing(state: Path, tmp_path: Path) -> None:
    before = santinel_ok("baseline", "export", "--state", str(state))
    good, bad = before.split("\n---", 1)[0], tmp_path / "bad.yml"
    bad.write_text(good + "\n---\nformat: santinel-baseline/1\ndevice: x\nwindows: many\n")
    line = santinel_fails("baseline", "import", str(bad), "--state", str(state))
    assert line.startswith(f"santinel: {bad}: document 2: ")
    assert santinel_ok("baseline", "export", "--state", str(state)) == before
    missing = santinel_fails("baseline", "import", str(tmp_path / "no.yml"), "--state", str(state))
    assert "cannot read" in missing


def test_approve_refuses_an_unknown_kind(state: Path) -> None:
    result = run_santinel(
        "baseline",
        "approve",
        "--state",
        str(state),
        "--device",
        device_id(0),
        "--kind",
        "colour",
        "--value",
        "red",
        "--by",
        "a",
        "--why",
        "b",
    )
    assert result.returncode == 2 and "invalid choice" in result.stderr
