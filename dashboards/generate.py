"""Generate Santinel's Grafana dashboards (classic JSON model) from one description.

Run ``python3 dashboards/generate.py`` after editing; it rewrites ``dashboards/*.json`` (committed
beside it, and provisioned from files by ``deploy/grafana/provisioning/``). A test regenerates
them and fails when the committed JSON is stale.

Promises, for every dashboard written here (checked by ``tests/deploy/test_dashboards.py``):
- a stable ``uid`` (a fixed slug, at most 40 characters), unique across the set;
- one ``datasource`` template variable, used by every panel, target and query variable (no
  ``__inputs``: file provisioning cannot resolve them);
- ``$__rate_interval`` in every ``rate``/``increase``; ``fieldConfig.defaults.unit`` on every panel;
- PromQL that reads only metrics of DESIGN.md's table (plus those added since that
  docs/metrics.md lists, such as the processing lag and the window judging, and Prometheus's
  own ``up``/``scrape_*``) and the recording rules of ``deploy/prometheus/rules``.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
SCHEMA_VERSION = 39
JOB = 'job="santinel"'
# Filters every santinel series by the sensor and ward variables.
SEL = f'{JOB}, ward=~"$ward", instance=~"$instance"'
DEV = f'{SEL}, device="$device"'
UP = f'{JOB}, ward=~"$ward", instance=~"$instance"'


def zero_when_quiet(expr: str, label: str) -> str:
    """``expr``, or a 0 labelled ``label="none"`` while a selected sensor is up but has never
    counted any: a quiet ward shows zero, not "No data" (a down sensor still shows no data)."""
    return f'{expr} or label_replace(0 * sum(up{{{UP}}} == 1), "{label}", "none", "", "")'


def zero_per_sensor(expr: str) -> str:
    """``expr`` (by ward and instance), completed with 0 for every selected sensor that is up."""
    return f"{expr} or 0 * sum by (ward, instance) (up{{{UP}}} == 1)"


@dataclass
class Query:
    expr: str
    legend: str = ""
    table: bool = False  # an instant query shown as a table


@dataclass
class Panel:
    kind: str  # timeseries | stat | table | bargauge | piechart
    title: str
    description: str
    unit: str
    queries: list[Query]
    width: int = 12
    height: int = 8
    mappings: list[dict[str, Any]] = field(default_factory=list)
    thresholds: list[tuple[str, float | None]] = field(default_factory=list)
    stacked: bool = False
    hide_columns: tuple[str, ...] = ()


# ----------------------------------------------------------------------------------------------
# Template variables


def datasource_variable() -> dict[str, Any]:
    return {
        "type": "datasource",
        "name": "datasource",
        "label": "Data Source",
        "query": "prometheus",
        "regex": "",
        "hide": 0,
        "includeAll": False,
        "multi": False,
        "refresh": 1,
        "current": {},
        "options": [],
    }


def query_variable(
    name: str,
    label: str,
    query: str,
    *,
    multi: bool,
    all_value: str | None,
) -> dict[str, Any]:
    return {
        "type": "query",
        "name": name,
        "label": label,
        "datasource": DATASOURCE,
        "definition": query,
        # A plain string: the form every Grafana version from 8 to 12 reads.
        "query": query,
        "refresh": 2,  # on time range change
        "includeAll": all_value is not None,
        "allValue": all_value,
        "multi": multi,
        "sort": 1,
        "hide": 0,
        "regex": "",
        "current": {},
        "options": [],
    }


def ward_variable() -> dict[str, Any]:
    # ".*" also matches series without a ward label (a sensor scraped without relabelling).
    return query_variable(
        "ward", "Ward", f"label_values(up{{{JOB}}}, ward)", multi=True, all_value=".*"
    )


def instance_variable() -> dict[str, Any]:
    return query_variable(
        "instance",
        "Sensor",
        f'label_values(up{{{JOB}, ward=~"$ward"}}, instance)',
        multi=True,
        all_value=".+",
    )


def device_variable() -> dict[str, Any]:
    return query_variable(
        "device",
        "Device",
        f"label_values(santinel_device_info{{{SEL}}}, device)",
        multi=False,
        all_value=None,
    )


# ----------------------------------------------------------------------------------------------
# Panels


def render_panel(panel: Panel, panel_id: int, x: int, y: int) -> dict[str, Any]:
    targets = []
    for index, query in enumerate(panel.queries):
        target: dict[str, Any] = {
            "datasource": DATASOURCE,
            "refId": chr(ord("A") + index),
            "expr": query.expr,
            "legendFormat": query.legend or "__auto",
            "range": not query.table,
            "instant": query.table,
        }
        if query.table:
            target["format"] = "table"
        targets.append(target)
    defaults: dict[str, Any] = {"unit": panel.unit}
    if panel.mappings:
        defaults["mappings"] = panel.mappings
    if panel.thresholds:
        defaults["thresholds"] = {
            "mode": "absolute",
            "steps": [{"color": color, "value": value} for color, value in panel.thresholds],
        }
        defaults["color"] = {"mode": "thresholds"}
    if panel.kind == "timeseries":
        defaults["custom"] = {
            "drawStyle": "line",
            "fillOpacity": 10 if not panel.stacked else 60,
            "stacking": {"mode": "normal" if panel.stacked else "none", "group": "A"},
            "showPoints": "never",
        }
    rendered: dict[str, Any] = {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"h": panel.height, "w": panel.width, "x": x, "y": y},
        "targets": targets,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": panel_options(panel),
    }
    if panel.kind == "table":
        hidden = {
            "Time": True,
            "__name__": True,
            "job": True,
            **dict.fromkeys(panel.hide_columns, True),
        }
        rendered["transformations"] = [
            {"id": "merge", "options": {}},
            {"id": "organize", "options": {"excludeByName": hidden}},
        ]
    return rendered


def panel_options(panel: Panel) -> dict[str, Any]:
    reduce = {"calcs": ["lastNotNull"], "fields": "", "values": False}
    if panel.kind == "stat":
        return {
            "reduceOptions": reduce,
            "colorMode": "value",
            "graphMode": "none",
            "textMode": "auto",
            "justifyMode": "auto",
            "orientation": "auto",
        }
    if panel.kind == "bargauge":
        return {
            "reduceOptions": reduce,
            "displayMode": "basic",
            "orientation": "horizontal",
            "showUnfilled": True,
        }
    if panel.kind == "piechart":
        return {
            "reduceOptions": reduce,
            "pieType": "donut",
            "legend": {"displayMode": "table", "placement": "right", "values": ["value"]},
        }
    if panel.kind == "table":
        return {"showHeader": True, "cellHeight": "sm"}
    return {
        "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
        "tooltip": {"mode": "multi", "sort": "desc"},
    }


def layout(panels: list[Panel]) -> list[dict[str, Any]]:
    """Place panels left to right in rows of 24 grid columns."""
    rendered, x, y, row_height = [], 0, 0, 0
    for panel_id, panel in enumerate(panels, start=1):
        if x + panel.width > 24:
            x, y, row_height = 0, y + row_height, 0
        rendered.append(render_panel(panel, panel_id, x, y))
        x += panel.width
        row_height = max(row_height, panel.height)
    return rendered


def dashboard(
    uid: str,
    title: str,
    description: str,
    panels: list[Panel],
    variables: list[dict[str, Any]],
) -> dict[str, Any]:
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["santinel"],
        "editable": False,
        "graphTooltip": 1,
        "refresh": "30s",
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "timezone": "browser",
        "time": {"from": "now-6h", "to": "now"},
        "timepicker": {},
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "weekStart": "",
        "annotations": {"list": []},
        "links": [
            {
                "type": "dashboards",
                "tags": ["santinel"],
                "asDropdown": True,
                "title": "Santinel",
                "includeVars": True,
                "keepTime": True,
            }
        ],
        "templating": {"list": [datasource_variable(), *variables]},
        "panels": layout(panels),
    }


LEARNING_STATE = [
    {
        "type": "value",
        "options": {
            "0": {"text": "learning", "color": "blue", "index": 0},
            "1": {"text": "enforcing", "color": "green", "index": 1},
        },
    }
]
RELOAD_STATE = [
    {
        "type": "value",
        "options": {
            "0": {"text": "failed", "color": "red", "index": 0},
            "1": {"text": "ok", "color": "green", "index": 1},
        },
    }
]
ZERO_GREEN_ELSE_RED: list[tuple[str, float | None]] = [("green", None), ("red", 1)]
SILENCE_STEPS: list[tuple[str, float | None]] = [("green", None), ("orange", 1.5), ("red", 3)]


def fleet() -> dict[str, Any]:
    panels = [
        Panel(
            "stat",
            "Devices",
            "Devices the sensors currently track.",
            "short",
            [Query(f"sum(santinel_devices{{{SEL}}})")],
            width=4,
            height=4,
        ),
        Panel(
            "stat",
            "Life-sustaining devices",
            "Devices whose class is life-sustaining (infusion, ventilation, dialysis, "
            "anaesthesia).",
            "short",
            [
                Query(
                    f'count(santinel_device_info{{{SEL}, criticality="life_sustaining"}}) '
                    "or vector(0)"
                )
            ],
            width=4,
            height=4,
        ),
        Panel(
            "stat",
            "Unknown devices",
            "Devices no signature identifies.",
            "short",
            [Query(f'count(santinel_device_info{{{SEL}, device_class="unknown"}}) or vector(0)')],
            width=4,
            height=4,
            thresholds=ZERO_GREEN_ELSE_RED,
        ),
        Panel(
            "stat",
            "Silent devices",
            "Devices silent for more than 3 times their learned reporting interval.",
            "short",
            [
                Query(
                    f"count(device:santinel_device_silence:ratio_expected{{{SEL}}} > 3) "
                    "or vector(0)"
                )
            ],
            width=4,
            height=4,
            thresholds=ZERO_GREEN_ELSE_RED,
        ),
        Panel(
            "stat",
            "Open anomalies",
            "Anomalies currently held active, all severities.",
            "short",
            [Query(f"sum(santinel_anomaly_active{{{SEL}}}) or vector(0)")],
            width=4,
            height=4,
            thresholds=ZERO_GREEN_ELSE_RED,
        ),
        Panel(
            "stat",
            "Baselines enforcing",
            "Share of devices whose baseline is learned and enforced.",
            "percentunit",
            [Query(f"avg(santinel_device_baseline_ready{{{SEL}}})")],
            width=4,
            height=4,
        ),
        Panel(
            "timeseries",
            "Devices by class and learning state",
            "Devices per device class and baseline state (learning or enforcing).",
            "short",
            [
                Query(
                    f"sum by (device_class, state) (santinel_devices{{{SEL}}})",
                    "{{device_class}} ({{state}})",
                )
            ],
            stacked=True,
        ),
        Panel(
            "piechart",
            "Devices by clinical criticality",
            "Inventory by clinical criticality from the signatures.",
            "short",
            [Query(f"count by (criticality) (santinel_device_info{{{SEL}}})", "{{criticality}}")],
        ),
        Panel(
            "timeseries",
            "Open anomalies by severity",
            "Anomalies held active, per severity.",
            "short",
            [
                Query(
                    zero_when_quiet(
                        f"sum by (severity) (santinel_anomaly_active{{{SEL}}})", "severity"
                    ),
                    "{{severity}}",
                )
            ],
            stacked=True,
        ),
        Panel(
            "table",
            "Silent devices",
            "Silence divided by the learned reporting interval, worst first: above 3 the "
            "SantinelDeviceSilent alert applies.",
            "suffix:×",
            [
                Query(
                    "sort_desc(device:santinel_device_silence:ratio_expected"
                    f"{{{SEL}}} * on (job, instance, device) group_left (device_class, "
                    f"criticality) santinel_device_info{{{SEL}}})",
                    table=True,
                )
            ],
            thresholds=SILENCE_STEPS,
        ),
        Panel(
            "table",
            "New and unknown devices",
            "Devices no signature identifies, and devices whose inventory entry appeared in the "
            "last 24 hours.",
            "short",
            [
                Query(
                    f'santinel_device_info{{{SEL}, device_class="unknown"}} or '
                    f"(santinel_device_info{{{SEL}}} unless on (job, instance, device) "
                    f"santinel_device_info{{{SEL}}} offset 1d)",
                    table=True,
                )
            ],
            width=24,
            hide_columns=("Value",),
        ),
    ]
    return dashboard(
        "santinel-fleet",
        "Santinel / Fleet",
        "Every device the sensors see: classes, criticality, learning state, silence, anomalies.",
        panels,
        [ward_variable(), instance_variable()],
    )


def device() -> dict[str, Any]:
    panels = [
        Panel(
            "table",
            "Identity",
            "Inventory entry: MAC, IP, vendor, class, model, criticality, hostname.",
            "short",
            [Query(f"santinel_device_info{{{DEV}}}", table=True)],
            width=24,
            height=4,
            hide_columns=("Value",),
        ),
        Panel(
            "stat",
            "Baseline",
            "Learning until the baseline is ready, then enforcing.",
            "none",
            [Query(f"santinel_device_baseline_ready{{{DEV}}}")],
            width=6,
            height=4,
            mappings=LEARNING_STATE,
        ),
        Panel(
            "stat",
            "Last seen",
            "Capture time of the device's last packet.",
            "dateTimeAsIso",
            [Query(f"santinel_device_last_seen_timestamp_seconds{{{DEV}}} * 1000")],
            width=6,
            height=4,
        ),
        Panel(
            "stat",
            "Expected interval",
            "Learned reporting cadence (absent until learned).",
            "s",
            [Query(f"santinel_device_expected_interval_seconds{{{DEV}}}")],
            width=6,
            height=4,
        ),
        Panel(
            "stat",
            "Silence / cadence",
            "Silence on the sensor's clock divided by the learned interval (alert above 3).",
            "suffix:×",
            [Query(f"device:santinel_device_silence:ratio_expected{{{DEV}}}")],
            width=6,
            height=4,
            thresholds=SILENCE_STEPS,
        ),
        Panel(
            "timeseries",
            "Cadence against expected",
            "Seconds since the device was last seen, on the sensor's clock, against 3 times "
            "its learned reporting interval (the silence alert threshold).",
            "s",
            [
                Query(f"device:santinel_device_silence:seconds{{{DEV}}}", "silence"),
                Query(
                    f"3 * santinel_device_expected_interval_seconds{{{DEV}}}",
                    "alert threshold (3 × expected)",
                ),
            ],
        ),
        Panel(
            "timeseries",
            "Traffic",
            "Bytes per second sent and received by the device.",
            "Bps",
            [
                Query(
                    f"rate(santinel_device_transmit_bytes_total{{{DEV}}}[$__rate_interval])",
                    "transmit",
                ),
                Query(
                    f"rate(santinel_device_receive_bytes_total{{{DEV}}}[$__rate_interval])",
                    "receive",
                ),
            ],
        ),
        Panel(
            "timeseries",
            "Packets",
            "Packets per second sent and received by the device.",
            "pps",
            [
                Query(
                    f"rate(santinel_device_transmit_packets_total{{{DEV}}}[$__rate_interval])",
                    "transmit",
                ),
                Query(
                    f"rate(santinel_device_receive_packets_total{{{DEV}}}[$__rate_interval])",
                    "receive",
                ),
            ],
        ),
        Panel(
            "timeseries",
            "Peers",
            "Distinct peers in the last closed window.",
            "short",
            [Query(f"santinel_device_peers{{{DEV}}}", "peers")],
        ),
        Panel(
            "timeseries",
            "Anomalies of this device",
            "Anomalies held active on this device, by detector and severity.",
            "short",
            [
                Query(
                    zero_when_quiet(f"santinel_anomaly_active{{{DEV}}}", "detector"),
                    "{{detector}} ({{severity}})",
                )
            ],
            stacked=True,
        ),
        Panel(
            "timeseries",
            "New anomaly events",
            "Anomaly events raised for this device, by detector.",
            "short",
            [
                Query(
                    zero_when_quiet(
                        f"sum by (detector) (increase(santinel_anomalies_total{{{DEV}}}"
                        "[$__rate_interval]))",
                        "detector",
                    ),
                    "{{detector}}",
                )
            ],
        ),
    ]
    return dashboard(
        "santinel-device",
        "Santinel / Device",
        "One device: identity and evidence, traffic, peers, cadence against expected, anomalies.",
        panels,
        [ward_variable(), instance_variable(), device_variable()],
    )


def anomalies() -> dict[str, Any]:
    panels = [
        Panel(
            "timeseries",
            "Anomaly events by detector",
            "New anomaly events per detector (increase per interval).",
            "short",
            [
                Query(
                    zero_when_quiet(
                        f"sum by (detector) (increase(santinel_anomalies_total{{{SEL}}}"
                        "[$__rate_interval]))",
                        "detector",
                    ),
                    "{{detector}}",
                )
            ],
            width=24,
            stacked=True,
        ),
        Panel(
            "timeseries",
            "Open anomalies by severity",
            "Anomalies held active, by severity.",
            "short",
            [
                Query(
                    zero_when_quiet(
                        "sum by (severity) "
                        f"(instance_severity:santinel_anomaly_active:sum{{{SEL}}})",
                        "severity",
                    ),
                    "{{severity}}",
                )
            ],
            stacked=True,
        ),
        Panel(
            "bargauge",
            "Open anomalies by ward and sensor",
            "Anomalies held active per ward and sensor.",
            "short",
            [
                Query(
                    zero_per_sensor(f"sum by (ward, instance) (santinel_anomaly_active{{{SEL}}})"),
                    "{{ward}} {{instance}}",
                )
            ],
        ),
        Panel(
            "table",
            "Open anomalies",
            "Every anomaly held active, with the device's class and criticality.",
            "short",
            [
                Query(
                    f"(santinel_anomaly_active{{{SEL}}} == 1) * on (job, instance, device) "
                    "group_left (device_class, criticality, vendor) "
                    f"santinel_device_info{{{SEL}}}",
                    table=True,
                )
            ],
            width=24,
            hide_columns=("Value",),
        ),
        Panel(
            "table",
            "Anomaly events in the last hour",
            "Events per sensor, detector and severity over the last hour.",
            "short",
            [
                Query(
                    f"sort_desc(instance_detector_severity:santinel_anomalies:increase1h{{{SEL}}})",
                    table=True,
                )
            ],
        ),
        Panel(
            "timeseries",
            "Signature matches",
            "Signature matches per signature (increase per interval).",
            "short",
            [
                Query(
                    zero_when_quiet(
                        f"sum by (signature) (increase(santinel_signature_matches_total{{{SEL}}}"
                        "[$__rate_interval]))",
                        "signature",
                    ),
                    "{{signature}}",
                )
            ],
        ),
    ]
    return dashboard(
        "santinel-anomalies",
        "Santinel / Anomalies",
        "Anomalies over time and open now, by ward, sensor, detector and severity.",
        panels,
        [ward_variable(), instance_variable()],
    )


def sensor_health() -> dict[str, Any]:
    iface = "{{instance}} {{interface}}"
    panels = [
        Panel(
            "stat",
            "Sensors up",
            "Sensors Prometheus scrapes successfully.",
            "short",
            [Query(f'sum(up{{{JOB}, ward=~"$ward", instance=~"$instance"}})')],
            width=6,
            height=4,
        ),
        Panel(
            "stat",
            "Config reload",
            "Result of the last configuration reload.",
            "none",
            [Query(f"min(santinel_config_last_reload_successful{{{SEL}}})")],
            width=6,
            height=4,
            mappings=RELOAD_STATE,
        ),
        Panel(
            "stat",
            "Last packet",
            "Capture time of the newest packet, per interface.",
            "dateTimeAsIso",
            [Query(f"max(santinel_capture_last_packet_timestamp_seconds{{{SEL}}}) * 1000")],
            width=6,
            height=4,
        ),
        Panel(
            "table",
            "Versions",
            "Santinel version per sensor.",
            "none",
            [Query(f"santinel_build_info{{{SEL}}}", table=True)],
            width=6,
            height=4,
            hide_columns=("Value",),
        ),
        Panel(
            "timeseries",
            "Packets captured",
            "Packets per second per capture interface.",
            "pps",
            [Query(f"rate(santinel_capture_packets_total{{{SEL}}}[$__rate_interval])", iface)],
        ),
        Panel(
            "timeseries",
            "Bytes captured",
            "Bytes per second per capture interface.",
            "Bps",
            [Query(f"rate(santinel_capture_bytes_total{{{SEL}}}[$__rate_interval])", iface)],
        ),
        Panel(
            "timeseries",
            "Capture loss",
            "Share of the packets offered to the interface that the kernel dropped "
            "(alert above 1 %).",
            "percentunit",
            [
                Query(
                    f"rate(santinel_capture_dropped_packets_total{{{SEL}}}[$__rate_interval]) "
                    f"/ (rate(santinel_capture_dropped_packets_total{{{SEL}}}[$__rate_interval])"
                    f" + rate(santinel_capture_packets_total{{{SEL}}}[$__rate_interval]))",
                    iface,
                )
            ],
        ),
        Panel(
            "timeseries",
            "Kernel drops",
            "Packets per second dropped by the kernel.",
            "pps",
            [
                Query(
                    f"rate(santinel_capture_dropped_packets_total{{{SEL}}}[$__rate_interval])",
                    iface,
                )
            ],
        ),
        Panel(
            "timeseries",
            "Processing lag",
            "Delay between a packet's capture time and its processing (alert above 30 s).",
            "s",
            [Query(f"santinel_capture_processing_lag_seconds{{{SEL}}}", iface)],
        ),
        Panel(
            "timeseries",
            "Window judging",
            "Wall-clock time the latest closed window took to judge (detectors, then "
            "baselines): a sensor without capture workers reads nothing meanwhile, so a "
            "close longer than the ring holds costs packets.",
            "s",
            [Query(f"santinel_window_judge_last_duration_seconds{{{SEL}}}", "{{instance}}")],
        ),
        Panel(
            "timeseries",
            "Time spent judging",
            "Share of the sensor's time spent judging closed windows (alert above half for "
            "10 min): past it, a sensor falls behind the wire.",
            "percentunit",
            [
                Query(
                    f"rate(santinel_window_judge_seconds_total{{{SEL}}}[$__rate_interval])",
                    "{{instance}}",
                )
            ],
        ),
        Panel(
            "timeseries",
            "Decode errors by reason",
            "Truncated or malformed packets per second, by reason.",
            "pps",
            [
                Query(
                    zero_when_quiet(
                        f"sum by (reason) (rate(santinel_decode_errors_total{{{SEL}}}"
                        "[$__rate_interval]))",
                        "reason",
                    ),
                    "{{reason}}",
                )
            ],
        ),
        Panel(
            "timeseries",
            "Devices refused at the cap",
            "New devices per second refused per-device series by max_devices.",
            "cps",
            [
                Query(
                    f"rate(santinel_devices_overflow_total{{{SEL}}}[$__rate_interval])",
                    "{{instance}}",
                )
            ],
        ),
        Panel(
            "timeseries",
            "Scrape duration",
            "Time Prometheus needs to scrape each sensor.",
            "s",
            [
                Query(
                    f'scrape_duration_seconds{{{JOB}, ward=~"$ward", instance=~"$instance"}}',
                    "{{instance}}",
                )
            ],
        ),
    ]
    return dashboard(
        "santinel-sensor-health",
        "Santinel / Sensor health",
        "Is each sensor seeing the wire? Packets, drops, decode errors, lag, reloads.",
        panels,
        [ward_variable(), instance_variable()],
    )


DASHBOARDS = {
    "santinel-fleet.json": fleet,
    "santinel-device.json": device,
    "santinel-anomalies.json": anomalies,
    "santinel-sensor-health.json": sensor_health,
}


def render(builder: Any) -> str:
    return json.dumps(builder(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "directory", nargs="?", type=Path, default=OUT, help=f"where to write (default {OUT})"
    )
    out = parser.parse_args(argv[1:]).directory
    out.mkdir(parents=True, exist_ok=True)
    for name, builder in DASHBOARDS.items():
        (out / name).write_text(render(builder))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
