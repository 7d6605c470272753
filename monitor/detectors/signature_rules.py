"""Signature rules (``signatures/rules``) as a detector: known-dangerous behaviour.

Wraps ``monitor.rules.evaluate_rules``: each window, every active device is checked against
the library's rules. A rule that holds is reported when its evidence shows in this window
(the device used the Telnet service *now*, not once last month) or the first time it holds
at all; a finding with no value it had not reported keeps its open event alive but opens no
new one, until ``finding_repeat_seconds`` (a day) passed. The event carries the rule's id as
``signature``, its severity, summary and references; its evidence is the values that made it
fire.

The detector name is the kind of danger, so that alerts and the evaluation speak of it:
``cleartext_remote_admin`` (Telnet, FTP, simple TCP services), ``remote_admin_exposure``
(RDP, VNC, SSH, web admin, remote service agents), ``firmware_transfer`` (TFTP),
``phi_to_external`` (HL7/DICOM to the internet), ``cleartext_clinical_data``,
``vulnerable_service`` (a service with a known default password or flaw), ``dicom_scan``,
and ``signature_rule`` for any other rule.
"""

from __future__ import annotations

from collections.abc import Sequence

from monitor.baseline import BaselineStore
from monitor.detectors import AnalysisView, DetectorConfig
from monitor.detectors._window import Reported, as_of, in_window
from monitor.detectors.common import DetectorBase
from monitor.events import Event, make_event
from monitor.model import WindowProfile

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


class SignatureRuleDetector(DetectorBase):
    """See the module docstring."""

    name = "signature_rules"

    def __init__(self, config: DetectorConfig | None = None) -> None:
        super().__init__(config)
        self.reported = Reported(self.config.finding_repeat_seconds)

    def score_window(
        self,
        profiles: Sequence[WindowProfile],
        analysis: AnalysisView,
        baselines: BaselineStore | None,
        now: float,
    ) -> list[Event]:
        library = getattr(analysis, "signatures", None)
        if library is None or not library.rules:
            return []
        from monitor.rules import evaluate_rules

        events: list[Event] = []
        for p in profiles:
            device = analysis.devices.get(p.device_id)
            if device is None:
                continue
            device = as_of(device, p.end)
            for finding in evaluate_rules(device, library):
                fresh = any(
                    in_window(p, kind, value)
                    for kind, values in finding.evidence.items()
                    for value in values
                )
                key = (p.device_id, finding.rule_id)
                # Facts are cumulative and may run ahead of this window: report what shows
                # in it, and a finding nothing in a window can show (vendor only) once.
                observable = any(k != "oui_vendor" for k in finding.evidence)
                if not fresh and (observable or key in self.reported):
                    continue
                values = frozenset(v for vs in finding.evidence.values() for v in vs)
                refresh = self.reported.refresh_only(key, values, p.end)
                event = make_event(
                    p.device_id, device, detector_for(finding.rule_id), "info",
                    finding.summary, p.end,
                    {k: list(v) for k, v in finding.evidence.items()},
                    {"rule": finding.rule_id, "title": finding.title},
                    finding.references, signature=finding.rule_id,
                )  # fmt: skip
                event.severity = finding.severity  # the rule's author weighed the device
                event.refresh_only = refresh
                events.append(event)
        return events
