"""The daemon's YAML configuration: strict schema, defaults for every option, FILE:LINE errors.

Every option is documented in ``docs/configuration.md`` with its default (keep the two in
step: ``tests/test_config.py`` checks that every key of the model appears there).

Promises:
- an unknown key anywhere is an error (typos never pass silently);
- every option has a default, so an empty file is a valid config;
- errors are one line each, ``FILE:LINE: key.path: message`` (see ``monitor.yamlfile``);
- durations are seconds, written as a number or a Prometheus-style duration (``90s``,
  ``5m``, ``1h30m``, ``7d``, ``2w``).
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, ValidationInfo, field_validator

from monitor.capture import RING_BYTES
from monitor.flows import DEFAULT_MAX_FLOWS
from monitor.inventory import DEFAULT_MAX_DEVICES
from monitor.yamlfile import StrictModel, YamlModelError, load_model

DEFAULT_LISTEN_ADDRESS = "127.0.0.1:10575"
DEFAULT_STATE_PATH = Path("/var/lib/santinel/state.db")

_DURATION = re.compile(
    r"^(?:(?P<w>\d+)w)?(?:(?P<d>\d+)d)?(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m(?!s))?"
    r"(?:(?P<s>\d+(?:\.\d+)?)s)?(?:(?P<ms>\d+)ms)?$"
)
_UNIT_SECONDS = {"w": 604800.0, "d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def parse_duration(value: Any) -> Any:
    """``"1h30m"`` -> 5400.0; numbers pass through; anything else is left to pydantic."""
    if isinstance(value, str):
        text = value.strip()
        match = _DURATION.match(text)
        if not text or match is None or not any(match.groupdict().values()):
            raise ValueError("not a duration (use seconds or e.g. 90s, 5m, 1h30m, 7d)")
        return sum(float(v) * _UNIT_SECONDS[k] for k, v in match.groupdict().items() if v)
    if isinstance(value, bool):
        raise ValueError("not a duration (use seconds or e.g. 90s, 5m, 1h30m, 7d)")
    return value


Duration = Annotated[float, BeforeValidator(parse_duration), Field(ge=0)]
PositiveDuration = Annotated[float, BeforeValidator(parse_duration), Field(gt=0)]


def split_listen_address(address: str) -> tuple[str, int]:
    """``"127.0.0.1:10575"`` -> (host, port); ``"[::1]:10575"``; ``":10575"`` (all addresses)."""
    host, sep, port_text = address.rpartition(":")
    if not sep or not port_text.isdigit():
        raise ValueError("must be HOST:PORT, [IPV6]:PORT or :PORT")
    port = int(port_text)
    if not 0 <= port <= 65535:
        raise ValueError("port must be 0..65535")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError("bracketed host must be an IPv6 address") from None
    elif ":" in host:
        raise ValueError("write an IPv6 address in brackets: [::1]:10575")
    return host, port


def is_loopback_host(host: str) -> bool:
    """True when ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name other than localhost may resolve anywhere


