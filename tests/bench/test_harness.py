"""bench/harness.py: what the benchmarks (and the tests of them) share."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))

import offline_field  # noqa: E402

PACKETS = 60_000
ASK_FOR_THE_CAPTURE = (
    "import sys; sys.path.insert(0, sys.argv[1]); import harness; "
    "print(harness.generated_capture(int(sys.argv[2]), seconds=10.0))"
)


def test_two_processes_asking_for_one_new_capture_at_once_both_get_it_whole(
    tmp_path: Path,
) -> None:
    """The test suite runs on every core: two workers may ask for the same generated capture
    before either has written it. Each writes a partial file of its own and renames it into
    place, so both succeed, both name the same whole capture and no partial file is left
    (with one partial name, the second rename found nothing to move)."""
    environment = {**os.environ, "TMPDIR": str(tmp_path)}
    command = [sys.executable, "-c", ASK_FOR_THE_CAPTURE, str(REPO / "bench"), str(PACKETS)]
    askers = [
        subprocess.Popen(
            command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    answers = [asker.communicate(timeout=300) for asker in askers]
    assert [asker.returncode for asker in askers] == [0, 0], [err[-500:] for _, err in answers]
    paths = {Path(out.splitlines()[-1]) for out, _ in answers}
    assert len(paths) == 1
    (capture,) = paths
    assert capture.parent == tmp_path / "santinel-bench"
    assert offline_field.capture_extent(capture)[0] == PACKETS
    assert sorted(p.name for p in capture.parent.iterdir()) == [capture.name]
