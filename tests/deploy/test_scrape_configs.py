"""The shipped scrape configs on a real Prometheus: the multi-sensor relabelling derives the
``sensor`` and ``ward`` labels from the sensor names, the single-sensor config labels its one.

No traffic leaves loopback: the sensors' DNS names are only ever sent to a local HTTP proxy
(``proxy_url``) that answers every scrape itself, so nothing resolves or dials them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import PROMETHEUS_DIR
from tests.support.promstack import Prometheus, prometheus_config, wait_until


@pytest.fixture
def answering_proxy() -> Iterator[tuple[str, list[str]]]:
    """An HTTP proxy on loopback that answers every GET with a one-line exposition; yields its
    URL and the list of URLs it was asked for."""
    asked: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.end_headers()
            self.wfile.write(b'santinel_build_info{version="0.1.0"} 1\n')

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", asked
    finally:
        server.shutdown()
        server.server_close()


def test_multi_sensor_relabelling_derives_sensor_and_ward_from_the_names(
    tmp_path: Path,
    prometheus_factory: Callable[..., Prometheus],
    answering_proxy: tuple[str, list[str]],
) -> None:
    proxy, asked = answering_proxy
    shipped = yaml.safe_load((PROMETHEUS_DIR / "prometheus-multi.yml").read_text())
    (job,) = [j for j in shipped["scrape_configs"] if j["job_name"] == "santinel"]
    # Keep the relabelling and discovery as shipped; swap TLS/auth for the local proxy.
    for key in ("tls_config", "basic_auth"):
        job.pop(key)
    job.update(scheme="http", proxy_url=proxy, scrape_interval="1s", scrape_timeout="1s")
    sensors = tmp_path / "sensors"
    sensors.mkdir()
    (sensors / "example.yml").write_text((PROMETHEUS_DIR / "sensors" / "example.yml").read_text())
    job["file_sd_configs"] = [{"files": [str(sensors / "*.yml")], "refresh_interval": "1s"}]

    prom = prometheus_factory(prometheus_config([job]))
    prom.wait_for_targets_up(timeout=30)
    labels = wait_until(
        lambda: {
            (s["metric"]["instance"], s["metric"]["sensor"], s["metric"]["ward"])
            for s in prom.query('santinel_build_info{job="santinel"}')
        }
        or None,
        timeout=20,
    )
    assert labels == {
        ("icu-1.sensors.example.org:10575", "icu-1", "icu"),
        ("icu-2.sensors.example.org:10575", "icu-2", "icu"),
        ("radiology-1.sensors.example.org:10575", "radiology-1", "radiology"),
        ("cardiac-cath-lab-1.sensors.example.org:10575", "cardiac-cath-lab-1", "cardiac-cath-lab"),
    }
    assert "http://icu-1.sensors.example.org:10575/metrics" in asked


def test_single_sensor_config_labels_its_sensor(
    prometheus_factory: Callable[..., Prometheus],
    answering_proxy: tuple[str, list[str]],
) -> None:
    proxy, _ = answering_proxy
    shipped = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    (job,) = [j for j in shipped["scrape_configs"] if j["job_name"] == "santinel"]
    job.update(proxy_url=proxy, scrape_interval="1s", scrape_timeout="1s")
    prom = prometheus_factory(prometheus_config([job]))
    prom.wait_for_targets_up(timeout=30)
    samples = wait_until(lambda: prom.query("santinel_build_info"), timeout=20)
    assert [s["metric"] for s in samples] == [
        {
            "__name__": "santinel_build_info",
            "instance": "127.0.0.1:10575",
            "job": "santinel",
            "sensor": "sensor-1",
            "ward": "ward-1",
            "version": "0.1.0",
        }
    ]
