"""Policy violations: the lab pump calling an internet address its class may not talk to;
before that call, the same pump's traffic breaks no policy."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from monitor.detectors.policy import PolicyDetector
from monitor.model import Classification, Device, WindowProfile
from monitor.signatures import default_signature_dirs, load_library
from tests.detectors.helpers import LAB_DEMO
from tests.detectors.lab import run_lab


def _truth() -> dict[str, object]:
    return json.loads((LAB_DEMO / "truth.json").read_text())


def test_pump_talking_to_an_unapproved_internet_address_violates_its_policy() -> None:
    truth = _truth()
    (injected,) = [e for e in truth["events"] if e["anomaly"] == "new_external_peer"]
    result = run_lab(LAB_DEMO)
    (event,) = result.of("policy_violation", injected["device"]["mac"])
    assert event.signature == "policy.infusion-pump"
    assert event.observed["in_this_window"] == {"peer": ["ext:203.0.113.66"]}
    assert event.time >= injected["start"]
    assert event.severity == "critical"  # a life-sustaining device


def test_ward_traffic_before_the_call_breaks_no_policy(tmp_path: Path) -> None:
    truth = _truth()
    (injected,) = [e for e in truth["events"] if e["anomaly"] == "new_external_peer"]
    cut = tmp_path / "lab"
    cut.mkdir()
    # the same recording, cut (with editcap) just before the pump's call
    subprocess.run(
        ["editcap", "-B", _stamp(float(injected["start"]) - 0.5), str(LAB_DEMO / "capture.pcap"),
         str(cut / "capture.pcap")],
        check=True, capture_output=True,
    )  # fmt: skip
    (cut / "truth.json").write_text(json.dumps(truth))
    result = run_lab(cut)
    assert result.of("policy_violation") == []


def _stamp(t: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(t, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _pump_calling(peer: str) -> Device:
    pump = Device("00:12:21:00:00:04", "00:12:21:00:00:04", False, "Smiths Medical", 0.0, 0.0)
    pump.classification = Classification(
        "pump", "Smiths Medical", "infusion_pump", None, "life_sustaining", 0.9
    )
    pump.facts.record("peer", peer, 10.0)
    return pump


def test_the_peers_judged_in_a_window_are_let_go_once_it_is_scored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A pass resolves a peer per device of the site: that is not kept until the next
    window, nor when judging a window failed."""
    pump = _pump_calling("ext:203.0.113.66")
    analysis = SimpleNamespace(
        devices={pump.id: pump}, signatures=load_library(default_signature_dirs())
    )
    profile = WindowProfile(pump.id, 0.0, 60.0, peers={"ext:203.0.113.66"})
    detector = PolicyDetector()
    judged_with: list[Any] = []
    real = PolicyDetector.findings

    def noting(self: PolicyDetector, *args: Any) -> Any:
        judged_with.append(self._verdicts)
        return real(self, *args)

    monkeypatch.setattr(PolicyDetector, "findings", noting)
    (event,) = detector.score_window([profile], analysis, None, 60.0)
    assert event.observed["in_this_window"] == {"peer": ["ext:203.0.113.66"]}
    assert judged_with[0] is not None and "ext:203.0.113.66" in judged_with[0].peers
    assert detector._verdicts is None

    def failing(self: PolicyDetector, *args: Any) -> Any:
        raise RuntimeError("judging failed")

    monkeypatch.setattr(PolicyDetector, "findings", failing)
    with pytest.raises(RuntimeError):
        detector.score_window([profile], analysis, None, 120.0)
    assert detector._verdicts is None
