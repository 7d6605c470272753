"""Capture worker processes: several cores reading one interface through PACKET_FANOUT.

``WorkerPool`` opens ``workers`` AF_PACKET rings on one interface in one fanout group (the
kernel's flow hash keeps each flow, both directions, on one ring), then ``start`` forks one
process per ring. Each worker runs its own ``monitor.pipeline.Analysis`` over its share and,
about once a second, sends the parent a ``monitor.merge.WorkerReport``: the window profiles
it closed, what changed about its devices (``monitor.merge.DeviceDelta``), its capture
counters and its socket's kernel drops. The parent merges them
(``monitor.merge.MergedAnalysis``) and keeps everything else: the exporter, detectors,
baselines and state.

Why ``fork``: the rings are opened while the daemon still holds CAP_NET_RAW, the daemon then
drops every privilege and forks before any thread exists, so the workers never hold a
capability, inherit their open ring (nothing to pass over a socket), and inherit the
JIT-compiled decoder warmed up by the daemon (a spawned worker would import and compile
everything again, and would need the capability to open its own socket).

Promises:
- a worker that dies or fails is reported by ``reports`` as ``WorkerFailed`` (one line:
  which worker, why); the daemon then exits non-zero instead of running blind;
- ``stop`` ends every worker (SIGTERM), collects their last reports, and kills what does not
  end within its timeout;
- a worker never raises into the daemon's code: it leaves with ``os._exit``;
- a worker's capture loop never waits on the daemon: its reports leave from a thread of their
  own (``_ReportSender``), so a daemon judging a window's close for seconds, reading nothing
  meanwhile, does not stop the worker draining its ring.
"""

from __future__ import annotations

import contextlib
import math
import os
import queue
import signal
import threading
import time
from dataclasses import dataclass
from multiprocessing import connection, get_context
from multiprocessing.process import BaseProcess
from typing import Any

from monitor.capture import BATCH_FRAMES, LIVE_GATHER_SECONDS, RING_BYTES, CaptureError
from monitor.capture.afpacket import PacketRing
from monitor.config import TablesConfig
from monitor.merge import DeviceChanges, WorkerReport, WorkerStats
from monitor.model import WindowProfile

REPORT_INTERVAL = 1.0
READ_TIMEOUT_MS = 100
# a quiet-wire tick closes windows this long after their end, so that frames still in a ring
# block (handed over within READ_TIMEOUT_MS, then gathered for up to LIVE_GATHER_SECONDS) do
# not reopen a window just closed
TICK_GRACE = 0.5
# reports a worker keeps while the daemon reads none (a second each): past this many, the
# capture loop waits for the daemon, so that a daemon that stays behind costs frames rather
# than a worker's memory without bound
REPORT_BACKLOG = 120
# how long a leaving worker lets its last messages reach the daemon
FLUSH_SECONDS = 5.0


@dataclass(frozen=True)
class WorkerSettings:
    """How each worker's pipeline is set up: its window length and its share of the bounds."""

    window_seconds: float
    max_flows: int
    max_devices: int


class WorkerFailed(Exception):
    """A worker died or could not capture; the message is one line."""


