"""Evaluate behaviour rules and communication policies against devices (pure functions).

``evaluate_rules(device, library)`` checks every rule of the library against one device's
classification and facts (``judge_rules`` does so again for a device judged before, and
evaluates only the rules whose fact kinds gained values); ``evaluate_policies(device,
devices_by_id, library)`` checks what the device talked to against the policies of its
class. Both return ``Finding``s: rule id, severity, a one-sentence summary a nurse manager
can read, the observed values that made it fire, runbook text and references (CVE, CISA
advisory ids). The detectors wrap these.

Privacy: a finding quotes only metadata the inventory keeps (ports, peer ids and addresses,
names, identifiers); never payload content.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from monitor.facts import FactTable
from monitor.model import UNKNOWN_CLASS, Classification, Device
from monitor.signatures import (
    CLASS_LABELS,
    MEDICAL_CLASSES,
    PEER_ROLES,
    SEVERITY_FOR_CRITICALITY,
    Condition,
    PeerSpec,
    Policy,
    Rule,
    SignatureLibrary,
    address_of,
    in_network,
)

MAX_SUMMARY_VALUES = 5
MAX_SHOWN_LENGTH = 80
MAX_EVIDENCE_VALUES = 20


@dataclass(frozen=True, slots=True)
class Finding:
    """One rule or policy that fired for one device, explaining itself."""

    rule_id: str
    kind: Literal["rule", "policy"]
    device_id: str
    severity: str  # critical | high | warning | info
    title: str
    summary: str  # one sentence, readable by a nurse manager; no patient data
    evidence: Mapping[str, tuple[str, ...]]  # kind -> observed values
    runbook: str
    references: tuple[str, ...] = ()
    device_class: str = UNKNOWN_CLASS
    criticality: str | None = None

    def to_dict(self) -> dict[str, object]:
        """The finding as JSON-ready data, shaped like DESIGN.md's event fields."""
        return {
            "device": self.device_id,
            "device_class": self.device_class,
            "criticality": self.criticality,
            "detector": self.kind,
            "rule": self.rule_id,
            "severity": self.severity,
            "title": self.title,
            "summary": self.summary,
            "evidence": {
                "observed": {kind: list(values) for kind, values in self.evidence.items()}
            },
            "runbook": self.runbook,
            "references": list(self.references),
        }


def _values(device: Device, kind: str) -> list[str]:
    # a copy (taken at once, so that nothing changes under it) but unsorted: a finding sorts
    # the values it shows
    if kind == "oui_vendor":
        return [device.vendor] if device.vendor else []
    return device.facts.values_of(kind)


class _Reader:
    """A device's values per kind, each kind read once for all the rules of one evaluation
    (a dozen rules ask for its offered services)."""

    __slots__ = ("device", "read")

    def __init__(self, device: Device) -> None:
        self.device = device
        self.read: dict[str, list[str]] = {}

    def hits(self, condition: Condition) -> list[str]:
        values = self.read.get(condition.kind)
        if values is None:
            values = self.read[condition.kind] = _values(self.device, condition.kind)
        return condition.matching(values)


def printable(value: str, limit: int = MAX_SHOWN_LENGTH) -> str:
    """A wire-derived value made safe for a one-line summary: no control characters
    (a crafted host name must not forge log lines), bounded length."""
    # the whole string's test first: a clean value (nearly all) is not rebuilt a character
    # at a time, in every summary of every standing finding, every window
    cleaned = (
        value if value.isprintable() else "".join(c if c.isprintable() else "?" for c in value)
    )
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


def _render(template: str, device: Device, values: Sequence[str]) -> str:
    classification = device.classification
    device_class = classification.device_class if classification else UNKNOWN_CLASS
    shown = [printable(v) for v in values[:MAX_SUMMARY_VALUES]]
    if len(values) > MAX_SUMMARY_VALUES:
        shown.append(f"and {len(values) - MAX_SUMMARY_VALUES} more")
    fields = {
        "device": printable(device.id),
        "device_class": device_class,
        "class_label": CLASS_LABELS.get(device_class, device_class.replace("_", " ")),
        "vendor": printable(
            (classification.vendor if classification else None) or device.vendor or "unknown vendor"
        ),
        "model": printable((classification.model if classification else None) or "unknown model"),
        "criticality": classification.criticality if classification else "unknown",
        "values": ", ".join(shown),
        "count": str(len(values)),
    }
    return template.format_map(fields)


def _in_scope(rule: Rule, device: Device) -> bool:
    classification = device.classification
    return _scope_holds(
        rule,
        classification.device_class if classification else UNKNOWN_CLASS,
        classification.criticality if classification else None,
    )


