"""New behaviour: what a device does in a window that its baseline has never seen.

Built on ``Baseline.deviations(profile)``, scored before the baseline learns the window, and
only for devices whose baseline is enforcing. Each deviation is named by the most specific
detector it belongs to:

==========================  ===================================================  ========
detector                    deviation                                            base
==========================  ===================================================  ========
identity_new_mac            a hostname or DHCP client id another (now silent)     high
                            device had, on a new MAC
identity_changed            a different DHCP fingerprint (option 60/55/61) or      high
                            hostname on the same MAC (impersonation, swap)
dicom_unknown_ae            a DICOM AE title (calling or called) unknown to the    high
                            device, or to the whole network
new_external_peer           an internet address (not a known name's new address)  warning
new_hl7_application         an HL7 sending/receiving application (MSH-3..6)       warning
new_hl7_message_type        an HL7 message type (MSH-9)                           warning
new_dicom_sop_class         a DICOM SOP class proposed                            warning
new_mqtt_client             an MQTT client id                                     warning
new_service                 a port the device answers on                          warning
new_protocol                an application or network protocol                    warning
new_dns_name                a DNS/SNI/HTTP name; "internet" or "internal"         info
new_internal_peer           an internal peer                                      info
==========================  ===================================================  ========

One event per device and window: the most specific detector found names it, and its
evidence lists every deviation of the window (kind -> values) with what the baseline holds.
Names are "internal" when they resolved to an internal address (or end in a local suffix),
"internet" otherwise. An internet address whose DNS name (or that name's parent domain) the
baseline knows is a cloud service's rotation, not a new destination.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from monitor.baseline import Baseline, BaselineStore, Deviation
from monitor.detectors import AnalysisView
from monitor.detectors.common import DetectorBase, enforcing_baseline, peer_text, shown
from monitor.events import Event, device_label, make_event
from monitor.inventory import address_scope
from monitor.model import WindowProfile

PRIORITY: tuple[tuple[str, str], ...] = (
    ("identity_new_mac", "high"),
    ("identity_changed", "high"),
    ("dicom_unknown_ae", "high"),
    ("new_external_peer", "warning"),
    ("new_hl7_application", "warning"),
    ("new_hl7_message_type", "warning"),
    ("new_dicom_sop_class", "warning"),
    ("new_mqtt_client", "warning"),
    ("new_service", "warning"),
    ("new_protocol", "warning"),
    ("new_dns_name", "info"),
    ("new_internal_peer", "info"),
)
BASE_SEVERITY = dict(PRIORITY)

NAME_KINDS = frozenset({"peer_name", "dns_query", "tls_sni", "http_host"})
IDENTITY_KINDS = frozenset({"dhcp_vendor_class", "dhcp_param_list", "dhcp_client_id", "hostname"})
MOVING_IDENTITY_KINDS = ("hostname", "dhcp_client_id")
TRANSPORT_PROTOCOLS = frozenset({"tcp", "udp", "icmp", "icmpv6", "arp"})
LOCAL_SUFFIXES = (".local", ".lan", ".internal", ".home.arpa", ".in-addr.arpa", ".ip6.arpa")
AE_KINDS = ("dicom_calling_ae", "dicom_called_ae")

WHAT = {
    "identity_new_mac": "took over the name of another device that went quiet",
    "identity_changed": "announced a different identity (DHCP fingerprint or name)",
    "dicom_unknown_ae": "used a DICOM AE title never seen before",
    "new_external_peer": "talked to an internet address never seen in its baseline",
    "new_hl7_application": "sent HL7 as a new application",
    "new_hl7_message_type": "sent a new HL7 message type",
    "new_dicom_sop_class": "proposed a new DICOM SOP class",
    "new_mqtt_client": "connected to MQTT with a new client id",
    "new_service": "offered a new network service",
    "new_protocol": "used a new protocol",
    "new_dns_name": "looked up or contacted a new name",
    "new_internal_peer": "talked to a new internal peer",
}


def _is_multicast_peer(peer: str) -> bool:
    if not peer.startswith("ip:"):
        return False
    try:
        return address_scope(peer[3:]) == "multicast"
    except ValueError:
        return False


def _parent_domain(name: str) -> str:
    labels = name.rstrip(".").lower().split(".")
    return ".".join(labels[-2:]) if len(labels) >= 2 else name.lower()


class NewBehaviourDetector(DetectorBase):
    """See the module docstring."""

    name = "new_behaviour"

    def score_window(
        self,
        profiles: Sequence[WindowProfile],
        analysis: AnalysisView,
        baselines: BaselineStore | None,
        now: float,
    ) -> list[Event]:
        if baselines is None:
            return []
        dns_names: Mapping[str, str] = getattr(analysis, "_dns_names", {}) or {}
        network_live = any(b.enforcing for b in baselines.baselines.values())
        known_ae: set[str] | None = None
        identities: dict[tuple[str, str], str] | None = None
        events: list[Event] = []
        for profile in profiles:
            baseline = enforcing_baseline(baselines, profile.device_id)
            found: dict[str, dict[str, list[str]]] = {}  # detector -> kind -> values
            if baseline is not None:
                self._classify(baseline.deviations(profile), baseline, dns_names, found)
            elif network_live:
                # A device still learning: only what is new to the whole network counts.
                if known_ae is None:
                    known_ae = _network_values(baselines, AE_KINDS)
                for kind in AE_KINDS:
                    for value in profile.facts.get(kind, {}):
                        if value not in known_ae:
                            found.setdefault("dicom_unknown_ae", {}).setdefault(kind, [])
                            found["dicom_unknown_ae"][kind].append(value)
            if network_live and any(profile.facts.get(k) for k in MOVING_IDENTITY_KINDS):
                if identities is None:
                    identities = _identity_index(baselines)
                self._moved_identity(profile, analysis, identities, found)
            if found:
                events.append(self._event(profile, analysis, baseline, found, now))
        return events

    def _classify(
        self,
        deviations: list[Deviation],
        baseline: Baseline,
        dns_names: Mapping[str, str],
        found: dict[str, dict[str, list[str]]],
    ) -> None:
        known_names = {
            _parent_domain(n) for kind in NAME_KINDS for n in baseline.facts.get(kind, {})
        }

        def add(detector: str, kind: str, value: str) -> None:
            found.setdefault(detector, {}).setdefault(kind, []).append(value)

        for d in deviations:
            kind, value = d.kind, d.value
            if kind == "peer":
                if _is_multicast_peer(value):
                    continue
                if value.startswith("ext:"):
                    name = dns_names.get(value[4:])
                    if name is not None and _parent_domain(name) in known_names:
                        continue  # a known service's new address
                    add("new_external_peer", kind, value)
                else:
                    add("new_internal_peer", kind, value)
            elif kind in AE_KINDS:
                add("dicom_unknown_ae", kind, value)
            elif kind == "dicom_sop_class":
                add("new_dicom_sop_class", kind, value)
            elif kind in ("hl7_sending_application", "hl7_receiving_application"):
                add("new_hl7_application", kind, value)
            elif kind == "hl7_message_type":
                add("new_hl7_message_type", kind, value)
            elif kind == "mqtt_client_id":
                add("new_mqtt_client", kind, value)
            elif kind == "service_offered":
                add("new_service", kind, value)
            elif kind == "protocol":
                if value not in TRANSPORT_PROTOCOLS:
                    add("new_protocol", kind, value)
            elif kind in IDENTITY_KINDS:
                # changed, not first: the baseline already knew another value of this kind
                if baseline.facts.get(kind):
                    add("identity_changed", kind, value)
            elif kind in NAME_KINDS:
                if _parent_domain(value) not in known_names:
                    add("new_dns_name", kind, value)

    def _moved_identity(
        self,
        profile: WindowProfile,
        analysis: AnalysisView,
        identities: dict[tuple[str, str], str],
        found: dict[str, dict[str, list[str]]],
    ) -> None:
        me = analysis.devices.get(profile.device_id)
        if me is None:
            return
        for kind in MOVING_IDENTITY_KINDS:
            for value in profile.facts.get(kind, {}):
                owner_id = identities.get((kind, value))
                if owner_id is None or owner_id == profile.device_id:
                    continue
                owner = analysis.devices.get(owner_id)
                # moved: the old owner went quiet before this device appeared
                if owner is not None and owner.last_seen <= me.first_seen:
                    found.setdefault("identity_new_mac", {}).setdefault(kind, []).append(value)
                    found["identity_new_mac"].setdefault("previous_device", []).append(owner_id)

    def _event(
        self,
        profile: WindowProfile,
        analysis: AnalysisView,
        baseline: Baseline | None,
        found: dict[str, dict[str, list[str]]],
        now: float,
    ) -> Event:
        top = next(name for name, _ in PRIORITY if name in found)
        device = analysis.devices.get(profile.device_id)
        values = [v for vs in found[top].values() for v in vs]
        dns_names: Mapping[str, str] = getattr(analysis, "_dns_names", {}) or {}
        if top == "new_external_peer":
            words = []
            for peer in values:
                name = dns_names.get(peer[4:])
                service = _service_to(profile, peer)
                where = peer_text(peer) if service is None else f"{peer[4:]}:{service} (internet)"
                words.append(f"{where} named {name}" if name else where)
            detail = shown(words)
        elif top == "new_internal_peer":
            detail = shown([peer_text(p, analysis) for p in values])
        elif top == "new_dns_name":
            detail = shown([f"{v} ({_name_scope(v, dns_names)})" for v in values])
        elif top == "identity_new_mac":
            previous = found[top].get("previous_device", [])
            names = [v for k, vs in found[top].items() if k != "previous_device" for v in vs]
            detail = f"{shown(names)}, which belonged to {shown(sorted(set(previous)))}"
        else:
            detail = shown(values)
        summary = f"The {device_label(device, profile.device_id)} {WHAT[top]}: {detail}."
        observed: dict[str, Any] = {
            name: {kind: sorted(set(vs)) for kind, vs in kinds.items()}
            for name, kinds in found.items()
        }
        observed["window"] = {"start": profile.start, "end": profile.end}
        held: dict[str, Any] = {}
        if baseline is not None:
            kinds = {k for kinds in found.values() for k in kinds if k != "previous_device"}
            for kind in sorted(kinds):
                known = sorted(baseline.facts.get(kind, {}))
                held[kind] = {"count": len(known), "values": known[:10]}
            held["state"] = baseline.state
            held["enforcing_since"] = baseline.enforcing_since
        return make_event(
            profile.device_id,
            device,
            top,
            BASE_SEVERITY[top]
            if top != "new_dns_name" or _any_internet(values, dns_names)
            else "info",
            summary,
            profile.end,
            observed,
            held,
        )


def _service_to(profile: WindowProfile, peer: str) -> str | None:
    # the window's conversation keys name the service used with each peer
    for key in profile.conversations:
        p, _, service = key.partition("|")
        if p == peer:
            return service.partition("/")[2] or None
    return None


def _name_scope(name: str, dns_names: Mapping[str, str]) -> str:
    lowered = name.lower().rstrip(".")
    if lowered.endswith(LOCAL_SUFFIXES) or "." not in lowered:
        return "internal"
    addresses = [a for a, n in dns_names.items() if n.lower().rstrip(".") == lowered]
    for address in addresses:
        try:
            if address_scope(address) == "internal":
                return "internal"
        except ValueError:
            continue
    return "internet"


def _any_internet(values: list[str], dns_names: Mapping[str, str]) -> bool:
    return any(_name_scope(v, dns_names) == "internet" for v in values)


def _network_values(baselines: BaselineStore, kinds: Sequence[str]) -> set[str]:
    out: set[str] = set()
    for baseline in baselines.baselines.values():
        for kind in kinds:
            out.update(baseline.facts.values_of(kind))
    return out


def _identity_index(baselines: BaselineStore) -> dict[tuple[str, str], str]:
    """(kind, value) -> the device whose baseline holds it (most recently seen wins)."""
    index: dict[tuple[str, str], tuple[float, str]] = {}
    for device_id, baseline in baselines.baselines.items():
        for kind in MOVING_IDENTITY_KINDS:
            for value, fact in baseline.facts.get(kind, {}).items():
                current = index.get((kind, value))
                if current is None or fact.last_seen > current[0]:
                    index[(kind, value)] = (fact.last_seen, device_id)
    return {k: v[1] for k, v in index.items()}
