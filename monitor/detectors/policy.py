"""Policy violations (``signatures/policies``): a device class talking outside its policy.

Wraps ``monitor.rules.evaluate_policies``: each window, every active device of a class with
a policy is checked; a violation is reported when a violating value (peer, service,
protocol) shows in this window, or the first time the device violates the policy. Without a
value it had not reported, a violation keeps its open event alive but opens no new one until
``finding_repeat_seconds`` (a day) passed. Detector
``policy_violation``; severity from the policy, or from the device's criticality.
"""

from __future__ import annotations

from collections.abc import Sequence

from monitor.baseline import BaselineStore
from monitor.detectors import AnalysisView, DetectorConfig
from monitor.detectors._window import Reported, as_of, in_window
from monitor.detectors.common import DetectorBase
from monitor.events import Event, make_event
from monitor.model import WindowProfile


class PolicyDetector(DetectorBase):
    """See the module docstring."""

    name = "policy"

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
        if library is None or not library.policies:
            return []
        from monitor.rules import evaluate_policies

        events: list[Event] = []
        for p in profiles:
            device = analysis.devices.get(p.device_id)
            if device is None:
                continue
            device = as_of(device, p.end)
            for finding in evaluate_policies(device, analysis.devices, library):
                fresh = {
                    kind: [v for v in values if in_window(p, kind, v)]
                    for kind, values in finding.evidence.items()
                }
                fresh = {k: v for k, v in fresh.items() if v}
                key = (p.device_id, finding.rule_id)
                # Facts are cumulative and may run ahead of this window: report what shows
                # in it, and a finding nothing in a window can show (vendor only) once.
                observable = any(k != "oui_vendor" for k in finding.evidence)
                if not fresh and (observable or key in self.reported):
                    continue
                values = frozenset(v for vs in finding.evidence.values() for v in vs)
                refresh = self.reported.refresh_only(key, values, p.end)
                event = make_event(
                    p.device_id, device, "policy_violation", "info", finding.summary, p.end,
                    {"violations": {k: list(v) for k, v in finding.evidence.items()},
                     "in_this_window": fresh},
                    {"policy": finding.rule_id, "title": finding.title},
                    finding.references, signature=finding.rule_id,
                )  # fmt: skip
                event.severity = finding.severity
                event.refresh_only = refresh
                events.append(event)
        return events
