"""The HTTP endpoint: basic auth (401/200/429), TLS with a test certificate, refusal of an
insecure non-loopback listener, readiness, reload, and the bounded pools."""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest
import requests
from prometheus_client import CollectorRegistry

from monitor.exporter.registry import build_registry
from monitor.web import WebError, WebServer
from tests.exporter.sensorstate import fixed_sensor

PASSWORD = "correct horse battery staple"


def _hash(password: str, cost: int = 4) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(cost)).decode()


@pytest.fixture
def registry() -> CollectorRegistry:
    return build_registry(fixed_sensor())


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "server.crt", tmp_path / "server.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


@contextlib.contextmanager
def serving(server: WebServer) -> Iterator[WebServer]:
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def auth_server(tmp_path: Path, registry: CollectorRegistry) -> Iterator[WebServer]:
    web = tmp_path / "web.yml"
    web.write_text(f"basic_auth_users:\n  prometheus: '{_hash(PASSWORD)}'\n")
    with serving(WebServer("127.0.0.1:0", registry, web_config_file=web)) as server:
        yield server


def test_metrics_without_credentials_get_401_with_a_basic_challenge(auth_server: WebServer) -> None:
    response = requests.get(f"http://127.0.0.1:{auth_server.port}/metrics", timeout=10)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic ")
    assert "santinel_" not in response.text


@pytest.mark.parametrize(
    "auth", [("prometheus", "wrong"), ("nobody", PASSWORD), ("prometheus", "")]
)
def test_wrong_credentials_get_401(auth_server: WebServer, auth: tuple[str, str]) -> None:
    url = f"http://127.0.0.1:{auth_server.port}/metrics"
    assert requests.get(url, auth=auth, timeout=10).status_code == 401


def test_right_credentials_get_the_metrics(auth_server: WebServer) -> None:
    url = f"http://127.0.0.1:{auth_server.port}/metrics"
    response = requests.get(url, auth=("prometheus", PASSWORD), timeout=10)
    assert response.status_code == 200
    assert "santinel_build_info" in response.text
    health = requests.get(f"http://127.0.0.1:{auth_server.port}/-/healthy", timeout=10)
    assert health.status_code == 401  # every endpoint is behind auth, as in exporter-toolkit


def test_tls_serves_metrics_to_a_client_that_trusts_the_test_certificate(
    tmp_path: Path, registry: CollectorRegistry, certificate: tuple[Path, Path]
) -> None:
    cert, key = certificate
    web = tmp_path / "web.yml"
    web.write_text(f"tls_server_config:\n  cert_file: {cert.name}\n  key_file: {key.name}\n")
    with serving(WebServer("127.0.0.1:0", registry, web_config_file=web)) as server:
        url = f"https://127.0.0.1:{server.port}/metrics"
        response = requests.get(url, verify=str(cert), timeout=10)
        assert response.status_code == 200 and "santinel_build_info" in response.text
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(url, timeout=10)  # the system trust store does not know the test CA
        # plain HTTP on a TLS port is not answered with metrics
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(f"http://127.0.0.1:{server.port}/metrics", timeout=10)


def _handshake(port: int, cert: Path, maximum: ssl.TLSVersion) -> str:
    context = ssl.create_default_context(cafile=str(cert))
    context.maximum_version = maximum
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        return str(tls.version())


def test_min_version_refuses_older_clients(
    tmp_path: Path, registry: CollectorRegistry, certificate: tuple[Path, Path]
) -> None:
    cert, key = certificate
    web = tmp_path / "web.yml"
    web.write_text(
        f"tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n  min_version: TLS13\n"
    )
    with serving(WebServer("127.0.0.1:0", registry, web_config_file=web)) as server:
        assert _handshake(server.port, cert, ssl.TLSVersion.TLSv1_3) == "TLSv1.3"
        with pytest.raises(ssl.SSLError):
            _handshake(server.port, cert, ssl.TLSVersion.TLSv1_2)


def test_mutual_tls_rejects_a_client_without_certificate(
    tmp_path: Path, registry: CollectorRegistry, certificate: tuple[Path, Path]
) -> None:
    cert, key = certificate
    web = tmp_path / "web.yml"
    web.write_text(
        f"tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n"
        f"  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {cert}\n"
    )
    with serving(WebServer("127.0.0.1:0", registry, web_config_file=web)) as server:
        url = f"https://127.0.0.1:{server.port}/metrics"
        with pytest.raises(requests.exceptions.RequestException):
            requests.get(url, verify=str(cert), timeout=10)
        ok = requests.get(url, verify=str(cert), cert=(str(cert), str(key)), timeout=10)
        assert ok.status_code == 200


def test_non_loopback_listen_without_tls_or_auth_is_refused(registry: CollectorRegistry) -> None:
    with pytest.raises(WebError, match=r"refusing to listen on 0\.0\.0\.0:0 without TLS or basic"):
        WebServer("0.0.0.0:0", registry).start()
    with pytest.raises(WebError, match="refusing"):
        WebServer(":0", registry).start()