def _scope_holds(rule: Rule, device_class: str, criticality: str | None) -> bool:
    scope = rule.scope
    if scope.device_classes is not None and device_class not in scope.device_classes:
        return False
    if scope.criticalities is not None and (
        criticality is None or criticality not in scope.criticalities
    ):
        return False
    return scope.medical is None or (device_class in MEDICAL_CLASSES) == scope.medical


def evaluate_rule(rule: Rule, device: Device) -> Finding | None:
    """The finding of one rule for one device, or None."""
    if not _in_scope(rule, device):
        return None
    return _finding(rule, device, _Reader(device))


def _finding(rule: Rule, device: Device, reader: _Reader) -> Finding | None:
    """The finding of a rule whose scope holds for the device, or None."""
    evidence: dict[str, set[str]] = {}
    for condition in rule.all:
        hits = reader.hits(condition)
        if not hits:
            return None
        evidence.setdefault(condition.kind, set()).update(hits)
    if rule.any:
        matched_any = False
        for condition in rule.any:
            hits = reader.hits(condition)
            if hits:
                matched_any = True
                evidence.setdefault(condition.kind, set()).update(hits)
        if not matched_any:
            return None
    for condition in rule.none:
        if reader.hits(condition):
            return None
    observed = {
        kind: tuple(sorted(values)[:MAX_EVIDENCE_VALUES]) for kind, values in evidence.items()
    }
    all_values = sorted({v for values in evidence.values() for v in values})
    classification = device.classification
    return Finding(
        rule_id=rule.id,
        kind="rule",
        device_id=device.id,
        severity=rule.severity,
        title=rule.title,
        summary=_render(rule.summary, device, all_values),
        evidence=observed,
        runbook=rule.runbook.strip(),
        references=tuple(rule.references),
        device_class=classification.device_class if classification else UNKNOWN_CLASS,
        criticality=classification.criticality if classification else None,
    )


def _rules_in_scope(
    library: SignatureLibrary, device_class: str, criticality: str | None
) -> list[Rule]:
    """The library's rules whose scope holds for a device of this class and criticality, in
    library order: a scope reads only those two, and every active device asks every window
    (kept with the library, as the classifier's index is)."""
    by_scope: dict[tuple[str, str | None], list[Rule]] = library._cache.setdefault(
        _IN_SCOPE_KEY, {}
    )
    key = (device_class, criticality)
    found = by_scope.get(key)
    if found is None:
        found = by_scope[key] = [
            rule for rule in library.rules if _scope_holds(rule, device_class, criticality)
        ]
    return found


_IN_SCOPE_KEY = "rules_in_scope"


def evaluate_rules(device: Device, library: SignatureLibrary) -> list[Finding]:
    """Every rule of the library that fires for this device, in library order."""
    return judge_rules(device, library).fired()


@dataclass(frozen=True, slots=True)
class RuleVerdicts:
    """What a device's rules in scope found (None where one did not fire), with what they
    read: the facts table behind the device's view and its ``shrinks``, the library, the
    view's end, the vendor, the classification, and how many values each kind they read
    had."""

    source: FactTable
    library: SignatureLibrary
    shrinks: int
    end: float
    vendor: str | None
    classification: Classification | None
    counts: tuple[int, ...]  # per kind of the plan (see _plan)
    findings: tuple[Finding | None, ...]  # per rule in scope

    def fired(self) -> list[Finding]:
        return [finding for finding in self.findings if finding is not None]


def judge_rules(
    device: Device,
    library: SignatureLibrary,
    end: float = float("inf"),
    previous: RuleVerdicts | None = None,
) -> RuleVerdicts:
    """The verdicts of the library's rules in scope for ``device``, whose facts are as of
    ``end`` (a view as of a window's end; the whole table by default). Given the verdicts
    of the same device judged before, as of ``previous.end`` or earlier, only the rules
    that read a kind whose number of values changed are evaluated again: with no value
    removed or replaced since (the table's ``shrinks``), the values as of a later end are
    those read before and maybe more, so a kind with as many values has the same ones."""
    classification = device.classification
    device_class = classification.device_class if classification else UNKNOWN_CLASS
    criticality = classification.criticality if classification else None
    rules, kinds, reads = _plan(library, device_class, criticality)
    facts = device.facts
    counts = facts.counts_of(kinds)
    source = facts.source
    reader = _Reader(device)
    if (
        previous is not None
        and previous.source is source
        and previous.library is library
        and previous.shrinks == source.shrinks
        and previous.end <= end
        and previous.vendor == device.vendor
        and previous.classification == classification
    ):
        if previous.counts == counts:
            findings = previous.findings
        else:
            changed = {
                i
                for i, (was, now) in enumerate(zip(previous.counts, counts, strict=True))
                if was != now
            }
            findings = tuple(
                _finding(rule, device, reader)
                if not changed.isdisjoint(reads[i])
                else previous.findings[i]
                for i, rule in enumerate(rules)
            )
    else:
        findings = tuple(_finding(rule, device, reader) for rule in rules)
    if not any(findings):
        findings = _nothing_found(len(findings))
    return RuleVerdicts(
        source, library, source.shrinks, end, device.vendor, classification, counts, findings
    )


