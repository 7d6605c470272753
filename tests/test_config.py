"""The daemon config: defaults, durations, one exact FILE:LINE message per defect."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from monitor.config import Config, ConfigError, load_config, parse_duration, privacy_key
from monitor.yamlfile import StrictModel

DATA = Path(__file__).resolve().parent / "data" / "config"
DOCS = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"

EXPECTED = {
    "unknown-key": "4: capture.bfp_filter: unknown key",
    "unknown-section": "2: alerting: unknown key",
    "bad-duration": "3: baseline.min_duration: not a duration (use seconds or e.g. 90s, 5m, "
    "1h30m, 7d)",
    "both-sources": "3: capture.pcap: set capture.interface or capture.pcap, not both",
    "bad-listen-address": "2: web.listen_address: Input should be a valid string",
    "ipv6-without-brackets": "2: web.listen_address: write an IPv6 address in brackets: "
    "[::1]:10575",
    "pseudonymize-without-key": "2: privacy.pseudonymize_addresses: needs privacy.key or "
    "privacy.key_file",
    "bad-log-format": "3: logging.format: Input should be 'logfmt' or 'json'",
    "snaplen-too-small": "2: capture.snaplen: Input should be greater than or equal to 64",
    "duplicate-key": "3: duplicate key 'max_devices'",
    "not-a-mapping": "1: the file must be a mapping of keys to values",
    "broken-yaml": "3: expected ',' or ']', but got ':' (while parsing a flow sequence on line 2)",
    "python-tag": "2: could not determine a constructor for the tag "
    "'tag:yaml.org,2002:python/object/apply:os.system'",
    "wrong-type": "2: signatures.dirs: Input should be a valid list",
    "negative-ttl": "2: exporter.device_ttl: Input should be greater than 0",
}


def test_every_bad_fixture_has_its_expected_message() -> None:
    assert {p.name.removesuffix(".bad.yml") for p in DATA.glob("*.bad.yml")} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bad_config_gives_one_line_naming_file_and_line(name: str) -> None:
    path = DATA / f"{name}.bad.yml"
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.errors == [f"{path}:{EXPECTED[name]}"]


def test_several_defects_are_all_reported_in_line_order(tmp_path: Path) -> None:
    path = tmp_path / "many.yml"
    path.write_text("logging:\n  format: xml\ncapture:\n  snaplen: 1\n  nope: 2\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert [e.split(": ")[0] for e in caught.value.errors] == [
        f"{path}:2",
        f"{path}:4",
        f"{path}:5",
    ]


def test_empty_file_and_no_file_give_the_documented_defaults(tmp_path: Path) -> None:
    empty = tmp_path / "empty.yml"
    empty.write_text("# nothing\n")
    for config in (load_config(empty), load_config(None)):
        assert config.web.listen_address == "127.0.0.1:10575"
        assert config.web.allow_insecure_remote is False
        assert config.state.path == Path("/var/lib/santinel/state.db")
        assert config.profiles.window_seconds == 60
        assert config.logging.format == "logfmt"
        # a ring that outlasts a window's close: every active device judged at once
        assert config.capture.buffer_bytes == 128 * 1024 * 1024
    assert "[ buffer_bytes: <int> | default = 134217728 ]" in DOCS.read_text()


def test_good_config_parses_durations_and_resolves_relative_paths() -> None:
    config = load_config(DATA / "good.yml")
    assert config.state.checkpoint_interval == 120
    assert config.baseline.min_duration == 36 * 3600
    assert config.baseline.fact_ttl == 14 * 86400
    assert config.profiles.window_seconds == 30
    assert config.anomalies.hold_seconds == 900
    assert config.state.path == DATA / "state.db"
    assert config.signatures.dirs == [DATA / "signatures"]
    assert config.anomalies.events_file == Path("/var/log/santinel/events.jsonl")
    assert privacy_key(config.privacy) == b"a-long-site-secret-key"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("5m", 300),
        ("1h30m", 5400),
        ("7d", 604800),
        ("2w", 1209600),
        ("250ms", 0.25),
        ("1.5s", 1.5),
        (12, 12),
    ],
)
def test_durations_accept_prometheus_notation(text: object, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5", "m", "5 m", "1x", "-5s", "1m1h"])
def test_durations_reject_anything_else(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def _keys(model: type[StrictModel], prefix: str = "") -> list[str]:
    out = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, StrictModel):
            out.extend(_keys(annotation, f"{prefix}{name}."))
        else:
            out.append(f"{prefix}{name}")
    return out


def test_every_option_is_documented_with_its_section() -> None:
    docs = DOCS.read_text()
    body = docs[docs.index("```yaml") :]
    for dotted in _keys(Config):
        section, key = dotted.split(".")
        assert re.search(rf"^{section}:$", body, re.M), section
        part = body[body.index(f"\n{section}:") :]
        following = re.search(r"\n\w+:\n", part[2:])
        part = part[: following.start() + 2] if following else part
        assert re.search(rf"\[ {key}: ", part), f"{dotted} is not documented"


def test_privacy_key_file_is_read_and_a_short_key_refused(tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_text("short\n")
    path = tmp_path / "c.yml"
    path.write_text("privacy:\n  pseudonymize_addresses: true\n  key_file: key\n")
    config = load_config(path)
    with pytest.raises(ConfigError, match="shorter than 16 bytes"):
        privacy_key(config.privacy)
    key.write_text("0123456789abcdef0123\n")
    assert privacy_key(config.privacy) == b"0123456789abcdef0123"
