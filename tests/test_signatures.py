"""Loader, schema, overrides and ``santinel signatures check|test`` (monitor/signatures.py)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.signatures import (
    CLASS_LABELS,
    CRITICALITIES,
    DEVICE_CLASSES,
    MAX_PATTERN_LENGTH,
    MEDICAL_CLASSES,
    SignatureError,
    compile_pattern,
    default_signature_dirs,
    load_library,
)
from tests.conftest import REPO, run_santinel

GOOD_FINGERPRINT = """\
fingerprints:
  - id: fp.test.pump
    title: Test pump
    sources: ["unit test"]
    result: {vendor: Acme, device_class: infusion_pump, criticality: life_sustaining}
    evidence:
      - {kind: oui_vendor, pattern: '^acme medical', weight: 0.6}
    samples:
      positive: [{vendor: "Acme Medical Inc"}]
      negative: [{vendor: "Acme Toys"}]
"""


def write(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def errors_of(dirs: list[Path]) -> list[str]:
    with pytest.raises(SignatureError) as caught:
        load_library(dirs)
    return caught.value.errors


# --- one broken file of each kind, through the real command ---------------------------------

BROKEN = {
    "bad YAML": (
        "bad-yaml.yml",
        "fingerprints:\n  - id: fp.x\n    title: a: b\n    sources: [x]\n",
        3,
        "bad YAML",
    ),
    "unknown key": (
        "unknown-key.yml",
        GOOD_FINGERPRINT.replace("    title: Test pump\n", "    title: Pump\n    colour: red\n"),
        4,
        "unknown key 'colour'",
    ),
    "bad regex (RE2 refuses a backreference)": (
        "bad-regex.yml",
        GOOD_FINGERPRINT.replace("'^acme medical'", "'(acme)\\1'"),
        7,
        "RE2 refuses the pattern",
    ),
    "wrong type": (
        "wrong-type.yml",
        GOOD_FINGERPRINT.replace("weight: 0.6", "weight: heavy"),
        7,
        "weight: Input should be a valid number",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_check_reports_a_broken_file_with_file_and_line_and_exits_2(
    tmp_path: Path, case: str
) -> None:
    name, text, line, message = BROKEN[case]
    path = write(tmp_path, name, text)
    result = run_santinel("signatures", "check", str(tmp_path))
    assert result.returncode == 2, result.stderr
    assert f"{path}:{line}: " in result.stderr
    error_line = next(x for x in result.stderr.splitlines() if x.startswith(f"{path}:{line}: "))
    assert message in error_line
    assert "Traceback" not in result.stderr


def test_check_lists_every_error_of_every_file_not_just_the_first(tmp_path: Path) -> None:
    for name, text, _, _ in BROKEN.values():
        write(tmp_path, name, text)
    many = GOOD_FINGERPRINT.replace("weight: 0.6", "weight: 2").replace(
        "device_class: infusion_pump", "device_class: toaster"
    )
    write(tmp_path, "two-errors.yml", many)
    result = run_santinel("signatures", "check", str(tmp_path))
    assert result.returncode == 2
    lines = [x for x in result.stderr.splitlines() if re.match(r"^/.+\.yml:\d+: ", x)]
    assert {Path(x.split(":", 1)[0]).name for x in lines} == {
        "bad-yaml.yml",
        "unknown-key.yml",
        "bad-regex.yml",
        "wrong-type.yml",
        "two-errors.yml",
    }
    two = [x for x in lines if "two-errors.yml" in x]
    assert any("unknown device class 'toaster'" in x for x in two)
    assert any("weight: Input should be less than or equal to 0.95" in x for x in two)
    assert "6 errors in signatures" in result.stderr


def test_check_accepts_the_shipped_library() -> None:
    result = run_santinel("signatures", "check")
    assert result.returncode == 0, result.stderr
    assert re.match(r"ok: \d+ fingerprints, \d+ rules, \d+ policies", result.stdout)


def test_check_of_a_missing_directory_is_a_usage_error(tmp_path: Path) -> None:
    result = run_santinel("signatures", "check", str(tmp_path / "absent"))
    assert result.returncode == 2
    assert "not a directory" in result.stderr


# --- safety of the YAML and the regexes -------------------------------------------------------


def test_yaml_aliases_are_refused_with_their_line(tmp_path: Path) -> None:
    text = GOOD_FINGERPRINT.replace(
        '    sources: ["unit test"]\n', '    sources: &s ["unit test"]\n    title2: *s\n'
    )
    errors = errors_of([write(tmp_path, "alias.yml", text).parent])
    assert any(":5: YAML aliases are not allowed" in e for e in errors), errors


def test_duplicate_keys_are_refused(tmp_path: Path) -> None:
    text = GOOD_FINGERPRINT.replace("    title: Test pump\n", "    title: A\n    title: B\n")
    errors = errors_of([write(tmp_path, "dup.yml", text).parent])
    assert any(":4: duplicate key 'title'" in e for e in errors), errors


def test_python_object_tags_are_refused(tmp_path: Path) -> None:
    text = "fingerprints: !!python/object/apply:os.system ['echo pwned']\n"
    errors = errors_of([write(tmp_path, "evil.yml", text).parent])
    assert len(errors) == 1 and ":1: YAML tag" in errors[0] and "is not allowed" in errors[0]


@pytest.mark.parametrize(
    "text",
    ["[" * 200_000, "- " * 50_000 + "x", "{a: " * 20_000 + "1" + "}" * 20_000],
    ids=["flow-sequences", "block-sequences", "flow-mappings"],
)
def test_a_deeply_nested_file_is_an_error_not_a_crash(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, "deep.yml", text)
    result = run_santinel("signatures", "check", str(tmp_path))
    assert result.returncode == 2, (result.returncode, result.stderr[-300:])
    assert result.stderr.startswith(f"{path}:")


def test_errors_of_one_file_are_capped(tmp_path: Path) -> None:
    text = "fingerprints: [" + "{id: A},".join([""] * 1000) + "]\n"
    errors = errors_of([write(tmp_path, "many.yml", text).parent])
    assert len(errors) == 201
    assert errors[-1].endswith("more errors")


def test_a_pattern_over_the_length_limit_is_an_error(tmp_path: Path) -> None:
    long = "a" * (MAX_PATTERN_LENGTH + 1)
    text = GOOD_FINGERPRINT.replace("'^acme medical'", f"'{long}'")
    errors = errors_of([write(tmp_path, "long.yml", text).parent])
    assert any(":7: " in e and "pattern" in e for e in errors), errors


def test_re2_matches_a_catastrophic_backtracking_pattern_in_linear_time() -> None:
    regex = compile_pattern("^(a+)+$")
    hostile = "a" * 200_000 + "!"
    start = time.perf_counter()
    assert regex.search(hostile) is None
    assert time.perf_counter() - start < 1.0


def test_an_unknown_fact_kind_in_a_sample_is_an_error(tmp_path: Path) -> None:
    text = GOOD_FINGERPRINT.replace('{vendor: "Acme Toys"}', "{facts: {favourite_colour: [red]}}")
    errors = errors_of([write(tmp_path, "kind.yml", text).parent])
    assert any(":10: " in e and "unknown fact kind 'favourite_colour'" in e for e in errors)


def test_a_capture_sample_must_stay_inside_the_capture_corpus(tmp_path: Path) -> None:
    text = GOOD_FINGERPRINT.replace(
        '{vendor: "Acme Toys"}', '{capture: ../../etc/passwd, device: "00:00:00:00:00:01"}'
    )
    errors = errors_of([write(tmp_path, "escape.yml", text).parent])
    assert any(":10: " in e and "inside the shared capture corpus" in e for e in errors), errors


def test_a_fingerprint_that_can_never_reach_its_threshold_is_an_error(tmp_path: Path) -> None:
    text = GOOD_FINGERPRINT.replace("weight: 0.6", "weight: 0.2")
    errors = errors_of([write(tmp_path, "weak.yml", text).parent])
    assert any("cannot reach min_confidence 0.5" in e for e in errors), errors


def test_every_entry_needs_a_positive_and_a_negative_sample(tmp_path: Path) -> None:
    text = GOOD_FINGERPRINT.replace('      negative: [{vendor: "Acme Toys"}]\n', "")
    errors = errors_of([write(tmp_path, "nosample.yml", text).parent])
    assert any("missing key 'negative'" in e for e in errors), errors


GOOD_RULE_AND_POLICY = """\
rules:
  - id: rule.t
    title: T
    severity: high
    summary: "The {class_label} offers {values}."
    runbook: "1. Act."
    references: [CVE-2015-3459]
    scope: {device_classes: [infusion_pump], medical: true}
    any: [{kind: service_offered, equals: [tcp/23]}]
    none: [{kind: peer, networks: [10.0.0.0/8]}]
    samples:
      positive:
        - {classification: {device_class: infusion_pump}, facts: {service_offered: [tcp/23]}}
      negative: [{classification: {device_class: infusion_pump}}]