class WorkerPool:
    """``workers`` capture processes on ``interface`` (see the module docstring)."""

    def __init__(
        self,
        interface: str,
        workers: int,
        bpf_filter: str = "",
        snaplen: int = 65535,
        buffer_bytes: int = RING_BYTES,
        window_seconds: float = 60.0,
        tables: TablesConfig | None = None,
    ) -> None:
        self.interface = interface
        self.window_seconds = window_seconds
        tables = tables or TablesConfig()
        # fanout splits the flows: each worker tracks its share; every worker may see every
        # device, so each keeps the whole device bound
        self.settings = WorkerSettings(
            window_seconds, max(1, tables.max_flows // workers), tables.max_devices
        )
        group = os.getpid() & 0xFFFF
        self.rings: list[PacketRing] = []
        try:
            for _ in range(workers):
                self.rings.append(
                    PacketRing(
                        interface,
                        bpf_filter=bpf_filter,
                        snaplen=snaplen,
                        buffer_bytes=buffer_bytes,
                        timeout_ms=READ_TIMEOUT_MS,
                        fanout_group=group if workers > 1 else None,
                    )
                )
        except CaptureError:
            for ring in self.rings:
                ring.close()
            raise
        self.processes: list[BaseProcess] = []
        self.connections: list[connection.Connection] = []
        self._finished: set[int] = set()

    @property
    def workers(self) -> int:
        return len(self.rings)

    def start(self) -> None:
        """Fork the workers; call before any thread is started."""
        context = get_context("fork")
        for index in range(len(self.rings)):
            receiver, sender = context.Pipe(duplex=False)
            process = context.Process(
                target=_worker_main,
                args=(index, self.rings, sender, self.settings),
                name=f"santinel-capture-{index}",
                daemon=True,
            )
            process.start()
            sender.close()
            self.processes.append(process)
            self.connections.append(receiver)
        for ring in self.rings:
            ring.close()  # the workers hold them now

    def reports(self, timeout: float) -> list[WorkerReport]:
        """Reports that arrive within ``timeout`` seconds; ``WorkerFailed`` when a worker
        died or failed."""
        waiting: list[Any] = [c for i, c in enumerate(self.connections) if i not in self._finished]
        waiting += [p.sentinel for p in self.processes]
        ready = connection.wait(waiting, timeout)
        out: list[WorkerReport] = []
        for index, conn in enumerate(self.connections):
            if conn in ready:
                out.extend(self._receive(index, conn))
        for index, process in enumerate(self.processes):
            if process.sentinel in ready and index not in self._finished:
                # drain what it sent before it died, then report it
                out.extend(self._receive(index, self.connections[index]))
                if index not in self._finished:
                    process.join(1)
                    raise WorkerFailed(
                        f"capture worker {index} died (exit code {process.exitcode})"
                    )
        return out

    def _receive(self, index: int, conn: connection.Connection) -> list[WorkerReport]:
        out: list[WorkerReport] = []
        try:
            while conn.poll():
                message = conn.recv()
                if isinstance(message, WorkerReport):
                    out.append(message)
                elif isinstance(message, tuple) and message[0] == "failed":
                    raise WorkerFailed(f"capture worker {index}: {message[1]}")
                elif message == "finished":
                    self._finished.add(index)
                    break
        except (EOFError, OSError):
            if index not in self._finished:
                self.processes[index].join(1)
                code = self.processes[index].exitcode
                raise WorkerFailed(f"capture worker {index} died (exit code {code})") from None
        return out

    def stop(self, timeout: float = 5.0) -> list[WorkerReport]:
        """End every worker; their last reports (what changed since the one before)."""
        for process in self.processes:
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)
        out: list[WorkerReport] = []
        deadline = time.monotonic() + timeout
        for index, conn in enumerate(self.connections):
            while index not in self._finished and time.monotonic() < deadline:
                if not conn.poll(max(0.0, deadline - time.monotonic())):
                    break
                try:
                    out.extend(self._receive(index, conn))
                except WorkerFailed:
                    break
        for process in self.processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join(1)
        for conn in self.connections:
            conn.close()
        for ring in self.rings:
            ring.close()  # when the workers never started
        return out


class _ReportSender:
    """A worker's messages to the daemon, sent in order from a thread of their own.

    ``Connection.send`` returns only once the daemon has read what does not fit in the
    pipe; the daemon reads nothing while it judges a window's close (seconds, with many
    devices), and a capture loop waiting that long lets its ring overflow. Queued here,
    they wait in the worker instead (at most ``REPORT_BACKLOG``)."""

    _CLOSE = object()

    def __init__(self, conn: connection.Connection) -> None:
        self._conn = conn
        self._queue: queue.Queue[object] = queue.Queue(REPORT_BACKLOG)
        self._broken: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="reports", daemon=True)
        self._thread.start()

    def send(self, message: object, timeout: float | None = None) -> None:
        """Queue ``message`` (waiting while ``REPORT_BACKLOG`` are queued, at most
        ``timeout`` seconds if given: then ``queue.Full``); raises the error that stopped
        the sending (the daemon gone)."""
        if self._broken is not None:
            raise self._broken
        self._queue.put(message, timeout=timeout)

    def close(self, timeout: float) -> None:
        """Send what is queued, within ``timeout`` seconds, and stop."""
        try:
            self._queue.put(self._CLOSE, timeout=timeout)
        except queue.Full:
            return
        self._thread.join(timeout)

    def _run(self) -> None:
        while (message := self._queue.get()) is not self._CLOSE:
            if self._broken is not None:
                continue  # nobody reads any more: drop the rest
            try:
                self._conn.send(message)
            except Exception as error:  # the daemon gone, or a report that would not go
                self._broken = error


