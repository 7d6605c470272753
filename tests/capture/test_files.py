"""Opening capture files: format by magic number, bad paths, hostile bytes (capture/files.py)."""

from __future__ import annotations

import gzip
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from capture.pcapbuild import (
    Frame,
    epb,
    ether_frame,
    idb,
    pcap_bytes,
    read_all,
    shb,
    spb,
    write,
)
from monitor.capture import CaptureError, FrameBatch
from monitor.capture.files import linktype_name, open_capture, read_buffer

FRAMES = [
    Frame(1_600_000_000_000_000_000 + i * 1_000_000, ether_frame(i, 60 + i)) for i in range(5)
]
PCAP = pcap_bytes(FRAMES)
PCAPNG = shb() + idb(1) + b"".join(epb(0, f.ts_ns // 1000, f.data) for f in FRAMES)


@pytest.mark.parametrize("name", ["a.pcapng", "a.cap", "a", "a.txt"])
def test_pcap_is_recognised_by_magic_whatever_the_name(tmp_path: Path, name: str) -> None:
    r = read_all(write(tmp_path / name, PCAP))
    assert r.error is None
    assert r.frames == [f.data for f in FRAMES]


@pytest.mark.parametrize("name", ["a.pcap", "a.dump", "noext"])
def test_pcapng_is_recognised_by_magic_whatever_the_name(tmp_path: Path, name: str) -> None:
    r = read_all(write(tmp_path / name, PCAPNG))
    assert r.error is None
    assert r.frames == [f.data for f in FRAMES]
    assert r.timestamps == [f.ts_ns for f in FRAMES]


def test_gzip_compressed_capture_is_read_like_wireshark_does(tmp_path: Path) -> None:
    r = read_all(write(tmp_path / "c.pcap.gz", gzip.compress(PCAPNG)))
    assert r.error is None
    assert r.frames == [f.data for f in FRAMES]


def test_truncated_gzip_capture_gives_good_frames_then_an_error(tmp_path: Path) -> None:
    big = pcap_bytes([Frame(i, ether_frame(i, 1000)) for i in range(200)])
    packed = gzip.compress(big)
    r = read_all(write(tmp_path / "c.pcap.gz", packed[: len(packed) // 2]))
    assert isinstance(r.error, CaptureError)
    assert 0 < len(r.frames) < 200


def test_directory_is_a_capture_error(tmp_path: Path) -> None:
    with pytest.raises(CaptureError, match="directory"):
        open_capture(tmp_path)


def test_missing_file_is_a_capture_error(tmp_path: Path) -> None:
    with pytest.raises(CaptureError, match="cannot read") as info:
        open_capture(tmp_path / "absent.pcap")
    assert str(info.value).startswith(str(tmp_path / "absent.pcap"))


def test_path_through_a_file_is_a_capture_error(tmp_path: Path) -> None:
    write(tmp_path / "f", PCAP)
    with pytest.raises(CaptureError, match="cannot read"):
        open_capture(tmp_path / "f" / "x.pcap")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to another user")
def test_unreadable_file_is_a_capture_error() -> None:
    # Root reads anything: a child drops to nobody (after importing) to meet the permission
    # check, on a file in a directory nobody may enter but not read the file.
    with tempfile.TemporaryDirectory(prefix="sncap-") as d:
        Path(d).chmod(0o755)
        path = write(Path(d) / "secret.pcap", PCAP)
        path.chmod(0)
        code = (
            "import os,sys\n"
            "from monitor.capture import CaptureError\n"
            "from monitor.capture.files import open_capture\n"
            "os.setgid(65534); os.setuid(65534)\n"
            "try:\n  open_capture(sys.argv[1])\nexcept CaptureError as e:\n  print(e)"
        )
        repo = Path(__file__).resolve().parents[2]
        out = subprocess.run(
            [sys.executable, "-c", code, str(path)],
            capture_output=True,
            text=True,
            cwd=repo,
            env={**os.environ, "PYTHONPATH": str(repo)},
            check=True,
        )
    assert out.stdout.strip() == f"{path}: cannot read: Permission denied"


def test_fifo_is_read_without_mapping(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    writer = subprocess.Popen(["sh", "-c", f"cat > {fifo}"], stdin=subprocess.PIPE)
    assert writer.stdin is not None
    writer.stdin.write(PCAP)
    writer.stdin.close()
    try:
        r = read_all(fifo)
    finally:
        writer.wait(timeout=10)
    assert r.error is None
    assert r.frames == [f.data for f in FRAMES]


def test_empty_file_is_a_capture_error(tmp_path: Path) -> None:
    with pytest.raises(CaptureError, match="empty"):
        open_capture(write(tmp_path / "e.pcap", b""))


@pytest.mark.parametrize("data", [b"\xd4", b"\xd4\xc3\xb2", b"\xd4\xc3\xb2\xa1" + b"\0" * 10])
def test_short_files_are_capture_errors(tmp_path: Path, data: bytes) -> None:
    r = read_all(write(tmp_path / "s.pcap", data))
    assert isinstance(r.error, CaptureError)
    assert r.frames == []


def test_text_file_is_not_a_capture_and_its_content_is_not_quoted(tmp_path: Path) -> None:
    path = write(tmp_path / "pid.pcap", b"MSH|^~\\&|LAB\rPID|1||123456^^^HOSP||DOE^JANE\r")
    with pytest.raises(CaptureError) as info:
        open_capture(path)
    msg = str(info.value)
    assert "unknown magic number" in msg
    for secret in ("MSH", "PID", "DOE", "JANE", "123456"):
        assert secret not in msg.replace(str(path), "")


@pytest.mark.parametrize("fmt", ["modpcap", "suse6_3pcap"])
def test_modified_pcap_variants_are_refused_by_name(tmp_path: Path, fmt: str) -> None:
    src = write(tmp_path / "src.pcap", PCAP)
    dst = tmp_path / f"{fmt}.pcap"
    subprocess.run(["editcap", "-F", fmt, str(src), str(dst)], check=True, capture_output=True)
    r = read_all(dst)
    assert r.frames == []
    assert r.error is not None and "modified (Kuznetzov) pcap" in r.error.reason


def test_linktype_name_names_known_and_unknown_types() -> None:
    assert linktype_name(1) == "Ethernet"
    assert linktype_name(272) == "Nordic BLE"
    assert linktype_name(276) == "Linux cooked v2 (SLL2)"
    assert linktype_name(99999) == "unknown"
    assert linktype_name(-1) == "unknown"


def _drain(data: bytes) -> list[FrameBatch]:
    buf = np.frombuffer(data, np.uint8)
    out: list[FrameBatch] = []
    try:
        for b in read_buffer(buf, "fuzz", batch_frames=3):
            out.append(b)
    except CaptureError as exc:
        assert str(exc).startswith("fuzz: ")
    for b in out:
        # Every frame lies inside the buffer.
        assert np.all(b.offsets >= 0)
        assert np.all(b.offsets + b.caplens <= b.buffer.shape[0])
        assert np.all(b.caplens >= 0)
    return out


_PREFIXES = [
    b"",
    b"\xd4\xc3\xb2\xa1\x02\x00\x04\x00" + b"\0" * 12 + b"\x01\0\0\0",
    b"\xa1\xb2\x3c\x4d\x00\x02\x00\x04" + b"\0" * 12 + b"\0\0\0\x01",
    shb(),
    shb() + idb(1),
    shb(big=True) + idb(1, big=True, tsresol=0x80 | 40),
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(_PREFIXES), st.binary(max_size=400))
def test_random_bytes_after_any_header_raise_only_capture_error(prefix: bytes, tail: bytes) -> None:
    _drain(prefix + tail)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from([PCAP, PCAPNG, PCAPNG + spb(b"x" * 30) + shb(big=True)]),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=8),
)
def test_corrupted_valid_files_raise_only_capture_error(
    data: bytes, flips: list[tuple[int, int]]
) -> None:
    mutated = bytearray(data)
    for pos, value in flips:
        mutated[pos % len(mutated)] = value
    _drain(bytes(mutated))


def test_batch_frames_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        open_capture(write(tmp_path / "a.pcap", PCAP), batch_frames=0)


MAPPING_HEADER = re.compile(r"^[0-9a-f]+-[0-9a-f]+ ")


def _mapped_resident_kib(path: Path) -> int:
    """Resident KiB of this process's mappings of ``path`` (/proc/self/smaps)."""
    total = 0
    inside = False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        if MAPPING_HEADER.match(line):
            inside = line.rstrip().endswith(str(path))
        elif inside and line.startswith("Rss:"):
            total += int(line.split()[1])
    return total


def test_pages_of_frames_already_read_are_given_back_and_read_again_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("monitor.capture.files.RELEASE_BYTES", 1 << 20)
    frames = [Frame(1_600_000_000_000_000_000 + i, ether_frame(i, 1500)) for i in range(16000)]
    path = write(tmp_path / "big.pcap", pcap_bytes(frames))
    size_kib = path.stat().st_size // 1024  # about 24,000
    resident = []
    batches = []
    for batch in open_capture(path, batch_frames=256):
        batches.append(batch)
        resident.append(_mapped_resident_kib(path))
    # a reader keeping every page would hold the whole file by the end; this one holds what
    # is read since the last release (pages may come in 2 MiB folios, as on a tmpfs)
    assert resident[-1] > 0
    assert max(resident) < size_kib // 4
    # every batch is still whole: the pages given back are read again from the file
    assert [b.frame(i) for b in batches for i in range(len(b))] == [f.data for f in frames]


def test_a_damaged_small_capture_holds_no_descriptor_while_its_error_lives(
    tmp_path: Path,
) -> None:
    """An error's traceback holds the buffer the reader was reading; were the file mapped,
    the mapping would hold a descriptor of it until a garbage collection. A program (or a
    test run) that keeps the errors of a thousand damaged captures ran out of descriptors:
    ``select()`` refuses those past 1,024. A small file is read into memory instead."""
    path = write(tmp_path / "cut.pcap", PCAP[:-3])
    errors: list[CaptureError] = []
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(50):
        try:
            for _ in open_capture(path):
                pass
        except CaptureError as error:
            errors.append(error)
    assert len(errors) == 50 and all(e.__traceback__ is not None for e in errors)
    assert len(os.listdir("/proc/self/fd")) == before
