"""``santinel learn``: on the week-long shared captures, the learned cadence matches the interval
tshark measures independently, learning ends exactly when the thresholds say, and a second
run over the same captures changes nothing."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import random
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

from monitor.baseline import BaselineStore
from monitor.state import State, device_to_dict
from tests.conftest import REPO, run_santinel
from tests.support.tshark import require_tshark

LOCK = "78:db:2f:db:43:48"
GATEWAY = "00:1c:7f:53:d0:28"
CAMERA = "f4:b8:5e:ff:2b:1b"
MESSAGE_GAP = 0.5  # the pipeline's rule: packets closer than this are one message


def tshark_times(capture: Path, display_filter: str) -> list[float]:
    out = subprocess.run(
        [
            require_tshark(),
            "-n",
            "-r",
            str(capture),
            "-Y",
            display_filter,
            "-T",
            "fields",
            "-e",
            "frame.time_epoch",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    ).stdout
    return [float(line) for line in out.split()]


def message_starts(times: list[float]) -> list[float]:
    starts: list[float] = []
    last = -math.inf
    for t in times:
        if t - last > MESSAGE_GAP:
            starts.append(t)
        last = t
    return starts


@pytest.fixture(scope="module")
def lock_state(shared_pcaps: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    capture = shared_pcaps / "tj-oconnor-iot-dataset" / "schlage-lock-01.pcap"
    state = tmp_path_factory.mktemp("learn") / "state.db"
    result = run_santinel(
        "learn",
        str(capture),
        "--state",
        str(state),
        "--checkpoint-interval",
        "21600",
        "--min-duration",
        "86400",
        "--min-windows",
        "200",
    )
    assert result.returncode == 0, result.stderr
    assert LOCK in result.stdout and "Traceback" not in result.stderr
    return state


@pytest.mark.shared
def test_learned_dhcp_cadence_of_the_lock_matches_tshark(
    shared_pcaps: Path, lock_state: Path
) -> None:
    capture = shared_pcaps / "tj-oconnor-iot-dataset" / "schlage-lock-01.pcap"
    starts = message_starts(
        tshark_times(capture, f"eth.src=={LOCK} && eth.dst=={GATEWAY} && udp.dstport==67")
    )
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    with State(lock_state, create=False) as state:
        baseline = state.load_baseline(LOCK)
    assert baseline is not None
    cadence = baseline.cadence[f"{GATEWAY}|udp/67"]
    stats = cadence.stats()
    assert stats is not None
    assert cadence.messages == len(starts)
    # the baseline keeps the last 64 gaps: the same median to the millisecond ...
    assert stats.n == min(64, len(gaps))
    assert stats.median == pytest.approx(statistics.median(gaps[-64:]), abs=0.0011)
    # ... which is the lease renewal the whole week shows: about one hour
    assert stats.median == pytest.approx(statistics.median(gaps), rel=1e-4)
    assert 3500 < stats.median < 3700
    expected = baseline.expected_interval()
    assert expected is not None and expected[0] == f"{GATEWAY}|udp/67"


def active_windows(capture: Path, device: str, window: float = 60.0) -> list[int]:
    times = tshark_times(capture, f"eth.src=={device} || eth.dst=={device}")
    return sorted({math.floor(t / window) for t in times})


def enforcing_time(
    windows: list[int], min_duration: float, min_count: int, window: float = 60.0
) -> float | None:
    first_start = windows[0] * window
    for count, w in enumerate(windows, start=1):
        end = (w + 1) * window
        if end - first_start >= min_duration and count >= min_count:
            return end
    return None


@pytest.mark.shared
def test_learning_ends_exactly_when_both_thresholds_are_reached(
    shared_pcaps: Path, lock_state: Path
) -> None:
    capture = shared_pcaps / "tj-oconnor-iot-dataset" / "schlage-lock-01.pcap"
    windows = active_windows(capture, LOCK)
    with State(lock_state, create=False) as state:
        baseline = state.load_baseline(LOCK)
    assert baseline is not None
    assert baseline.windows == len(windows)
    assert baseline.first_window_start == windows[0] * 60.0
    assert baseline.enforcing_since == enforcing_time(windows, 86400.0, 200)


@pytest.mark.shared
def test_a_device_seen_in_too_few_windows_is_still_learning(
    shared_pcaps: Path, tmp_path: Path
) -> None:
    capture = shared_pcaps / "tj-oconnor-iot-dataset" / "blink-cam-01.pcap"
    windows = active_windows(capture, CAMERA)
    state = tmp_path / "state.db"
    needed = len(windows) + 1  # one more window than the camera ever had: never enforcing
    result = run_santinel(
        "learn",
        str(capture),
        "--state",
        str(state),
        "--checkpoint-interval",
        "86400",
        "--min-duration",
        "3600",
        "--min-windows",
        str(needed),
    )
    assert result.returncode == 0, result.stderr
    with State(state, create=False) as db:
        baseline = db.load_baseline(CAMERA)
    assert baseline is not None and baseline.windows == len(windows)
    assert baseline.state == "learning"
    assert baseline.progress == pytest.approx(len(windows) / needed)
    shown = run_santinel("baseline", "show", "--state", str(state), "--device", CAMERA)
    assert f"learning, {len(windows) / needed:.0%} done ({len(windows)}/{needed} windows" in (
        shown.stdout
    )


@pytest.mark.shared
def test_learning_the_same_capture_again_changes_nothing(
    shared_pcaps: Path, lock_state: Path
) -> None:
    capture = shared_pcaps / "tj-oconnor-iot-dataset" / "schlage-lock-01.pcap"
    before = run_santinel("baseline", "export", "--state", str(lock_state)).stdout
    again = run_santinel("learn", str(capture), "--state", str(lock_state))
    assert again.returncode == 0
    assert "already learned, skipped" in again.stderr
    assert run_santinel("baseline", "export", "--state", str(lock_state)).stdout == before


def baselines_digest(store: BaselineStore) -> str:
    rows = [store.baselines[k].to_dict(derived=False) for k in sorted(store.baselines)]
    return hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()


@pytest.mark.slow
@pytest.mark.shared
def test_learn_killed_at_random_moments_over_a_capture_resumes_exactly(
    shared_pcaps: Path, tmp_path: Path
) -> None:
    """kill -9 ``santinel learn`` at random moments over a week-long capture, re-running it
    each time: the file always opens and passes integrity_check, its baselines always equal
    an uninterrupted run's at the same checkpoint, and the inventory appears only once the
    capture was read to its end, equal to the uninterrupted run's."""
    from monitor.cli import build_parser
    from monitor.commands.learn import learn_into
    from monitor.pipeline import Analysis

    capture = shared_pcaps / "tj-oconnor-iot-dataset" / "schlage-lock-01.pcap"
    options = ["--checkpoint-interval", "7200", "--quiet"]
    reference_path = tmp_path / "reference.db"
    at_now: dict[float | None, str] = {}
    args = build_parser().parse_args(
        ["learn", str(capture), "--state", str(reference_path), *options]
    )
    began = time.monotonic()
    with State(reference_path) as reference:
        learn_into(
            reference,
            args,
            Analysis,
            lambda _n, store: at_now.__setitem__(store.now, baselines_digest(store)),
        )
        final_devices = [device_to_dict(d) for _, d in sorted(reference.load_devices().items())]
    run_seconds = time.monotonic() - began
    assert len(at_now) > 50

    killed = tmp_path / "killed.db"
    rng = random.Random(5)
    compared = finished = 0
    for _ in range(20):
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "monitor",
                "learn",
                str(capture),
                "--state",
                str(killed),
                *options,
            ],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            proc.wait(timeout=rng.uniform(1.0, 2.0 + run_seconds))
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)  # only the process this test started
            proc.wait()
        if not killed.exists():
            continue
        with State(killed, create=False) as state:
            assert state.integrity_check() == ["ok"]
            if state.checkpoints:
                assert at_now[state.meta("baseline_now")] == baselines_digest(state.load_store())
                compared += 1
            devices = [device_to_dict(d) for _, d in sorted(state.load_devices().items())]
            done = bool(state.meta("learned_captures"))
            assert devices == (final_devices if done else [])
        if proc.returncode == 0:
            assert done
            finished += 1
            for leftover in tmp_path.glob("killed.db*"):
                leftover.unlink()  # start the next cycle from scratch
    assert compared >= 10