@functools.lru_cache(maxsize=64)
def _nothing_found(rules: int) -> tuple[None, ...]:
    # shared: most devices' rules find nothing, and each device keeps its verdicts
    return (None,) * rules


def _plan(
    library: SignatureLibrary, device_class: str, criticality: str | None
) -> tuple[list[Rule], tuple[str, ...], list[tuple[int, ...]]]:
    """The rules in scope for this class and criticality, the fact kinds they read, and per
    rule the positions of its kinds among those (kept with the library)."""
    plans: dict[tuple[str, str | None], Any] = library._cache.setdefault(_PLAN_KEY, {})
    key = (device_class, criticality)
    plan = plans.get(key)
    if plan is None:
        rules = _rules_in_scope(library, device_class, criticality)
        read = [
            sorted({c.kind for c in (*rule.all, *rule.any, *rule.none)} - {"oui_vendor"})
            for rule in rules
        ]
        kinds = tuple(sorted({kind for kinds in read for kind in kinds}))
        reads = [tuple(kinds.index(kind) for kind in kinds_of) for kinds_of in read]
        plan = plans[key] = (rules, kinds, reads)
    return plan  # type: ignore[no-any-return]


_PLAN_KEY = "rule_plan"


# ---------------------------------------------------------------------------------------------
# Policies


@functools.lru_cache(maxsize=4096)
def _parse_service(spec: str) -> tuple[str, int, int]:
    proto, _, ports = spec.partition("/")
    if ports == "*":
        return proto, 0, 65535
    low, _, high = ports.partition("-")
    return proto, int(low), int(high or low)


def service_allowed(value: str, specs: Iterable[str]) -> bool:
    """Whether an observed ``proto/port`` value is covered by one of the specs."""
    proto, _, port_text = value.partition("/")
    if not port_text.isdigit():
        return False
    port = int(port_text)
    for spec in specs:
        spec_proto, low, high = _parse_service(spec)
        if spec_proto == proto and low <= port <= high:
            return True
    return False


@dataclass(frozen=True, slots=True)
class _Peer:
    device_class: str
    ips: tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...]
    offers: frozenset[str]


_NO_OFFERS: frozenset[str] = frozenset()  # (an empty frozenset is an object of its own each)


def _parse_ips(texts: Iterable[str]) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...]:
    return tuple(ip for ip in map(address_of, texts) if ip is not None)


def _resolve_peer(
    peer_id: str,
    devices_by_id: Mapping[str, Device],
    offers_seen: dict[frozenset[str], frozenset[str]],
) -> _Peer:
    peer = devices_by_id.get(peer_id)
    if peer is not None:
        ips = peer.facts.values_of("ip")
        if peer_id.startswith("ip:"):
            ips.append(peer_id[3:])
        offers = frozenset(peer.facts.values_of("service_offered")) or _NO_OFFERS
        return _Peer(peer.device_class, _parse_ips(ips), offers_seen.setdefault(offers, offers))
    for prefix in ("ext:", "ip:"):
        if peer_id.startswith(prefix):
            return _Peer(UNKNOWN_CLASS, _parse_ips([peer_id[len(prefix) :]]), _NO_OFFERS)
    return _Peer(UNKNOWN_CLASS, (), _NO_OFFERS)


def _peer_allowed(peer: _Peer, own_class: str, spec: PeerSpec) -> bool:
    if spec.classes is not None and peer.device_class not in spec.classes:
        return False
    if spec.networks is not None and not any(
        in_network(ip, network) for ip in peer.ips for network in spec.networks
    ):
        return False
    if spec.roles is not None:
        ok = False
        for role in spec.roles:
            if role == "same_class":
                ok = ok or peer.device_class == own_class
            else:
                ok = ok or any(service_allowed(s, PEER_ROLES[role]) for s in peer.offers)
        if not ok:
            return False
    return spec.offers is None or any(service_allowed(s, spec.offers) for s in peer.offers)


