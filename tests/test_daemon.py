"""The daemon as a process: replaying a capture into its metrics, reload keeping the old
config on error, clean and quick SIGTERM, and the capability drop."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from monitor.daemon import Daemon, Options
from monitor.privileges import capability_sets
from tests.daemon_support import REPO, DaemonProcess, eventually, tcpdump_count, write_capture
from tests.netns_support import Forwarder, netns_available, wire


@pytest.fixture
def capture(tmp_path: Path) -> tuple[Path, int]:
    path = tmp_path / "ward.pcap"
    count = write_capture(path, devices=6, packets_each=20)
    assert tcpdump_count(path) == count
    return path, count


def _config(path: Path, max_devices: int) -> Path:
    path.write_text(
        f"web:\n  listen_address: 127.0.0.1:0\nexporter:\n  max_devices: {max_devices}\n"
        f"state:\n  path: {path.parent / 'state.db'}\n"
    )
    return path


def test_replayed_capture_appears_in_the_metrics_and_sigterm_exits_cleanly(
    tmp_path: Path, capture: tuple[Path, int]
) -> None:
    pcap, count = capture
    daemon = DaemonProcess(
        "--pcap",
        str(pcap),
        "--replay-speed",
        "0",
        "--web.listen-address",
        "127.0.0.1:0",
        "--state",
        str(tmp_path / "state.db"),
    )
    try:
        daemon.wait_listening()
        daemon.wait_for("capture file finished")
        assert requests.get(daemon.url("/-/ready"), timeout=10).status_code == 200
        assert daemon.value("santinel_capture_packets", interface="ward.pcap") == count
        info = daemon.metrics()["santinel_device_info"]
        macs = {labels["mac"] for labels, _ in info}
        assert {f"02:00:00:00:01:{d:02x}" for d in range(6)} <= macs
        assert daemon.value("santinel_device_transmit_packets", device="02:00:00:00:01:03") == 20
        exposition = requests.get(daemon.url("/metrics"), timeout=10).content
        lint = subprocess.run(
            ["promtool", "check", "metrics"], input=exposition, capture_output=True, timeout=60
        )
        assert lint.returncode == 0 and not lint.stdout and not lint.stderr, lint
        started = time.monotonic()
        daemon.signal(signal.SIGTERM)
        assert daemon.process.wait(10) == 0
        assert time.monotonic() - started < 5
    finally:
        daemon.stop()


def test_reload_with_a_broken_config_keeps_the_old_one_and_says_so(
    tmp_path: Path, capture: tuple[Path, int]
) -> None:
    pcap, _ = capture
    config = _config(tmp_path / "santinel.yml", max_devices=2)
    daemon = DaemonProcess("--config.file", str(config), "--pcap", str(pcap), "--replay-speed", "0")
    try:
        daemon.wait_listening()
        daemon.wait_for("capture file finished")
        assert len(daemon.metrics()["santinel_device_info"]) == 2
        assert daemon.value("santinel_config_last_reload_successful") == 1

        config.write_text("exporter:\n  max_devices: many\n")
        daemon.signal(signal.SIGHUP)
        eventually(lambda: _assert_equal(daemon.value("santinel_config_last_reload_successful"), 0))
        line = daemon.wait_for(r".*reload failed.*").group(0)
        assert f"{config}:2: exporter.max_devices" in line
        # the old config is still in force
        assert len(daemon.metrics()["santinel_device_info"]) == 2

        _config(config, max_devices=5)
        response = requests.post(daemon.url("/-/reload"), timeout=30)
        assert response.status_code == 200
        assert daemon.value("santinel_config_last_reload_successful") == 1
        assert len(daemon.metrics()["santinel_device_info"]) == 5

        config.write_text("exporter: {max_devices: 1}\nnot_an_option: 1\n")
        response = requests.post(daemon.url("/-/reload"), timeout=30)
        assert response.status_code == 500
        assert "not_an_option: unknown key" in response.text
        assert len(daemon.metrics()["santinel_device_info"]) == 5
        assert daemon.process.poll() is None
    finally:
        assert daemon.stop() == 0


def _assert_equal(a: object, b: object) -> None:
    assert a == b


def test_exit_after_pcap_exits_0_when_the_file_ends(
    tmp_path: Path, capture: tuple[Path, int]
) -> None:
    pcap, _ = capture
    daemon = DaemonProcess(
        "--state",
        str(tmp_path / "state.db"),
        "--pcap",
        str(pcap),
        "--replay-speed",
        "0",
        "--exit-after-pcap",
        "--web.listen-address",
        "127.0.0.1:0",
    )
    assert daemon.process.wait(60) == 0
    assert "capture file finished" in daemon.log()
    daemon.stop()


def test_bad_config_refuses_to_start_with_file_and_line(tmp_path: Path) -> None:
    config = tmp_path / "santinel.yml"
    config.write_text("capture:\n  snaplen: 1\n")
    daemon = DaemonProcess("--config.file", str(config))
    assert daemon.process.wait(60) == 2
    assert daemon.log() == (
        f"santinel: {config}:2: capture.snaplen: Input should be greater than or equal to 64\n"
    )
    daemon.stop()


def test_insecure_remote_listen_is_refused_at_start(capture: tuple[Path, int]) -> None:
    pcap, _ = capture
    daemon = DaemonProcess("--pcap", str(pcap), "--web.listen-address", "0.0.0.0:0")
    assert daemon.process.wait(60) == 2
    assert "refusing to listen on 0.0.0.0:0 without TLS or basic auth" in daemon.log()
    daemon.stop()


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A state directory that an unprivileged user can reach (pytest's tmp_path is 0700)."""
    path = Path(tempfile.mkdtemp(prefix="sndmn-state-"))
    path.chmod(0o777)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.mark.skipif(capability_sets().get("CapEff", 0) == 0, reason="needs root/capabilities")
