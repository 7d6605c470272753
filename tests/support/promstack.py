"""A real Prometheus, a real Alertmanager and a webhook receiver on loopback, for tests.

``Prometheus`` and ``Alertmanager`` run the Debian binaries (``prometheus``,
``prometheus-alertmanager``; override with ``$PROMETHEUS_BIN`` / ``$ALERTMANAGER_BIN``) on free
127.0.0.1 ports, each with its own temporary data directory and a configuration written by the
test. ``start()`` returns once the server answers ``/-/ready``; ``stop()`` terminates it (and
kills it if it does not exit), and the context managers and pytest fixtures below always stop
what they started, also when the test fails. ``WebhookReceiver`` is an ``http.server`` on
loopback that records every Alertmanager notification it receives.

Promises: nothing listens outside 127.0.0.1 (Alertmanager's gossip port is disabled); every
process started here is stopped by the fixture that started it; a server that fails to start
raises ``StackError`` with the tail of its log, never hangs longer than the given timeout.

Typical use: register the fixtures in your test package's ``conftest.py``::

    from tests.support.promstack import (  # noqa: F401  (pytest fixtures)
        alertmanager_factory, prometheus_factory, webhook_receiver,
    )

and in a test module::

    def test_x(prometheus_factory, alertmanager_factory, webhook_receiver):
        am = alertmanager_factory(alertmanager_config(webhook_receiver.url("/hook")))
        prom = prometheus_factory(
            prometheus_config([scrape_job("santinel", ["127.0.0.1:10575"])],
                              rule_files=[rules], alertmanagers=[am.address]))
        wait_until(lambda: prom.query("up") != [], timeout=10)
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

T = TypeVar("T")

LOOPBACK = "127.0.0.1"


class StackError(RuntimeError):
    """A server of the test stack failed to start or answered an API call with an error."""


def find_binary(env_var: str, *names: str) -> str | None:
    """The path of the first of ``names`` on $PATH, or the one ``$env_var`` names."""
    override = os.environ.get(env_var)
    if override:
        return override
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    return None


def prometheus_binary() -> str | None:
    return find_binary("PROMETHEUS_BIN", "prometheus")


def alertmanager_binary() -> str | None:
    return find_binary("ALERTMANAGER_BIN", "prometheus-alertmanager", "alertmanager")


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago (the server start retries on a race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(
    predicate: Callable[[], T | None],
    *,
    timeout: float,
    interval: float = 0.2,
    message: str = "condition",
) -> T:
    """Poll ``predicate`` until it returns something truthy, and return that; raise on timeout.

    Exceptions from the predicate count as "not yet" (a server may still be warming up); the last
    one is chained to the timeout error so a failing test says why.
    """
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            value = predicate()
        except Exception as exc:  # a warming-up server: retry, but remember why
            last_error = exc
            value = None
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{message} not met within {timeout:g}s") from last_error
        time.sleep(interval)


def http_get_json(url: str, *, timeout: float = 5.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.load(response)


def http_post_json(url: str, payload: Any, *, timeout: float = 5.0) -> int:
    body = json.dumps(payload).encode()
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        status: int = response.status
        return status


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1.0) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


_S = TypeVar("_S", bound="_Server")


class _Server:
    """A child process serving HTTP on a loopback port, with a readiness URL and a log file."""

    name = "server"

    def __init__(self, binary: str | None, workdir: Path) -> None:
        if binary is None:
            raise StackError(f"{self.name} binary not found on $PATH")
        self.binary = binary
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = 0
        self.log_path = self.workdir / f"{self.name}.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        """``host:port``, the form Prometheus wants in ``static_configs``."""
        return f"{LOOPBACK}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def _command(self) -> list[str]:
        raise NotImplementedError

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, *, timeout: float = 30.0, attempts: int = 3) -> None:
        """Start on a free port and wait until ``/-/ready`` answers 200."""
        for attempt in range(1, attempts + 1):
            self.port = free_port()
            with self.log_path.open("ab") as log:
                self._process = subprocess.Popen(
                    self._command(),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=self.workdir,
                    start_new_session=True,
                )
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self._process.poll() is not None:
                    break
                if _ready(f"{self.url}/-/ready"):
                    return
                time.sleep(0.1)
            exited = self._process.poll() is not None
            self.stop()
            port_race = "address already in use" in self.log_tail(200).lower()
            if not (exited and port_race and attempt < attempts):
                what = "exited" if exited else f"not ready within {timeout:g}s"
                raise StackError(f"{self.name} {what}; log tail:\n{self.log_tail()}")

    def stop(self, *, timeout: float = 10.0) -> None:
        """Terminate the process (SIGTERM, then SIGKILL after ``timeout``); idempotent."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout)

    def __enter__(self: _S) -> _S:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --------------------------------------------------------------------------------------------
