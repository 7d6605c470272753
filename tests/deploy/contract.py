"""The metric names the deploy files may use: DESIGN.md's Metrics table and the series added with
the code since (docs/metrics.md), kept here as data.

``tests/deploy/test_contract.py`` checks these lists against docs/metrics.md always and against
the shared DESIGN.md whenever it is beside the repository, so a rename on either side fails a
test instead of leaving a dashboard panel empty.
"""

from __future__ import annotations

import re
from pathlib import Path

# DESIGN.md, "Metrics (prefix santinel_)": name -> labels.
DESIGN_METRICS: dict[str, tuple[str, ...]] = {
    "santinel_build_info": ("version",),
    "santinel_capture_packets_total": ("interface",),
    "santinel_capture_bytes_total": ("interface",),
    "santinel_capture_dropped_packets_total": ("interface",),
    "santinel_decode_errors_total": ("reason",),
    "santinel_capture_last_packet_timestamp_seconds": ("interface",),
    "santinel_devices": ("device_class", "state"),
    "santinel_devices_overflow_total": (),
    "santinel_device_info": (
        "device",
        "mac",
        "ip",
        "vendor",
        "device_class",
        "model",
        "criticality",
        "hostname",
    ),
    "santinel_device_last_seen_timestamp_seconds": ("device",),
    "santinel_device_expected_interval_seconds": ("device",),
    "santinel_device_transmit_bytes_total": ("device",),
    "santinel_device_receive_bytes_total": ("device",),
    "santinel_device_transmit_packets_total": ("device",),
    "santinel_device_receive_packets_total": ("device",),
    "santinel_device_peers": ("device",),
    "santinel_device_baseline_ready": ("device",),
    "santinel_anomalies_total": ("device", "detector", "severity"),
    "santinel_anomaly_active": ("device", "detector", "severity"),
    "santinel_signature_matches_total": ("device", "signature"),
    "santinel_config_last_reload_successful": (),
}

# docs/metrics.md, "Added with the code": series the design's table does not list yet.
ADDED_METRICS: dict[str, tuple[str, ...]] = {
    "santinel_capture_processing_lag_seconds": ("interface",),
    "santinel_flows_active": (),
    "santinel_flows_started_total": (),
    "santinel_flows_evicted_total": ("reason",),
    "santinel_devices_evicted_total": (),
    "santinel_fact_values_evicted_total": (),
    "santinel_capture_worker_packets_total": ("interface", "worker"),
    "santinel_capture_worker_dropped_packets_total": ("interface", "worker"),
    "santinel_windows_judged_total": (),
    "santinel_window_judge_seconds_total": (),
    "santinel_window_judge_last_duration_seconds": (),
    "santinel_window_judge_last_devices": (),
}

# Series present only with several capture workers (the golden exposition has one).
WORKER_METRICS = frozenset(
    {"santinel_capture_worker_packets_total", "santinel_capture_worker_dropped_packets_total"}
)

# Series Prometheus itself writes for every target.
PROMETHEUS_METRICS = frozenset({"up", "scrape_duration_seconds", "scrape_samples_scraped"})

SANTINEL_METRICS = {**DESIGN_METRICS, **ADDED_METRICS}

_PLAIN_METRIC = re.compile(r"(?<![\w:])santinel_[a-z0-9_]+(?![\w:])")
_RECORDED = re.compile(r"(?<![\w:])[a-z_]+:santinel_[a-z0-9_]+:[a-z0-9_]+(?![\w:])")


def santinel_metrics_in(expr: str) -> set[str]:
    """Exported santinel metric names a PromQL expression reads."""
    return set(_PLAIN_METRIC.findall(expr))


def recorded_metrics_in(expr: str) -> set[str]:
    """Recording-rule names (``level:santinel_metric:operations``) a PromQL expression reads."""
    return set(_RECORDED.findall(expr))


def design_table_metrics(design_md: Path) -> dict[str, tuple[str, ...]]:
    """Parse the Metrics tables of DESIGN.md or docs/metrics.md.

    Rows look like ``| `a`, `b` | type | label, label (note) |``; every table under the
    "## Metrics" heading counts, up to the next second-level heading.
    """
    text = design_md.read_text()
    section = text.split("## Metrics", 1)[1].split("\n## ", 1)[0]
    metrics: dict[str, tuple[str, ...]] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0].startswith("`santinel_"):
            continue
        names = re.findall(r"`(santinel_[a-z0-9_]+)`", cells[0])
        label_text = re.sub(r"\(.*?\)", "", cells[2])
        labels = tuple(
            label.strip()
            for label in label_text.split(",")
            if re.fullmatch(r"\s*[a-z_]+\s*", label)
        )
        for name in names:
            metrics[name] = labels
    return metrics
