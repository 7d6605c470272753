"""Tests of monitor/state.py: the one SQLite state file, its refusals and its crash safety."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from monitor.baseline import BaselineConfig, BaselineStore
from monitor.facts import record_fact
from monitor.model import Classification, Device, Evidence
from monitor.state import APPLICATION_ID, SCHEMA_VERSION, State, StateError, device_to_dict
from tests.state_learner import CONFIG as LEARNER_CONFIG
from tests.synthetic import apply_to_inventory, window_profiles

LEARNER = Path(__file__).resolve().parent / "state_learner.py"


def make_device(device_id: str = "00:1b:63:aa:bb:cc") -> Device:
    device = Device(device_id, device_id, False, "Apple, Inc.", 1000.5, 2000.25)
    record_fact(device.facts, "peer", "ext:203.0.113.9", 1500.0, 3)
    record_fact(device.facts, "hostname", "pump-7", 1000.5)
    device.tx_packets, device.tx_bytes, device.rx_packets, device.rx_bytes = 10, 1000, 5, 500
    device.classification = Classification(
        "bbraun-spaceplus",
        "B. Braun",
        "infusion_pump",
        "Space",
        "life_sustaining",
        0.9,
        (Evidence("oui", "B. Braun", 0.5), Evidence("dhcp_vendor_class", "bbraun", 0.4)),
    )
    return device


def learned_store(windows: int = 12) -> BaselineStore:
    store = BaselineStore(BaselineConfig(min_duration=300.0, min_windows=5))
    for i in range(windows):
        store.learn_window(window_profiles(7, i, devices=5))
    return store


def canonical(
    store: BaselineStore,
    devices: dict[str, Device],
    counters: dict[tuple[str, str], int],
    next_window: int,
) -> str:
    return json.dumps(
        {
            "baselines": [store.baselines[k].to_dict() for k in sorted(store.baselines)],
            "devices": [device_to_dict(devices[k]) for k in sorted(devices)],
            "counters": sorted([list(k), v] for k, v in counters.items()),
            "next_window": next_window,
        },
        sort_keys=True,
    )


def canonical_file(path: Path) -> tuple[int, str]:
    with State(path, create=False) as state:
        assert state.integrity_check() == ["ok"]
        store = state.load_store(LEARNER_CONFIG)
        devices = state.load_devices()
        text = canonical(store, devices, dict(state.counters), state.meta("next_window", 0))
        return state.checkpoints, text


def test_a_new_state_file_is_wal_with_the_schema_version_and_santinel_marker(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.db"
    with State(path):
        pass
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert db.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    db.close()


def test_inventory_baselines_and_counters_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = learned_store()
    device = make_device()
    with State(path) as state:
        state.set_counter("device_tx_bytes", device.id, 123456789012)
        assert state.checkpoint(store, {device.id: device}, meta={"source": "test"}) == 1
    with State(path) as state:
        assert state.checkpoints == 1
        assert state.meta("source") == "test"
        assert state.counters == {("device_tx_bytes", device.id): 123456789012}
        loaded = state.load_devices()
        assert loaded == {device.id: device}
        again = state.load_store()
        assert again.config == store.config  # the learning config travels with the file
        assert [b.to_dict() for b in again.baselines.values()] == [
            store.baselines[k].to_dict() for k in again.baselines
        ]
        assert again.now == store.now


def test_checkpoint_writes_only_what_changed(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = learned_store()
    devices = {d: make_device(d) for d in ("00:00:00:00:00:01", "00:00:00:00:00:02")}
    with State(path) as state:
        state.checkpoint(store, devices)
        before = state._db.total_changes
        state.checkpoint(store, devices)
        # nothing changed: only the meta rows (checkpoint number, config, clock)
        assert state._db.total_changes - before == 3
        devices["00:00:00:00:00:02"].tx_packets += 1
        store.learn_window(window_profiles(7, 12, devices=1))
        before = state._db.total_changes
        state.checkpoint(store, devices)
        assert state._db.total_changes - before == 3 + 1 + 1


def test_reset_removes_the_baseline_at_the_next_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = learned_store()
    gone = sorted(store.baselines)[0]
    with State(path) as state:
        state.checkpoint(store)
        store.reset(gone)
        state.checkpoint(store)
    with State(path) as state:
        assert gone not in state.baseline_ids()
        assert len(state.baseline_ids()) == len(store.baselines)


def test_an_old_schema_version_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA application_id={APPLICATION_ID}")  # a santinel file at version 0
    db.commit()
    db.close()
    with State(path) as state:
        state.checkpoint(learned_store(3))
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    db.close()


def refused(path: Path) -> str:
    before = path.read_bytes()
    with pytest.raises(StateError) as caught:
        State(path)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message
    assert path.read_bytes() == before  # never replaced, never repaired behind the user's back
    return message


def test_a_file_that_is_not_sqlite_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.write_text("device,peer\n00:1b:63:aa:bb:cc,ext:203.0.113.9\n")
    assert "not a SQLite database" in refused(path)


def test_another_programs_sqlite_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE moz_places (id INTEGER PRIMARY KEY, url TEXT)")
    db.commit()
    db.close()
    assert "not a santinel state file" in refused(path)


def test_a_newer_schema_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with State(path) as state:
        state.checkpoint(learned_store(3))
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    db.commit()
    db.close()
    assert f"newer santinel (schema {SCHEMA_VERSION + 1}" in refused(path)


def test_a_truncated_state_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with State(path) as state:
        state.checkpoint(learned_store(40), {"a": make_device("a")})
    data = path.read_bytes()
    assert len(data) > 8192
    path.write_bytes(data[: len(data) // 2 + 100])
    assert "corrupt" in refused(path)


def test_a_state_file_with_damaged_pages_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with State(path) as state:
        state.checkpoint(learned_store(40), {"a": make_device("a")})
    data = bytearray(path.read_bytes())
    page = 4096
    for offset in range(page, len(data), page):  # scribble over every page header
        data[offset : offset + 12] = b"\xa5" * 12
    path.write_bytes(bytes(data))
    assert "corrupt" in refused(path)


def test_a_missing_file_is_created_only_when_asked(tmp_path: Path) -> None:
    with pytest.raises(StateError, match="no such state file"):
        State(tmp_path / "absent.db", create=False)
    assert not (tmp_path / "absent.db").exists()


class Reference:
    """The learner of tests/state_learner.py run in-process, straight through, no kills."""

    def __init__(self, seed: int, interval: int) -> None:
        self.seed, self.interval = seed, interval
        self.store = BaselineStore(LEARNER_CONFIG)
        self.devices: dict[str, Device] = {}
        self.counters: dict[tuple[str, str], int] = {}
        self.next_window = 0

    def at_checkpoint(self, number: int) -> str:
        target = number * self.interval
        assert target >= self.next_window
        for i in range(self.next_window, target):
            profiles = window_profiles(self.seed, i)
            apply_to_inventory(self.devices, profiles)
            self.store.learn_window(profiles, SimpleNamespace(devices=self.devices))
            for p in profiles:
                key = ("device_tx_packets", p.device_id)
                self.counters[key] = self.counters.get(key, 0) + p.tx_packets
        self.next_window = target
        return canonical(self.store, self.devices, self.counters, self.next_window)


def test_sigkill_at_50_random_moments_never_corrupts_and_loses_at_most_one_interval(
    tmp_path: Path,
) -> None:
    """THE crash test: kill -9 the learner 50 times; each time the file opens, passes
    integrity_check and equals, exactly, a straight run stopped at its last checkpoint. The
    learner resumes from the state each time, so a lossy reload would show up too."""
    path = tmp_path / "state.db"
    seed, interval, windows = 11, 2, 100_000
    rng = random.Random(20261204)
    reference = Reference(seed, interval)
    seen_checkpoints = []
    for _ in range(50):
        proc = subprocess.Popen(
            [sys.executable, str(LEARNER), str(path), str(seed), str(windows), str(interval)],
            stdout=subprocess.PIPE,
            text=True,
        )
        time.sleep(rng.uniform(0.25, 0.75))
        os.kill(proc.pid, signal.SIGKILL)  # only the process this test started
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL, "the learner ended before it was killed"
        reported = [
            int(line.split()[1]) for line in out.splitlines() if line.startswith("checkpoint")
        ]
        number, text = canonical_file(path)
        if reported:
            # committed but maybe killed before it could say so: one more, never fewer
            assert number in (reported[-1], reported[-1] + 1)
        assert text == reference.at_checkpoint(number)
        seen_checkpoints.append(number)
    assert seen_checkpoints == sorted(seen_checkpoints)
    assert seen_checkpoints[-1] > 50  # the learner made real progress across the kills
