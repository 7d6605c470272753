"""Every capture of the shared corpus, read by ``open_capture``, against Wireshark's reader.

The full frame-by-frame comparison with tshark (one tshark run per file) is slow; a quick
subset runs always, and the MANIFEST (written with capinfos/tshark when the corpus was made)
checks frame counts and first/last times of every file without running anything.
"""

from __future__ import annotations

import csv
import datetime as dt
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from capture.pcapbuild import as_rows, read_all
from tests.support.tshark import tshark_view

pytestmark = pytest.mark.shared


def _captures(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in (".pcap", ".pcapng"))


def _manifest(root: Path) -> dict[str, dict[str, str]]:
    with open(root / "MANIFEST.tsv", newline="") as f:
        return {row["path"]: row for row in csv.DictReader(f, delimiter="\t")}


def _check_against_tshark(path: Path, manifest_linktype: str) -> str | None:
    """``None`` when our reading equals tshark's, else what differs (one line)."""
    r = read_all(path)
    if r.error is not None and "unsupported link type" in r.error.reason:
        if r.frames or f"({manifest_linktype})" not in r.error.reason:
            return f"{path}: unsupported-type report wrong: {r.error}"
        return None
    view = tshark_view(path)
    rows, stderr = view.frames, view.stderr
    if r.error is not None:
        return f"{path}: we stopped with {r.error}; tshark said {stderr.strip()[-200:]}"
    ours = as_rows(r)
    if len(ours) != len(rows):
        return f"{path}: {len(ours)} frames, tshark {len(rows)}"
    for i, (a, b) in enumerate(zip(ours, rows, strict=True)):
        if a != b:
            return f"{path}: frame {i + 1}: ours {a}, tshark {b}"
    return None


def _run(root: Path, paths: list[Path]) -> list[str]:
    manifest = _manifest(root)
    linktype = {p: manifest.get(str(p.relative_to(root)), {}).get("linktype", "") for p in paths}
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = pool.map(lambda p: _check_against_tshark(p, linktype[p]), paths)
        return [r for r in results if r is not None]


@pytest.mark.slow
def test_every_shared_capture_reads_exactly_like_tshark(shared_pcaps: Path) -> None:
    paths = _captures(shared_pcaps)
    assert len(paths) > 100
    assert _run(shared_pcaps, paths) == []


def test_one_capture_per_source_reads_exactly_like_tshark(shared_pcaps: Path) -> None:
    firsts: dict[tuple[str, str], Path] = {}
    for p in _captures(shared_pcaps):
        source = p.relative_to(shared_pcaps).parts[0]
        if source != "bench":  # 65,000 frames: tshark alone takes seconds; the slow test has it
            firsts.setdefault((source, p.suffix), p)
    paths = sorted(firsts.values())
    assert len(paths) >= 10
    assert _run(shared_pcaps, paths) == []


def _utc(ns: int) -> str:
    sec, rem = divmod(ns, 1_000_000_000)
    t = dt.datetime.fromtimestamp(sec, dt.UTC)
    return f"{t:%Y-%m-%d %H:%M:%S}.{rem // 1000:06d}"


def test_every_shared_capture_has_the_frame_count_and_times_of_the_manifest(
    shared_pcaps: Path,
) -> None:
    problems = []
    unsupported = 0
    for rel, row in _manifest(shared_pcaps).items():
        path = shared_pcaps / rel
        r = read_all(path)
        if r.error is not None:
            if "unsupported link type" in r.error.reason and f"({row['linktype']})" in str(r.error):
                unsupported += 1
                continue
            problems.append(f"{rel}: {r.error}")
            continue
        got = (len(r.frames), _utc(min(r.timestamps)), _utc(max(r.timestamps)))
        want = (int(row["packets"]), row["start_utc"], row["end_utc"])
        if got != want:
            problems.append(f"{rel}: ours {got}, manifest {want}")
    assert problems == []
    # The corpus holds Nordic BLE captures: they must be reported, not read.
    assert unsupported > 0