def test_learn_from_a_generated_capture_reports_bad_files_and_keeps_the_good(
    tmp_path: Path,
) -> None:
    """An HL7-like feed every 10 s (two segments each) for 30 minutes, written with scapy;
    next to it a file that is not a capture."""
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether

    from tests.support.packets import write_capture

    monitor_mac, server_mac = "00:09:fb:00:00:01", "00:1b:63:00:00:02"
    packets, times = [], []
    for k in range(180):
        for segment in range(2):
            packets.append(
                Ether(src=monitor_mac, dst=server_mac)
                / IP(src="10.0.0.5", dst="10.0.0.9")
                / TCP(sport=40000, dport=2575, flags="PA", seq=1000 + 200 * (2 * k + segment))
                / (b"x" * 100)
            )
            times.append(5.0 + 10.0 * k + 0.01 * segment)
    capture = write_capture(tmp_path / "feed.pcap", packets, start=1_700_000_040.0, times=times)
    garbage = tmp_path / "notes.pcap"
    garbage.write_text("not a capture\n")
    state = tmp_path / "state.db"
    result = run_santinel(
        "learn",
        str(garbage),
        str(capture),
        "--state",
        str(state),
        "--min-duration",
        "10m",
        "--min-windows",
        "5",
        "--checkpoint-interval",
        "5m",
    )
    assert result.returncode == 2
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 1 and str(garbage) in errors[0] and "Traceback" not in result.stderr
    with State(state, create=False) as db:
        baseline = db.load_baseline(monitor_mac)
    assert baseline is not None
    stats = baseline.cadence["ip:10.0.0.9|tcp/2575"].stats()  # the server never answered
    assert stats is not None and stats.median == 10.0 and stats.mad == 0.0
    # windows of 60 s from 1_700_000_040: active in all 30; 10 minutes reached after the 10th
    assert baseline.windows == 30
    assert baseline.enforcing_since == 1_700_000_040.0 + 600.0
    # the same state with another window length: refused, nothing learned
    other = run_santinel("learn", str(capture), "--state", str(state), "--window", "30")
    assert other.returncode == 2
    assert "learned with 60 s windows, not 30 s" in other.stderr


