"""The records that flow between the parts: devices, classifications, window profiles.

These are the contracts of DESIGN.md's data flow in code. Each part owns the code that
fills them (the inventory fills ``Device``; the signature matcher ``Classification``; the
pipeline ``WindowProfile``); the others only read them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from monitor.facts import FactTable


@dataclass(frozen=True, slots=True)
class Evidence:
    """One piece of evidence that a signature matched: which kind, what value, what weight."""

    kind: str
    value: str
    weight: float


@dataclass(frozen=True, slots=True)
class Classification:
    """The best fingerprint match for a device, with the evidence that produced it."""

    signature: str  # fingerprint id
    vendor: str | None
    device_class: str  # from the vocabulary in monitor.signatures.DEVICE_CLASSES
    model: str | None
    criticality: str  # life_sustaining | high | medium | low
    confidence: float  # 0..1
    evidence: tuple[Evidence, ...] = ()


UNKNOWN_CLASS = "unknown"


@dataclass(slots=True)
class Device:
    """One device of the inventory.

    ``id`` is stable: the MAC (``"00:1b:63:aa:bb:cc"``) for a device on the local segment, or
    ``"ip:10.1.2.3"`` where the capture has no L2 header. Traffic counters are totals since
    first seen; ``facts`` holds everything else the device was seen doing (see monitor.facts).
    """

    id: str
    mac: str | None
    locally_administered: bool
    vendor: str | None  # organisation from the IEEE registry, None if not registered
    first_seen: float  # capture time, seconds since the epoch
    last_seen: float
    facts: FactTable = field(default_factory=FactTable)
    tx_packets: int = 0
    tx_bytes: int = 0
    rx_packets: int = 0
    rx_bytes: int = 0
    classification: Classification | None = None
    # True when the device is on the local segment (seen with its own MAC as source)
    local: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.facts, FactTable):  # a dict of dicts, as tests and samples write
            self.facts = FactTable(self.facts)

    @property
    def ips(self) -> list[str]:
        return sorted(self.facts.values_of("ip"))

    @property
    def hostnames(self) -> list[str]:
        return sorted(self.facts.values_of("hostname"))

    @property
    def device_class(self) -> str:
        return self.classification.device_class if self.classification else UNKNOWN_CLASS


@dataclass(slots=True)
class WindowProfile:
    """What one device did in one time window of capture time.

    Built by the pipeline when a window closes; consumed by ``profiles``/``baseline`` and the
    detectors. ``conversations`` maps a steady conversation key (``"peer|service"``, e.g.
    ``"00:1b:..|tcp/2575"`` or ``"ext:203.0.113.9|tcp/443"``) to the capture times of the
    messages the device sent in it (a message: a packet with payload, or a UDP datagram),
    from which cadence is learned.
    """

    device_id: str
    start: float
    end: float
    tx_packets: int = 0
    tx_bytes: int = 0
    rx_packets: int = 0
    rx_bytes: int = 0
    flows_started: int = 0
    peers: set[str] = field(default_factory=set)
    services: dict[str, int] = field(default_factory=dict)  # "tcp/2575" -> packets
    protocols: dict[str, int] = field(default_factory=dict)  # "hl7" -> packets
    # packet size histogram, bins: <=64, <=128, <=256, <=512, <=1024, <=1518, >1518
    size_histogram: list[int] = field(default_factory=lambda: [0] * 7)
    # facts first or again seen in this window: kind -> value -> count (a ``FactCounts``
    # once the pipeline closed the window; a dict of dicts reads the same)
    facts: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    conversations: dict[str, list[float]] = field(default_factory=dict)
    # for a device that has used several IPv4 addresses: address -> (packets it sent from
    # it in this window, the last one's time), from which the ARP detector tells a device
    # that moved from one answering for several, as of the window's end
    address_use: dict[str, tuple[int, float]] = field(default_factory=dict)


SIZE_BIN_EDGES = (64, 128, 256, 512, 1024, 1518)


@dataclass(slots=True)
class TableStats:
    """How full the sensor's bounded tables are, and what they dropped to stay bounded."""

    flows_active: int = 0
    flows_started: int = 0
    flows_evicted: dict[str, int] = field(default_factory=dict)  # reason -> flows
    devices: int = 0
    devices_evicted: int = 0
    facts_evicted: int = 0  # fact values dropped past a device's bound per kind