# Prometheus


def scrape_job(
    job: str,
    targets: Sequence[str],
    *,
    labels: Mapping[str, str] | None = None,
    scrape_interval: str = "1s",
    **extra: Any,
) -> dict[str, Any]:
    """One ``scrape_configs`` entry with static targets (extra keys are passed through)."""
    static: dict[str, Any] = {"targets": list(targets)}
    if labels:
        static["labels"] = dict(labels)
    return {
        "job_name": job,
        "scrape_interval": scrape_interval,
        "scrape_timeout": scrape_interval,
        "static_configs": [static],
        **extra,
    }


def prometheus_config(
    scrape_configs: Sequence[Mapping[str, Any]] = (),
    *,
    rule_files: Sequence[str | Path] = (),
    alertmanagers: Sequence[str] = (),
    scrape_interval: str = "1s",
    evaluation_interval: str = "1s",
    external_labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A complete Prometheus configuration as a dict (rule file paths made absolute)."""
    config: dict[str, Any] = {
        "global": {
            "scrape_interval": scrape_interval,
            "scrape_timeout": scrape_interval,
            "evaluation_interval": evaluation_interval,
        },
        "rule_files": [str(Path(p).resolve()) for p in rule_files],
        "scrape_configs": [dict(c) for c in scrape_configs],
    }
    if external_labels:
        config["global"]["external_labels"] = dict(external_labels)
    if alertmanagers:
        config["alerting"] = {
            "alertmanagers": [{"static_configs": [{"targets": list(alertmanagers)}]}]
        }
    return config


class Prometheus(_Server):
    """A Prometheus server with the given configuration (a dict, written to its workdir)."""

    name = "prometheus"

    def __init__(
        self,
        config: Mapping[str, Any],
        workdir: Path,
        *,
        lookback_delta: str = "5m",
        extra_args: Sequence[str] = (),
    ) -> None:
        super().__init__(prometheus_binary(), workdir)
        self.config_path = self.workdir / "prometheus.yml"
        self.config_path.write_text(yaml.safe_dump(dict(config), sort_keys=False))
        self.lookback_delta = lookback_delta
        self.extra_args = list(extra_args)

    def _command(self) -> list[str]:
        return [
            self.binary,
            f"--config.file={self.config_path}",
            f"--storage.tsdb.path={self.workdir / 'data'}",
            f"--web.listen-address={self.address}",
            "--web.enable-lifecycle",
            # Alerts reach Alertmanager within a second instead of a minute.
            "--rules.alert.resend-delay=1s",
            f"--query.lookback-delta={self.lookback_delta}",
            *self.extra_args,
        ]

    def api(self, path: str, **params: str) -> Any:
        """GET ``/api/v1/<path>`` and return its ``data``; raise StackError on an API error."""
        query = urllib.parse.urlencode(params)
        url = f"{self.url}/api/v1/{path}" + (f"?{query}" if query else "")
        try:
            body = http_get_json(url)
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            raise StackError(f"prometheus {path} {params}: HTTP {exc.code}: {detail}") from exc
        if body.get("status") != "success":
            raise StackError(f"prometheus {path} {params}: {body}")
        return body["data"]

    def query(self, expr: str, *, at: float | None = None) -> list[dict[str, Any]]:
        """Instant query; the result vector as ``[{"metric": {...}, "value": [t, "v"]}, ...]``.

        A scalar or string result comes back as a one-element list with an empty metric.
        """
        params = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        data = self.api("query", **params)
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        result: list[dict[str, Any]] = data["result"]
        return result

    def query_range(
        self, expr: str, *, start: float, end: float, step: float = 1.0
    ) -> list[dict[str, Any]]:
        data = self.api(
            "query_range", query=expr, start=f"{start:.3f}", end=f"{end:.3f}", step=f"{step:g}"
        )
        result: list[dict[str, Any]] = data["result"]
        return result

    def values(self, expr: str) -> dict[tuple[tuple[str, str], ...], float]:
        """Instant query as ``{sorted label items: value}``: handy for exact assertions."""
        return {
            tuple(sorted(sample["metric"].items())): float(sample["value"][1])
            for sample in self.query(expr)
        }

    def alerts(self) -> list[dict[str, Any]]:
        """Pending and firing alerts (``/api/v1/alerts``): dicts with labels, annotations, state."""
        alerts: list[dict[str, Any]] = self.api("alerts")["alerts"]
        return alerts

    def firing(self, alertname: str | None = None) -> list[dict[str, Any]]:
        return [
            a
            for a in self.alerts()
            if a["state"] == "firing"
            and (alertname is None or a["labels"].get("alertname") == alertname)
        ]

    def rules(self) -> list[dict[str, Any]]:
        groups: list[dict[str, Any]] = self.api("rules")["groups"]
        return groups

    def targets(self) -> list[dict[str, Any]]:
        active: list[dict[str, Any]] = self.api("targets")["activeTargets"]
        return active

    def wait_for_targets_up(self, *, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Wait until every configured target has been scraped successfully once."""

        def all_up() -> list[dict[str, Any]] | None:
            targets = self.targets()
            return targets if targets and all(t["health"] == "up" for t in targets) else None

        return wait_until(all_up, timeout=timeout, message="all scrape targets up")

    def reload(self) -> None:
        request = urllib.request.Request(f"{self.url}/-/reload", method="POST")
        with urllib.request.urlopen(request, timeout=10):
            pass


# --------------------------------------------------------------------------------------------
# Alertmanager


def alertmanager_config(
    webhook_url: str,
    *,
    group_by: Sequence[str] = ("alertname",),
    group_wait: str = "0s",
    group_interval: str = "1s",
    repeat_interval: str = "1h",
) -> dict[str, Any]:
    """A minimal Alertmanager configuration sending everything, promptly, to one webhook."""
    return {
        "route": {
            "receiver": "webhook",
            "group_by": list(group_by),
            "group_wait": group_wait,
            "group_interval": group_interval,
            "repeat_interval": repeat_interval,
        },
        "receivers": [
            {"name": "webhook", "webhook_configs": [{"url": webhook_url, "send_resolved": True}]}
        ],
    }


class Alertmanager(_Server):
    """An Alertmanager (single node, gossip disabled) with the given configuration."""

    name = "alertmanager"

    def __init__(
        self,
        config: Mapping[str, Any] | Path,
        workdir: Path,
        *,
        extra_args: Sequence[str] = (),
    ) -> None:
        super().__init__(alertmanager_binary(), workdir)
        self.config_path = self.workdir / "alertmanager.yml"
        if isinstance(config, Path):
            self.config_path.write_text(config.read_text())
        else:
            self.config_path.write_text(yaml.safe_dump(dict(config), sort_keys=False))
        self.extra_args = list(extra_args)

    def _command(self) -> list[str]:
        return [
            self.binary,
            f"--config.file={self.config_path}",
            f"--storage.path={self.workdir / 'data'}",
            f"--web.listen-address={self.address}",
            # An empty address disables clustering: no gossip port on 0.0.0.0:9094.
            "--cluster.listen-address=",
            *self.extra_args,
        ]

    def alerts(self, **filters: str) -> list[dict[str, Any]]:
        """Alerts Alertmanager holds (``/api/v2/alerts``), with ``status.inhibitedBy`` etc.

        ``filters`` are API parameters, e.g. ``active="true"``, ``inhibited="false"``.
        """
        query = urllib.parse.urlencode(filters)
        alerts: list[dict[str, Any]] = http_get_json(
            f"{self.url}/api/v2/alerts" + (f"?{query}" if query else "")
        )
        return alerts

    def post_alerts(self, alerts: Sequence[Mapping[str, Any]]) -> None:
        """Send alerts as Prometheus would (``labels``, ``annotations``, ``startsAt``...)."""
        status = http_post_json(f"{self.url}/api/v2/alerts", list(alerts))
        if status != 200:
            raise StackError(f"alertmanager refused alerts: HTTP {status}")


# --------------------------------------------------------------------------------------------
# Webhook receiver


class WebhookReceiver:
    """Records Alertmanager webhook notifications POSTed to ``http://127.0.0.1:PORT/<path>``."""

    def __init__(self) -> None:
        self.notifications: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    payload = json.loads(raw)
                except ValueError:
                    self.send_response(400)
                    self.end_headers()
                    return
                with receiver._lock:
                    receiver.notifications.append((self.path, payload))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output clean; the notifications are recorded instead

        self._server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def url(self, path: str = "/") -> str:
        return f"http://{LOOPBACK}:{self.port}{path}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> WebhookReceiver:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def received(self, path: str | None = None) -> list[tuple[str, dict[str, Any]]]:
        with self._lock:
            return [(p, n) for p, n in self.notifications if path is None or p == path]

    def alerts(
        self, *, path: str | None = None, status: str | None = "firing"
    ) -> list[dict[str, Any]]:
        """Every alert of every notification (optionally only one path and one status)."""
        return [
            alert
            for _, notification in self.received(path)
            for alert in notification.get("alerts", [])
            if status is None or alert.get("status") == status
        ]

    def alertnames(self, *, path: str | None = None) -> set[str]:
        return {a["labels"].get("alertname", "") for a in self.alerts(path=path)}


# --------------------------------------------------------------------------------------------
# pytest fixtures


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    """A started webhook receiver, stopped after the test."""
    with WebhookReceiver() as receiver:
        yield receiver


@pytest.fixture
def prometheus_factory(tmp_path: Path) -> Iterator[Callable[..., Prometheus]]:
    """``factory(config_dict, **kwargs) -> Prometheus``, started; all stopped after the test.

    Skips the test, saying why, when the ``prometheus`` binary is absent.
    """
    if prometheus_binary() is None:
        pytest.skip("needs the prometheus binary (Debian package prometheus)")
    started: list[Prometheus] = []

    def factory(config: Mapping[str, Any], **kwargs: Any) -> Prometheus:
        server = Prometheus(config, tmp_path / f"prometheus-{len(started)}", **kwargs)
        started.append(server)
        server.start()
        return server

    try:
        yield factory
    finally:
        for server in started:
            server.stop()


@pytest.fixture
def alertmanager_factory(tmp_path: Path) -> Iterator[Callable[..., Alertmanager]]:
    """``factory(config_dict_or_path, **kwargs) -> Alertmanager``, started; stopped after.

    Skips the test, saying why, when no Alertmanager binary is found.
    """
    if alertmanager_binary() is None:
        pytest.skip("needs the alertmanager binary (Debian package prometheus-alertmanager)")
    started: list[Alertmanager] = []

    def factory(config: Mapping[str, Any] | Path, **kwargs: Any) -> Alertmanager:
        server = Alertmanager(config, tmp_path / f"alertmanager-{len(started)}", **kwargs)
        started.append(server)
        server.start()
        return server

    try:
        yield factory
    finally:
        for server in started:
            server.stop()


@contextlib.contextmanager
def temporary_stack(
    prometheus_cfg: Callable[[str], Mapping[str, Any]],
    alertmanager_cfg: Callable[[str], Mapping[str, Any]] | None = None,
) -> Iterator[tuple[Prometheus, Alertmanager | None, WebhookReceiver]]:
    """Outside pytest: receiver + Alertmanager + Prometheus in a temp dir, all stopped after.

    ``alertmanager_cfg(webhook_url)`` and ``prometheus_cfg(alertmanager_address or "")`` build
    the configurations once the ports are known.
    """
    with tempfile.TemporaryDirectory(prefix="santinel-promstack-") as tmp:
        workdir = Path(tmp)
        with WebhookReceiver() as receiver:
            alertmanager: Alertmanager | None = None
            prometheus: Prometheus | None = None
            try:
                if alertmanager_cfg is not None:
                    alertmanager = Alertmanager(
                        alertmanager_cfg(receiver.url("/")), workdir / "alertmanager"
                    )
                    alertmanager.start()
                prometheus = Prometheus(
                    prometheus_cfg(alertmanager.address if alertmanager else ""),
                    workdir / "prometheus",
                )
                prometheus.start()
                yield prometheus, alertmanager, receiver
            finally:
                if prometheus is not None:
                    prometheus.stop()
                if alertmanager is not None:
                    alertmanager.stop()
