"""The signature library: schema, vocabulary and a loader for ``signatures/``.

A signature file is YAML with up to three lists: ``fingerprints`` (weighted evidence about a
device -> vendor, class, model, criticality), ``rules`` (conditions on a device's facts and
classification -> a finding) and ``policies`` (what a device class may talk to). The schema
is strict: an unknown key, a wrong type, an unknown fact kind or device class is an error.

Promises:

- Files are untrusted input. YAML is parsed with PyYAML's safe loader; aliases are refused
  (no billion-laughs), duplicate keys are refused, files over ``MAX_FILE_BYTES`` are refused.
- Regular expressions are compiled with RE2 (linear time, no backtracking). A pattern RE2
  refuses, or one longer than ``MAX_PATTERN_LENGTH``, is an error.
- ``load_library`` validates every file of every directory and raises one ``SignatureError``
  listing EVERY problem found, each as ``FILE:LINE: message``.
- Local overrides never need a shipped file to be edited: a later directory, or a
  ``NAME.local.yml`` beside ``NAME.yml``, replaces an entry with the same id, and an entry
  ``{id: X, enabled: false}`` turns entry X off.

The full schema and the vocabulary are documented in ``docs/signatures.md``.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import string
import sys
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import filterfalse
from pathlib import Path
from typing import Annotated, Any, Literal

import re2
import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from monitor.facts import FACT_KINDS

# ---------------------------------------------------------------------------------------------
# Vocabulary

DEVICE_CLASSES: dict[str, str] = {
    # medical and clinical classes
    "insulin_pump": "an insulin pump, or the handheld controller (PDM) of a patch pump",
    "cgm_gateway": "a continuous glucose monitor's bridge, receiver or uploader (phone app, "
    "home hub) that forwards glucose data to a diabetes cloud",
    "infusion_pump": "a large-volume, syringe or PCA infusion pump, its communication module "
    "or docking station",
    "patient_monitor": "a bedside or transport monitor of vital signs (ECG, SpO2, NIBP...), "
    "including telemetry transmitters and pulse oximeters",
    "central_station": "a central monitoring station or monitoring-network server that "
    "collects monitors' data and alarms",
    "ventilator": "a critical-care, transport or home ventilator, or an anaesthesia workstation",
    "dialysis": "a haemodialysis or peritoneal dialysis machine",
    "defibrillator": "a defibrillator or wearable cardioverter, or its data/programming station",
    "imaging_modality": "an imaging device that produces images: CT, MR, X-ray, ultrasound, "
    "nuclear medicine, endoscopy video",
    "pacs": "a PACS archive, DICOM router or imaging workstation that stores or reviews images",
    "lab_analyser": "a laboratory analyser or its middleware, talking ASTM/HL7 to the LIS",
    "point_of_care": "a point-of-care testing device (blood gas, glucose meter, INR, "
    "immunoassay reader) or its POCT1-A data manager",
    "nurse_call": "a nurse-call, clinical communication or alarm-notification device or server",
    "interface_engine": "an HL7/DICOM integration engine or EHR interface server (Mirth, "
    "Rhapsody, Cloverleaf...)",
    "clinical_workstation": "a workstation or server running clinical software (EHR client, "
    "programmer, device-management server)",
    "medical_gateway": "a medical device-integration gateway that collects bedside devices' "
    "data and forwards it (Capsule, Alaris Gateway, Dräger Infinity Gateway)",
    # everything else on a hospital network (the model says what it is: camera, printer...)
    "generic_it": "a general-purpose computer, server, phone or tablet, printer, or network "
    "appliance (router, switch, access point)",
    "generic_iot": "a non-medical embedded, smart-building or consumer device (camera, smart "
    "plug, hub, sensor, light, appliance, fitness tracker, smart scale)",
    "unknown": "not identified: no fingerprint reached its threshold",
}

CLASS_LABELS: dict[str, str] = {
    "insulin_pump": "insulin pump",
    "cgm_gateway": "CGM / diabetes gateway",
    "infusion_pump": "infusion pump",
    "patient_monitor": "patient monitor",
    "central_station": "central monitoring station",
    "ventilator": "ventilator",
    "dialysis": "dialysis machine",
    "defibrillator": "defibrillator",
    "imaging_modality": "imaging device",
    "pacs": "PACS / imaging workstation",
    "lab_analyser": "lab analyser",
    "point_of_care": "point-of-care device",
    "nurse_call": "nurse-call device",
    "interface_engine": "interface engine",
    "clinical_workstation": "clinical workstation",
    "medical_gateway": "medical device gateway",
    "generic_it": "IT device",
    "generic_iot": "IoT device",
    "unknown": "unidentified device",
}
"""Each class in words, for summaries (``{class_label}``)."""

MEDICAL_CLASSES: frozenset[str] = frozenset(
    {
        "insulin_pump",
        "cgm_gateway",
        "infusion_pump",
        "patient_monitor",
        "central_station",
        "ventilator",
        "dialysis",
        "defibrillator",
        "imaging_modality",
        "pacs",
        "lab_analyser",
        "point_of_care",
        "nurse_call",
        "interface_engine",
        "clinical_workstation",
        "medical_gateway",
    }
)
"""Classes whose devices are part of patient care: a consumer device must never get one."""

CRITICALITIES: dict[str, str] = {
    "life_sustaining": "failure or tampering can directly harm or kill a patient within "
    "minutes: infusion and insulin pumps, ventilators, dialysis, defibrillators",
    "high": "failure hides a patient's condition or alarms from staff: patient monitors, "
    "central stations, nurse call, CGM bridges",
    "medium": "failure delays diagnosis or treatment: imaging, PACS, lab and point-of-care, "
    "interface engines, clinical workstations",
    "low": "no direct clinical effect: office IT, building and consumer devices",
}

DEFAULT_CRITICALITY: dict[str, str] = {
    **dict.fromkeys(
        ("insulin_pump", "infusion_pump", "ventilator", "dialysis", "defibrillator"),
        "life_sustaining",
    ),
    **dict.fromkeys(
        ("cgm_gateway", "patient_monitor", "central_station", "nurse_call", "medical_gateway"),
        "high",
    ),
    **dict.fromkeys(
        (
            "imaging_modality",
            "pacs",
            "lab_analyser",
            "point_of_care",
            "interface_engine",
            "clinical_workstation",
        ),
        "medium",
    ),
    **dict.fromkeys(
        ("generic_it", "generic_iot", "unknown"),
        "low",
    ),
}
"""The usual criticality of each class (a fingerprint states its own)."""

SEVERITIES: dict[str, str] = {
    "critical": "act now: a life-sustaining or high-criticality device is exposed or misused",
    "high": "act today: a clinical device or clinical data is exposed",
    "warning": "review: unusual, possibly legitimate",
    "info": "for the record",
}

SEVERITY_FOR_CRITICALITY: dict[str, str] = {
    "life_sustaining": "critical",
    "high": "high",
    "medium": "warning",
    "low": "info",
}
"""Default severity of a policy violation, from the device's clinical criticality."""

