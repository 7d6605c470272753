"""Policy violations: the lab pump calling an internet address its class may not talk to;
before that call, the same pump's traffic breaks no policy."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

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
