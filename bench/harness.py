"""What the benchmarks share: Santinel end to end as the daemon wires it, the generated
capture, the machine description, resident memory.

``end_to_end(paths)`` runs the pipeline over capture files with the signature library, the
``DetectorSuite`` scoring every closed window and a ``BaselineStore`` learning it, through
``monitor.detectors.offline.replay`` (what ``santinel analyze --state`` and the daemon's
``_on_window`` do), and returns the analysis, the suite and the store.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

SHARED_CAPTURE = REPO.parent / "shared/data/pcaps/bench/iot-sentinel-public-AB-merged.pcap"
GENERATED_DIR = Path(tempfile.gettempdir()) / "santinel-bench"


GENERATED_SECONDS = 600.0  # bench/generate_traffic.py's default span


def generated_capture(
    packets: int = 1_000_000, seed: int = 1, seconds: float = GENERATED_SECONDS
) -> Path:
    """The generated hospital capture of ``packets`` packets over ``seconds`` of capture
    time, written once and kept."""
    span = "" if seconds == GENERATED_SECONDS else f"-{seconds:g}s"
    return generated_once(
        f"hospital-{packets}-seed{seed}{span}.pcap",
        ["--packets", str(packets), "--seed", str(seed), "--seconds", repr(seconds)],
    )


def generated_once(name: str, options: list[str]) -> Path:
    """``GENERATED_DIR/name``, written by ``bench/generate_traffic.py options`` unless it is
    there. Each process writes its own partial file and renames it into place: two test
    workers (or benchmarks) asking for the same capture at once never read a half-written
    one, and the generator gives both the same bytes."""
    path = GENERATED_DIR / name
    if not path.is_file():
        GENERATED_DIR.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.stem}.{os.getpid()}.partial")
        try:
            subprocess.run(
                [sys.executable, str(REPO / "bench/generate_traffic.py"), str(partial), *options],
                check=True,
            )
            partial.rename(path)
        finally:
            partial.unlink(missing_ok=True)
    return path


def end_to_end_parts(window_seconds: float = 60.0) -> tuple[Any, Any, Any]:
    """(signature library, detector suite, baseline store) as the daemon builds them."""
    from monitor.baseline import BaselineConfig, BaselineStore
    from monitor.detectors import DetectorConfig, DetectorSuite
    from monitor.events import EventBook
    from monitor.runtime import tune_garbage_collector
    from monitor.signatures import default_signature_dirs, load_library

    tune_garbage_collector()  # as the santinel command runs
    library = load_library(default_signature_dirs())
    suite = DetectorSuite(EventBook(hold_seconds=3600.0), DetectorConfig(window_seconds))
    return library, suite, BaselineStore(BaselineConfig())


def end_to_end(
    paths: list[Path], window_seconds: float = 60.0, parts: tuple[Any, Any, Any] | None = None
) -> tuple[Any, Any, Any]:
    """Santinel over ``paths``: decode, inventory, flows, profiles, application metadata,
    classification, detectors and baseline learning on every closed window. ``parts``: those
    of ``end_to_end_parts`` made beforehand (the daemon's start), else made here."""
    from monitor.detectors.offline import replay

    library, suite, store = parts if parts is not None else end_to_end_parts(window_seconds)
    analysis = replay(paths, suite, store, library, window_seconds=window_seconds, learn=True)
    return analysis, suite, store


def status_kib(field: str, pid: int | str = "self") -> int:
    """A ``kB`` line of /proc/PID/status (VmRSS, VmHWM), in KiB."""
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/{pid}/status")


def _version(command: list[str]) -> str:
    if shutil.which(command[0]) is None:
        return "absent"
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = (done.stdout or done.stderr).strip().splitlines()
    return lines[0].rstrip(".") if lines else "?"


def _module_version(name: str) -> str:
    try:
        module = __import__(name)
    except ImportError:
        return "absent"
    return str(getattr(module, "__version__", "?"))


def machine() -> dict[str, str]:
    """Cores, CPU model, memory, versions and load average, for a results section."""
    model = "?"
    with open("/proc/cpuinfo") as handle:
        for line in handle:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_kib = 0
    with open("/proc/meminfo") as handle:
        for line in handle:
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    pretty = platform.platform()
    if os.path.exists("/etc/os-release"):
        with open("/etc/os-release") as handle:
            for line in handle:
                if line.startswith("PRETTY_NAME="):
                    pretty = line.split("=", 1)[1].strip().strip('"')
    return {
        "cores": str(os.cpu_count()),
        "cpu": model,
        "memory": f"{mem_kib / 2**20:.0f} GiB",
        "os": pretty,
        "python": platform.python_version(),
        "numpy": _module_version("numpy"),
        "numba": _module_version("numba"),
        "scapy": _module_version("scapy"),
        "nfstream": _module_version("nfstream"),
        "dpkt": _module_version("dpkt"),
        "tcpdump": _version(["tcpdump", "--version"]),
        "tshark": _version(["tshark", "--version"]),
    }


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def machine_line(info: dict[str, str]) -> str:
    return (
        f"{info['cores']} cores ({info['cpu']}), {info['memory']}, {info['os']}, "
        f"Python {info['python']}, numpy {info['numpy']}, numba {info['numba']}, "
        f"{info['tcpdump']}, {info['tshark']}, scapy {info['scapy']}, "
        f"nfstream {info['nfstream']}, dpkt {info['dpkt']}"
    )
