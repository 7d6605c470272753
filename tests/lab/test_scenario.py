"""Scenario files: the shipped ones validate and meet their brief; broken ones are reported
with file and line, one line per problem, without echoing values."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.lab.scenario import (
    ANOMALY_OF_EVENT,
    ScenarioError,
    load_scenario,
    parse_scenario,
)

SCENARIOS = Path(__file__).resolve().parents[2] / "monitor" / "lab" / "scenarios"
CI_WARD = Path(__file__).resolve().parent / "ci-ward.yml"

GOOD = """\
name: tiny
time_scale: 60
duration: 10m
devices:
  - name: pacs
    class: pacs
    model: Vue PACS
    oui: "00:1D:4A"
    ip: 10.42.0.10
    serves: [dicom]
  - name: ct1
    class: imaging_modality
    model: Revolution CT
    oui: "44:4B:5D"
    talks:
      - {protocol: dicom, to: pacs, calling_ae: CT1, every: 5m}
events:
  - {at: 2m, kind: silence, device: ct1}
"""


def errors_of(text: str) -> list[str]:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text, "ward.yml")
    return caught.value.errors


def test_a_good_scenario_parses_with_durations_in_scenario_time() -> None:
    scenario = parse_scenario(GOOD, "ward.yml")
    talk = scenario.device("ct1").talks[0]
    assert talk.every == 300.0
    assert scenario.wall(talk.every) == 5.0
    assert scenario.wall(scenario.duration) == 10.0
    assert scenario.device("ct1").oui == "44:4b:5d"


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("    model: Revolution CT\n", "    model: Revolution CT\n    colour: red\n",
         "ward.yml:14: devices[1].colour: unknown key"),
        ("every: 5m}", "every: 5 fortnights}", "ward.yml:16: devices[1].talks[0].every:"),
        ("to: pacs,", "to: nowhere,", "ward.yml:16: devices[1].talks[0].to: no device"),
        ("kind: silence", "kind: meteor", "ward.yml:18: events[0]: unknown kind"),
        ("ip: 10.42.0.10", "ip: 10.42.0.300", "ward.yml:9: devices[0].ip: not an IPv4"),
        ('oui: "44:4B:5D"', "oui: 12", "ward.yml:14: devices[1].oui: an OUI must be"),
        ("time_scale: 60", 'time_scale: "fast"', "ward.yml:2: time_scale:"),
        ("class: pacs", "class: toaster", "ward.yml:6: devices[0].class: not a device class"),
        ("  - {at: 2m,", "  - {at: 20m,", "ward.yml:18: events[0].at: after the end"),
        ("ip: 10.42.0.10", "ip: 10.42.0.100", "ward.yml:9: devices[0].ip: inside the DHCP"),
        ("ip: 10.42.0.10", "ip: 10.42.0.230", "ward.yml:9: devices[0].ip: inside the DHCP"),
        ("    serves: [dicom]\n", "    serves: [hl7]\n",
         "ward.yml:16: devices[1].talks[0].to: that endpoint does not serve dicom"),
    ],
)  # fmt: skip
def test_an_invalid_scenario_is_reported_with_file_line_and_key(
    old: str, new: str, expected: str
) -> None:
    assert old in GOOD
    errors = errors_of(GOOD.replace(old, new, 1))
    assert any(line.startswith(expected) for line in errors), errors


def test_yaml_syntax_errors_and_duplicate_keys_name_their_line() -> None:
    assert errors_of(GOOD.replace("devices:\n", "devices: [\n"))[0].startswith("ward.yml:")
    duplicate = GOOD.replace("    model: Vue PACS\n", "    model: Vue PACS\n    model: Other\n")
    assert errors_of(duplicate) == ["ward.yml:8: duplicate key 'model'"]


def test_every_problem_of_a_file_is_reported_at_once_in_line_order() -> None:
    text = GOOD.replace("every: 5m}", "every: soon}").replace("ip: 10.42.0.10", "ip: nope")
    errors = errors_of(text)
    assert [e.split(":")[1] for e in errors] == ["9", "16"]


def test_error_messages_do_not_echo_the_offending_value() -> None:
    errors = errors_of(GOOD.replace("ip: 10.42.0.10", "ip: ZZCANARY-SECRET"))
    assert errors and not any("ZZCANARY" in line for line in errors)


def test_a_device_needs_exactly_one_of_mac_and_oui() -> None:
    errors = errors_of(GOOD.replace('    oui: "00:1D:4A"\n', ""))
    assert errors == ["ward.yml:5: devices[0]: give exactly one of mac and oui"]


def test_a_file_that_is_not_a_mapping_or_not_utf8_is_one_error(tmp_path: Path) -> None:
    assert errors_of("- a\n- b\n") == ["ward.yml:1: a scenario must be a mapping of keys to values"]
    broken = tmp_path / "broken.yml"
    broken.write_bytes(b"name: x\nmodel: \xff\n")
    with pytest.raises(ScenarioError) as caught:
        load_scenario(broken)
    assert caught.value.errors == [f"{broken}:2: not valid UTF-8"]


@pytest.mark.parametrize("name", ["demo.yml", "benign-ward.yml", "incidents.yml"])
def test_shipped_scenarios_validate(name: str) -> None:
    load_scenario(SCENARIOS / name)


def test_the_benign_ward_has_ten_devices_of_six_classes_for_ten_minutes_and_no_event() -> None:
    ward = load_scenario(SCENARIOS / "benign-ward.yml")
    assert len(ward.devices) >= 10
    assert len({d.device_class for d in ward.devices}) >= 6
    assert ward.wall(ward.duration) >= 600
    assert ward.events == []


def test_the_incidents_scenario_and_the_ci_scenario_play_every_event_kind() -> None:
    for path in (SCENARIOS / "incidents.yml", CI_WARD):
        scenario = load_scenario(path)
        assert {e.kind for e in scenario.events} == set(ANOMALY_OF_EVENT), path


def test_the_demo_is_short() -> None:
    demo = load_scenario(SCENARIOS / "demo.yml")
    assert 60 <= demo.wall(demo.duration) <= 90
    assert 8 <= len(demo.devices) <= 14


def test_a_billion_laughs_file_is_refused_quickly() -> None:
    levels = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    for n in range(1, 10):
        refs = ", ".join([f"*a{n - 1}"] * 9)
        levels.append(f"a{n}: &a{n} [{refs}]")
    text = "\n".join(levels) + "\nname: bomb\nduration: 1m\ndevices: *a9\n"
    errors = errors_of(text)
    assert errors and all(line.startswith("ward.yml:") for line in errors)