class PeerVerdicts:
    """What one pass over the devices learned about peers: each peer resolved once, and
    whether a policy allows it for a class, decided once. Valid while no device changes (one
    window's scoring); start a new one for the next."""

    def __init__(self) -> None:
        self.peers: dict[str, _Peer] = {}
        self.allowed: dict[tuple[str, str, str], bool] = {}  # (policy, class, peer) -> ok
        # one set per distinct set of services offered: a site's devices of a kind offer the
        # same few, and a pass resolves every device that is somebody's peer
        self._offers: dict[frozenset[str], frozenset[str]] = {}

    def peer(self, peer_id: str, devices_by_id: Mapping[str, Device]) -> _Peer:
        """The peer ``peer_id`` as policies judge it, resolved once per pass."""
        peer = self.peers.get(peer_id)
        if peer is None:
            peer = self.peers[peer_id] = _resolve_peer(peer_id, devices_by_id, self._offers)
        return peer


def policy_violations(
    policy: Policy,
    device: Device,
    devices_by_id: Mapping[str, Device],
    verdicts: PeerVerdicts | None = None,
) -> dict[str, list[str]]:
    """fact kind -> observed values the policy does not allow (empty if none)."""
    own_class = device.device_class
    violations: dict[str, list[str]] = {}
    if policy.peers is not None:
        specs = policy.peers
        known = verdicts or PeerVerdicts()
        for peer_id in sorted(device.facts.values_of("peer")):
            key = (policy.id, own_class, peer_id)
            ok = known.allowed.get(key)
            if ok is None:
                peer = known.peer(peer_id, devices_by_id)
                ok = known.allowed[key] = any(_peer_allowed(peer, own_class, s) for s in specs)
            if not ok:
                violations.setdefault("peer", []).append(peer_id)
    for kind, allowed in (
        ("service_used", policy.services_used),
        ("service_offered", policy.services_offered),
    ):
        if allowed is not None:
            bad = [
                v for v in sorted(device.facts.values_of(kind)) if not service_allowed(v, allowed)
            ]
            if bad:
                violations[kind] = bad
    if policy.protocols is not None:
        allowed_protocols = set(policy.protocols)
        bad = [p for p in sorted(device.facts.values_of("protocol")) if p not in allowed_protocols]
        if bad:
            violations["protocol"] = bad
    return violations


def evaluate_policy(
    policy: Policy,
    device: Device,
    devices_by_id: Mapping[str, Device],
    verdicts: PeerVerdicts | None = None,
) -> Finding | None:
    """The finding of one policy for one device (all its violations), or None."""
    if device.device_class not in policy.device_classes:
        return None
    violations = policy_violations(policy, device, devices_by_id, verdicts)
    if not violations:
        return None
    classification = device.classification
    criticality = classification.criticality if classification else None
    severity = policy.severity or SEVERITY_FOR_CRITICALITY.get(criticality or "", "warning")
    all_values = [v for values in violations.values() for v in values]
    return Finding(
        rule_id=policy.id,
        kind="policy",
        device_id=device.id,
        severity=severity,
        title=policy.title,
        summary=_render(policy.summary, device, all_values),
        evidence={k: tuple(v[:MAX_EVIDENCE_VALUES]) for k, v in violations.items()},
        runbook=policy.runbook.strip(),
        references=tuple(policy.references),
        device_class=device.device_class,
        criticality=criticality,
    )


def evaluate_policies(
    device: Device,
    devices_by_id: Mapping[str, Device],
    library: SignatureLibrary,
    verdicts: PeerVerdicts | None = None,
) -> list[Finding]:
    """One finding per policy of the device's class that the device broke. ``verdicts``
    shares peer decisions across the devices of one pass (see ``PeerVerdicts``)."""
    findings = []
    for policy in _policies_of_class(library, device.device_class):
        finding = evaluate_policy(policy, device, devices_by_id, verdicts)
        if finding is not None:
            findings.append(finding)
    return findings


def _policies_of_class(library: SignatureLibrary, device_class: str) -> list[Policy]:
    """The library's policies for a device class, in library order: every active device
    asks every window, and most classes have one policy of the library's dozen (kept with
    the library, as the rules in scope are)."""
    by_class: dict[str, list[Policy]] = library._cache.setdefault(_OF_CLASS_KEY, {})
    found = by_class.get(device_class)
    if found is None:
        found = by_class[device_class] = [
            policy for policy in library.policies if device_class in policy.device_classes
        ]
    return found


_OF_CLASS_KEY = "policies_of_class"