EVIDENCE_KINDS: dict[str, str] = {
    "oui_vendor": "the organisation the IEEE registry gives for the device's MAC "
    "(Device.vendor, filled by the inventory through netaddr)",
    **FACT_KINDS,
}

PEER_ROLES: dict[str, tuple[str, ...]] = {
    "dns_server": ("udp/53", "tcp/53"),
    "dhcp_server": ("udp/67",),
    "ntp_server": ("udp/123",),
    "syslog_server": ("udp/514", "tcp/514", "tcp/6514"),
    "infrastructure": ("udp/53", "tcp/53", "udp/67", "udp/123", "udp/514", "tcp/514", "tcp/6514"),
}
"""A peer's role, recognised by the services it offers."""

NETWORK_KEYWORDS = ("private", "public", "multicast", "broadcast", "link_local", "loopback")

SUMMARY_FIELDS: dict[str, str] = {
    "device": "the device's inventory id",
    "device_class": "the device's class id, e.g. infusion_pump",
    "class_label": "the class in words (CLASS_LABELS), e.g. 'infusion pump'",
    "vendor": "the vendor (classification, else registry; 'unknown vendor')",
    "model": "the model, or 'unknown model'",
    "criticality": "the clinical criticality",
    "values": "the observed values that matched, comma-separated (at most 5)",
    "count": "how many observed values matched",
}
"""Placeholders a rule's or policy's ``summary`` may use (``{class_label}``)."""

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_FILE_BYTES = 1 << 20
MAX_PATTERN_LENGTH = 512
MAX_ERRORS_PER_FILE = 200
MAX_VALUE_LENGTH = 512
ID_PATTERN = r"^[a-z0-9][a-z0-9_.-]{1,79}$"
_SERVICE_RE = re.compile(r"^(tcp|udp)/(\*|\d{1,5}(-\d{1,5})?)$")
_REFERENCE_RE = re.compile(
    r"^(CVE-\d{4}-\d{4,7}|ICSM?A-\d{2}-\d{3}-\d{2}[A-Z]?|CWE-\d{1,5}|VU#\d{3,8}|https?://\S+)$"
)


class SignatureError(Exception):
    """The library has errors; ``errors`` lists each one as ``FILE:LINE: message``."""

    def __init__(self, errors: Sequence[str]) -> None:
        self.errors = list(errors)
        count = len(self.errors)
        super().__init__(f"{count} error{'s' if count != 1 else ''} in signatures")


