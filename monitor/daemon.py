"""The sensor daemon: capture → pipeline → state, with the exporter served alongside.

Lifecycle (``Daemon.run``):

1. open the packet source (a live interface needs CAP_NET_RAW for this step only): one
   AF_PACKET ring, or with ``capture.workers`` > 1 one ring per worker in a fanout group;
2. drop every capability (and switch to ``--user`` if given) before any thread starts, then
   fork the capture workers (``monitor.workers``), which so never hold a capability;
3. load signatures and the saved state, start the HTTP endpoint, become ready;
4. loop: read a batch, feed it to the ``Analysis`` under the sensor lock, tick windows when a
   live wire is quiet, update the kernel-drop counter, checkpoint the state every
   ``state.checkpoint_interval``, and handle reloads. With workers the loop takes their
   reports instead, merges them (``monitor.merge.MergedAnalysis``) and runs the window path
   (detectors, baselines) on the merged windows;
5. on SIGTERM/SIGINT: stop the workers (their last reports are merged), checkpoint once
   more and exit 0 within seconds.

Promises:
- SIGHUP and ``POST /-/reload`` re-read the config file and the signatures; on any error the
  old ones stay in force, ``santinel_config_last_reload_successful`` becomes 0 and one log
  line says why (1 again after the next good reload);
- capture time is the clock (a replayed file ages devices on its own timestamps);
- after a capture file ends the daemon keeps serving its metrics until SIGTERM, unless
  ``exit_after_pcap``;
- a capture worker that dies is logged in one line and the daemon exits non-zero (its
  supervisor restarts it) rather than running blind;
- logs carry metadata only (interface, file names, counts, reasons), never payload.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import pkgutil
import signal
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry

from monitor.capture import CaptureError, FrameBatch
from monitor.config import Config, ConfigError, load_config, privacy_key
from monitor.daemon_sources import FileSource, LiveSource, PacketSource
from monitor.exporter import ExporterSettings, Learning, Sensor
from monitor.exporter.anomalies import AnomalyBook
from monitor.exporter.registry import build_registry
from monitor.logs import log, setup
from monitor.merge import MergedAnalysis, WorkerReport
from monitor.model import WindowProfile
from monitor.privileges import PrivilegeError, drop_privileges
from monitor.web import WebError, WebServer
from monitor.workers import TICK_GRACE, WorkerFailed, WorkerPool

Detector = Callable[[list[WindowProfile], Any, Any], Iterable[Mapping[str, Any]]]

READ_TIMEOUT = 0.1
STATS_INTERVAL = 1.0


class DaemonError(Exception):
    """The daemon cannot start; the message is one line for the user."""


@dataclass
class Options:
    """Command-line settings that override the config file."""

    config_file: Path | None = None
    state: Path | None = None
    interface: str | None = None
    pcap: Path | None = None
    replay_speed: float | None = None
    exit_after_pcap: bool = False
    user: str | None = None
    listen_address: str | None = None
    web_config_file: Path | None = None
    log_level: str | None = None
    log_format: str | None = None
    drop_privileges: bool = True
    # run the detector part (monitor.detectors) when it is installed; tests that plug their
    # own detector callables into ``Daemon.detectors`` turn it off
    detector_suite: bool = True


def effective_config(config: Config, options: Options) -> Config:
    """``config`` with the command-line overrides applied."""
    capture = config.capture
    if options.interface is not None:
        capture = capture.model_copy(update={"interface": options.interface, "pcap": None})
    if options.pcap is not None:
        capture = capture.model_copy(update={"pcap": options.pcap, "interface": None})
    if options.replay_speed is not None:
        capture = capture.model_copy(update={"replay_speed": options.replay_speed})
    web = config.web
    if options.listen_address is not None:
        web = web.model_copy(update={"listen_address": options.listen_address})
    if options.web_config_file is not None:
        web = web.model_copy(update={"config_file": options.web_config_file})
    state = config.state
    if options.state is not None:
        state = state.model_copy(update={"path": options.state})
    logging_ = config.logging
    if options.log_level is not None:
        logging_ = logging_.model_copy(update={"level": options.log_level})
    if options.log_format is not None:
        logging_ = logging_.model_copy(update={"format": options.log_format})
    return config.model_copy(
        update={"capture": capture, "web": web, "state": state, "logging": logging_}
    )


def _load_signatures(config: Config) -> Any:
    """The signature library of the config, or None when the signatures part is absent."""
    try:
        from monitor import signatures
    except ImportError:
        return None
    shipped = signatures.default_signature_dirs() if config.signatures.shipped else []
    dirs = [*shipped, *config.signatures.dirs]
    return signatures.load_library(dirs)


class Daemon:
    def __init__(self, options: Options) -> None:
        self.options = options
        try:
            self.config = effective_config(load_config(options.config_file), options)
        except ConfigError as error:
            raise DaemonError("\n".join(error.errors)) from None
        setup(self.config.logging.format, self.config.logging.level)
        self._stop = threading.Event()
        self._reload_requested = threading.Event()
        self._reload_done = threading.Condition()
        self._reload_generation = 0
        self._reload_result: tuple[bool, str] = (True, "")
        self._ready = threading.Event()
        self.source: PacketSource | None = None
        self.pool: WorkerPool | None = None
        self.web: WebServer | None = None
        self.state: Any = None
        self.suite: Any = None
        self.store: Any = None
        # detectors: (profiles, analysis, baseline store or None) -> events; the detector
        # part plugs in here
        self.detectors: list[Detector] = []
        self.sensor: Sensor | None = None
        self.analysis: Any = None
        self.signatures: Any = None

    # ------------------------------------------------------------------ start-up
    def _open_source(self) -> PacketSource | None:
        """The packet source; None when capture workers read the interface instead."""
        capture = self.config.capture
        if capture.interface is not None and capture.workers > 1:
            self.pool = WorkerPool(
                capture.interface,
                capture.workers,
                capture.bpf_filter,
                capture.snaplen,
                capture.buffer_bytes,
                self.config.profiles.window_seconds,
                self.config.tables,
            )
            return None
        if capture.interface is not None:
            return LiveSource(
                capture.interface, capture.bpf_filter, capture.snaplen, capture.buffer_bytes
            )
        if capture.pcap is not None:
            return FileSource(capture.pcap, capture.replay_speed)
        raise DaemonError(
            "no packet source: set capture.interface or capture.pcap (or --interface / --pcap)"
        )

    def _settings(self, config: Config) -> ExporterSettings:
        return ExporterSettings(
            max_devices=config.exporter.max_devices,
            device_ttl=config.exporter.device_ttl,
            pseudonym_key=privacy_key(config.privacy),
        )

    def _open_state(self) -> None:
        """Load the inventory and the baselines of the last checkpoint (state.py and
        baseline.py are separate parts: without them the daemon runs without persistence)."""
        try:
            from monitor.baseline import BaselineConfig
            from monitor.state import State, StateError
        except ImportError:
            log(
                "warn",
                "state persistence is not available in this build; running without",
                path=str(self.config.state.path),
            )
            return
        path = self.config.state.path
        learning = self.config.baseline
        try:
            self.state = State(path)
            devices = self.state.load_devices()
            self.store = self.state.load_store(
                BaselineConfig(
                    min_duration=learning.min_duration,
                    min_windows=learning.min_windows,
                    fact_ttl=learning.fact_ttl,
                )
            )
        except StateError as error:
            raise DaemonError(str(error)) from None
        restore_inventory(self.analysis, devices)
        assert self.sensor is not None
        self.sensor.baselines = StoreBaselines(self.store)
        log(
            "info",
            "state loaded",
            path=str(path),
            devices=len(devices),
            baselines=len(self.store),
        )

    def start(self) -> None:
        """Steps 1–3 of the lifecycle; raises ``DaemonError`` with a one-line reason."""
        # Import everything before the privilege drop: after a switch to --user the
        # installation may not be readable any more (and no lazy import can fail later).
        _preload()
        from monitor.pipeline import Analysis

        self.web = WebServer(
            self.config.web.listen_address,
            CollectorRegistry(),
            web_config_file=self.config.web.config_file,
            allow_insecure_remote=self.config.web.allow_insecure_remote,
            max_connections=self.config.web.max_connections,
            ready=self._ready.is_set,
            reload=self.request_reload,
        )
        try:
            self.web.check()  # fail fast, before touching the capture or the state
            self.source = self._open_source()
        except (CaptureError, WebError) as error:
            raise DaemonError(str(error)) from None
        if self.options.drop_privileges:
            try:
                drop_privileges(self.options.user)
            except PrivilegeError as error:
                raise DaemonError(f"cannot drop privileges: {error}") from None
            log("info", "privileges dropped", user=self.options.user or "(unchanged)")
        if self.pool is not None:
            self.pool.start()  # before any thread: fork copies only the calling thread
            log("info", "capture workers started", workers=self.pool.workers)
        try:
            settings = self._settings(self.config)
        except ConfigError as error:
            raise DaemonError("\n".join(error.errors)) from None
        try:
            self.signatures = _load_signatures(self.config)
        except Exception as error:  # the signature loader's own one-line error
            raise DaemonError(f"signatures: {_one_line(error)}") from None
        if self.pool is not None:
            self.analysis = MergedAnalysis(
                self.pool.interface, self.pool.workers, signatures=self.signatures
            )
        else:
            assert self.source is not None
            self.analysis = Analysis(
                signatures=self.signatures,
                window_seconds=self.config.profiles.window_seconds,
                on_window=self._on_window,
                max_flows=self.config.tables.max_flows,
                max_devices=self.config.tables.max_devices,
            )
            from monitor.pipeline import SourceStats

            # the source's series exist from the first scrape (at 0), so a restart is visible
            # to Prometheus as a counter reset rather than a series that appears late
            self.analysis.capture_stats.setdefault(self.source.name, SourceStats())
        self.suite = _load_suite(self.config) if self.options.detector_suite else None
        self.sensor = Sensor(
            analysis=self.analysis,
            settings=settings,
            lock=threading.RLock(),
            findings=self.suite.book
            if self.suite is not None
            else AnomalyBook(self.config.anomalies.hold_seconds),
        )
        self._open_state()
        self.web.registry = build_registry(self.sensor)
        try:
            self.web.start()
        except WebError as error:
            raise DaemonError(str(error)) from None
        self._ready.set()
        if self.pool is not None:
            log("info", "capturing", source=self.pool.interface, live=True)
        else:
            assert self.source is not None
            log("info", "capturing", source=self.source.name, live=self.source.live)

    # ------------------------------------------------------------------ callbacks
    def _on_window(self, profiles: list[WindowProfile], analysis: Any) -> None:
        # called from feed/tick with the sensor lock held
        assert self.sensor is not None
        started = time.perf_counter()
        try:
            self._judge_window(profiles, analysis)
        finally:
            self.sensor.judging.add(time.perf_counter() - started, len(profiles))

    def _judge_window(self, profiles: list[WindowProfile], analysis: Any) -> None:
        assert self.sensor is not None
        peers = dict.fromkeys(analysis.devices, 0)
        for profile in profiles:
            peers[profile.device_id] = len(profile.peers)
        self.sensor.peers_last_window = peers
        learn = self.store is not None and not self.config.baseline.frozen
        if self.suite is not None:
            # the detector part scores the window, then lets the baselines learn it
            for event in self.suite.on_window(profiles, analysis, self.store, learn=learn):
                _log_event(event.to_dict())
            return
        # score first, then learn what was not found anomalous
        anomalous: set[str] = set()
        for detector in self.detectors:
            for event in detector(profiles, analysis, self.store):
                self.emit(event)
                anomalous.add(str(event.get("device", "")))
        if learn:
            self.store.learn_window(profiles, analysis, skip=anomalous)

    def emit(self, event: Mapping[str, Any]) -> None:
        """Publish one detector event (DESIGN.md's event dict): the anomaly metrics, one JSON
        line in ``anomalies.events_file`` and one log line with its metadata."""
        assert self.sensor is not None
        findings = self.sensor.findings
        if isinstance(findings, AnomalyBook):
            # windows close inside feed(), before sensor.now moves: use the pipeline's clock
            when = max(self.sensor.now, getattr(self.analysis, "last_time", None) or 0.0)
            findings.record(event, when)
        path = self.config.anomalies.events_file
        if path is not None:
            try:
                with open(path, "a", encoding="utf-8") as handle:
                    handle.write(json.dumps(dict(event), sort_keys=True, default=str) + "\n")
            except OSError as error:
                log(
                    "error",
                    "cannot write the events file",
                    file=str(path),
                    error=error.strerror or type(error).__name__,
                )
        _log_event(event)

    def request_reload(self) -> tuple[bool, str]:
        """Ask the main loop to reload; waits for the result (called by the web thread)."""
        with self._reload_done:
            generation = self._reload_generation
            self._reload_requested.set()
            finished = self._reload_done.wait_for(
                lambda: self._reload_generation > generation, timeout=30
            )
            if not finished:
                return (False, "reload timed out")
            return self._reload_result

    def stop(self) -> None:
        self._stop.set()

    # ------------------------------------------------------------------ reload
    def reload(self) -> tuple[bool, str]:
        """Re-read config and signatures; keep the old ones on any error."""
        assert self.sensor is not None
        try:
            new = effective_config(load_config(self.options.config_file), self.options)
            settings = self._settings(new)
            signatures = _load_signatures(new)
        except ConfigError as error:
            return self._reload_failed(error.errors[0])
        except Exception as error:
            return self._reload_failed(f"signatures: {_one_line(error)}")
        restart_only = [
            name
            for name, old, fresh in (
                ("capture", self.config.capture, new.capture),
                ("web", self.config.web, new.web),
                ("state.path", self.config.state.path, new.state.path),
                ("profiles", self.config.profiles, new.profiles),
                (
                    "baseline thresholds",
                    self.config.baseline.model_copy(update={"frozen": False}),
                    new.baseline.model_copy(update={"frozen": False}),
                ),
            )
            if old != fresh
        ]
        with self.sensor.lock:
            self.sensor.settings = settings
            self.sensor.config_reload_successful = True
            findings = self.sensor.findings
            if findings is not None and hasattr(findings, "hold_seconds"):
                findings.hold_seconds = new.anomalies.hold_seconds
            self.analysis.signatures = signatures
            self.signatures = signatures
        self.config = new
        setup(new.logging.format, new.logging.level)
        if restart_only:
            log("warn", "reloaded; some changes need a restart", sections=",".join(restart_only))
        else:
            log("info", "configuration reloaded")
        return (True, "configuration reloaded")

    def _reload_failed(self, reason: str) -> tuple[bool, str]:
        assert self.sensor is not None
        with self.sensor.lock:
            self.sensor.config_reload_successful = False
        log("error", "reload failed; keeping the previous configuration", error=reason)
        return (False, f"reload failed: {reason}")

    def _handle_reload(self) -> None:
        self._reload_requested.clear()
        result = self.reload()
        with self._reload_done:
            self._reload_result = result
            self._reload_generation += 1
            self._reload_done.notify_all()

    # ------------------------------------------------------------------ main loop
    def _feed(self, batch: FrameBatch) -> None:
        assert self.sensor is not None and self.source is not None
        with self.sensor.lock:
            self.analysis.feed(batch)
            stats = self.analysis.capture_stats.get(batch.source)
            if stats is not None:
                self.sensor.now = max(self.sensor.now, stats.last_packet_time)
            lag = self.source.lag()
            if lag is not None:
                self.sensor.processing_lag[self.source.name] = lag

    def _housekeeping(self) -> None:
        assert self.sensor is not None and self.source is not None
        dropped = self.source.dropped()
        with self.sensor.lock:
            if self.source.live:
                now = time.time()
                self.sensor.now = max(self.sensor.now, now)
                # (frames still in the ring, or gathered there, belong to the closing window)
                self.analysis.tick(now - TICK_GRACE)
                if self.suite is not None:  # time-driven detectors (silence) on a quiet wire
                    for event in self.suite.tick(self.analysis, self.store, now):
                        _log_event(event.to_dict())
            if dropped is not None:
                stats = self.analysis.capture_stats.get(self.source.name)
                if stats is None:
                    from monitor.pipeline import SourceStats

                    stats = self.analysis.capture_stats.setdefault(self.source.name, SourceStats())
                stats.dropped = dropped

    def checkpoint(self) -> None:
        if self.state is None or self.sensor is None:
            return
        started = time.monotonic()
        try:
            with self.sensor.lock:
                number = self.state.checkpoint(store=self.store, devices=self.analysis.devices)
        except Exception as error:  # a failed checkpoint is retried at the next interval
            log("error", "checkpoint failed", error=_one_line(error))
            return
        log(
            "debug",
            "checkpoint written",
            number=number,
            seconds=round(time.monotonic() - started, 3),
        )

    # ------------------------------------------------------------------ with capture workers
    def _merge(self, reports: list[WorkerReport]) -> None:
        assert self.sensor is not None and self.pool is not None
        with self.sensor.lock:
            windows = []
            for report in reports:
                windows.extend(self.analysis.apply(report))
            lags = [s.lag for s in self.analysis.worker_stats if s.lag is not None]
            if lags:  # the worker furthest behind
                self.sensor.processing_lag[self.pool.interface] = max(lags)
            last = self.analysis.capture_stats[self.pool.interface].last_packet_time
            self.sensor.now = max(self.sensor.now, last)
            for profiles in windows:
                self.analysis.classify_as_of(profiles)
                self._on_window(profiles, self.analysis)
            self.analysis.classify()

    def _run_workers_loop(self) -> None:
        assert self.pool is not None and self.sensor is not None
        next_tick = 0.0
        next_checkpoint = time.monotonic() + self.config.state.checkpoint_interval
        while not self._stop.is_set():
            if self._reload_requested.is_set():
                self._handle_reload()
            try:
                reports = self.pool.reports(READ_TIMEOUT)
            except WorkerFailed as error:
                log("error", "capture stopped", error=str(error))
                raise DaemonError(str(error)) from None
            if reports:
                self._merge(reports)
            now = time.monotonic()
            if now >= next_tick and self.suite is not None:
                with self.sensor.lock:  # time-driven detectors (silence) on a quiet wire
                    wall = time.time()
                    self.sensor.now = max(self.sensor.now, wall)
                    for event in self.suite.tick(self.analysis, self.store, wall):
                        _log_event(event.to_dict())
                next_tick = now + STATS_INTERVAL
            if now >= next_checkpoint:
                self.checkpoint()
                next_checkpoint = now + self.config.state.checkpoint_interval

    def _stop_workers(self) -> None:
        if self.pool is None:
            return
        pool, self.pool = self.pool, None
        final = pool.stop()
        if final and self.sensor is not None:
            with self.sensor.lock:
                for report in final:
                    # the devices only: a window still open is not scored half-full
                    report.profiles = []
                    self.analysis.apply(report)
                self.analysis.classify()

    def run_loop(self) -> None:
        if self.pool is not None:
            self._run_workers_loop()
            return
        assert self.source is not None
        source = self.source
        next_stats = 0.0
        next_checkpoint = time.monotonic() + self.config.state.checkpoint_interval
        pcap_done = False
        was_down = False
        while not self._stop.is_set():
            if self._reload_requested.is_set():
                self._handle_reload()
            try:
                batch = source.read(READ_TIMEOUT)
            except CaptureError as error:
                log("error", "capture stopped", error=str(error))
                if source.live:
                    raise DaemonError(str(error)) from None
                batch = None
            link_down = bool(getattr(source, "down", False))
            if link_down != was_down:
                was_down = link_down
                if link_down:
                    log("warn", "capture interface is down; waiting", interface=source.name)
                else:
                    log("info", "capture interface is up again", interface=source.name)
            if batch is not None and len(batch):
                self._feed(batch)
            now = time.monotonic()
            if now >= next_stats:
                self._housekeeping()
                next_stats = now + STATS_INTERVAL
            if source.ended and not pcap_done:
                pcap_done = True
                with self._sensor_lock():
                    self.analysis.finish()
                log(
                    "info",
                    "capture file finished",
                    file=source.name,
                    packets=sum(s.packets for s in self.analysis.capture_stats.values()),
                )
                self.checkpoint()
                if self.options.exit_after_pcap:
                    break
            if now >= next_checkpoint:
                self.checkpoint()
                next_checkpoint = now + self.config.state.checkpoint_interval

    def _sensor_lock(self) -> Any:
        return self.sensor.lock if self.sensor is not None else contextlib.nullcontext()

    def shutdown(self) -> None:
        """Flush the state and close everything (safe to call more than once)."""
        self._ready.clear()
        with contextlib.suppress(Exception):
            self._stop_workers()
        self.checkpoint()
        if self.suite is not None:
            with contextlib.suppress(Exception):
                self.suite.book.close()
        if self.state is not None:
            with contextlib.suppress(Exception):
                self.state.close()
            self.state = None
        if self.web is not None:
            self.web.stop()
            self.web = None
        if self.source is not None:
            with contextlib.suppress(Exception):
                self.source.close()

    def install_signal_handlers(self) -> None:
        def on_stop(signum: int, frame: FrameType | None) -> None:
            self._stop.set()

        def on_hup(signum: int, frame: FrameType | None) -> None:
            self._reload_requested.set()

        signal.signal(signal.SIGTERM, on_stop)
        signal.signal(signal.SIGINT, on_stop)
        signal.signal(signal.SIGHUP, on_hup)

    def run(self) -> int:
        self.install_signal_handlers()
        try:
            self.start()
            self.run_loop()
        finally:
            self.shutdown()
            log("info", "stopped")
        return 0


class StoreBaselines:
    """The exporter's view (``monitor.exporter.Baselines``) of a ``BaselineStore``."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def learning(self, device_id: str) -> Learning | None:
        baseline = self.store.get(device_id)
        if baseline is None:
            return None
        cadence = baseline.expected_interval()
        return Learning(
            "enforcing" if baseline.enforcing else "learning",
            float(cadence[1].median) if cadence is not None else None,
        )


def _load_suite(config: Config) -> Any:
    """The detector part's suite with its event book (hold, events file), or None when the
    detector part is not installed."""
    try:
        from monitor.detectors import DetectorConfig, DetectorSuite
        from monitor.events import EventBook
    except ImportError:
        return None
    try:
        book = EventBook(config.anomalies.hold_seconds, config.anomalies.events_file)
    except OSError as error:
        raise DaemonError(
            f"{config.anomalies.events_file}: cannot open the events file "
            f"({error.strerror or type(error).__name__})"
        ) from None
    book.keep_emitted = False  # a daemon runs for months: keep counts, not every event
    return DetectorSuite(book=book, config=DetectorConfig(config.profiles.window_seconds))


def _log_event(event: Mapping[str, Any]) -> None:
    log(
        "warn",
        "anomaly",
        device=str(event.get("device", "")),
        detector=str(event.get("detector", "")),
        severity=str(event.get("severity", "")),
    )


def _preload() -> None:
    """Import and compile everything the hot path uses, while the installation is readable.

    The warm-up also means the first real packets do not wait for the JIT (no drops then).
    """
    import encodings.idna  # noqa: F401  (used by socket name lookups)

    from monitor.pipeline import Analysis

    for optional in (
        "monitor.detectors",
        "monitor.events",
        "monitor.signatures",
        "monitor.classifier",
        "monitor.state",
        "monitor.capture.files",
        "numpy.ma",
    ):
        with contextlib.suppress(ImportError):
            importlib.import_module(optional)
    with contextlib.suppress(ImportError):  # detector modules are imported lazily by the suite
        detectors = importlib.import_module("monitor.detectors")
        for info in pkgutil.iter_modules(detectors.__path__):
            importlib.import_module(f"monitor.detectors.{info.name}")
    from monitor import flows, interning, profiles

    flows.warm_up()
    interning.warm_up()
    profiles.warm_up()
    with contextlib.suppress(ImportError):  # (live capture needs libpcap's filter compiler)
        from monitor.capture import afpacket

        afpacket.warm_up()
    frames = [_WARM_UP_UDP, _WARM_UP_TCP, _WARM_UP_ARP]
    read_only = np.frombuffer(b"".join(frames), dtype=np.uint8)
    lengths = np.array([len(f) for f in frames], dtype=np.int32)
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    # a capture file's frames come read-only (mapped), a live ring's writable: numba
    # compiles each kind of buffer apart, so both are warmed
    for buffer in (read_only, read_only.copy()):
        batch = FrameBatch(
            buffer,
            offsets,
            lengths,
            lengths.copy(),
            np.array([1, 2, 3], dtype=np.int64) * 1_000_000_000,
            np.ones(len(frames), dtype=np.int32),
            "warm-up",
        )
        analysis = Analysis(window_seconds=1.0)
        analysis.feed(batch)
        analysis.finish()


_ETH = bytes.fromhex("020000000002020000000001")
_WARM_UP_UDP = _ETH + bytes.fromhex("08004500001c00004000401100000a0000010a000002d431092900080000")
_WARM_UP_TCP = _ETH + bytes.fromhex(
    "08004500002800004000400600000a0000010a000002d4310a1b00000001000000005002000000000000"
)
_WARM_UP_ARP = _ETH[:6] + bytes.fromhex(
    "020000000001080600010800060400010200000000010a0000010000000000000a000002"
)


def restore_inventory(analysis: Any, devices: dict[str, Any]) -> None:
    """Put checkpointed devices back into a fresh ``Analysis`` (ids, facts, counters)."""
    if isinstance(analysis, MergedAnalysis):
        analysis.restore(devices)
        return
    inventory = analysis.inventory
    for device_id, device in devices.items():
        inventory.devices[device_id] = device
        ips = device.facts.get("ip", {})
        for address, fact in sorted(ips.items(), key=lambda item: item[1].last_seen):
            owner = inventory.ip_owner.get(address)
            if (
                owner is None
                or owner == device_id
                or fact.last_seen >= devices.get(owner, device).last_seen
            ):
                inventory.ip_owner[address] = device_id


def _one_line(error: BaseException) -> str:
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    return text[:300]
