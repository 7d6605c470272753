"""Run a signature entry's positive and negative samples through the real matchers.

A sample is a minimal record set shaped like ``monitor.model.Device`` (vendor, facts,
optionally a classification and peers) or a reference to a public capture. Record samples
become real ``Device`` objects and go through ``monitor.classifier`` / ``monitor.rules``
exactly as the inventory's devices do:

- fingerprint: a positive sample's best classification is this entry; a negative sample is
  not matched by this entry at all;
- rule: the rule fires for a positive sample and not for a negative one;
- policy: the policy reports a violation for a positive sample and none for a negative one.

A sample without a ``classification`` is first classified by the library, so rules and
policies are tested together with the fingerprints that feed them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from monitor.classifier import candidates, classify
from monitor.facts import Fact, FactTable
from monitor.model import Classification, Device
from monitor.rules import evaluate_policy, evaluate_rule
from monitor.signatures import (
    DEFAULT_CRITICALITY,
    Entry,
    Fingerprint,
    Policy,
    Rule,
    Sample,
    SignatureLibrary,
)

SHARED_PCAPS = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "pcaps"


@dataclass(frozen=True)
class SampleResult:
    entry_id: str
    polarity: str  # positive | negative
    number: int  # 1-based position in its list
    ok: bool
    skipped: bool
    message: str

    def describe(self) -> str:
        state = "SKIP" if self.skipped else ("ok" if self.ok else "FAIL")
        return f"{state} {self.entry_id} {self.polarity} sample {self.number}: {self.message}"


def sample_device(sample: Sample, library: SignatureLibrary, default_id: str) -> Device:
    """A ``Device`` built from a record sample, classified by the library if not given."""
    facts = FactTable(
        {
            kind: {value: Fact(0.0, 0.0, 1) for value in values}
            for kind, values in sample.facts.items()
        }
    )
    device = Device(
        id=sample.id or sample.mac or default_id,
        mac=sample.mac,
        locally_administered=False,
        vendor=sample.vendor,
        first_seen=0.0,
        last_seen=0.0,
        facts=facts,
        local=sample.local,
    )
    given = sample.classification
    if given is not None:
        device.classification = Classification(
            signature="sample",
            vendor=given.vendor or sample.vendor,
            device_class=given.device_class,
            model=given.model,
            criticality=given.criticality or DEFAULT_CRITICALITY[given.device_class],
            confidence=given.confidence,
        )
    else:
        device.classification = classify(device, library)
    return device


def _check(
    entry: Entry,
    device: Device,
    peers: dict[str, Device],
    library: SignatureLibrary,
    positive: bool,
) -> tuple[bool, str]:
    if isinstance(entry, Fingerprint):
        if positive:
            best = device.classification
            if best is None:
                return False, "no fingerprint matched"
            if best.signature != entry.id:
                return False, f"best match is {best.signature} ({best.confidence:.2f}), not this"
            return True, f"matched with confidence {best.confidence:.2f}"
        hit = [c for c in candidates(device, library) if c.signature == entry.id]
        if hit:
            return False, f"matched with confidence {hit[0].confidence:.2f}"
        return True, "not matched"
    if isinstance(entry, Rule):
        finding = evaluate_rule(entry, device)
    else:
        assert isinstance(entry, Policy)
        finding = evaluate_policy(entry, device, peers)
    if positive and finding is None:
        return False, f"did not fire (device class {device.device_class})"
    if not positive and finding is not None:
        return False, f"fired: {finding.summary}"
    return True, finding.summary if finding else "did not fire"


def run_samples(entry: Entry, library: SignatureLibrary) -> list[SampleResult]:
    """Every sample of the entry, checked; capture samples are skipped without the corpus."""
    results = []
    for polarity in ("positive", "negative"):
        samples = getattr(entry.samples, polarity)
        for number, sample in enumerate(samples, 1):
            if sample.capture is not None:
                results.append(_run_capture(entry, sample, library, polarity, number))
                continue
            device = sample_device(sample, library, f"sample-{polarity}-{number}")
            peers = {
                peer_id: sample_device(peer, library, peer_id)
                for peer_id, peer in sample.peers.items()
            }
            for peer_id, peer_device in peers.items():
                peer_device.id = peer_id
            ok, message = _check(entry, device, peers, library, polarity == "positive")
            results.append(SampleResult(entry.id, polarity, number, ok, False, message))
    return results


def _run_capture(
    entry: Entry, sample: Sample, library: SignatureLibrary, polarity: str, number: int
) -> SampleResult:
    assert sample.capture is not None and sample.device is not None
    path = SHARED_PCAPS / sample.capture
    try:
        from monitor.pipeline import (
            analyze_captures,  # type: ignore[import-not-found,unused-ignore]
        )
    except ImportError:
        return SampleResult(entry.id, polarity, number, True, True, "needs monitor.pipeline")
    if not path.is_file():
        return SampleResult(entry.id, polarity, number, True, True, f"needs {path}")
    analysis = analyze_captures([path], signatures=library)
    devices: dict[str, Device] = dict(analysis.devices)
    device = devices.get(sample.device.lower())
    if device is None:
        return SampleResult(entry.id, polarity, number, False, False, "device not in capture")
    if device.classification is None:
        device.classification = classify(device, library)
    ok, message = _check(entry, device, devices, library, polarity == "positive")
    return SampleResult(entry.id, polarity, number, ok, False, message)