def _worker_main(
    index: int, rings: list[PacketRing], conn: connection.Connection, settings: WorkerSettings
) -> None:
    """The body of worker ``index`` (runs in the forked child; never returns)."""
    code = 1
    sender: _ReportSender | None = None
    try:
        sender = _ReportSender(conn)
        code = _capture(index, rings, sender, settings)
    except BaseException as error:  # report anything in one line, then leave
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        with contextlib.suppress(OSError, ValueError, queue.Full):
            if sender is None:
                conn.send(("failed", reason[:300]))
            else:
                sender.send(("failed", reason[:300]), timeout=FLUSH_SECONDS)
    finally:
        if sender is not None:
            sender.close(FLUSH_SECONDS)
        os._exit(code)


def _capture(
    index: int, rings: list[PacketRing], sender: _ReportSender, settings: WorkerSettings
) -> int:
    from monitor.daemon_sources import _ifindex, _link_up
    from monitor.pipeline import Analysis

    stopping = False

    def on_stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    ring = rings[index]
    for other in rings:
        if other is not ring:
            other.close()
    closed: list[WindowProfile] = []
    window_seconds = settings.window_seconds
    analysis = Analysis(
        window_seconds=window_seconds,
        on_window=lambda p, a: closed.extend(p),
        max_flows=settings.max_flows,
        max_devices=settings.max_devices,
    )
    changes = DeviceChanges(analysis.inventory)  # before the first packet: it journals facts
    ticked = -math.inf
    lag: float | None = None
    next_report = time.monotonic() + REPORT_INTERVAL
    ifindex = _ifindex(ring.interface)

    def report() -> WorkerReport:
        received, dropped, _ = ring.stats()
        stats = analysis.capture_stats.get(ring.interface)
        last = analysis.last_time
        newest_open = math.floor(last / window_seconds) * window_seconds if last else -math.inf
        message = WorkerReport(
            worker=index,
            closed_until=max(newest_open, ticked),
            profiles=list(closed),
            devices=changes.take(),
            stats=WorkerStats(
                packets=stats.packets if stats else 0,
                bytes=stats.bytes if stats else 0,
                last_packet_time=stats.last_packet_time if stats else 0.0,
                received=received,
                dropped=dropped,
                lag=lag,
            ),
            decode_errors=dict(analysis.decode_errors),
            protocol_packets=dict(analysis.protocol_packets),
            first_time=analysis.first_time,
            last_time=analysis.last_time,
            tables=analysis.table_stats(),
        )
        closed.clear()
        return message

    while not stopping:
        try:
            batch = ring.read_batch(BATCH_FRAMES, LIVE_GATHER_SECONDS)
        except CaptureError as error:
            if "went down" in error.reason and _ifindex(ring.interface) == ifindex:
                while not stopping and not _link_up(ring.interface):
                    time.sleep(READ_TIMEOUT_MS / 1000)  # the link comes back: wait for it
                    if _ifindex(ring.interface) != ifindex:
                        raise CaptureError(ring.interface, "the interface disappeared") from None
                continue
            raise
        if batch is not None:
            analysis.feed(batch)
            lag = max(0.0, time.time() - float(batch.timestamps_ns[-1]) / 1e9)
        if time.monotonic() >= next_report:
            now = time.time() - TICK_GRACE
            analysis.tick(now)
            ticked = max(ticked, now)
            sender.send(report())
            next_report = time.monotonic() + REPORT_INTERVAL
    sender.send(report())
    sender.send("finished")
    return 0
