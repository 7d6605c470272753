"""A sensor-shaped /metrics endpoint on loopback, for tests that need a sensor but not capture.

It serves every metric of the contract for two devices: a life-sustaining infusion pump that has
been silent for 200 s against a learned 30 s cadence and holds a ``new_external_peer`` anomaly,
and an unidentified device. Counters grow with every scrape.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

PUMP = "00:1b:63:aa:bb:01"
UNKNOWN = "02:42:ac:11:00:09"


def exposition(scrape: int) -> str:
    """A small sensor's /metrics: every contract metric, counters growing with each scrape."""
    t = 1_790_000_000 + scrape
    n = scrape
    pump = f'device="{PUMP}"'
    other = f'device="{UNKNOWN}"'
    pump_info = (
        'criticality="life_sustaining",device_class="infusion_pump",hostname="pump-icu-3",'
        'ip="10.1.2.30",mac="00:1b:63:aa:bb:01",model="SpaceCom 2",vendor="B. Braun"'
    )
    other_info = (
        'criticality="",device_class="unknown",hostname="",ip="10.1.2.99",'
        'mac="02:42:ac:11:00:09",model="",vendor=""'
    )
    return f"""\
santinel_build_info{{version="0.1.0"}} 1
santinel_config_last_reload_successful 1
santinel_capture_packets_total{{interface="eth1"}} {100 * n}
santinel_capture_bytes_total{{interface="eth1"}} {60000 * n}
santinel_capture_dropped_packets_total{{interface="eth1"}} {n}
santinel_capture_last_packet_timestamp_seconds{{interface="eth1"}} {t}
santinel_capture_processing_lag_seconds{{interface="eth1"}} 0.25
santinel_decode_errors_total{{reason="ipv4_truncated"}} {n}
santinel_devices{{device_class="infusion_pump",state="enforcing"}} 1
santinel_devices{{device_class="unknown",state="learning"}} 1
santinel_devices_overflow_total 0
santinel_device_info{{{pump},{pump_info}}} 1
santinel_device_info{{{other},{other_info}}} 1
santinel_device_last_seen_timestamp_seconds{{{pump}}} {t - 200}
santinel_device_last_seen_timestamp_seconds{{{other}}} {t}
santinel_device_expected_interval_seconds{{{pump}}} 30
santinel_device_transmit_bytes_total{{{pump}}} {400 * n}
santinel_device_receive_bytes_total{{{pump}}} {80 * n}
santinel_device_transmit_packets_total{{{pump}}} {4 * n}
santinel_device_receive_packets_total{{{pump}}} {n}
santinel_device_peers{{{pump}}} 2
santinel_device_baseline_ready{{{pump}}} 1
santinel_device_baseline_ready{{{other}}} 0
santinel_anomalies_total{{detector="new_external_peer",{pump},severity="critical"}} {1 + n // 3}
santinel_anomaly_active{{detector="new_external_peer",{pump},severity="critical"}} 1
santinel_signature_matches_total{{{other},signature="telnet-to-clinical"}} {n}
santinel_windows_judged_total {n}
santinel_window_judge_seconds_total {0.25 * n}
santinel_window_judge_last_duration_seconds 0.25
santinel_window_judge_last_devices 2
"""


@pytest.fixture
def sample_sensor() -> Iterator[str]:
    """A loopback HTTP server answering /metrics with ``exposition``; yields host:port."""
    scrapes = [0]

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            scrapes[0] += 1
            body = exposition(scrapes[0]).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
