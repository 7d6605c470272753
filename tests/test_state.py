"""Tests of monitor/state.py: the one SQLite state file, its refusals and its crash safety."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from monitor.baseline import BaselineConfig, BaselineStore
from monitor.model import Classification, Device, Evidence
from monitor.state import APPLICATION_ID, SCHEMA_VERSION, State, StateError, device_to_dict
from tests.state_learner import CONFIG as LEARNER_CONFIG
from tests.synthetic import apply_to_inventory, window_profiles

LEARNER = Path(__file__).resolve().parent / "state_learner.py"


def make_device(device_id: str = "00:1b:63:aa:bb:cc") -> Device:
    device = Device(device_id, device_id, False, "Apple, Inc.", 1000.5, 2000.25)
    device.facts.record("peer", "ext:203.0.113.9", 1500.0, 3)
    device.facts.record("hostname", "pump-7", 1000.5)
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
        time.sleep(rng.uniform(0.3, 1.0))
        os.kill(proc.pid, signal.SIGKILL)  # only the process this test started
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL, "the learner ended before it was killed"
        reported = [
            int(line.split()[1]) for line in out.splitlines() if line.startswith("checkpoint")
        ]
        if not path.exists():
            assert not reported  # killed before it even created the file
            continue
        number, text = canonical_file(path)
        if reported:
            # committed but maybe killed before it could say so: one more, never fewer
            assert number in (reported[-1], reported[-1] + 1)
        assert text == reference.at_checkpoint(number)
        seen_checkpoints.append(number)
    assert seen_checkpoints == sorted(seen_checkpoints)
    assert seen_checkpoints[-1] > 25  # the learner made real progress across the kills


def test_a_new_state_file_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with State(path) as state:
        state.checkpoint(learned_store(3))
        for name in ("state.db", "state.db-wal"):
            assert (tmp_path / name).stat().st_mode & 0o777 == 0o600


def test_an_empty_database_left_by_a_first_run_killed_early_is_initialised(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.db"
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")  # what State does before the schema transaction
    db.close()
    assert path.stat().st_size > 0
    with State(path) as state:
        assert state.checkpoint(learned_store(3)) == 1


def test_changes_made_by_commands_while_a_daemon_runs_are_kept_not_overwritten(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.db"
    daemon = State(path)
    store = learned_store()  # the daemon's in-memory baselines, enforcing
    daemon.checkpoint(store)
    approved, reset = sorted(store.baselines)[:2]
    new_peer = "ext:198.51.100.99"

    with State(path) as command:  # santinel baseline approve / reset, in another process
        theirs = command.load_store()
        theirs.edit(
            {
                "op": "approve",
                "device": approved,
                "kind": "peer",
                "value": new_peer,
                "by": "alice",
                "why": "CHG-1",
                "at": theirs.now,
            }
        )
        theirs.edit({"op": "reset", "device": reset})
        command.checkpoint(theirs)

    # the daemon learns on and checkpoints: it must apply the changes, not overwrite them
    store.learn_window(window_profiles(7, 12, devices=5))
    daemon.checkpoint(store)
    assert store.baselines[approved].knows("peer", new_peer)
    assert store.get(reset) is None
    daemon.checkpoint(store)  # a change is applied once, not at every checkpoint
    assert store.get(reset) is None
    store.learn_window(window_profiles(7, 13, devices=5))  # the reset device starts over
    daemon.checkpoint(store)
    daemon.close()
    with State(path) as again:
        baseline = again.load_baseline(approved)
        assert baseline is not None and baseline.knows("peer", new_peer)
        assert baseline.approvals[("peer", new_peer)].by == "alice"
        fresh = again.load_baseline(reset)
        assert fresh is not None and fresh.windows == 1


def test_a_schema_1_file_is_migrated_with_its_data(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = learned_store()
    with State(path) as state:
        state.checkpoint(store, {"a": make_device("a")})
    db = sqlite3.connect(path)
    db.execute("DROP TABLE edits")  # what a schema-1 file looked like
    db.execute("PRAGMA user_version=1")
    db.commit()
    db.close()
    with State(path) as state:
        assert [b.to_dict() for b in state.load_store().baselines.values()] == [
            store.baselines[k].to_dict() for k in sorted(store.baselines)
        ]
        assert state.load_devices() == {"a": make_device("a")}
        store.edit({"op": "reset", "device": sorted(store.baselines)[0]})
        state.checkpoint(store)  # the new table is there and used


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs of this test's own, unmounted afterwards."""
    mountpoint = tmp_path / "small"
    mountpoint.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mountpoint)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.strip()[:80]}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", str(mountpoint)], check=False)


def test_a_full_disk_fails_the_checkpoint_cleanly_and_the_next_one_catches_up(
    small_disk: Path,
) -> None:
    path = small_disk / "state.db"
    store = BaselineStore(BaselineConfig())
    store.learn_window(window_profiles(9, 0, devices=5))
    with State(path) as state:
        state.checkpoint(store)
    before = canonical(store, {}, {}, 0)
    for i in range(1, 30):  # much more than fits
        store.learn_window(window_profiles(9, i, devices=400))
    filler = small_disk / "filler"
    with State(path) as state:  # open (its -wal and -shm exist), then the disk fills up
        with filler.open("wb", buffering=0) as handle, contextlib.suppress(OSError):
            while True:
                handle.write(b"\0" * 4096)
        with pytest.raises(StateError) as caught:
            state.checkpoint(store)
    assert "checkpoint failed (database or disk is full)" in str(caught.value)
    assert "\n" not in str(caught.value)
    with State(path, create=False) as state:  # the last good checkpoint, intact
        assert state.integrity_check() == ["ok"]
        assert canonical(state.load_store(), {}, {}, 0) == before
    filler.unlink()
    with State(path) as state:  # nothing was lost from memory: the next checkpoint has it all
        state.checkpoint(store)
    with State(path, create=False) as state:
        assert canonical(state.load_store(), {}, {}, 0) == canonical(store, {}, {}, 0)


@pytest.mark.parametrize(
    ("sql", "reading"),
    [
        ("UPDATE baselines SET data = x'00ff'", "load_store"),
        ("UPDATE devices SET data = '[1, 2]'", "load_devices"),
        ("UPDATE meta SET value = '{not json' WHERE key = 'baseline_config'", "load_store"),
    ],
)
def test_a_damaged_row_is_refused_in_one_line(tmp_path: Path, sql: str, reading: str) -> None:
    path = tmp_path / "state.db"
    with State(path) as state:
        state.checkpoint(learned_store(3), {"a": make_device("a")})
    db = sqlite3.connect(path)
    db.execute(sql)
    db.commit()
    db.close()
    with State(path) as state, pytest.raises(StateError) as caught:
        getattr(state, reading)()
    assert "\n" not in str(caught.value) and "refusing" in str(caught.value)