LAB_DEMO = Path(__file__).resolve().parents[1] / "data" / "lab-demo"


@pytest.fixture(scope="module")
def lab_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    state = tmp_path_factory.mktemp("lab") / "state.db"
    result = run_santinel(
        "learn",
        str(LAB_DEMO / "capture.pcap"),
        "--state",
        str(state),
        "--window",
        "10",
        "--min-duration",
        "30",
        "--min-windows",
        "3",
    )
    assert result.returncode == 0, result.stderr
    return state


def lab_talks() -> list[tuple[str, str, str, int, float]]:
    """(name/protocol, device MAC, server MAC, port, scenario interval in wall seconds)."""
    truth = json.loads((LAB_DEMO / "truth.json").read_text())
    macs = {d["name"]: d["mac"] for d in truth["devices"]}
    return [
        (f"{d['name']}/{t['protocol']}", d["mac"], macs[t["to"]], t["port"], t["every"])
        for d in truth["devices"]
        for t in d["talks"]
    ]


@pytest.mark.parametrize("talk", lab_talks(), ids=lambda t: t[0])
def test_lab_cadence_matches_the_scenario_and_tshark(
    lab_state: Path, talk: tuple[str, str, str, int, float]
) -> None:
    name, device, server, port, every = talk
    starts = message_starts(
        tshark_times(
            LAB_DEMO / "capture.pcap",
            f"eth.src=={device} && eth.dst=={server} && tcp.dstport=={port} && tcp.len>0",
        )
    )
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    with State(lab_state, create=False) as state:
        baseline = state.load_baseline(device)
    assert baseline is not None
    cadence = baseline.cadence[f"{server}|tcp/{port}"]
    stats = cadence.stats()
    assert stats is not None
    assert cadence.messages == len(starts)
    assert stats.median == pytest.approx(statistics.median(gaps[-64:]), abs=0.0011)
    if name.endswith("/mqtt"):
        # the client's keepalive (PINGREQ every 2 s of wall time) is a message too: the
        # conversation beats faster than the publishes the scenario schedules
        assert stats.median < every
    else:
        assert stats.median == pytest.approx(every, rel=0.05)  # what the scenario asked for


def test_lab_devices_enforce_exactly_when_the_thresholds_say(lab_state: Path) -> None:
    truth = json.loads((LAB_DEMO / "truth.json").read_text())
    with State(lab_state, create=False) as state:
        for device in truth["devices"]:
            windows = active_windows(LAB_DEMO / "capture.pcap", device["mac"], window=10.0)
            baseline = state.load_baseline(device["mac"])
            assert baseline is not None, device["name"]
            assert baseline.windows == len(windows), device["name"]
            assert baseline.enforcing_since == enforcing_time(windows, 30.0, 3, 10.0)
