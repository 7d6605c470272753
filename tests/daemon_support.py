"""Helpers for the daemon tests: a test capture made with scapy, a daemon process started
with ``python -m monitor run``, and a scraper that parses its /metrics."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parent.parent


def write_capture(
    path: Path,
    devices: int = 4,
    packets_each: int = 25,
    start: float = 1.7e9,
    spacing: float = 0.01,
) -> int:
    """A small Ethernet/IPv4/UDP capture: ``devices`` hosts each sending to a server."""
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether
    from scapy.utils import wrpcap

    frames = []
    t = start
    for n in range(packets_each):
        for d in range(devices):
            frame = (
                Ether(src=f"02:00:00:00:01:{d:02x}", dst="02:00:00:00:00:fe")
                / IP(src=f"10.9.0.{d + 10}", dst="10.9.0.1")
                / UDP(sport=40000 + d, dport=2575)
                / (b"x" * (20 + n % 7))
            )
            frame.time = t
            t += spacing
            frames.append(frame)
    wrpcap(str(path), frames)
    return len(frames)


def tcpdump_count(path: Path) -> int:
    """Packets in a capture according to tcpdump (the independent count)."""
    out = subprocess.run(
        ["tcpdump", "-nr", str(path)], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    return len(out.splitlines())


class DaemonProcess:
    """``python -m monitor run ARGS`` with its stderr collected; find its port in the log."""

    def __init__(
        self,
        *args: str,
        netns: str | None = None,
        cwd: Path = REPO,
        wrapper: tuple[str, ...] = (),
    ) -> None:
        command = [*wrapper, sys.executable, "-m", "monitor", "run", *args]
        if netns is not None:
            command = ["ip", "netns", "exec", netns, *command]
        # lives as long as the daemon process, closed in stop()
        self.log_file = tempfile.NamedTemporaryFile("w+", suffix=".log", delete=False)  # noqa: SIM115
        self.process = subprocess.Popen(
            command,
            cwd=cwd,
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        self.port: int | None = None

    def log(self) -> str:
        return Path(self.log_file.name).read_text()

    def wait_for(self, pattern: str, timeout: float = 60.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(pattern, self.log())
            if match:
                return match
            if self.process.poll() is not None:
                raise AssertionError(f"daemon exited {self.process.returncode}:\n{self.log()}")
            time.sleep(0.1)
        raise AssertionError(f"{pattern!r} not in the daemon log:\n{self.log()}")

    def wait_listening(self, timeout: float = 60.0) -> int:
        self.port = int(self.wait_for(r"msg=listening .*port=(\d+)", timeout).group(1))
        return self.port

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def metrics(self) -> dict[str, list[tuple[dict[str, str], float]]]:
        text = requests.get(self.url("/metrics"), timeout=10).text
        return {
            f.name: [(s.labels, s.value) for s in f.samples]
            for f in text_string_to_metric_families(text)
        }

    def value(self, name: str, **labels: str) -> float | None:
        for sample_labels, value in self.metrics().get(name, []):
            if all(sample_labels.get(k) == v for k, v in labels.items()):
                return value
        return None

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def stop(self, timeout: float = 10.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log_file.close()
        os.unlink(self.log_file.name)
        return self.process.returncode


def eventually(check: object, timeout: float = 30.0, interval: float = 0.2) -> None:
    """Call ``check`` until it stops raising AssertionError (or re-raise at the deadline)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            check()  # type: ignore[operator]
            return
        except (AssertionError, requests.RequestException):
            if time.monotonic() > deadline:
                raise
            time.sleep(interval)