# ---------------------------------------------------------------------------------------------
# Compiled matching


def normalise(value: str) -> str:
    """The form values and ``equals`` are compared in: Unicode NFC, case-folded."""
    return unicodedata.normalize("NFC", value).casefold()


def _re2_options() -> Any:
    options = re2.Options()
    options.case_sensitive = False
    options.log_errors = False  # RE2 would otherwise write each refusal to stderr
    options.max_mem = 8 << 20
    return options


RE2_OPTIONS = _re2_options()


def compile_pattern(pattern: str) -> Any:
    """Compile with RE2 (case-insensitive); raises ValueError with a short reason."""
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise ValueError(f"pattern longer than {MAX_PATTERN_LENGTH} characters")
    try:
        return re2.compile(unicodedata.normalize("NFC", pattern), RE2_OPTIONS)
    except re2.error as error:
        reason = error.args[0] if error.args else "invalid"
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise ValueError(f"RE2 refuses the pattern: {reason}") from None


# ---------------------------------------------------------------------------------------------
# Schema


def _listify(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


StrList = Annotated[
    list[Annotated[str, Field(max_length=MAX_VALUE_LENGTH)]], BeforeValidator(_listify)
]
EntryId = Annotated[str, Field(pattern=ID_PATTERN)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def _require_str(value: Any) -> str:
    # BeforeValidators see raw input: refuse non-strings before using them as strings
    if not isinstance(value, str):
        raise ValueError(f"Input should be a valid string, not {type(value).__name__}")
    return value


def _check_class(raw: Any) -> str:
    value = _require_str(raw)
    if value not in DEVICE_CLASSES:
        raise ValueError(f"unknown device class {value!r} (see DEVICE_CLASSES)")
    return value


def _check_criticality(raw: Any) -> str:
    value = _require_str(raw)
    if value not in CRITICALITIES:
        raise ValueError(f"unknown criticality {value!r}: one of {', '.join(CRITICALITIES)}")
    return value


DeviceClass = Annotated[str, BeforeValidator(_check_class)]
Criticality = Annotated[str, BeforeValidator(_check_criticality)]
Severity = Literal["critical", "high", "warning", "info"]
Status = Literal["experimental", "test", "stable"]


def _check_service(raw: Any) -> str:
    value = _require_str(raw)
    match = _SERVICE_RE.match(value)
    if not match:
        raise ValueError(f"service {value!r} is not 'tcp/PORT', 'udp/LO-HI' or 'tcp/*'")
    ports = match.group(2)
    if ports != "*":
        low, _, high = ports.partition("-")
        if int(low) > 65535 or (high and not int(low) <= int(high) <= 65535):
            raise ValueError(f"service {value!r}: port out of range")
    return value


def _check_network(raw: Any) -> str:
    value = _require_str(raw)
    if value in NETWORK_KEYWORDS:
        return value
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ValueError(
            f"network {value!r} is neither a CIDR nor one of {', '.join(NETWORK_KEYWORDS)}"
        ) from None
    return value


def _check_role(raw: Any) -> str:
    value = _require_str(raw)
    if value not in PEER_ROLES and value != "same_class":
        raise ValueError(f"unknown peer role {value!r}: {', '.join([*PEER_ROLES, 'same_class'])}")
    return value


ServiceSpec = Annotated[str, BeforeValidator(_check_service)]
NetworkSpec = Annotated[str, BeforeValidator(_check_network)]
RoleSpec = Annotated[str, BeforeValidator(_check_role)]


PRIVATE_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7")
)
"""Site-internal address space: RFC 1918, carrier-grade NAT, IPv6 unique local."""
_RESERVED_V4 = ipaddress.ip_network("240.0.0.0/4")


@functools.lru_cache(maxsize=1 << 16)
def address_of(value: str) -> IPAddress | None:
    """The IP address in an ``ip`` or ``peer`` fact value ('10.1.2.3', 'ext:203.0.113.9',
    'ip:10.1.2.3'), or None (a MAC-keyed device id). Remembered: the same peers are judged
    every window, and parsing an address costs more than the test on it."""
    for prefix in ("ext:", "ip:"):
        if value.startswith(prefix):
            value = value[len(prefix) :]
            break
    try:
        return ipaddress.ip_address(value.split("%", 1)[0])
    except ValueError:
        return None


@functools.lru_cache(maxsize=1 << 16)
def in_network(ip: IPAddress, spec: str) -> bool:
    """Whether an address is in a CIDR or a NETWORK_KEYWORDS class of addresses (remembered,
    as ``address_of``)."""
    if spec == "private":
        return any(ip in net for net in PRIVATE_NETWORKS if net.version == ip.version)
    if spec == "public":
        # documentation ranges (203.0.113.0/24...) count as public: they stand for internet
        # addresses in examples and tests, and never appear on a real wire
        return not (
            any(ip in net for net in PRIVATE_NETWORKS if net.version == ip.version)
            or ip.is_loopback
            or ip.is_link_local
            or ip.is_multicast
            or ip.is_unspecified
            or str(ip) == "255.255.255.255"
            or (ip.version == 4 and ip in _RESERVED_V4)
        )
    if spec == "multicast":
        return ip.is_multicast or str(ip) == "255.255.255.255"
    if spec == "broadcast":
        # the limited broadcast, or a directed broadcast: without the netmask, the last
        # address of a /24 (what CARESCAPE-style discovery heartbeats are sent to)
        return ip.version == 4 and (int(ip) & 0xFF) == 0xFF
    if spec == "link_local":
        return ip.is_link_local
    if spec == "loopback":
        return ip.is_loopback
    network = _network(spec)
    return ip.version == network.version and ip in network


@functools.lru_cache(maxsize=1024)
def _network(spec: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(spec, strict=False)


class Matcher(_Strict):
    """One test on the values of one kind: ``equals`` (any of, exact after normalisation),
    ``pattern`` (RE2, searched, case-insensitive) or, for ``ip`` and ``peer``, ``networks``
    (the value's address is in one of these CIDRs / keywords)."""

    kind: str
    equals: StrList | None = None
    pattern: Annotated[str, Field(max_length=MAX_PATTERN_LENGTH)] | None = None
    networks: list[NetworkSpec] | None = None
    _regex: Any = PrivateAttr(default=None)
    _equals: frozenset[str] = PrivateAttr(default=frozenset())

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, value: str) -> str:
        if value not in EVIDENCE_KINDS:
            raise ValueError(f"unknown evidence kind {value!r} (oui_vendor or a fact kind)")
        return value

    @field_validator("pattern")
    @classmethod
    def _re2(cls, value: str | None) -> str | None:
        if value is not None:
            compile_pattern(value)
        return value

    @model_validator(mode="after")
    def _one_test(self) -> Matcher:
        given = [t for t in (self.equals, self.pattern, self.networks) if t is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of 'equals', 'pattern' or 'networks'")
        if self.equals is not None and not self.equals:
            raise ValueError("'equals' is empty")
        if self.networks is not None and (self.kind not in ("ip", "peer") or not self.networks):
            raise ValueError("'networks' needs kind ip or peer and at least one network")
        if self.pattern is not None:
            self._regex = compile_pattern(self.pattern)
        if self.equals is not None:
            self._equals = frozenset(normalise(v) for v in self.equals)
        return self

    def matches(self, value: str) -> bool:
        if self._regex is not None:
            return self._regex.search(unicodedata.normalize("NFC", value)) is not None
        if self.networks is not None:
            ip = address_of(value)
            return ip is not None and any(in_network(ip, n) for n in self.networks)
        return normalise(value) in self._equals

    def matching(self, values: Iterable[str]) -> list[str]:
        # Detectors ask again every window about the same values (a device's peers, names):
        # each distinct value is tested once per matcher and remembered, boundedly, as a hit
        # or a miss; the misses, nearly all, are passed over without a call each. Keyed by
        # identity, held with the matcher so that the id is not reused while it is there.
        held = _MATCH_MEMO.get(id(self))
        if held is None or held[0] is not self or len(held[1]) + len(held[2]) > MATCH_MEMO_SIZE:
            if len(_MATCH_MEMO) >= MATCH_MEMO_MATCHERS:
                _MATCH_MEMO.clear()  # libraries reloaded many times: drop the old matchers
            held = _MATCH_MEMO[id(self)] = (self, set(), set())
        _, hits, misses = held
        found = []
        for value in filterfalse(misses.__contains__, values):
            if value in hits:
                found.append(value)
            elif self.matches(value):
                hits.add(value)
                found.append(value)
            else:
                misses.add(value)
        return found


MATCH_MEMO_SIZE = 65_536  # values per matcher
MATCH_MEMO_MATCHERS = 16_384
_MATCH_MEMO: dict[int, tuple[Matcher, set[str], set[str]]] = {}  # (matcher, hits, misses)


class Evidence(Matcher):
    """A fingerprint's piece of evidence and its weight (0 < weight <= 0.95).

    ``veto: true`` turns it into counter-evidence: if it matches, the fingerprint does not.
    """

    name: Annotated[str, Field(max_length=80)] | None = None
    weight: Annotated[float, Field(gt=0.0, le=0.95)] = 0.5
    veto: bool = False


class Condition(Matcher):
    """A rule's condition on the device's registry vendor or one kind of its facts."""


class SampleClassification(_Strict):
    device_class: DeviceClass
    criticality: Criticality | None = None
    vendor: str | None = None
    model: str | None = None
    confidence: Annotated[float, Field(ge=0.0, le=1.0)] = 0.9


class Sample(_Strict):
    """A minimal record set shaped like ``monitor.model.Device``, or a public capture."""

    note: str | None = None
    id: str | None = None
    mac: str | None = None
    vendor: str | None = None
    local: bool = True
    facts: dict[str, StrList] = Field(default_factory=dict)
    # given: used as is (rules, policies); absent: the sample is classified by the library
    classification: SampleClassification | None = None
    # peers of a policy sample, by the ids its ``peer`` facts name
    peers: dict[str, Sample] = Field(default_factory=dict)
    # a public capture (path under the shared capture corpus) and the device's MAC in it
    capture: str | None = None
    device: str | None = None

    @field_validator("facts")
    @classmethod
    def _fact_kinds(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for kind in value:
            if kind not in FACT_KINDS:
                raise ValueError(f"unknown fact kind {kind!r} (see monitor.facts.FACT_KINDS)")
        return value

    @model_validator(mode="after")
    def _capture_or_records(self) -> Sample:
        if (self.capture is None) != (self.device is None):
            raise ValueError("a capture sample needs both 'capture' and 'device'")
        if self.capture is not None and (
            self.capture.startswith("/") or ".." in Path(self.capture).parts
        ):
            raise ValueError("'capture' is a path inside the shared capture corpus")
        if self.capture is not None and (self.facts or self.vendor):
            raise ValueError("a capture sample has no 'facts' or 'vendor' of its own")
        return self


class Samples(_Strict):
    positive: Annotated[list[Sample], Field(min_length=1)]
    negative: Annotated[list[Sample], Field(min_length=1)]


class FingerprintResult(_Strict):
    vendor: str | None = None
    device_class: DeviceClass
    model: str | None = None
    criticality: Criticality


def _check_references(values: list[str]) -> list[str]:
    for value in values:
        if value[:3].upper() in ("CVE", "ICS", "CWE", "VU#", "HTT") and not _REFERENCE_RE.match(
            value
        ):
            raise ValueError(f"malformed reference {value!r}")
    return values


def _check_template(raw: Any) -> str:
    value = _require_str(raw)
    try:
        parsed = list(string.Formatter().parse(value))
    except ValueError as error:
        raise ValueError(f"bad summary template: {error}") from None
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if name not in SUMMARY_FIELDS or spec or conversion:
            raise ValueError(
                f"summary placeholder {{{name}}} unknown: use {', '.join(SUMMARY_FIELDS)}"
            )
    return value


Summary = Annotated[str, Field(min_length=1, max_length=300), BeforeValidator(_check_template)]


class _Entry(_Strict):
    id: EntryId
    title: Annotated[str, Field(min_length=1, max_length=200)]
    description: str = ""
    status: Status = "test"
    enabled: bool = True
    samples: Samples


class Fingerprint(_Entry):
    """Weighted evidence -> vendor, class, model, criticality.

    Confidence is the noisy-OR of the matched evidence weights, ``1 - prod(1 - w)``; the
    fingerprint matches when it reaches ``min_confidence`` and no veto evidence matched.
    A ``fallback`` fingerprint (a generic platform guess: "Windows host", "embedded Linux")
    is used only when no other fingerprint matches.
    """

    sources: Annotated[list[str], Field(min_length=1)]
    result: FingerprintResult
    evidence: Annotated[list[Evidence], Field(min_length=1)]
    min_confidence: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.5
    fallback: bool = False

    @model_validator(mode="after")
    def _reachable(self) -> Fingerprint:
        best = 1.0
        for item in self.evidence:
            if not item.veto:
                best *= 1.0 - item.weight
        if 1.0 - best < self.min_confidence - 1e-9:
            raise ValueError(
                f"cannot reach min_confidence {self.min_confidence}: all evidence together "
                f"gives {1.0 - best:.2f}"
            )
        return self


class RuleScope(_Strict):
    """Which devices a rule applies to (all given fields must hold)."""

    device_classes: list[DeviceClass] | None = None
    criticalities: list[Criticality] | None = None
    medical: bool | None = None  # True: only MEDICAL_CLASSES; False: only the others


class Rule(_Entry):
    """Conditions on a device's facts and classification -> a finding.

    The rule fires when the scope holds, ALL of ``all`` match, at least one of ``any`` matches
    (if given) and none of ``none`` matches.
    """

    severity: Severity
    summary: Summary
    runbook: Annotated[str, Field(min_length=1)]
    references: Annotated[list[str], Field(min_length=1), BeforeValidator(_listify)]
    scope: RuleScope = Field(default_factory=RuleScope)
    all: list[Condition] = Field(default_factory=list)
    any: list[Condition] = Field(default_factory=list)
    none: list[Condition] = Field(default_factory=list)

    _refs = field_validator("references")(classmethod(lambda cls, v: _check_references(v)))

    @model_validator(mode="after")
    def _has_condition(self) -> Rule:
        if not self.all and not self.any:
            raise ValueError("a rule needs at least one condition in 'all' or 'any'")
        return self


class PeerSpec(_Strict):
    """Allowed peers: a peer is allowed if it meets every field given here."""

    classes: list[DeviceClass] | None = None
    networks: list[NetworkSpec] | None = None
    roles: list[RoleSpec] | None = None
    offers: list[ServiceSpec] | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> PeerSpec:
        if all(v is None for v in (self.classes, self.networks, self.roles, self.offers)):
            raise ValueError("a peer spec needs classes, networks, roles or offers")
        return self


class Policy(_Entry):
    """What devices of some classes may talk to. A section left out is not checked."""

    device_classes: Annotated[list[DeviceClass], Field(min_length=1)]
    severity: Severity | None = None  # default: from the device's criticality
    summary: Summary
    runbook: Annotated[str, Field(min_length=1)]
    references: Annotated[list[str], BeforeValidator(_listify)] = Field(default_factory=list)
    peers: list[PeerSpec] | None = None
    services_used: list[ServiceSpec] | None = None
    services_offered: list[ServiceSpec] | None = None
    protocols: list[Annotated[str, Field(pattern=r"^[a-z0-9_-]{1,32}$")]] | None = None

    _refs = field_validator("references")(classmethod(lambda cls, v: _check_references(v)))

    @model_validator(mode="after")
    def _has_section(self) -> Policy:
        if all(
            v is None
            for v in (self.peers, self.services_used, self.services_offered, self.protocols)
        ):
            raise ValueError("a policy needs peers, services_used, services_offered or protocols")
        return self


Entry = Fingerprint | Rule | Policy
KIND_MODELS: dict[str, type[Fingerprint] | type[Rule] | type[Policy]] = {
    "fingerprints": Fingerprint,
    "rules": Rule,
    "policies": Policy,
}


# ---------------------------------------------------------------------------------------------
# The library


@dataclass
class SignatureLibrary:
    """A validated, override-resolved set of enabled entries, in load order."""

    fingerprints: list[Fingerprint] = field(default_factory=list)
    rules: list[Rule] = field(default_factory=list)
    policies: list[Policy] = field(default_factory=list)
    # entry id -> "FILE:LINE" of the definition in force
    origins: dict[str, str] = field(default_factory=dict)
    # ids turned off by an override
    disabled: set[str] = field(default_factory=set)
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    def entries(self) -> Iterator[tuple[str, Entry]]:
        for entry in self.fingerprints:
            yield "fingerprints", entry
        for rule in self.rules:
            yield "rules", rule
        for policy in self.policies:
            yield "policies", policy

    def __len__(self) -> int:
        return len(self.fingerprints) + len(self.rules) + len(self.policies)


# ---------------------------------------------------------------------------------------------
# YAML with line numbers


def _line_loader() -> Any:
    """A safe loader that composes nodes (which carry line marks) in Python.

    Events come from libyaml when it is there (fast, and its parser is iterative), but
    nodes are always composed by PyYAML's Python composer: libyaml's own composer recurses
    in C and crashes the process on a deeply nested hostile file, where Python's raises a
    RecursionError that we report as an error of that file.
    """
    c_parser = getattr(getattr(yaml, "_yaml", None), "CParser", None)
    if c_parser is None:
        return yaml.SafeLoader

    class FastLineLoader(
        yaml.composer.Composer,
        yaml.constructor.SafeConstructor,
        yaml.resolver.Resolver,
        c_parser,  # type: ignore[misc,valid-type]
    ):
        def __init__(self, stream: str) -> None:
            c_parser.__init__(self, stream)  # type: ignore[misc]
            yaml.composer.Composer.__init__(self)
            yaml.constructor.SafeConstructor.__init__(self)
            yaml.resolver.Resolver.__init__(self)

    return FastLineLoader


_LineLoader = _line_loader()


Path_ = tuple[str | int, ...]


class _Doc:
    """A YAML document as plain Python values plus the line of every path in it."""

    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.lines: dict[Path_, int] = {}
        self._errors: list[tuple[int, str]] = []

    def line_of(self, loc: Sequence[Any]) -> int:
        path: Path_ = tuple(loc)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get((), 1)

    def error(self, line: int, message: str) -> None:
        self._errors.append((line, message))

    @property
    def errors(self) -> list[str]:
        """``FILE:LINE: message`` lines, in line order (at most MAX_ERRORS_PER_FILE)."""
        ordered = sorted(self._errors, key=lambda item: item[0])
        lines = [f"{self.filename}:{line}: {message}" for line, message in ordered]
        if len(lines) > MAX_ERRORS_PER_FILE:
            more = len(lines) - MAX_ERRORS_PER_FILE
            last = ordered[MAX_ERRORS_PER_FILE][0]
            lines = [
                *lines[:MAX_ERRORS_PER_FILE],
                f"{self.filename}:{last}: and {more} more errors",
            ]
        return lines

    def build(self, node: yaml.Node, path: Path_, loader: yaml.SafeLoader, seen: set[int]) -> Any:
        self.lines.setdefault(path, node.start_mark.line + 1)
        if id(node) in seen:
            # an alias is the anchored node itself: report where it is used
            self.error(self.lines[path], "YAML aliases are not allowed in signatures")
            return None
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode | yaml.SequenceNode) and node.tag not in (
            "tag:yaml.org,2002:map",
            "tag:yaml.org,2002:seq",
        ):
            self.error(node.start_mark.line + 1, f"YAML tag {node.tag!r} is not allowed")
            return None
        if isinstance(node, yaml.MappingNode):
            result: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    self.error(key_node.start_mark.line + 1, "mapping keys must be plain scalars")
                    continue
                key = loader.construct_object(key_node, deep=True)
                if key_node.tag == "tag:yaml.org,2002:merge":
                    self.error(key_node.start_mark.line + 1, "YAML merge keys are not allowed")
                    continue
                if not isinstance(key, str):
                    self.error(key_node.start_mark.line + 1, f"mapping key {key!r} is not a string")
                    continue
                if key in result:
                    self.error(key_node.start_mark.line + 1, f"duplicate key {key!r}")
                    continue
                self.lines[(*path, key)] = key_node.start_mark.line + 1
                result[key] = self.build(value_node, (*path, key), loader, seen)
            return result
        if isinstance(node, yaml.SequenceNode):
            items = []
            for index, item in enumerate(node.value):
                self.lines[(*path, index)] = item.start_mark.line + 1
                items.append(self.build(item, (*path, index), loader, seen))
            return items
        return loader.construct_object(node, deep=True)


def _parse_yaml(path: Path, display: str) -> tuple[Any, _Doc]:
    doc = _Doc(display)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            doc.error(1, f"file is {size} bytes, over the {MAX_FILE_BYTES} limit")
            return None, doc
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        doc.error(1, f"not UTF-8 (byte {error.start})")
        return None, doc
    except OSError as error:
        doc.error(1, f"cannot read: {error.strerror}")
        return None, doc
    loader = _LineLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, doc
        return doc.build(node, (), loader, set()), doc
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark is not None else 1
        message = f"bad YAML: {error.problem or error.context}"
        if error.problem and error.context and error.context_mark is not None:
            message += f" ({error.context} started at line {error.context_mark.line + 1})"
        doc.error(line, message)
        return None, doc
    except yaml.YAMLError as error:
        doc.error(1, f"bad YAML: {type(error).__name__}")
        return None, doc
    except RecursionError:
        doc.error(1, "YAML nested too deeply")
        return None, doc
    finally:
        loader.dispose()


def _loc_text(loc: Sequence[Any]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _error_message(error: Any, loc: Sequence[Any]) -> str:
    kind = error["type"]
    where = _loc_text(loc)
    if kind == "extra_forbidden":
        return f"{_loc_text(loc[:-1])}: unknown key {loc[-1]!r}"
    if kind == "missing":
        return f"{_loc_text(loc[:-1])}: missing key {loc[-1]!r}"
    message = str(error["msg"])
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    return f"{where}: {message}" if where else message


@dataclass
class _Loaded:
    kind: str
    entry_id: str
    entry: Entry | None  # None: a disable stub
    origin: str
    level: int  # precedence; higher overrides lower


def _clean_loc(loc: Sequence[Any]) -> list[Any]:
    # pydantic puts type tags ("function-before[...]") into some locs; our keys never
    # contain brackets, so anything with one is a tag
    return [p for p in loc if isinstance(p, int) or not any(c in p for c in "[(")]


def _load_file(path: Path, display: str, level: int, out: list[_Loaded], errors: list[str]) -> None:
    data, doc = _parse_yaml(path, display)
    if doc.errors:
        errors.extend(doc.errors)
        return
    if data is None:
        return  # an empty file is allowed (e.g. a local file with everything commented out)
    if not isinstance(data, dict):
        doc.error(1, "a signature file is a mapping with fingerprints, rules and/or policies")
        errors.extend(doc.errors)
        return
    for key, items in data.items():
        if key not in KIND_MODELS:
            doc.error(doc.line_of([key]), f"unknown key {key!r}: fingerprints, rules, policies")
            continue
        if not isinstance(items, list):
            doc.error(doc.line_of([key]), f"{key}: must be a list of entries")
            continue
        model = KIND_MODELS[key]
        for index, item in enumerate(items):
            origin = f"{display}:{doc.line_of([key, index])}"
            if (
                isinstance(item, dict)
                and item.get("enabled") is False
                and set(item)
                <= {
                    "id",
                    "enabled",
                }
            ):
                if not isinstance(item.get("id"), str):
                    doc.error(doc.line_of([key, index]), f"{key}[{index}]: missing key 'id'")
                    continue
                out.append(_Loaded(key, item["id"], None, origin, level))
                continue
            try:
                entry = model.model_validate(item)
            except ValidationError as error:
                for detail in error.errors(include_url=False):
                    loc = [key, index, *_clean_loc(detail["loc"])]
                    doc.error(doc.line_of(loc), _error_message(detail, loc))
                continue
            out.append(_Loaded(key, entry.id, entry, origin, level))
    errors.extend(doc.errors)


def _is_local(path: Path) -> bool:
    return path.name.endswith((".local.yml", ".local.yaml"))


def signature_files(directory: Path) -> list[Path]:
    """The YAML files of a folder, recursively, in a stable order (local ones included)."""
    return sorted(p for p in directory.rglob("*") if p.suffix in (".yml", ".yaml") and p.is_file())


def load_library(dirs: Sequence[Path]) -> SignatureLibrary:
    """Validate and load every signature file of ``dirs`` (folders, or single files); later
    ones override earlier ones.

    Precedence, lowest first: directory 1's shipped files, directory 1's ``*.local.yml``,
    directory 2's shipped files, ... An id defined twice at the same precedence is an error.
    Raises ``SignatureError`` with every problem found.
    """
    errors: list[str] = []
    loaded: list[_Loaded] = []
    if not dirs:
        raise SignatureError(["no signature directory given"])
    for number, directory in enumerate(dirs):
        if directory.is_file():
            files = [directory]
        elif directory.is_dir():
            files = signature_files(directory)
        else:
            errors.append(f"{directory}:1: not a directory or file")
            continue
        for path in files:
            level = 2 * number + (1 if _is_local(path) else 0)
            _load_file(path, str(path), level, loaded, errors)

    # resolve ids: same kind+id at the same level is a duplicate; a higher level replaces
    final: dict[tuple[str, str], _Loaded] = {}
    id_kind: dict[str, tuple[str, str]] = {}
    disabled: set[str] = set()
    for item in sorted(loaded, key=lambda loaded_item: loaded_item.level):
        entry_id = item.entry_id
        previous_kind = id_kind.get(entry_id)
        if previous_kind is not None and previous_kind[0] != item.kind:
            errors.append(
                f"{item.origin}: id {entry_id!r} is already a {previous_kind[0][:-1]} "
                f"at {previous_kind[1]}"
            )
            continue
        key = (item.kind, entry_id)
        before = final.get(key)
        if before is not None and before.level == item.level:
            errors.append(f"{item.origin}: duplicate id {entry_id!r} (first at {before.origin})")
            continue
        if item.entry is None:
            if before is None:
                errors.append(f"{item.origin}: 'enabled: false' for unknown id {entry_id!r}")
                continue
            disabled.add(entry_id)
        else:
            disabled.discard(entry_id)
            if not item.entry.enabled:
                disabled.add(entry_id)
        final[key] = item
        id_kind[entry_id] = (item.kind, item.origin)
    if errors:
        raise SignatureError(errors)

    library = SignatureLibrary(disabled=disabled)
    for (kind, entry_id), item in final.items():
        if item.entry is None or entry_id in disabled:
            continue
        library.origins[entry_id] = item.origin
        getattr(library, kind).append(item.entry)
    return library


def default_signature_dirs() -> list[Path]:
    """Where the shipped library is: the checkout's ``signatures/``, else installed data."""
    package_root = Path(__file__).resolve().parent.parent
    candidates = [
        package_root / "signatures",
        Path(sys.prefix) / "share" / "santinel" / "signatures",
        Path("/usr/share/santinel/signatures"),
    ]
    for candidate in candidates:
        if candidate.is_dir():
            return [candidate]
    return [candidates[0]]
