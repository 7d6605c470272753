"""HTTPS: an infusion pump reporting to its pump server (a local TLS server standing for the
vendor's), plus the one-off HTTPS actions of events (a new external peer, a bulk upload).

The server certificate is generated at run time with ``openssl`` (``make_certificate``) for
the server's DNS name and address; the pump verifies it against that certificate and sends
the name as SNI, so the capture holds a real TLS 1.2/1.3 handshake with a ClientHello per
connection. Each report is a new connection, as many embedded clients do.

Config: server ``port``, ``cert``, ``key``; client ``server`` (name), ``port``, ``every``,
``path``, ``user_agent``, ``device``, ``ca``, ``dns_server``; once/upload ``address``,
``server_name``, ``port``, ``size`` (upload bytes).
"""

from __future__ import annotations

import http.client
import json
import os
import random
import socket
import ssl
import subprocess
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from monitor.lab.agent import Config, cadence, patient, resolve


def make_certificate(directory: Path, name: str, ip: str) -> tuple[Path, Path]:
    """A fresh self-signed P-256 certificate for ``name`` and ``ip``; returns (cert, key)."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-days", "3", "-subj", f"/O=Santinel lab/CN={name}",
            "-addext", f"subjectAltName=DNS:{name},IP:{ip}",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )  # fmt: skip
    return cert, key


class _Handler(BaseHTTPRequestHandler):
    server_version = "PumpServer/2.4"
    sys_version = ""
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        return  # request lines carry nothing we need; keep the logs empty

    def _reply(self, body: bytes, status: int = 200) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._reply(json.dumps({"library": "2026-11", "status": "ok"}).encode())

    def do_POST(self) -> None:
        remaining = int(self.headers.get("Content-Length", "0") or 0)
        received = 0
        while remaining > 0:
            chunk = self.rfile.read(min(remaining, 65536))
            if not chunk:
                break
            received += len(chunk)
            remaining -= len(chunk)
        self._reply(json.dumps({"accepted": received}).encode())


def serve(cfg: Config) -> None:
    """A TLS HTTP server on ``port`` answering every GET and POST with a small JSON body."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cfg["cert"], cfg["key"])
    address = (str(cfg.get("bind", "0.0.0.0")), int(cfg.get("port", 443)))
    server = ThreadingHTTPServer(address, _Handler)
    server.daemon_threads = True
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.serve_forever()


def _request(
    address: str,
    server_name: str,
    port: int,
    method: str,
    path: str,
    body: bytes | None,
    headers: dict[str, str],
    ca: str | None,
) -> int:
    if ca:
        context = ssl.create_default_context(cafile=ca)
    else:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    connection = http.client.HTTPSConnection(address, port, timeout=30, context=context)
    # Connect by address, but present (and verify) the server's name as SNI.
    connection.sock = context.wrap_socket(
        socket.create_connection((address, port), timeout=30),
        server_hostname=server_name,
    )
    try:
        connection.request(method, path, body=body, headers={"Host": server_name, **headers})
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def client(cfg: Config) -> None:
    """The pump: POST a status report every ``every`` seconds to its pump server."""
    name = str(cfg["server"])
    port = int(cfg.get("port", 443))
    p = patient(random.randrange(8))

    def report() -> None:
        status = {
            "device": cfg.get("device", "pump"),
            "patient_id": p["mrn"],
            "channel": "A",
            "state": "infusing",
            "rate_ml_h": round(random.uniform(4, 30), 1),
            "volume_remaining_ml": random.randint(20, 500),
            "time": round(time.time()),
        }
        _request(
            resolve(cfg, name),
            name,
            port,
            "POST",
            str(cfg.get("path", "/api/v1/status")),
            json.dumps(status).encode(),
            {"User-Agent": str(cfg.get("user_agent", "DeviceAgent/1.0")),
             "Content-Type": "application/json"},
            cfg.get("ca"),
        )  # fmt: skip

    cadence(float(cfg["every"]), report, first=float(cfg.get("first", 0.0)))


def once(cfg: Config) -> int:
    """One GET to an external address (a device reaching a destination it never used)."""
    status = _request(
        str(cfg["address"]),
        str(cfg.get("server_name", cfg["address"])),
        int(cfg.get("port", 443)),
        "GET",
        "/",
        None,
        {"User-Agent": str(cfg.get("user_agent", "DeviceAgent/1.0"))},
        None,
    )
    return 0 if status == 200 else 1


def upload(cfg: Config) -> int:
    """POST ``size`` random bytes to an external address: a bulk upload (exfiltration)."""
    size = int(cfg["size"])
    status = _request(
        str(cfg["address"]),
        str(cfg.get("server_name", cfg["address"])),
        int(cfg.get("port", 443)),
        "POST",
        "/upload",
        os.urandom(size),
        {"Content-Type": "application/octet-stream"},
        None,
    )
    return 0 if status == 200 else 1