def test_non_loopback_listen_is_allowed_when_the_config_says_so_or_with_auth(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    with serving(WebServer("0.0.0.0:0", registry, allow_insecure_remote=True)) as server:
        response = requests.get(f"http://127.0.0.1:{server.port}/-/healthy", timeout=10)
        assert response.status_code == 200
    web = tmp_path / "web.yml"
    web.write_text(f"basic_auth_users:\n  p: '{_hash('x')}'\n")
    with serving(WebServer("0.0.0.0:0", registry, web_config_file=web)) as server:
        assert server.port > 0


def test_plaintext_password_in_the_web_config_refuses_to_start(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    web = tmp_path / "web.yml"
    web.write_text("basic_auth_users:\n  prometheus: hunter2hunter2\n")
    with pytest.raises(WebError, match="not a bcrypt hash") as caught:
        WebServer("127.0.0.1:0", registry, web_config_file=web).start()
    assert "hunter2" not in str(caught.value)


def test_ready_reload_and_unknown_paths(registry: CollectorRegistry) -> None:
    ready = threading.Event()
    calls: list[int] = []

    def reload() -> tuple[bool, str]:
        calls.append(1)
        return (len(calls) == 1, "reloaded" if len(calls) == 1 else "failed: x.yml:3: bad")

    with serving(WebServer("127.0.0.1:0", registry, ready=ready.is_set, reload=reload)) as server:
        base = f"http://127.0.0.1:{server.port}"
        assert requests.get(f"{base}/-/ready", timeout=10).status_code == 503
        ready.set()
        assert requests.get(f"{base}/-/ready", timeout=10).status_code == 200
        assert requests.get(f"{base}/-/reload", timeout=10).status_code == 405
        assert requests.post(f"{base}/-/reload", timeout=10).status_code == 200
        failed = requests.post(f"{base}/-/reload", timeout=10)
        assert failed.status_code == 500 and "x.yml:3" in failed.text
        assert requests.get(f"{base}/nope", timeout=10).status_code == 404
        assert "metrics" in requests.get(f"{base}/", timeout=10).text
        assert calls == [1, 1]


def test_a_changed_web_config_is_picked_up_and_a_broken_one_fails_closed(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    web = tmp_path / "web.yml"
    web.write_text(f"basic_auth_users:\n  a: '{_hash('one')}'\n")
    with serving(WebServer("127.0.0.1:0", registry, web_config_file=web)) as server:
        url = f"http://127.0.0.1:{server.port}/metrics"
        assert requests.get(url, auth=("a", "one"), timeout=10).status_code == 200
        web.write_text(f"basic_auth_users:\n  a: '{_hash('two')}'\n")
        os.utime(web, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
        assert requests.get(url, auth=("a", "one"), timeout=10).status_code == 401
        assert requests.get(url, auth=("a", "two"), timeout=10).status_code == 200
        web.write_text("basic_auth_users: [\n")
        os.utime(web, ns=(time.time_ns() + 2 * 10**9, time.time_ns() + 2 * 10**9))
        assert requests.get(url, auth=("a", "two"), timeout=10).status_code == 500


def test_a_flood_of_bad_passwords_gets_429_while_cached_good_credentials_still_work(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    web = tmp_path / "web.yml"
    web.write_text(f"basic_auth_users:\n  prometheus: '{_hash(PASSWORD, cost=12)}'\n")
    flood = WebServer("127.0.0.1:0", registry, web_config_file=web, max_connections=64)
    with serving(flood) as server:
        url = f"http://127.0.0.1:{server.port}/metrics"
        # the first good login pays bcrypt once and is cached
        assert requests.get(url, auth=("prometheus", PASSWORD), timeout=30).status_code == 200
        codes: list[int] = []
        go = threading.Barrier(20)

        def attack(url: str = url) -> None:
            go.wait(10)  # all at once, as a flood does
            codes.append(requests.get(url, auth=("prometheus", "guess"), timeout=30).status_code)

        threads = [threading.Thread(target=attack) for _ in range(20)]
        for t in threads:
            t.start()
        good = requests.get(url, auth=("prometheus", PASSWORD), timeout=30)
        for t in threads:
            t.join()
        assert good.status_code == 200
        assert set(codes) <= {401, 429}
        assert codes.count(429) >= 10  # one bcrypt at a time: most attempts are turned away


def test_cached_good_credentials_are_answered_while_bcrypt_is_busy(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    web = tmp_path / "web.yml"
    # an expensive hash keeps the single bcrypt slot busy for a while on each wrong guess
    web.write_text(f"basic_auth_users:\n  prometheus: '{_hash(PASSWORD, cost=15)}'\n")
    with serving(WebServer("127.0.0.1:0", registry, web_config_file=web)) as server:
        url = f"http://127.0.0.1:{server.port}/metrics"
        assert requests.get(url, auth=("prometheus", PASSWORD), timeout=60).status_code == 200

        def guess() -> int:
            return requests.get(url, auth=("prometheus", "guess"), timeout=60).status_code

        for _ in range(10):
            slow = threading.Thread(target=guess)
            slow.start()
            # a probe turned away with 429 proves the slot is taken by the slow guess (a
            # probe that won the slot itself answers 401 after its own check: try again) ...
            if guess() != 429:
                slow.join()
                continue
            good = requests.get(url, auth=("prometheus", PASSWORD), timeout=60)
            # ... and one right after proves it still was while the good login was answered
            still_busy = guess() == 429
            slow.join()
            break
        else:
            pytest.fail("never saw the bcrypt slot busy")
        assert good.status_code == 200
        assert still_busy


def test_connections_beyond_the_limit_get_503(registry: CollectorRegistry) -> None:
    with serving(WebServer("127.0.0.1:0", registry, max_connections=2)) as server:
        idle = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(2)]
        try:
            time.sleep(0.3)
            response = requests.get(f"http://127.0.0.1:{server.port}/-/healthy", timeout=10)
            assert response.status_code == 503
        finally:
            for s in idle:
                s.close()
        time.sleep(0.3)
        assert requests.get(f"http://127.0.0.1:{server.port}/-/healthy", timeout=10).ok
