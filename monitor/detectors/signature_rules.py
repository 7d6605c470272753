"""Signature rules (``signatures/rules``) as a detector: known-dangerous behaviour.

Wraps ``monitor.rules.judge_rules``: each window, every active device is checked against
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
from monitor.model import Device, WindowProfile
from monitor.rules import Finding, RuleVerdicts, judge_rules

# devices whose findings are kept while they do what they did (see SignatureRuleDetector)
FINDINGS_KEPT = 4096


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
        # device id -> its rules' verdicts when they last found nothing (most devices)
        self._clear: dict[str, RuleVerdicts] = {}
        # the same for the FINDINGS_KEPT devices with findings judged last: a site of many
        # exposed devices would hold all of their findings otherwise
        self._found: dict[str, RuleVerdicts] = {}

    def findings(
        self, device: Device, analysis: AnalysisView, library: Any, end: float
    ) -> list[Finding]:
        # A rule reads the device's fact values, vendor and classification, and nothing
        # else. Each window asks again for every active device, and a device that does
        # what it did has found what it found then: only the rules that read a kind of
        # fact that gained values are evaluated again (see monitor.rules.judge_rules).
        previous = self._clear.pop(device.id, None) or self._found.pop(device.id, None)
        verdicts = judge_rules(device, library, end, previous)
        found = verdicts.fired()
        if not found:
            if len(self._clear) >= 2 * len(analysis.devices):
                # devices the inventory let go
                self._clear = {k: v for k, v in self._clear.items() if k in analysis.devices}
            self._clear[device.id] = verdicts
            return found
        if len(self._found) >= FINDINGS_KEPT:
            del self._found[next(iter(self._found))]
        self._found[device.id] = verdicts  # now the most recently judged
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