policies:
  - id: policy.t
    title: P
    device_classes: [infusion_pump]
    summary: "{class_label}: {values}"
    runbook: "1."
    peers: [{classes: [pacs], networks: [private], roles: [dns_server], offers: [tcp/443]}]
    services_used: [tcp/443, "udp/1-100"]
    protocols: [tls]
    samples:
      positive: [{classification: {device_class: infusion_pump}, facts: {protocol: [ftp]}}]
      negative: [{classification: {device_class: infusion_pump}}]
"""

YAML_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)


def _paths(node: object, prefix: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*prefix, index))
    return found


def _replace(node: object, path: tuple[object, ...], value: object) -> object:
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(node, dict):
        return {k: (_replace(v, rest, value) if k == head else v) for k, v in node.items()}
    assert isinstance(node, list)
    return [(_replace(v, rest, value) if i == head else v) for i, v in enumerate(node)]


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data(), value=YAML_VALUES)
def test_any_value_anywhere_gives_a_located_error_or_a_library(
    tmp_path: Path, data: st.DataObject, value: object
) -> None:
    documents = [yaml.safe_load(GOOD_FINGERPRINT), yaml.safe_load(GOOD_RULE_AND_POLICY)]
    document = data.draw(st.sampled_from(documents))
    path = data.draw(st.sampled_from(_paths(document)))
    mutated = _replace(document, path, value)
    target = tmp_path / "fuzz"
    target.mkdir(exist_ok=True)
    (target / "x.yml").write_text(yaml.safe_dump(mutated, allow_unicode=True), encoding="utf-8")
    try:
        load_library([target])
    except SignatureError as error:
        assert error.errors
        for line in error.errors:
            assert re.match(rf"^{re.escape(str(target / 'x.yml'))}:\d+: \S", line), line


# --- overrides --------------------------------------------------------------------------------


def test_a_later_directory_replaces_an_entry_with_the_same_id(tmp_path: Path) -> None:
    shipped = write(tmp_path / "shipped", "pump.yml", GOOD_FINGERPRINT).parent
    local_text = GOOD_FINGERPRINT.replace("vendor: Acme,", "vendor: Acme Local,")
    local = write(tmp_path / "site", "pump.yml", local_text).parent
    library = load_library([shipped, local])
    assert [f.result.vendor for f in library.fingerprints] == ["Acme Local"]
    assert library.origins["fp.test.pump"].startswith(str(local))


def test_a_local_file_beside_the_shipped_one_overrides_it(tmp_path: Path) -> None:
    write(tmp_path, "pump.yml", GOOD_FINGERPRINT)
    write(tmp_path, "pump.local.yml", GOOD_FINGERPRINT.replace("vendor: Acme,", "vendor: Ours,"))
    library = load_library([tmp_path])
    assert [f.result.vendor for f in library.fingerprints] == ["Ours"]


def test_enabled_false_turns_an_entry_off_without_editing_the_shipped_file(
    tmp_path: Path,
) -> None:
    shipped = write(tmp_path, "pump.yml", GOOD_FINGERPRINT)
    before = shipped.read_bytes()
    write(tmp_path, "pump.local.yml", "fingerprints:\n  - {id: fp.test.pump, enabled: false}\n")
    library = load_library([tmp_path])
    assert library.fingerprints == []
    assert library.disabled == {"fp.test.pump"}
    assert shipped.read_bytes() == before
    result = run_santinel("signatures", "check", str(tmp_path))
    assert result.returncode == 0
    assert "0 fingerprints" in result.stdout and "1 disabled" in result.stdout


def test_disabling_an_unknown_id_is_an_error(tmp_path: Path) -> None:
    write(tmp_path, "pump.yml", GOOD_FINGERPRINT)
    path = write(tmp_path, "x.local.yml", "fingerprints:\n  - {id: fp.test.typo, enabled: false}\n")
    errors = errors_of([tmp_path])
    assert errors == [f"{path}:2: 'enabled: false' for unknown id 'fp.test.typo'"]


def test_the_same_id_twice_at_the_same_level_is_an_error(tmp_path: Path) -> None:
    write(tmp_path, "a.yml", GOOD_FINGERPRINT)
    write(tmp_path, "b.yml", GOOD_FINGERPRINT)
    errors = errors_of([tmp_path])
    assert len(errors) == 1 and "duplicate id 'fp.test.pump'" in errors[0]
    assert f"first at {tmp_path / 'a.yml'}:2" in errors[0]


def test_one_id_for_two_kinds_of_entry_is_an_error(tmp_path: Path) -> None:
    write(tmp_path, "a.yml", GOOD_FINGERPRINT)
    rule = GOOD_RULE_AND_POLICY.replace("id: rule.t", "id: fp.test.pump")
    path = write(tmp_path, "b.yml", rule)
    errors = errors_of([tmp_path])
    assert errors == [
        f"{path}:2: id 'fp.test.pump' is already a fingerprint at {tmp_path / 'a.yml'}:2"
    ]


def test_a_full_local_entry_can_turn_an_entry_off(tmp_path: Path) -> None:
    write(tmp_path, "pump.yml", GOOD_FINGERPRINT)
    off = GOOD_FINGERPRINT.replace(
        "    title: Test pump\n", "    title: Test pump\n    enabled: false\n"
    )
    write(tmp_path, "pump.local.yml", off)
    library = load_library([tmp_path])
    assert library.fingerprints == [] and library.disabled == {"fp.test.pump"}


# --- the shipped library ----------------------------------------------------------------------


def test_default_directory_is_the_checkouts_signatures_folder() -> None:
    assert default_signature_dirs() == [REPO / "signatures"]


def test_shipped_library_covers_the_medical_classes_and_vendors() -> None:
    library = load_library(default_signature_dirs())
    medical = [f for f in library.fingerprints if f.result.device_class in MEDICAL_CLASSES]
    assert len(medical) >= 25
    vendors = {f.result.vendor for f in medical if f.result.vendor}
    assert len(vendors) >= 10
    assert {f.result.device_class for f in medical} == MEDICAL_CLASSES
    assert len(library.rules) >= 15
    policed = {c for p in library.policies for c in p.device_classes}
    assert policed >= MEDICAL_CLASSES
    assert all(f.sources for f in library.fingerprints)
    referenced = [
        r for r in library.rules if any(x.startswith(("CVE-", "ICS")) for x in r.references)
    ]
    assert len(referenced) >= 10


def test_vocabulary_is_documented_and_every_class_has_words() -> None:
    doc = (REPO / "docs" / "signatures.md").read_text(encoding="utf-8")
    for name in (*DEVICE_CLASSES, *CRITICALITIES):
        assert f"`{name}`" in doc, name
    assert set(CLASS_LABELS) == set(DEVICE_CLASSES)
    assert set(DEVICE_CLASSES) > MEDICAL_CLASSES


# --- santinel signatures test -----------------------------------------------------------------


def test_signatures_test_passes_on_the_shipped_library() -> None:
    result = run_santinel("signatures", "test")
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r": \d+ samples passed, 0 failed", result.stdout)


def test_signatures_test_prints_a_failing_sample_and_exits_1(tmp_path: Path) -> None:
    wrong = GOOD_FINGERPRINT.replace('"Acme Toys"', '"ACME MEDICAL"')
    path = write(tmp_path, "wrong.yml", wrong)
    result = run_santinel("signatures", "test", str(tmp_path))
    assert result.returncode == 1
    assert f"{path}:2: FAIL fp.test.pump negative sample 1: matched with confidence 0.60" in (
        result.stdout
    )
    assert "1 samples passed, 1 failed" in result.stdout


HUE_FINGERPRINT = """\
fingerprints:
  - id: fp.test.hue
    title: Hue bridge
    sources: [test]
    result: {vendor: Signify, device_class: generic_iot, criticality: low}
    evidence:
      - {kind: oui_vendor, pattern: '^philips lighting', weight: 0.6}
    samples:
      positive:
        - {capture: iot-sentinel/HueBridge/Setup-A-1-STA.pcap, device: "00:17:88:24:76:ff"}
      negative:
        - {capture: iot-sentinel/HueBridge/Setup-A-1-STA.pcap, device: "%s"}
