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

pytestmark = pytest.mark.shared

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


def enforcing_time(windows: list[int], min_duration: float, min_count: int) -> float | None:
    first_start = windows[0] * 60.0
    for count, w in enumerate(windows, start=1):
        end = (w + 1) * 60.0
        if end - first_start >= min_duration and count >= min_count:
            return end
    return None


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
