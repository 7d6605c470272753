"""Policy violations (``signatures/policies``): a device class talking outside its policy.

Wraps ``monitor.rules.evaluate_policies``: each window, every active device of a class with
a policy is checked; a violation is reported when a violating value (peer, service,
protocol) shows in this window, or the first time the device violates the policy. Without a
value it had not reported, a violation keeps its open event alive but opens no new one until
``finding_repeat_seconds`` (a day) passed. Detector
``policy_violation``; severity from the policy, or from the device's criticality.
"""

from __future__ import annotations

from typing import Any

from monitor.baseline import BaselineStore
from monitor.detectors import AnalysisView, DetectorConfig
from monitor.detectors.common import FindingDetector
from monitor.events import Event, make_event
from monitor.model import Device, WindowProfile
from monitor.rules import Finding, PeerVerdicts, evaluate_policies


class PolicyDetector(FindingDetector):
    """See the module docstring."""

    name = "policy"
    library_part = "policies"

    def __init__(self, config: DetectorConfig | None = None) -> None:
        super().__init__(config)
        self._verdicts: PeerVerdicts | None = None

    def begin_window(self) -> None:
        # devices do not change while one window is scored: its peers are judged once
        self._verdicts = PeerVerdicts()

    def end_window(self) -> None:
        # a peer per device of the site: not kept until the next window
        self._verdicts = None

    def findings(
        self, device: Device, analysis: AnalysisView, library: Any, end: float
    ) -> list[Finding]:
        return evaluate_policies(device, analysis.devices, library, self._verdicts)

    def event_for(
        self,
        profile: WindowProfile,
        device: Device,
        finding: Finding,
        fresh: dict[str, list[str]],
        baselines: BaselineStore | None,
    ) -> Event:
        event = make_event(
            profile.device_id, device, "policy_violation", "info", finding.summary, profile.end,
            {"violations": {k: list(v) for k, v in finding.evidence.items()},
             "in_this_window": fresh},
            {"policy": finding.rule_id, "title": finding.title},
            finding.references, signature=finding.rule_id,
        )  # fmt: skip
        event.severity = finding.severity
        return event