"""


@pytest.mark.shared
def test_capture_samples_run_through_the_pipeline(tmp_path: Path, shared_pcaps: Path) -> None:
    assert (shared_pcaps / "iot-sentinel/HueBridge/Setup-A-1-STA.pcap").is_file()
    path = write(tmp_path, "hue.yml", HUE_FINGERPRINT % "02:00:00:00:00:99")
    result = run_santinel("signatures", "test", "-v", str(tmp_path))
    assert result.returncode == 1
    assert f"{path}:2: ok fp.test.hue positive sample 1: matched with confidence 0.60" in (
        result.stdout
    )
    assert f"{path}:2: FAIL fp.test.hue negative sample 1: device not in capture" in result.stdout


def test_the_documented_override_example_is_valid_and_overrides(tmp_path: Path) -> None:
    doc = (REPO / "docs" / "signatures.md").read_text(encoding="utf-8")
    example = doc.split("one more allowed peer:\n\n```yaml\n", 1)[1].split("```", 1)[0]
    write(tmp_path / "site", "site.yml", example)
    library = load_library([*default_signature_dirs(), tmp_path / "site"])
    (policy,) = [p for p in library.policies if p.id == "policy.infusion-pump"]
    assert library.origins[policy.id].startswith(str(tmp_path / "site"))
    result = run_santinel("signatures", "test", str(REPO / "signatures"), str(tmp_path / "site"))
    assert result.returncode == 0, result.stdout[-2000:]


def test_remembered_answers_belong_to_their_own_test() -> None:
    from monitor.signatures import Condition

    values = ["ip:10.1.2.3", "ext:203.0.113.9", "ip:192.168.1.5", "00:1b:63:aa:bb:01"]
    clinical = Condition(kind="peer", networks=["10.0.0.0/8"])
    home = Condition(kind="peer", networks=["192.168.0.0/16"])
    internet = Condition(kind="peer", networks=["public"])
    for _ in range(2):  # the second round answers from memory
        assert clinical.matching(values) == ["ip:10.1.2.3"]
        assert home.matching(values) == ["ip:192.168.1.5"]
        assert internet.matching(values) == ["ext:203.0.113.9"]
    named = Condition(kind="peer_name", pattern=r"\.example$")
    assert named.matching(["pacs.example", "pacs.example.org"]) == ["pacs.example"]


def test_a_matcher_tests_each_value_once_and_answers_in_the_order_asked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import monitor.signatures as signatures
    from monitor.signatures import Condition

    monkeypatch.setattr(signatures, "_MATCH_MEMO", {})
    tested: list[str] = []
    real = Condition.matches

    def counting(self: Condition, value: str) -> bool:
        tested.append(value)
        return real(self, value)

    monkeypatch.setattr(Condition, "matches", counting)
    named = Condition(kind="peer_name", pattern=r"\.example$")
    names = ["b.example", "a.org", "a.example", "c.org"]
    assert named.matching(names) == ["b.example", "a.example"]
    again = [*reversed(names), "d.example"]  # each answered from memory, but the new one
    assert named.matching(again) == ["a.example", "b.example", "d.example"]
    assert tested == [*names, "d.example"]


def test_remembered_answers_stay_bounded_in_matchers_and_in_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import monitor.signatures as signatures
    from monitor.signatures import Condition

    monkeypatch.setattr(signatures, "_MATCH_MEMO", {})
    monkeypatch.setattr(signatures, "MATCH_MEMO_MATCHERS", 2)
    monkeypatch.setattr(signatures, "MATCH_MEMO_SIZE", 3)
    matchers = [Condition(kind="peer", networks=[f"10.{i}.0.0/16"]) for i in range(3)]
    values = [f"ip:10.{i}.0.{j}" for i in range(3) for j in range(3)]
    for _ in range(2):
        for i, matcher in enumerate(matchers):
            assert matcher.matching(values) == [f"ip:10.{i}.0.{j}" for j in range(3)]
            assert len(signatures._MATCH_MEMO) <= 2
            assert all(
                len(hits) + len(misses) <= len(values)
                for _, hits, misses in signatures._MATCH_MEMO.values()
            )
    # past its bound a matcher's memory starts again rather than growing
    matchers[0].matching([f"ip:10.9.9.{j}" for j in range(5)])
    (_, hits, misses), *_ = [
        held for held in signatures._MATCH_MEMO.values() if held[0] is matchers[0]
    ]
    assert len(hits) + len(misses) <= 5
