"""The daemon's HTTP endpoint: ``/metrics``, ``/-/healthy``, ``/-/ready``, ``POST /-/reload``.

TLS and basic auth come from a web config file with the semantics of the Prometheus
exporter-toolkit ``web-config.yml`` (a strict subset: unknown keys are errors)::

    tls_server_config:
      cert_file: server.crt
      key_file: server.key
      client_auth_type: RequireAndVerifyClientCert   # default NoClientCert
      client_ca_file: ca.crt
      min_version: TLS12                             # default TLS12
      max_version: TLS13                             # default TLS13
    basic_auth_users:
      prometheus: $2b$12$...                         # bcrypt hashes only

Promises:
- the default address is loopback; listening on any other address without TLS or basic auth
  is refused unless ``web.allow_insecure_remote`` says so (``WebError`` at start);
- the web config is re-read when the file changes (certificates and users rotate without a
  restart); if it becomes invalid every request fails closed with 500;
- at most ``max_connections`` requests are served at once (503 beyond); TLS handshakes run
  in the worker threads, never in the accept loop, with a timeout;
- bcrypt runs in a bounded pool (one check at a time) and good credentials are cached, so a
  flood of wrong passwords costs at most one core and gets 429, while the scraper's cached
  credentials keep working; unknown users are checked against a dummy hash (no user
  enumeration by timing).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import ssl
import threading
from base64 import b64decode
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Annotated, Any, Literal

import bcrypt
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from pydantic import AfterValidator, Field, field_validator, model_validator

from monitor.config import is_loopback_host, split_listen_address
from monitor.logs import log
from monitor.yamlfile import StrictModel, YamlModelError, load_model

ClientAuth = Literal[
    "NoClientCert",
    "RequestClientCert",
    "RequireAnyClientCert",
    "VerifyClientCertIfGiven",
    "RequireAndVerifyClientCert",
]
TlsVersion = Literal["TLS10", "TLS11", "TLS12", "TLS13"]
_TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
HANDSHAKE_TIMEOUT = 5.0
REQUEST_TIMEOUT = 10.0
MAX_BODY = 4096


class TlsServerConfig(StrictModel):
    cert_file: Path
    key_file: Path
    client_auth_type: ClientAuth = "NoClientCert"
    client_ca_file: Path | None = None
    min_version: TlsVersion = "TLS12"
    max_version: TlsVersion = "TLS13"

    @model_validator(mode="after")
    def _consistent(self) -> TlsServerConfig:
        if self.client_auth_type != "NoClientCert" and self.client_ca_file is None:
            raise ValueError(f"client_auth_type {self.client_auth_type} needs client_ca_file")
        if _TLS_VERSIONS[self.min_version] > _TLS_VERSIONS[self.max_version]:
            raise ValueError("min_version is above max_version")
        return self


def _bcrypt_only(value: str) -> str:
    if not _is_bcrypt_hash(value):
        # never echo the value: it may be a plaintext password
        raise ValueError("not a bcrypt hash (plaintext passwords are refused)")
    return value


BcryptHash = Annotated[str, AfterValidator(_bcrypt_only)]


class WebFileConfig(StrictModel):
    tls_server_config: TlsServerConfig | None = None
    basic_auth_users: dict[str, BcryptHash] = Field(default_factory=dict)

    @field_validator("basic_auth_users")
    @classmethod
    def _user_names(cls, users: dict[str, str]) -> dict[str, str]:
        for user in users:
            if not user or ":" in user:
                raise ValueError("a user name must be non-empty and without ':'")
        return users


def _is_bcrypt_hash(value: str) -> bool:
    if len(value) != 60 or value[:4] not in ("$2a$", "$2b$", "$2y$"):
        return False
    cost = value[4:6]
    return cost.isdigit() and 4 <= int(cost) <= 31 and value[6] == "$"


def load_web_config(path: Path) -> WebFileConfig:
    """Load and check a web config; file paths inside are relative to the file."""
    config = load_model(WebFileConfig, path)
    tls = config.tls_server_config
    if tls is None:
        return config

    def fix(p: Path | None) -> Path | None:
        return p if p is None or p.is_absolute() else path.parent / p

    tls = tls.model_copy(
        update={
            "cert_file": fix(tls.cert_file),
            "key_file": fix(tls.key_file),
            "client_ca_file": fix(tls.client_ca_file),
        }
    )
    try:
        _ssl_context(tls)
    except (OSError, ssl.SSLError) as error:
        reason = getattr(error, "strerror", None) or getattr(error, "reason", None) or "error"
        message = f"{path}: tls_server_config: cannot load certificate: {reason}"
        raise YamlModelError([message]) from None
    return config.model_copy(update={"tls_server_config": tls})


def _ssl_context(tls: TlsServerConfig) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = _TLS_VERSIONS[tls.min_version]
    context.maximum_version = _TLS_VERSIONS[tls.max_version]
    context.load_cert_chain(str(tls.cert_file), str(tls.key_file))
    if tls.client_ca_file is not None:
        context.load_verify_locations(str(tls.client_ca_file))
    # Go's RequestClientCert/RequireAnyClientCert do not verify the chain; Python cannot ask
    # for a certificate without verifying it, so both verify when a certificate is sent.
    context.verify_mode = {
        "NoClientCert": ssl.CERT_NONE,
        "RequestClientCert": ssl.CERT_OPTIONAL,
        "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
        "RequireAnyClientCert": ssl.CERT_REQUIRED,
        "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
    }[tls.client_auth_type]
    return context


class WebError(Exception):
    """The endpoint cannot start (bad address, insecure remote listen, bad web config)."""


class BasicAuth:
    """bcrypt checks in a bounded pool, with a cache of credentials that were good."""

    def __init__(self, pool_size: int = 1, cache_size: int = 64) -> None:
        # cost -> a hash of nothing, so an unknown user costs as much as a known one
        self._dummies: dict[bytes, bytes] = {}
        self._slots = threading.BoundedSemaphore(pool_size)
        self._good: dict[bytes, None] = {}
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def check(self, users: dict[str, str], header: str | None) -> bool | None:
        """True/False for good/bad credentials; None when the bcrypt pool is busy."""
        if not header or not header.startswith("Basic "):
            return False
        try:
            user, sep, password = b64decode(header[6:], validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        if not sep:
            return False
        hashed = users.get(user)
        key = hashlib.sha256(
            b"\0".join([user.encode(), password.encode(), (hashed or "").encode()])
        ).digest()
        with self._lock:
            if hashed is not None and key in self._good:
                return True
        if not self._slots.acquire(blocking=False):
            return None
        try:
            target = hashed.encode() if hashed is not None else self._dummy(users)
            try:
                good = bcrypt.checkpw(password.encode(), target)
            except ValueError:
                good = False
        finally:
            self._slots.release()
        good = good and hashed is not None
        if good:
            with self._lock:
                if len(self._good) >= self._cache_size:
                    self._good.pop(next(iter(self._good)))
                self._good[key] = None
        return good

    def _dummy(self, users: dict[str, str]) -> bytes:
        cost = next(iter(users.values()))[4:6].encode() if users else b"10"
        dummy = self._dummies.get(cost)
        if dummy is None:
            dummy = bcrypt.hashpw(os.urandom(16).hex().encode(), bcrypt.gensalt(int(cost)))
            self._dummies[cost] = dummy
        return dummy


@dataclass
class _WebState:
    config: WebFileConfig
    context: ssl.SSLContext | None
    signature: tuple[int, int, int] | None
    error: str | None = None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    owner: WebServer

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's FQDN (DNS, and an idna codec import that
        # can fail after the privilege drop); the name is never used here
        import socketserver

        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        owner = self.owner
        if not owner._slots.acquire(blocking=False):
            try:
                request.settimeout(1.0)
                if owner._tls_mode:
                    request.close()  # cannot answer a TLS client in clear text
                    return
                request.sendall(
                    b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
                    b"Connection: close\r\nRetry-After: 1\r\n\r\n"
                )
            except OSError:
                pass
            self.shutdown_request(request)
            return
        thread = threading.Thread(
            target=self._serve_one, args=(request, client_address), daemon=True
        )
        thread.start()

    def _serve_one(self, request: Any, client_address: Any) -> None:
        owner = self.owner
        try:
            request.settimeout(HANDSHAKE_TIMEOUT)
            state = owner._current()
            if owner._tls_mode:
                if state.context is None:
                    request.close()
                    return
                request = state.context.wrap_socket(request, server_side=True)
            request.settimeout(REQUEST_TIMEOUT)
            self.finish_request(request, client_address)
        except (OSError, ssl.SSLError):
            pass
        finally:
            with contextlib.suppress(OSError):
                self.shutdown_request(request)
            owner._slots.release()


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    server_version = "santinel"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        pass  # no access log: paths and client addresses are not worth a line per scrape

    def _send(
        self,
        code: int,
        body: bytes,
        content_type: str = "text/plain; charset=utf-8",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Content-Type-Options", "nosniff")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _authorised(self) -> bool:
        owner = self.server.owner
        state = owner._current()
        if state.error is not None:
            self._send(500, b"web config is invalid; see the log\n")
            return False
        users = state.config.basic_auth_users
        if not users:
            return True
        verdict = owner._auth.check(users, self.headers.get("Authorization"))
        if verdict is None:
            self._send(429, b"too many authentication attempts\n", headers={"Retry-After": "1"})
            return False
        if not verdict:
            challenge = {"WWW-Authenticate": 'Basic realm="santinel"'}
            self._send(401, b"Unauthorized\n", headers=challenge)
            return False
        return True

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self._send(413, b"request body too large\n")
            return
        if length:
            self.rfile.read(length)
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        if not self._authorised():
            return
        owner = self.server.owner
        path = self.path.split("?", 1)[0]
        if path == "/metrics" and method == "GET":
            encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
            self._send(200, encoder(owner.registry), content_type)
        elif path == "/-/healthy" and method == "GET":
            self._send(200, b"Healthy.\n")
        elif path == "/-/ready" and method == "GET":
            if owner.ready():
                self._send(200, b"Ready.\n")
            else:
                self._send(503, b"Not ready.\n")
        elif path == "/-/reload":
            if method != "POST":
                self._send(405, b"use POST\n", headers={"Allow": "POST"})
                return
            ok, message = owner.reload()
            self._send(200 if ok else 500, (message + "\n").encode())
        elif path == "/" and method == "GET":
            self._send(200, _LANDING, "text/html; charset=utf-8")
        else:
            self._send(404, b"Not found.\n")


_LANDING = (
    b"<!doctype html><html><head><title>Santinel</title></head><body><h1>Santinel</h1>"
    b"<p>Passive network monitor for medical devices.</p><ul>"
    b'<li><a href="metrics">Metrics</a></li><li><a href="-/healthy">Health</a></li>'
    b'<li><a href="-/ready">Readiness</a></li></ul></body></html>\n'
)


class WebServer:
    """The HTTP(S) endpoint; ``start()`` binds (or raises ``WebError``), ``stop()`` closes."""

    def __init__(
        self,
        listen_address: str,
        registry: CollectorRegistry,
        *,
        web_config_file: Path | None = None,
        allow_insecure_remote: bool = False,
        max_connections: int = 16,
        ready: Callable[[], bool] = lambda: True,
        reload: Callable[[], tuple[bool, str]] = lambda: (False, "reload not supported"),
    ) -> None:
        self.listen_address = listen_address
        self.registry = registry
        self.web_config_file = web_config_file
        self.allow_insecure_remote = allow_insecure_remote
        self.ready = ready
        self.reload = reload
        self._slots = threading.BoundedSemaphore(max_connections)
        self._auth = BasicAuth()
        self._state_lock = threading.Lock()
        self._state = _WebState(WebFileConfig(), None, None)
        self._tls_mode = False
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_address[1])

    def _signature(self) -> tuple[int, int, int] | None:
        if self.web_config_file is None:
            return None
        try:
            st = os.stat(self.web_config_file)
        except OSError:
            return (-1, -1, -1)
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _load(self) -> _WebState:
        signature = self._signature()
        if self.web_config_file is None:
            return _WebState(WebFileConfig(), None, None)
        config = load_web_config(self.web_config_file)
        tls = config.tls_server_config
        context = _ssl_context(tls) if tls is not None else None
        return _WebState(config, context, signature)

    def _current(self) -> _WebState:
        """The web config, re-read when its file changed; an invalid file fails closed."""
        if self.web_config_file is None:
            return self._state
        signature = self._signature()
        with self._state_lock:
            if signature == self._state.signature:
                return self._state
            try:
                state = self._load()
                if (state.context is not None) != self._tls_mode:
                    raise YamlModelError(
                        [f"{self.web_config_file}: TLS cannot be switched on or off at run time"]
                    )
            except (YamlModelError, OSError, ssl.SSLError) as error:
                if isinstance(error, YamlModelError):
                    reason = error.errors[0]
                else:
                    reason = type(error).__name__
                log("error", "web config reload failed; refusing requests", error=reason)
                state = _WebState(self._state.config, self._state.context, signature, reason)
            else:
                log("info", "web config reloaded", file=str(self.web_config_file))
            self._state = state
            return state

    def check(self) -> tuple[str, int, _WebState]:
        """Validate address, web config and the insecure-listen rule without binding."""
        try:
            host, port = split_listen_address(self.listen_address)
        except ValueError as error:
            raise WebError(f"web.listen_address {self.listen_address}: {error}") from None
        try:
            state = self._load()
        except YamlModelError as error:
            raise WebError(error.errors[0]) from None
        except (OSError, ssl.SSLError) as error:
            raise WebError(f"{self.web_config_file}: {type(error).__name__}") from None
        secured = state.context is not None or bool(state.config.basic_auth_users)
        if not is_loopback_host(host) and not secured and not self.allow_insecure_remote:
            raise WebError(
                f"refusing to listen on {self.listen_address} without TLS or basic auth "
                "(set web.config_file, or web.allow_insecure_remote: true to accept the risk)"
            )
        return host, port, state

    def start(self) -> None:
        host, port, state = self.check()
        if state.config.basic_auth_users and state.context is None and not is_loopback_host(host):
            log(
                "warn",
                "basic auth without TLS: passwords cross the network in clear text",
                address=self.listen_address,
            )
        self._state = state
        self._tls_mode = state.context is not None
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        server_class = type("_BoundServer", (_Server,), {"address_family": family})
        try:
            server = server_class(
                (host or ("::" if family == socket.AF_INET6 else ""), port),
                _Handler,
                bind_and_activate=True,
            )
        except OSError as error:
            raise WebError(
                f"cannot listen on {self.listen_address}: {error.strerror or type(error).__name__}"
            ) from None
        server.owner = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="web", daemon=True
        )
        self._thread.start()
        log(
            "info",
            "listening",
            address=self.listen_address,
            tls=self._tls_mode,
            basic_auth=bool(state.config.basic_auth_users),
            port=self.port,
        )

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
