"""bench/memory.py where: it traces the flood's child and prints the heap by file and by
line, largest first, within the traced total, with each line's code."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MIB = re.compile(r"^([\d.]+) MiB in ([\d,]+) blocks")


def test_where_prints_the_heap_by_file_and_line_largest_first_within_the_traced_total() -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "memory.py"), "where", "--flows", "2000",
         "--devices", "200", "--top", "12", "--pipeline-only", "--markdown"],
        capture_output=True, text=True, check=True, cwd=REPO,
    )  # fmt: skip
    rows = dict(
        line.strip("| ").split(" | ", 1) for line in done.stdout.splitlines()
        if line.startswith("| ") and not line.startswith("| measure")
    )  # fmt: skip
    label = "pipeline alone (default max_flows)"
    total = re.match(r"([\d.]+) MiB traced when the traffic was read", rows[label])
    assert total, rows[label]
    assert "200 devices, 2,000 flows started" in rows[label]
    files = [(name, value) for name, value in rows.items() if name.startswith(f"{label}: file ")]
    lines = [(name, value) for name, value in rows.items() if name.startswith(f"{label}: line ")]
    assert len(files) == len(lines) == 12
    sizes = [float(MIB.match(value).group(1)) for _, value in files]  # type: ignore[union-attr]
    assert sizes == sorted(sizes, reverse=True)
    assert 0 < sum(sizes) <= float(total.group(1)) + 0.05 * len(sizes)
    # a flood this small shows the fixed costs: the OUI table, named by its library
    assert any(name.endswith(": file netaddr/eui/ieee.py") for name, _ in files)
    ours = [value for name, value in lines if re.search(r"monitor/[\w/]+\.py:\d+$", name)]
    assert ours and all("`" in value for value in ours)  # each line of ours with its code


def test_soak_reports_the_medians_along_the_run_and_the_trend_beside_its_bound() -> None:
    """Memory that creeps stays within 10 % for a while: the soak also prints the median of
    each fifth of the measured run and the least-squares trend."""
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "memory.py"), "soak", "--minutes", "0.25",
         "--every", "0.25", "--capture", str(REPO / "tests/data/lab-demo/capture.pcap"),
         "--markdown"],
        capture_output=True, text=True, cwd=REPO, check=False,
    )  # fmt: skip
    assert done.returncode in (0, 1), done.stderr
    rows = dict(
        line.strip("| ").split(" | ", 1) for line in done.stdout.splitlines()
        if line.startswith("| ") and not line.startswith("| measure")
    )  # fmt: skip
    _first, median, _last, largest = map(
        int, re.findall(r"\d+", rows["anonymous memory (RssAnon) first / median / last / max"])
    )
    along = rows["anonymous memory along the run after the warm-up (median of each fifth)"]
    medians = re.fullmatch(r"(\d+) / (\d+) / (\d+) / (\d+) / (\d+) MiB", along)
    assert medians, along
    fifths = [int(v) for v in medians.groups()]
    assert max(fifths) <= largest and min(fifths) <= median <= max(fifths)
    assert re.fullmatch(
        r"[+-]\d+\.\d MiB per hour", rows["trend after the warm-up (least squares)"]
    )
    assert ("within 10%" in rows["largest departure from the first"]) == (done.returncode == 0)