@pytest.mark.parametrize("user", [None, "nobody"])
def test_daemon_runs_with_no_capabilities_left(
    open_dir: Path, capture: tuple[Path, int], user: str | None
) -> None:
    pcap, count = capture
    args = [
        "--pcap",
        str(pcap),
        "--replay-speed",
        "0",
        "--web.listen-address",
        "127.0.0.1:0",
        "--state",
        str(open_dir / "state.db"),
    ]
    if user:
        args += ["--user", user]
    daemon = DaemonProcess(*args)
    try:
        daemon.wait_listening()
        daemon.wait_for("capture file finished")
        status = Path(f"/proc/{daemon.process.pid}/status").read_text()
        sets = capability_sets(daemon.process.pid)
        served = daemon.value("santinel_capture_packets", interface="ward.pcap")
    finally:
        log = daemon.log()
        code = daemon.stop()
    assert sets["CapEff"] == sets["CapPrm"] == sets["CapAmb"] == sets["CapInh"] == 0
    assert sets["CapBnd"] == 0
    assert "NoNewPrivs:\t1" in status
    if user:
        assert "Uid:\t65534\t65534\t65534\t65534" in status
    assert served == count
    assert code == 0, log


def test_detector_events_reach_the_metrics_and_the_events_file(
    tmp_path: Path, capture: tuple[Path, int]
) -> None:
    from monitor.model import WindowProfile

    pcap, _ = capture
    events_file = tmp_path / "events.jsonl"
    daemon = _in_process(
        tmp_path,
        pcap,
        f"anomalies:\n  events_file: {events_file}\n  hold_seconds: 1h\n"
        "profiles:\n  window_seconds: 1s\n",
        detector_suite=False,
    )
    flagged: list[str] = []

    def busy_talker(
        profiles: list[WindowProfile], analysis: object, store: object
    ) -> list[dict[str, object]]:
        events: list[dict[str, object]] = []
        for p in profiles:
            if p.device_id == "02:00:00:00:01:02" and p.tx_packets and not flagged:
                flagged.append(p.device_id)
                events.append(
                    {
                        "device": p.device_id,
                        "detector": "volume",
                        "severity": "warning",
                        "summary": "sent more than usual",
                    }
                )
        return events

    daemon.detectors.append(busy_talker)
    text = _exposition_after_the_capture(daemon)
    assert flagged == ["02:00:00:00:01:02"]
    lines = events_file.read_text().splitlines()
    assert [json.loads(line)["detector"] for line in lines] == ["volume"]
    assert (
        'santinel_anomalies_total{detector="volume",device="02:00:00:00:01:02",'
        'severity="warning"} 1.0'
    ) in text
    assert (
        'santinel_anomaly_active{detector="volume",device="02:00:00:00:01:02",'
        'severity="warning"} 1.0'
    ) in text


