"""Signature rules (``signatures/rules``) as a detector: known-dangerous behaviour.

Wraps ``monitor.rules.evaluate_rules``: each window, every active device is checked against
the library's rules. A rule that holds is reported when its evidence shows in this window
(the device used the Telnet service *now*, not once last month) or the first time it holds
at all; a finding with no value it had not reported keeps its open event alive but opens no
new one, until ``finding_repeat_seconds`` (a day) passed. The event carries the rule's id as
``signature``, its severity, summary and references; its evidence is the values that made it
fire.

Severity: the rule's, when the evidence is new to the device's enforcing baseline (telnet
just opened, an internet peer just contacted); ``info`` when it is what the device always did
(in its baseline, or all there is while it learns): a standing exposure, recorded, not
alerted on (the alerting rules act on warning and critical).

The detector name is the kind of danger, so that alerts and the evaluation speak of it:
``cleartext_remote_admin`` (Telnet, FTP, simple TCP services), ``remote_admin_exposure``
(RDP, VNC, SSH, web admin, remote service agents), ``firmware_transfer`` (TFTP),
``phi_to_external`` (HL7/DICOM to the internet), ``cleartext_clinical_data``,
``vulnerable_service`` (a service with a known default password or flaw), ``dicom_scan``,
and ``signature_rule`` for any other rule.
"""

from __future__ import annotations

from typing import Any

from monitor.baseline import BaselineStore
from monitor.detectors import AnalysisView, DetectorConfig
from monitor.detectors.common import FindingDetector
from monitor.events import Event, make_event
from monitor.facts import FactTable
from monitor.model import Device, WindowProfile
from monitor.rules import Finding, evaluate_rules

# devices whose findings are kept while they do what they did (see SignatureRuleDetector)
FINDINGS_KEPT = 4096

# what a device's rules read: its facts table, the library, the table's version and value
# count, its vendor and its classification
_Read = tuple[FactTable, Any, int, int, str | None, Any]


def _same(held: _Read, read: _Read) -> bool:
    return (
        held[0] is read[0]
        and held[1] is read[1]
        and held[2] == read[2]
        and held[3] == read[3]
        and held[4] == read[4]
        and held[5] == read[5]
    )


KINDS: tuple[tuple[str, str], ...] = (
    ("tftp", "firmware_transfer"),  # before "ftp"
    ("telnet", "cleartext_remote_admin"),
    ("ftp", "cleartext_remote_admin"),
    ("simple-tcp", "cleartext_remote_admin"),
    ("external-peer", "phi_to_external"),
    ("to-internet", "phi_to_external"),
    ("cleartext-mqtt", "cleartext_clinical_data"),
    ("dicom-scan", "dicom_scan"),
    ("remote-desktop", "remote_admin_exposure"),
    ("rdp", "remote_admin_exposure"),
    ("remote-access", "remote_admin_exposure"),
    ("remote-service", "remote_admin_exposure"),
    ("webmin", "remote_admin_exposure"),
    ("ssh", "remote_admin_exposure"),
    ("admin", "remote_admin_exposure"),
    ("default-password", "vulnerable_service"),
    ("upnp", "vulnerable_service"),
    ("smb", "vulnerable_service"),
)


def detector_for(rule_id: str) -> str:
    """The detector name a rule's events carry (see the module docstring)."""
    lowered = rule_id.lower()
    for fragment, name in KINDS:
        if fragment in lowered:
            return name
    return "signature_rule"


class SignatureRuleDetector(FindingDetector):
    """See the module docstring."""

    name = "signature_rules"
    library_part = "rules"

    def __init__(self, config: DetectorConfig | None = None) -> None:
        super().__init__(config)
        # device id -> what its rules read when they last found nothing (most devices): its
        # facts table and the library, by identity (another table or library is compared
        # no further), and the rest by value
        self._clear: dict[str, _Read] = {}
        # the same, and what they found, for the FINDINGS_KEPT devices with findings judged
        # last: a site of many exposed devices would hold all of them otherwise
        self._found: dict[str, tuple[_Read, list[Finding]]] = {}

    def findings(self, device: Device, analysis: AnalysisView, library: Any) -> list[Finding]:
        # A rule reads the device's fact values, vendor and classification, and nothing
        # else. Each window asks again for every active device, and a device that does
        # what it did has found what it found then: its rules are evaluated again only
        # when one of those changed.
        facts = device.facts
        read = (
            facts.source,
            library,
            facts.version,
            facts.value_count(),  # a view as of a window end holds some of the values
            device.vendor,
            device.classification,
        )
        clear = self._clear.get(device.id)
        if clear is not None and _same(clear, read):
            return []
        held = self._found.pop(device.id, None)
        if held is not None and _same(held[0], read):
            self._found[device.id] = held  # now the most recently judged
            return list(held[1])
        found = evaluate_rules(device, library)
        if found:
            self._clear.pop(device.id, None)
            if len(self._found) >= FINDINGS_KEPT:
                del self._found[next(iter(self._found))]
            self._found[device.id] = (read, found)
            return list(found)
        if device.id not in self._clear and len(self._clear) >= 2 * len(analysis.devices):
            # devices the inventory let go
            self._clear = {k: v for k, v in self._clear.items() if k in analysis.devices}
        self._clear[device.id] = read
        return found

    def event_for(
        self,
        profile: WindowProfile,
        device: Device,
        finding: Finding,
        fresh: dict[str, list[str]],
        baselines: BaselineStore | None,
    ) -> Event:
        baseline = baselines.get(profile.device_id) if baselines is not None else None
        new = sorted(
            v
            for kind, vs in finding.evidence.items()
            if kind != "oui_vendor"
            for v in vs
            if baseline is not None and baseline.enforcing and not baseline.knows(kind, v)
        )
        observed: dict[str, Any] = {k: list(v) for k, v in finding.evidence.items()}
        observed["new_to_baseline"] = new
        event = make_event(
            profile.device_id, device, detector_for(finding.rule_id), "info",
            finding.summary, profile.end, observed,
            {"rule": finding.rule_id, "title": finding.title,
             "baseline_state": baseline.state if baseline is not None else None},
            finding.references, signature=finding.rule_id,
        )  # fmt: skip
        # The rule's author weighed the device. What it always did (its baseline, or
        # all there is while it learns) is a standing exposure, for the record.
        event.severity = finding.severity if new else "info"
        return event
