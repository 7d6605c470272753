"""Lab fixtures: one recorded run of the CI scenario shared by the tests that read it, and
helpers that list what of the lab is left on the machine."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
CI_WARD = Path(__file__).resolve().parent / "ci-ward.yml"
TOOLS = ("ip", "tcpdump", "tshark", "dnsmasq", "mosquitto", "nmap", "busybox", "in.tftpd",
         "telnet", "openssl")  # fmt: skip


def lab_requirements() -> str | None:
    """Why the lab cannot run here, or None."""
    if os.geteuid() != 0:
        return "the lab needs root (network namespaces)"
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        return f"the lab needs {', '.join(missing)}"
    return None


def tag_of(stderr: str) -> str:
    """The lab tag a ``santinel lab run`` printed (``building … (snlab1234)``)."""
    match = re.search(r"\((snlab\d+)\)", stderr)
    assert match, stderr[-500:]
    return match.group(1)


def leftovers(tag: str) -> list[str]:
    """What of the lab ``tag`` is still on the machine: its namespaces, any host link named
    snlab*, and processes it started (they and their children carry ``SNLAB_TAG`` in their
    environment)."""
    found = []
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    found += [
        f"netns {line.split()[0]}" for line in netns.splitlines() if line.startswith(f"{tag}-")
    ]
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    found += [
        f"link {line.split(':')[1].strip()}" for line in links.splitlines() if "snlab" in line
    ]
    marker = f"SNLAB_TAG={tag}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if marker in environ:
            found.append(f"process {entry.name}: {cmdline[:120].decode(errors='replace')}")
    return found


@dataclass
class LabRun:
    out: Path
    truth: dict[str, Any]
    result: subprocess.CompletedProcess[str]
    left: list[str]

    @property
    def pcap(self) -> Path:
        return self.out / "capture.pcap"

    def device(self, name: str) -> dict[str, Any]:
        return next(d for d in self.truth["devices"] if d["name"] == name)


@pytest.fixture(scope="session")
def ci_run(tmp_path_factory: pytest.TempPathFactory) -> LabRun:
    """``santinel lab run tests/lab/ci-ward.yml`` once (about 50 s), and what it left behind."""
    reason = lab_requirements()
    if reason:
        pytest.skip(reason)
    out = tmp_path_factory.mktemp("ci-ward")
    result = subprocess.run(
        [sys.executable, "-m", "monitor", "lab", "run", str(CI_WARD), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=REPO,
    )
    left = leftovers(tag_of(result.stderr))
    truth = json.loads((out / "truth.json").read_text()) if (out / "truth.json").exists() else {}
    return LabRun(out, truth, result, left)