def test_each_closed_window_s_judging_is_timed_into_the_metrics(
    tmp_path: Path, capture: tuple[Path, int]
) -> None:
    """Every window the detectors score counts once, with the time its judging took
    (here at least the 20 ms a slow detector sleeps) and its number of device profiles."""
    from prometheus_client.parser import text_string_to_metric_families

    from monitor.model import WindowProfile

    pcap, _ = capture
    daemon = _in_process(tmp_path, pcap, "profiles:\n  window_seconds: 1s\n", detector_suite=False)
    judged: list[int] = []

    def slow_detector(
        profiles: list[WindowProfile], analysis: object, store: object
    ) -> list[dict[str, object]]:
        judged.append(len(profiles))
        time.sleep(0.02)
        return []

    daemon.detectors.append(slow_detector)
    text = _exposition_after_the_capture(daemon)
    values = {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    assert len(judged) > 1
    assert values["santinel_windows_judged_total"] == len(judged)
    assert values["santinel_window_judge_seconds_total"] >= 0.02 * len(judged)
    assert values["santinel_window_judge_last_duration_seconds"] >= 0.02
    assert values["santinel_window_judge_last_devices"] == judged[-1] > 0


def _exposition_after_the_capture(daemon: Daemon) -> str:
    """Run ``daemon`` to the end of its capture file; its /metrics text then."""
    from prometheus_client import generate_latest

    try:
        daemon.start()
        daemon.run_loop()
        assert daemon.web is not None
        return generate_latest(daemon.web.registry).decode()
    finally:
        daemon.shutdown()


def _in_process(
    tmp_path: Path, pcap: Path, config_text: str, detector_suite: bool = True
) -> Daemon:
    """A daemon in this process replaying ``pcap`` once, as fast as it reads; without the
    detector suite, a test gives it detectors of its own (``daemon.detectors``)."""
    config = tmp_path / "santinel.yml"
    config.write_text("web:\n  listen_address: 127.0.0.1:0\n" + config_text)
    return Daemon(
        Options(
            config_file=config,
            pcap=pcap,
            replay_speed=0,
            exit_after_pcap=True,
            state=tmp_path / "state.db",
            drop_privileges=False,
            detector_suite=detector_suite,
        )
    )


def test_reload_with_a_broken_signature_file_keeps_the_old_library(
    tmp_path: Path, capture: tuple[Path, int]
) -> None:
    pcap, _ = capture
    library = tmp_path / "signatures"
    shutil.copytree(REPO / "signatures", library)
    daemon = _in_process(tmp_path, pcap, f"signatures:\n  dirs: [{library}]\n")
    try:
        daemon.start()
        daemon.run_loop()
        old = daemon.signatures
        assert old is not None and len(old) > 0
        victim = sorted((library / "fingerprints").glob("*.yml"))[0]
        good = victim.read_text()
        victim.write_text(good + "\n  - id: [unclosed\n")
        ok, message = daemon.reload()
        assert not ok and message.startswith("reload failed: signatures: ")
        assert daemon.signatures is old and daemon.analysis.signatures is old
        assert daemon.sensor is not None and not daemon.sensor.config_reload_successful
        victim.write_text(good)
        assert daemon.reload() == (True, "configuration reloaded")
        assert daemon.signatures is not old and daemon.analysis.signatures is daemon.signatures
        assert daemon.sensor.config_reload_successful
    finally:
        daemon.shutdown()


def test_learning_state_and_cadence_come_from_the_baselines(tmp_path: Path) -> None:
    pcap = tmp_path / "steady.pcap"
    # two devices, each sending one datagram every second (frames alternate every 0.5 s)
    write_capture(pcap, devices=2, packets_each=12, spacing=0.5)
    daemon = _in_process(
        tmp_path,
        pcap,
        "profiles:\n  window_seconds: 3s\nbaseline:\n  min_duration: 0s\n  min_windows: 2\n",
    )
    text = _exposition_after_the_capture(daemon)
    assert daemon.store is not None and len(daemon.store) == 2
    assert 'santinel_devices{device_class="unknown",state="enforcing"} 2.0' in text
    assert 'santinel_device_baseline_ready{device="02:00:00:00:01:00"} 1.0' in text
    cadence = re.search(
        r'santinel_device_expected_interval_seconds\{device="02:00:00:00:01:00"\} (\S+)', text
    )
    assert cadence is not None and float(cadence.group(1)) == pytest.approx(1.0, abs=0.01)


@pytest.mark.netns
@pytest.mark.skipif(not netns_available(), reason="needs root and ip netns")
def test_live_capture_waits_out_a_link_flap_and_exits_when_the_interface_disappears(
    tmp_path: Path, capture: tuple[Path, int]
) -> None:
    pcap, count = capture
    with wire() as w:
        daemon = DaemonProcess(
            "--interface",
            w.receiver,
            "--state",
            str(tmp_path / "s.db"),
            "--web.listen-address",
            "127.0.0.1:10575",
            netns=w.netns,
        )
        forwarder = Forwarder(w.netns, 10575)
        try:
            daemon.wait_for("msg=capturing")
            daemon.port = forwarder.port
            link = ["ip", "-n", w.netns, "link", "set", w.receiver]
            subprocess.run([*link, "down"], check=True, timeout=30)
            daemon.wait_for("capture interface is down; waiting")
            subprocess.run([*link, "up"], check=True, timeout=30)
            daemon.wait_for("capture interface is up again")
            subprocess.run(
                ["ip", "netns", "exec", w.netns, "tcpreplay", "-q", "-i", w.sender, str(pcap)],
                check=True,
                capture_output=True,
                timeout=60,
            )
            eventually(
                lambda: _assert_equal(
                    daemon.value("santinel_capture_packets", interface=w.receiver), count
                )
            )
            assert daemon.process.poll() is None
            subprocess.run(["ip", "-n", w.netns, "link", "del", w.receiver], check=True, timeout=30)
            assert daemon.process.wait(15) == 2
            assert daemon.log().endswith(
                f"santinel: {w.receiver}: capture failed: the interface disappeared\n"
            )
        finally:
            forwarder.close()
            daemon.stop()


CAP_NET_RAW = 13


@pytest.mark.netns
@pytest.mark.skipif(not netns_available(), reason="needs root and ip netns")
def test_started_with_only_cap_net_raw_it_captures_and_then_holds_no_capability(
    tmp_path: Path, capture: tuple[Path, int]
) -> None:
    # as systemd starts it (AmbientCapabilities=CAP_NET_RAW, CapabilityBoundingSet=CAP_NET_RAW):
    # no CAP_SETPCAP, so the bounding set cannot shrink, but nothing is effective or permitted
    pcap, count = capture
    only_raw = (
        "setpriv",
        "--bounding-set=-all,+net_raw",
        "--inh-caps=-all,+net_raw",
        "--ambient-caps=-all,+net_raw",
    )
    with wire() as w:
        daemon = DaemonProcess(
            "--interface",
            w.receiver,
            "--state",
            str(tmp_path / "s.db"),
            "--web.listen-address",
            "127.0.0.1:10575",
            netns=w.netns,
            wrapper=only_raw,
        )
        forwarder = Forwarder(w.netns, 10575)
        try:
            daemon.wait_for("msg=capturing")
            daemon.port = forwarder.port
            sets = capability_sets(daemon.process.pid)
            subprocess.run(
                ["ip", "netns", "exec", w.netns, "tcpreplay", "-q", "-i", w.sender, str(pcap)],
                check=True,
                capture_output=True,
                timeout=60,
            )
            eventually(
                lambda: _assert_equal(
                    daemon.value("santinel_capture_packets", interface=w.receiver), count
                )
            )
        finally:
            forwarder.close()
            log = daemon.log()
            code = daemon.stop()
    assert sets["CapEff"] == sets["CapPrm"] == sets["CapAmb"] == sets["CapInh"] == 0
    assert sets["CapBnd"] == 1 << CAP_NET_RAW
    assert code == 0, log


PRELOAD_CHECK = """
import json, sys
import ctypes, numba, numpy as np
from monitor import flows, interning, profiles
from monitor.capture import afpacket
from monitor.decode import headers
from monitor.daemon import _preload
from monitor.capture import FrameBatch
from monitor.capture.files import open_capture
from monitor.pipeline import Analysis
_preload()
helpers = {(m.__name__, n): h for m in (flows, headers, interning, profiles, afpacket)
           for n, h in vars(m).items()
           if isinstance(h, numba.core.registry.CPUDispatcher)}
before = {k: len(h.signatures) for k, h in helpers.items()}
# a live ring's first read, over memory mapped as PacketRing maps it (no frame handed over)
area = (ctypes.c_uint8 * 8192)()
ring8 = np.ctypeslib.as_array(ctypes.cast(area, ctypes.POINTER(ctypes.c_uint8)), shape=(8192,))
block, index, offset = 0, 0, 0
afpacket._drain_ring(ring8, ring8.view(np.uint16), ring8.view(np.uint32), 4096, 2,
                     block, index, offset, 65536, 65535, False, True)
analysis = Analysis()
for batch in open_capture(sys.argv[1]):
    live = FrameBatch(np.array(batch.buffer), batch.offsets, batch.caplens, batch.wirelens,
                      batch.timestamps_ns, batch.linktypes, batch.source)
    analysis.feed(live)  # a live ring's buffer is writable
    analysis.feed(batch)  # a mapped file's is read-only
# a baseline learning a window of many messages (the daemon's detectors do)
profiles.CadenceTable().observe_all({"a|tcp/1": [float(i) for i in range(100)]})
print(json.dumps([".".join(k) for k, h in helpers.items() if len(h.signatures) != before[k]]))
"""


def test_preload_compiles_what_live_and_file_batches_need() -> None:
    """In a fresh process: after the daemon's preload, no live ring's first read, no batch
    and no baseline learning a window waits for the JIT."""
    import json
    import subprocess
    import sys

    demo = REPO / "tests" / "data" / "lab-demo" / "capture.pcap"
    done = subprocess.run(
        [sys.executable, "-c", PRELOAD_CHECK, str(demo)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
        check=True,
    )
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


def test_a_quiet_wire_tick_leaves_a_window_open_while_its_last_frames_may_be_in_the_ring(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A live read lets ring blocks gather, so frames of a window may wait in the ring after
    its end: the single-process daemon's quiet-wire tick closes the window only once
    ``TICK_GRACE`` has passed too, as the workers' tick does."""
    import threading
    from types import SimpleNamespace

    from monitor import daemon as daemon_module
    from monitor.capture.files import open_capture
    from monitor.pipeline import Analysis

    demo = REPO / "tests" / "data" / "lab-demo" / "capture.pcap"
    analysis = Analysis(window_seconds=60)
    first = next(iter(open_capture(demo)))
    analysis.feed(first)
    (window_end,) = [state.end for state in analysis._windows.values()]
    daemon = Daemon.__new__(Daemon)
    daemon.sensor = SimpleNamespace(lock=threading.Lock(), now=0.0)  # type: ignore[assignment]
    daemon.source = SimpleNamespace(live=True, name="eth0", dropped=lambda: None)  # type: ignore[assignment]
    daemon.analysis = analysis
    daemon.suite = None
    grace = daemon_module.TICK_GRACE
    for after_end, still_open in ((grace / 2, True), (grace, False)):
        now = window_end + after_end
        monkeypatch.setattr(daemon_module.time, "time", lambda now=now: now)
        daemon._housekeeping()
        assert bool(analysis._windows) is still_open, after_end
