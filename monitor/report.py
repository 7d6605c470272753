"""What ``santinel analyze`` prints: the inventory and a traffic summary, as JSON or a table.

The JSON schema is documented in ``docs/analyze-json.md``; its keys are stable. Only
metadata appears: addresses, names, identifiers, counts — never payload content.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from monitor import __version__
from monitor.model import Device
from monitor.pipeline import Analysis

# facts shown as their own keys in a device record (the rest stays under "facts")
_TOP_PEERS = 10


def iso_time(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    moment = dt.datetime.fromtimestamp(seconds, tz=dt.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def device_record(device: Device) -> dict[str, Any]:
    facts = device.facts
    cls = device.classification
    peers = sorted(facts.get("peer", {}).items(), key=lambda kv: (-kv[1].count, kv[0]))
    return {
        "id": device.id,
        "mac": device.mac,
        "locally_administered": device.locally_administered,
        "vendor": device.vendor,
        "ips": device.ips,
        "hostnames": device.hostnames,
        "device_class": device.device_class,
        "classified_vendor": cls.vendor if cls else None,
        "model": cls.model if cls else None,
        "criticality": cls.criticality if cls else None,
        "confidence": round(cls.confidence, 3) if cls else 0.0,
        "signature": cls.signature if cls else None,
        "evidence": [
            {"kind": e.kind, "value": e.value, "weight": e.weight}
            for e in (cls.evidence if cls else ())
        ],
        "dhcp": {
            "vendor_class": sorted(facts.get("dhcp_vendor_class", {})),
            "param_list": sorted(facts.get("dhcp_param_list", {})),
        },
        "services_offered": sorted(facts.get("service_offered", {})),
        "services_used": sorted(facts.get("service_used", {})),
        "protocols": sorted(facts.get("protocol", {})),
        "peer_count": len(peers),
        "top_peers": [{"peer": p, "flows": f.count} for p, f in peers[:_TOP_PEERS]],
        "first_seen": iso_time(device.first_seen),
        "last_seen": iso_time(device.last_seen),
        "tx_packets": device.tx_packets,
        "tx_bytes": device.tx_bytes,
        "rx_packets": device.rx_packets,
        "rx_bytes": device.rx_bytes,
        "facts": {
            kind: {value: fact.count for value, fact in sorted(values.items())}
            for kind, values in sorted(facts.items())
            if kind != "peer"
        },
    }


def analysis_record(
    analysis: Analysis, files: list[str], anomalies: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The record ``analyze`` prints; ``anomalies`` (event dicts, with ``--state``) adds an
    ``anomalies`` key."""
    errors = {error.source: str(error) for error in analysis.file_errors}
    first, last = analysis.first_time, analysis.last_time
    devices = sorted(analysis.devices.values(), key=lambda d: d.id)
    record: dict[str, Any] = {
        "santinel_version": __version__,
        "captures": [{"file": f, "error": errors.get(f)} for f in files],
        "summary": {
            "packets": analysis.packets,
            "bytes": analysis.bytes,
            "first_packet": iso_time(first),
            "last_packet": iso_time(last),
            "duration_seconds": round(last - first, 6) if first is not None and last else 0.0,
            "devices": len(devices),
            "flows": analysis.flows.created,
            "protocols": dict(analysis.protocol_packets.most_common()),
            "decode_errors": dict(sorted(analysis.decode_errors.items())),
        },
        "devices": [device_record(d) for d in devices],
    }
    if anomalies is not None:
        record["anomalies"] = anomalies
    return record


def _short(text: str | None, width: int) -> str:
    text = text or "-"
    return text if len(text) <= width else text[: width - 1] + "…"


def render_table(record: dict[str, Any]) -> str:
    lines: list[str] = []
    header = (
        f"{'DEVICE':<18} {'VENDOR':<24} {'IP':<16} {'HOSTNAME':<20} {'CLASS':<20} "
        f"{'CRIT':<15} {'CONF':>4} {'TX PKTS':>8} {'RX PKTS':>8}  PROTOCOLS"
    )
    lines.append(header)
    for d in record["devices"]:
        lines.append(
            f"{_short(d['id'], 18):<18} {_short(d['vendor'], 24):<24} "
            f"{_short(d['ips'][0] if d['ips'] else None, 16):<16} "
            f"{_short(d['hostnames'][0] if d['hostnames'] else None, 20):<20} "
            f"{_short(d['device_class'], 20):<20} {_short(d['criticality'], 15):<15} "
            f"{d['confidence']:>4.2f} {d['tx_packets']:>8} {d['rx_packets']:>8}  "
            f"{','.join(d['protocols'])}"
        )
    s = record["summary"]
    lines.append("")
    lines.append(
        f"{s['packets']} packets, {s['bytes']} bytes, {s['devices']} devices, {s['flows']} flows, "
        f"{s['duration_seconds']:.1f} s of capture ({s['first_packet']} .. {s['last_packet']})"
    )
    if s["protocols"]:
        top = ", ".join(f"{k} {v}" for k, v in list(s["protocols"].items())[:10])
        lines.append(f"protocols (packets): {top}")
    if s["decode_errors"]:
        errs = ", ".join(f"{k} {v}" for k, v in s["decode_errors"].items())
        lines.append(f"decode errors: {errs}")
    if "anomalies" in record:
        anomalies = record["anomalies"]
        lines.append("")
        lines.append(f"{len(anomalies)} anomalies" if anomalies else "no anomalies")
        for a in anomalies:
            lines.append(
                f"{a['time']}  {a['severity']:<8} {a['detector']:<22} {a['device']:<18} "
                f"{a['summary']}"
            )
    return "\n".join(lines)
