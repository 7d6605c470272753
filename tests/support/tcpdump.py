"""Record loopback traffic with tcpdump while a block of test code runs."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

_TIMEOUT = 20.0


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@contextlib.contextmanager
def recording(pcap: Path, port: int, check_free: bool = True) -> Iterator[Path]:
    """Record ``tcp port PORT`` on loopback into ``pcap`` while the block runs.

    Waits for tcpdump's "listening on" line (printed once the capture is active), and ends it
    with SIGINT so it flushes and closes the file. With ``check_free`` it first refuses a port
    that something already listens on (another run would pollute the capture).
    """
    if check_free and not _port_free(port):
        raise RuntimeError(f"port {port} on 127.0.0.1 is in use; pick another")
    proc = subprocess.Popen(
        [
            "tcpdump",
            "-i",
            "lo",
            "-n",
            "-U",
            "--immediate-mode",
            "-w",
            str(pcap),
            "tcp port " + str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + _TIMEOUT
        seen = b""
        while b"listening on" not in seen:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"tcpdump did not start: {seen.decode(errors='replace')}")
            ready, _, _ = select.select([proc.stderr], [], [], 0.1)
            if ready:
                seen += os.read(proc.stderr.fileno(), 4096)
        yield pcap
        time.sleep(0.3)  # let the last FIN/ACK reach the capture
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()