class CaptureConfig(StrictModel):
    interface: str | None = None
    bpf_filter: str = ""
    pcap: Path | None = None
    replay_speed: float = Field(default=1.0, ge=0, le=1000)
    snaplen: int = Field(default=65535, ge=64, le=262144)
    buffer_bytes: int = Field(default=RING_BYTES, ge=64 * 1024, le=2 * 1024**3)
    # capture processes sharing the interface (PACKET_FANOUT by flow); live capture only
    workers: int = Field(default=1, ge=1)

    @field_validator("workers")
    @classmethod
    def _at_most_cores(cls, value: int) -> int:
        cores = os.cpu_count() or 1
        if value > cores:
            raise ValueError(f"at most {cores} (the cores of this machine)")
        return value

    @field_validator("pcap")
    @classmethod
    def _one_source(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is not None and info.data.get("interface") is not None:
            raise ValueError("set capture.interface or capture.pcap, not both")
        return value


class WebConfig(StrictModel):
    listen_address: str = DEFAULT_LISTEN_ADDRESS
    config_file: Path | None = None
    allow_insecure_remote: bool = False
    max_connections: int = Field(default=16, ge=1, le=1024)

    @field_validator("listen_address")
    @classmethod
    def _address(cls, value: str) -> str:
        split_listen_address(value)
        return value


class StateConfig(StrictModel):
    path: Path = DEFAULT_STATE_PATH
    checkpoint_interval: PositiveDuration = 60.0


class SignaturesConfig(StrictModel):
    # local folders, loaded after the shipped library: their entries add to it, override an
    # entry with the same id, or turn one off (``enabled: false``)
    dirs: list[Path] = Field(default_factory=list)
    # False: only ``dirs`` (a site that maintains its whole library itself)
    shipped: bool = True


class ProfilesConfig(StrictModel):
    window_seconds: Annotated[float, BeforeValidator(parse_duration), Field(ge=1, le=86400)] = 60.0


class TablesConfig(StrictModel):
    """Bounds of what the sensor tracks (see docs/performance.md): beyond them it evicts and
    counts (santinel_flows_evicted_total, santinel_devices_evicted_total)."""

    max_flows: int = Field(default=DEFAULT_MAX_FLOWS, ge=1000, le=50_000_000)
    max_devices: int = Field(default=DEFAULT_MAX_DEVICES, ge=100, le=10_000_000)


class BaselineConfig(StrictModel):
    min_duration: Duration = 86400.0
    min_windows: int = Field(default=120, ge=1)
    fact_ttl: PositiveDuration = 30 * 86400.0
    frozen: bool = False


class ExporterConfig(StrictModel):
    max_devices: int = Field(default=1000, ge=0, le=100000)
    device_ttl: PositiveDuration = 7 * 86400.0


class AnomaliesConfig(StrictModel):
    hold_seconds: Duration = 3600.0
    events_file: Path | None = None


class PrivacyConfig(StrictModel):
    # key and key_file come first so that the check below sees them
    key: str | None = Field(default=None, min_length=16)
    key_file: Path | None = None
    pseudonymize_addresses: bool = False

    @field_validator("key_file")
    @classmethod
    def _one_key(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is not None and info.data.get("key") is not None:
            raise ValueError("set privacy.key or privacy.key_file, not both")
        return value

    @field_validator("pseudonymize_addresses")
    @classmethod
    def _key_when_needed(cls, value: bool, info: ValidationInfo) -> bool:
        if value and info.data.get("key") is None and info.data.get("key_file") is None:
            raise ValueError("needs privacy.key or privacy.key_file")
        return value


class LoggingConfig(StrictModel):
    format: Literal["logfmt", "json"] = "logfmt"
    level: Literal["debug", "info", "warn", "error"] = "info"


class Config(StrictModel):
    capture: CaptureConfig = CaptureConfig()
    web: WebConfig = WebConfig()
    state: StateConfig = StateConfig()
    signatures: SignaturesConfig = SignaturesConfig()
    tables: TablesConfig = TablesConfig()
    profiles: ProfilesConfig = ProfilesConfig()
    baseline: BaselineConfig = BaselineConfig()
    exporter: ExporterConfig = ExporterConfig()
    anomalies: AnomaliesConfig = AnomaliesConfig()
    privacy: PrivacyConfig = PrivacyConfig()
    logging: LoggingConfig = LoggingConfig()


class ConfigError(YamlModelError):
    """The config file is unreadable or invalid; ``errors`` has one FILE:LINE line each."""


def load_config(path: Path | None) -> Config:
    """The config from ``path`` (relative paths inside are relative to the file), or defaults."""
    if path is None:
        return Config()
    try:
        config = load_model(Config, path)
    except YamlModelError as error:
        raise ConfigError(error.errors) from None
    return _resolve_relative(config, path.parent)


def _resolve_relative(config: Config, base: Path) -> Config:
    def fix(p: Path | None) -> Path | None:
        return p if p is None or p.is_absolute() else base / p

    return config.model_copy(
        update={
            "capture": config.capture.model_copy(update={"pcap": fix(config.capture.pcap)}),
            "web": config.web.model_copy(update={"config_file": fix(config.web.config_file)}),
            "state": config.state.model_copy(update={"path": fix(config.state.path)}),
            "signatures": config.signatures.model_copy(
                update={"dirs": [fix(d) for d in config.signatures.dirs]}
            ),
            "anomalies": config.anomalies.model_copy(
                update={"events_file": fix(config.anomalies.events_file)}
            ),
            "privacy": config.privacy.model_copy(update={"key_file": fix(config.privacy.key_file)}),
        }
    )


def privacy_key(config: PrivacyConfig) -> bytes | None:
    """The pseudonymisation key, or None when addresses are shown as they are."""
    if not config.pseudonymize_addresses:
        return None
    if config.key is not None:
        return config.key.encode()
    assert config.key_file is not None
    try:
        key = config.key_file.read_bytes().strip()
    except OSError as error:
        raise ConfigError(
            [f"{config.key_file}: cannot read privacy key: {error.strerror or 'error'}"]
        ) from None
    if len(key) < 16:
        raise ConfigError([f"{config.key_file}: privacy key shorter than 16 bytes"])
    return key
