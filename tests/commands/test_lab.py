"""``santinel lab``: bad scenarios and bad run directories are one-line errors with exit 2."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import run_santinel

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "monitor" / "lab" / "scenarios" / "demo.yml"


def test_lab_check_accepts_the_demo_and_says_how_long_it_plays() -> None:
    done = run_santinel("lab", "check", str(DEMO))
    assert done.returncode == 0, done.stderr
    assert "ok (12 devices, 4 events, 80 s of wall time)" in done.stdout


def test_lab_check_reports_each_problem_on_one_line_with_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    text = DEMO.read_text().replace("time_scale: 60", "time_scale: 60\nspeed: 2")
    bad.write_text(text.replace("every: 10m", "every: often"))
    done = run_santinel("lab", "check", str(bad))
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert lines[0] == f"santinel: {bad}:10: speed: unknown key"
    assert lines[1].startswith(f"santinel: {bad}:") and "talks[0].every" in lines[1]
    assert "Traceback" not in done.stderr


def test_lab_run_refuses_a_bad_scenario_before_building_anything(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("name: x\nduration: 1m\ndevices: []\n")
    done = run_santinel("lab", "run", str(bad), "--out", str(tmp_path / "out"))
    assert done.returncode == 2
    assert done.stderr.startswith(f"santinel: {bad}:3: devices:")
    assert not (tmp_path / "out").exists()


def test_lab_verify_refuses_a_directory_that_is_no_lab_run(tmp_path: Path) -> None:
    done = run_santinel("lab", "verify", str(tmp_path))
    assert done.returncode == 2
    assert done.stderr == f"santinel: {tmp_path}: no truth.json (not a lab run's output)\n"
    (tmp_path / "truth.json").write_text(json.dumps({"devices": "nonsense"}))
    (tmp_path / "capture.pcap").write_bytes(b"")
    done = run_santinel("lab", "verify", str(tmp_path))
    assert done.returncode == 2
    assert len(done.stderr.splitlines()) == 1 and "Traceback" not in done.stderr
