"""Device classification: match fingerprint evidence against a device's vendor and facts.

``classify(device, library)`` returns the best-matching fingerprint as a
``monitor.model.Classification`` (vendor, class, model, criticality, confidence and the
evidence that matched), or None when no fingerprint reaches its threshold.

Confidence is the noisy-OR of the weights of the matched evidence items::

    confidence = 1 - (1 - w1) * (1 - w2) * ... * (1 - wn)

so independent weak signals add up, one strong signal is enough, and no fingerprint ever
claims certainty (each weight is at most 0.95). Each evidence item counts once however many
of the device's values match it. A fingerprint matches when its confidence reaches its
``min_confidence`` and none of its ``veto`` items matched. Among matches, a specific
fingerprint always beats a ``fallback`` one (a generic platform guess such as "Windows
host"); then the highest confidence wins; ties go to the one with more matched items, then
to the earlier entry.

Speed: the library is compiled once into per-kind indexes (a dict for ``equals`` values and
one RE2 set per kind for patterns), so a new fact value costs one dict lookup and one RE2 set
scan, whatever the number of fingerprints; what each value matched is remembered (a bounded
memo per kind), so classifying a device again costs one dict lookup per value.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import filterfalse
from typing import Any

import re2

from monitor.model import Classification, Device, Evidence
from monitor.signatures import RE2_OPTIONS, Fingerprint, SignatureLibrary, normalise
from monitor.signatures import Evidence as EvidenceSpec

_CACHE_KEY = "classifier-index"
MATCH_MEMO_SIZE = 1 << 16  # values remembered per fact kind


@dataclass
class _KindIndex:
    equals: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    patterns: list[tuple[int, int]] = field(default_factory=list)
    regex_set: Any = None
    # evidence tested one by one (``networks`` on ip / peer values; patterns if no set)
    others: list[tuple[int, int, EvidenceSpec]] = field(default_factory=list)
    # value -> the (fingerprint, evidence) items it matches: a device is classified again
    # each time one of its facts changes, and almost all of its values are old ones
    matched: dict[str, tuple[tuple[int, int], ...]] = field(default_factory=dict)
    # those of them that match nothing, most of a device's values (its peers, the names it
    # looks up): passed over without a call each when a device is classified again
    matches_nothing: set[str] = field(default_factory=set)

    def items_matching(self, value: str) -> tuple[tuple[int, int], ...]:
        found = self.matched.get(value)
        if found is None:
            items = list(self.equals.get(normalise(value), ()))
            if self.regex_set is not None:
                positions = self.regex_set.Match(unicodedata.normalize("NFC", value))
                items += [self.patterns[position] for position in positions or ()]
            items += [(fp, ev) for fp, ev, evidence in self.others if evidence.matches(value)]
            if len(self.matched) >= MATCH_MEMO_SIZE:
                self.matched.clear()
                self.matches_nothing.clear()
            found = self.matched[value] = tuple(items)
            if not found:
                self.matches_nothing.add(value)
        return found


@dataclass
class _Index:
    fingerprints: list[Fingerprint]
    kinds: dict[str, _KindIndex]


def _build_index(library: SignatureLibrary) -> _Index:
    kinds: dict[str, _KindIndex] = {}
    sources: dict[str, list[str]] = {}
    for fp_index, fingerprint in enumerate(library.fingerprints):
        for ev_index, evidence in enumerate(fingerprint.evidence):
            kind_index = kinds.setdefault(evidence.kind, _KindIndex())
            if evidence.equals is not None:
                for value in evidence.equals:
                    kind_index.equals.setdefault(normalise(value), []).append((fp_index, ev_index))
            elif evidence.pattern is not None:
                kind_index.patterns.append((fp_index, ev_index))
                sources.setdefault(evidence.kind, []).append(evidence.pattern)
            else:
                kind_index.others.append((fp_index, ev_index, evidence))
    for kind, patterns in sources.items():
        kind_index = kinds[kind]
        try:
            regex_set = re2.Set.SearchSet(RE2_OPTIONS)
            for pattern in patterns:
                regex_set.Add(unicodedata.normalize("NFC", pattern))
            regex_set.Compile()
            kind_index.regex_set = regex_set
        except re2.error:
            # every pattern compiled alone at load time: match them one by one instead
            kind_index.others += [
                (fp, ev, library.fingerprints[fp].evidence[ev]) for fp, ev in kind_index.patterns
            ]
            kind_index.patterns = []
    return _Index(list(library.fingerprints), kinds)


def _index(library: SignatureLibrary) -> _Index:
    index = library._cache.get(_CACHE_KEY)
    if index is None:
        index = _build_index(library)
        library._cache[_CACHE_KEY] = index
    assert isinstance(index, _Index)
    return index


def _device_values(device: Device) -> Iterable[tuple[str, Iterable[str]]]:
    if device.vendor:
        yield "oui_vendor", (device.vendor,)
    for kind, values in device.facts.items():
        yield kind, values.keys()


def match_evidence(device: Device, library: SignatureLibrary) -> dict[int, dict[int, str]]:
    """fingerprint index -> evidence index -> the first device value that matched it."""
    index = _index(library)
    hits: dict[int, dict[int, str]] = {}
    for kind, values in _device_values(device):
        kind_index = index.kinds.get(kind)
        if kind_index is None:
            continue
        for value in filterfalse(kind_index.matches_nothing.__contains__, values):
            for fp_index, ev_index in kind_index.items_matching(value):
                hits.setdefault(fp_index, {}).setdefault(ev_index, value)
    return hits


def score(fingerprint: Fingerprint, matched: dict[int, str]) -> tuple[float, bool]:
    """(noisy-OR confidence of the matched items, whether a veto item matched)."""
    remaining = 1.0
    for ev_index in matched:
        evidence = fingerprint.evidence[ev_index]
        if evidence.veto:
            return 0.0, True
        remaining *= 1.0 - evidence.weight
    return 1.0 - remaining, False


def _ranked(
    device: Device, library: SignatureLibrary
) -> list[tuple[bool, float, int, int, float, dict[int, str]]]:
    """The fingerprints that match the device, best first: (fallback, -confidence, -matched
    items, fingerprint index, confidence, evidence index -> the value that matched)."""
    index = _index(library)
    ranked = []
    for fp_index, matched in match_evidence(device, library).items():
        fingerprint = index.fingerprints[fp_index]
        confidence, vetoed = score(fingerprint, matched)
        if vetoed or confidence < fingerprint.min_confidence - 1e-9:
            continue
        ranked.append(
            (fingerprint.fallback, -confidence, -len(matched), fp_index, confidence, matched)
        )
    ranked.sort(key=lambda item: item[:4])
    return ranked


def _classification(
    device: Device, fingerprint: Fingerprint, confidence: float, matched: dict[int, str]
) -> Classification:
    evidence = tuple(
        Evidence(fingerprint.evidence[i].kind, value, fingerprint.evidence[i].weight)
        for i, value in sorted(matched.items())
    )
    result = fingerprint.result
    return Classification(
        signature=fingerprint.id,
        vendor=result.vendor or device.vendor,
        device_class=result.device_class,
        model=result.model,
        criticality=result.criticality,
        confidence=round(confidence, 4),
        evidence=evidence,
    )


def candidates(device: Device, library: SignatureLibrary) -> list[Classification]:
    """Every fingerprint that matches the device, best first."""
    fingerprints = _index(library).fingerprints
    return [
        _classification(device, fingerprints[fp_index], confidence, matched)
        for *_, fp_index, confidence, matched in _ranked(device, library)
    ]


def could_tell(library: SignatureLibrary, kind: str, value: str) -> bool:
    """Whether a value of ``kind`` matches any fingerprint's evidence: one that does not
    cannot change what a device is classified as."""
    kind_index = _index(library).kinds.get(kind)
    return kind_index is not None and bool(kind_index.items_matching(value))


def classify(device: Device, library: SignatureLibrary) -> Classification | None:
    """The best fingerprint match for the device, or None if nothing reaches its threshold."""
    ranked = _ranked(device, library)  # (only the best is made into a classification)
    if not ranked:
        return None
    *_, fp_index, confidence, matched = ranked[0]
    return _classification(device, _index(library).fingerprints[fp_index], confidence, matched)
