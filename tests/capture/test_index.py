"""The compiled indexing loops (monitor/capture/_index.py) outside a developer checkout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from capture.pcapbuild import Frame, ether_frame, pcap_bytes

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None,
    reason="needs root and unshare for a private read-only mount",
)
def test_readers_work_from_a_read_only_install_without_a_cache_directory() -> None:
    # A hardened service runs from a read-only tree with no writable home: numba cannot
    # cache compiled code there, and reading must still work (compiling in memory).
    with tempfile.TemporaryDirectory(prefix="sncap-ro-") as d:
        root = Path(d)
        shutil.copytree(
            REPO / "monitor", root / "monitor", ignore=shutil.ignore_patterns("__pycache__")
        )
        frames = [Frame(i * 1000, ether_frame(i)) for i in range(3)]
        (root / "f.pcap").write_bytes(pcap_bytes(frames))
        code = (
            "from monitor.capture.files import open_capture;"
            "print(sum(len(b) for b in open_capture('f.pcap')))"
        )
        script = (
            f"mount --bind -o ro {d} {d} && cd {d} && "
            f'HOME={d}/home NUMBA_CACHE_DIR= PYTHONPATH={d} {sys.executable} -c "{code}"'
        )
        env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
        out = subprocess.run(
            ["unshare", "-m", "sh", "-c", script],
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
        )
    assert out.returncode == 0, out.stderr[-500:]
    assert out.stdout.strip() == "3"
