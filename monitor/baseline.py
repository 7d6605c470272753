"""Per-device baselines: what each device normally does, learned from window profiles.

A ``Baseline`` holds, for one device:

- learned **facts** (kind -> value -> ``Fact`` with first seen, last seen, count), where an
  approved fact also carries who approved it and why;
- learned **volumes** (``profiles.VolumeHistory``: median/MAD per window, by hour of week once
  enough weeks exist) and **cadence** per steady conversation (``profiles.Cadence``, the rows
  of one ``CadenceTable``);
- a **learning state**: ``learning`` until BOTH ``min_duration`` seconds of capture time (from
  the start of its first window to the end of its last) and ``min_windows`` active windows are
  reached, then ``enforcing``. ``progress`` (0..1) is the lesser of the two ratios;
- **pending** facts: values first seen while enforcing. They are deviations, so they are not
  learned (a deviation must not quietly become normal); they are kept, with counts, so that a
  person can review and ``approve`` them.

Facts not seen for ``fact_ttl`` seconds of capture time expire. A frozen baseline learns
nothing (it is still used for scoring).

``BaselineStore`` holds the baselines of all devices. It follows river's prequential
contract: for each closed window a caller first scores the window against
``store.get(device_id)`` (``deviations``, ``volumes.expected``, ``cadence``), and only then
calls ``store.learn_window(profiles, analysis)``; learning never happens inside a query.
Learning a window whose end is not after the device's last learned window is a no-op, so
replaying a capture that was partly learned already does not count anything twice.

Queries for detectors (all read-only): ``Baseline.deviations(profile)`` (facts it does not
know), ``Baseline.volume_scores(profile)`` (robust z-scores of the volumes, hour-of-week aware),
``Baseline.overdue(now)`` (steady conversations that missed their cadence),
``Baseline.expected_interval()`` (the main cadence), ``Baseline.enforcing``/``progress``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol

import yaml

from monitor.facts import FACT_KINDS, NO_FACTS, Fact, FactCounts, FactTable
from monitor.model import Device, WindowProfile
from monitor.profiles import (
    MAD_TO_SIGMA,
    VOLUME_FEATURES,
    Cadence,
    CadenceTable,
    FormatError,
    RobustStats,
    VolumeHistory,
    check_keys,
    format_time,
    parse_time,
    quantize_time,
    read_count,
    read_mapping,
    volume_vector,
)

LEARNING = "learning"
ENFORCING = "enforcing"


@dataclass(frozen=True, slots=True)
class BaselineConfig:
    """The knobs of learning; the daemon's config file sets them (``baseline:`` section)."""

    min_duration: float = 86_400.0  # seconds of capture time: a full day of the device's cycle
    min_windows: int = 120  # windows in which the device was active
    fact_ttl: float = 30 * 86_400.0  # a fact not seen for this long is forgotten
    history_windows: int = 512  # bounded volume history per device
    seasonal_weeks: int = 4  # hour-of-week history kept per slot
    seasonal_min_weeks: int = 2  # weeks a slot needs before it is used
    cadence_burst_gap: float = 0.5  # as the pipeline: closer messages are one burst
    cadence_max_gaps: int = 64  # gaps kept per conversation
    max_conversations: int = 256  # conversations tracked per device (least recent dropped)
    max_pending: int = 1024  # pending (unapproved) facts kept per device

    def __post_init__(self) -> None:
        if self.min_duration < 0 or self.fact_ttl <= 0 or self.cadence_burst_gap < 0:
            raise ValueError("baseline durations must be positive")
        if self.min_windows < 0 or self.history_windows < 1:
            raise ValueError("baseline window counts must be positive")
        if self.seasonal_weeks < 1 or not 1 <= self.seasonal_min_weeks <= self.seasonal_weeks:
            raise ValueError("seasonal_min_weeks must be between 1 and seasonal_weeks")
        if self.cadence_max_gaps < 1 or self.max_conversations < 1 or self.max_pending < 0:
            raise ValueError("baseline limits must be positive")


@dataclass(frozen=True, slots=True)
class Approval:
    """Who turned a deviation into a baseline fact, why, and when (capture or wall time)."""

    by: str
    why: str
    at: float


@dataclass(frozen=True, slots=True)
class Deviation:
    """A fact in a window profile that the baseline does not know."""

    kind: str
    value: str
    count: int  # sightings in the window
    pending_since: float | None  # when it was first seen while enforcing, if it was


@dataclass(frozen=True, slots=True)
class Overdue:
    """A steady conversation that missed its cadence."""

    conversation: str  # "peer|service"
    last_message: float
    expected_interval: float  # seconds (median gap)
    silent_for: float  # seconds since the last message


def profile_facts(profile: WindowProfile) -> dict[str, dict[str, int]]:
    """The facts a window profile shows: its ``facts`` plus its peers and protocols.

    Peers and protocols are also counters of the profile; they are folded in as ``peer`` and
    ``protocol`` facts so a baseline knows them even if the pipeline did not repeat them.
    """
    counts = profile.facts
    # every device's window is learned at each close: FactCounts builds its dicts at C speed
    facts = (
        counts.as_dicts()
        if isinstance(counts, FactCounts)
        else {kind: dict(values.items()) for kind, values in counts.items()}
    )
    peers = facts.setdefault("peer", {})
    for peer in profile.peers:
        peers.setdefault(peer, 1)
    protocols = facts.setdefault("protocol", {})
    for proto, packets in profile.protocols.items():
        protocols.setdefault(proto, packets)
    return {kind: values for kind, values in facts.items() if values}


class Baseline:
    """What one device normally does (see the module docstring)."""

    __slots__ = (
        "_oldest",
        "approvals",
        "cadence",
        "config",
        "device_id",
        "enforcing_since",
        "facts",
        "first_window_start",
        "frozen",
        "last_window_end",
        "pending",
        "volumes",
        "windows",
    )

    def __init__(self, device_id: str, config: BaselineConfig | None = None) -> None:
        self.device_id = device_id
        self.config = config or BaselineConfig()
        self.facts = FactTable()
        # most baselines never have a pending fact nor an approval: they share empty ones
        # until they do (``_pending_to_write``, ``_approvals_to_write``), 150 bytes a device
        self.pending: FactTable = NO_FACTS
        self.approvals: Mapping[tuple[str, str], Approval] = _NO_APPROVALS
        self.volumes = VolumeHistory(
            self.config.history_windows,
            self.config.seasonal_weeks,
            self.config.seasonal_min_weeks,
        )
        self.cadence = CadenceTable(self.config.cadence_burst_gap, self.config.cadence_max_gaps)
        self.first_window_start: float | None = None
        self.last_window_end: float | None = None
        self.windows = 0
        self.enforcing_since: float | None = None
        self.frozen = False
        # the oldest last-seen time of anything that can expire (None: unknown, sweep)
        self._oldest: float | None = None

    # --- state -----------------------------------------------------------------------------

    @property
    def state(self) -> str:
        return ENFORCING if self.enforcing_since is not None else LEARNING

    @property
    def enforcing(self) -> bool:
        return self.enforcing_since is not None

    @property
    def duration(self) -> float:
        """Capture time covered: from the start of the first learned window to the end of the
        last."""
        if self.first_window_start is None or self.last_window_end is None:
            return 0.0
        return self.last_window_end - self.first_window_start

    @property
    def progress(self) -> float:
        """0..1: how far learning is (1.0 once enforcing)."""
        if self.enforcing:
            return 1.0
        cfg = self.config
        by_time = 1.0 if cfg.min_duration <= 0 else self.duration / cfg.min_duration
        by_count = 1.0 if cfg.min_windows <= 0 else self.windows / cfg.min_windows
        return max(0.0, min(1.0, by_time, by_count))

    def _maybe_enforce(self, when: float) -> None:
        if (
            self.enforcing_since is None
            and self.duration >= self.config.min_duration
            and self.windows >= self.config.min_windows
        ):
            self.enforcing_since = when

    # --- learning --------------------------------------------------------------------------

    def learn(self, profile: WindowProfile) -> bool:
        """Learn one window; returns False (and changes nothing) when frozen or already
        learned (its end is not after the last learned window's end)."""
        if self.frozen:
            return False
        end = quantize_time(profile.end)
        start = quantize_time(profile.start)
        if self.last_window_end is not None and end <= self.last_window_end:
            return False
        if self.first_window_start is None:
            self.first_window_start = start
        self.last_window_end = end
        self.windows += 1
        enforcing = self.enforcing
        for kind, values in profile_facts(profile).items():
            if not enforcing:
                self.facts.record_counts(kind, values, end)
                continue
            for value, count in values.items():
                if self.facts.has(kind, value):
                    self.facts.record(kind, value, end, count)
                elif self._pending_size() < self.config.max_pending or self.pending.has(
                    kind, value
                ):
                    self._pending_to_write().record(kind, value, end, count)
        self.volumes.add(profile)
        self._learn_cadence(profile)
        self.expire(end)
        self._maybe_enforce(end)
        return True

    def _pending_size(self) -> int:
        return self.pending.value_count()

    def _pending_to_write(self) -> FactTable:
        if self.pending is NO_FACTS:
            self.pending = FactTable()
        return self.pending

    def _approvals_to_write(self) -> dict[tuple[str, str], Approval]:
        approvals = self.approvals
        if not isinstance(approvals, dict):
            approvals = self.approvals = {}
        return approvals

    def _learn_cadence(self, profile: WindowProfile) -> None:
        cadence = self.cadence
        cadence.observe_all(profile.conversations)
        # Keep the most recently active conversations.
        cadence.keep_latest(self.config.max_conversations)

    def expire(self, now: float) -> int:
        """Forget facts (and pending facts, and silent conversations) not seen for
        ``fact_ttl``; returns how many went. Approved facts expire like the others: an
        approval is about a value the device uses, and a value it stopped using is gone.

        Cheap when nothing is due: the oldest last-seen time is remembered after each sweep
        (learning only makes times newer), so a sweep runs only when something can expire.
        A sweep that leaves nothing remembers nothing: what is learned next is the oldest.
        """
        limit = now - self.config.fact_ttl
        if self._oldest is not None and limit <= self._oldest:
            return 0
        gone = 0
        oldest = float("inf")
        for table in (self.facts, self.pending):
            for kind in list(table):
                values = table[kind]
                for value, fact in list(values.items()):
                    if fact.last_seen < limit:
                        del values[value]
                        if self.approvals:
                            self._approvals_to_write().pop((kind, value), None)
                        gone += 1
                    elif fact.last_seen < oldest:
                        oldest = fact.last_seen
                if not values:
                    del table[kind]
        forgotten, oldest_message = self.cadence.forget_silent(limit, now)
        oldest = min(oldest, oldest_message)
        self._oldest = oldest if oldest != math.inf else None
        gone += forgotten
        return gone

    # --- queries (scoring) ----------------------------------------------------------------

    def knows(self, kind: str, value: str) -> bool:
        return self.facts.has(kind, value)

    def deviations(self, profile: WindowProfile) -> list[Deviation]:
        """The facts of ``profile`` that this baseline does not know, sorted by kind and value.

        Call it before the window is learned. It answers whatever the state; detectors report
        only while ``enforcing``.
        """
        out: list[Deviation] = []
        for kind, values in sorted(profile_facts(profile).items()):
            known = self.facts.get(kind, {})
            pending = self.pending.get(kind, {})
            for value, count in sorted(values.items()):
                if value not in known:
                    seen = pending.get(value)
                    out.append(
                        Deviation(kind, value, count, None if seen is None else seen.first_seen)
                    )
        return out

    def volume_scores(self, profile: WindowProfile, min_windows: int = 10) -> dict[str, float]:
        """Robust z-scores of the window's volumes against what is normal at that time
        (hour of week once known, else the recent windows); empty until ``min_windows``
        windows are learned. Call it before the window is learned."""
        if len(self.volumes) < min_windows:
            return {}
        scores: dict[str, float] = {}
        for feature, value in zip(VOLUME_FEATURES, volume_vector(profile), strict=True):
            expected = self.volumes.expected(feature, profile.start)
            if expected is not None:
                scores[feature] = expected.score(value)
        return scores

    def overdue(
        self, now: float, factor: float = 3.0, min_gaps: int = 8, max_spread: float = 0.25
    ) -> list[Overdue]:
        """Steady conversations whose next message is late at capture time ``now``.

        A conversation is steady when it has at least ``min_gaps`` gaps and its MAD is at most
        ``max_spread`` of its median; it is late when nothing came for longer than
        ``median + factor × spread``, where the spread is the MAD scaled to a standard
        deviation but at least 5 % of the median and 1 s. Sorted by key.
        """
        out: list[Overdue] = []
        for key in sorted(self.cadence):
            cadence = self.cadence[key]
            stats = cadence.stats()
            if stats is None or cadence.last_message is None or stats.median <= 0:
                continue
            if stats.n < min_gaps or stats.mad > max_spread * stats.median:
                continue
            spread = max(stats.mad * MAD_TO_SIGMA, 0.05 * stats.median, 1.0)
            allowed = stats.median + factor * spread
            silent = now - cadence.last_message
            if silent > allowed:
                out.append(Overdue(key, cadence.last_message, stats.median, silent))
        return out

    def expected_interval(self, min_gaps: int = 4) -> tuple[str, RobustStats] | None:
        """The device's main reporting cadence: its steadiest conversation.

        Among conversations with at least ``min_gaps`` measured gaps (or, if none has, at
        least one), the one with the smallest relative spread (MAD / median); ties: more
        gaps, then the key. ``None`` when no conversation has two bursts yet.
        """
        measured = [(key, c.stats()) for key, c in self.cadence.items()]
        usable = [(key, s) for key, s in measured if s is not None and s.median > 0]
        enough = [(key, s) for key, s in usable if s.n >= min_gaps] or usable
        if not enough:
            return None
        return min(enough, key=lambda ks: (ks[1].mad / ks[1].median, -ks[1].n, ks[0]))

    # --- review ----------------------------------------------------------------------------

    def approve(self, kind: str, value: str, who: str, why: str, when: float) -> Fact:
        """Make ``value`` a known fact of ``kind``, recording who approved it and why.

        A pending fact keeps its first seen and count; an unseen value starts with count 0.
        """
        if kind not in FACT_KINDS:
            raise ValueError(f"unknown fact kind {kind[:40]!r}")
        if not value or not who.strip() or not why.strip():
            raise ValueError("approve needs a value, who approves it and why")
        when = quantize_time(when)
        pending = self.pending.get(kind, {}).pop(value, None)
        if kind in self.pending and not self.pending[kind]:
            del self.pending[kind]
        values = self.facts.setdefault(kind)
        fact = values.get(value)
        if fact is None:
            fact = pending or Fact(when, when, 0)
        elif pending is not None:
            fact.see(pending.first_seen, pending.count)
            fact.see(pending.last_seen, 0)
        values[value] = fact
        self._approvals_to_write()[(kind, value)] = Approval(who.strip(), why.strip(), when)
        self._oldest = None  # an approval may carry an older time
        return fact

    def freeze(self) -> None:
        self.frozen = True

    def unfreeze(self) -> None:
        self.frozen = False

    # --- serialisation ---------------------------------------------------------------------

    def to_dict(self, derived: bool = True, compact: bool = False) -> dict[str, Any]:
        """A plain, ordered, JSON- and YAML-safe form; ``from_dict`` reads it back exactly.

        ``derived`` adds what is computed from the rest (state, progress, medians, MADs,
        intervals) for a reader; ``from_dict`` ignores it. ``compact`` writes the volume
        arrays as base64 bytes and the facts as lists. The state file stores that way."""
        shown: dict[str, Any] = (
            {"state": self.state, "progress": round(self.progress, 4)} if derived else {}
        )
        return {
            "device": self.device_id,
            **shown,
            "frozen": self.frozen,
            "windows": self.windows,
            "first_window_start": _time_or_none(self.first_window_start),
            "last_window_end": _time_or_none(self.last_window_end),
            "enforcing_since": _time_or_none(self.enforcing_since),
            "facts": self._facts_to_dict(self.facts, True, compact),
            "pending": self._facts_to_dict(self.pending, False, compact),
            "cadence": {key: self.cadence[key].to_dict(derived) for key in sorted(self.cadence)},
            "volumes": self.volumes.to_dict(derived, compact),
        }

    def _facts_to_dict(
        self, table: FactTable, with_approvals: bool, compact: bool = False
    ) -> dict[str, Any]:
        if compact:
            return self._facts_to_lists(table, with_approvals)
        out: dict[str, Any] = {}
        for kind in sorted(table):
            entries = []
            for value in sorted(table[kind]):
                fact = table[kind][value]
                entry: dict[str, Any] = {
                    "value": value,
                    "count": fact.count,
                    "first_seen": format_time(fact.first_seen),
                    "last_seen": format_time(fact.last_seen),
                }
                approval = self.approvals.get((kind, value)) if with_approvals else None
                if approval is not None:
                    entry["approved_by"] = approval.by
                    entry["why"] = approval.why
                    entry["approved_at"] = format_time(approval.at)
                entries.append(entry)
            if entries:
                out[kind] = entries
        return out

    @classmethod
    def from_dict(cls, data: object, config: BaselineConfig | None = None) -> Baseline:
        """Read ``to_dict``'s form back; raises ``FormatError`` naming the field at fault."""
        fields = read_mapping(data, "baseline")
        check_keys(
            fields,
            "baseline",
            required={
                "device",
                "frozen",
                "windows",
                "first_window_start",
                "last_window_end",
                "enforcing_since",
                "facts",
                "pending",
                "cadence",
                "volumes",
            },
            optional={"state", "progress"},  # derived, shown for review
        )
        device = fields["device"]
        if not isinstance(device, str) or not device or len(device) > 200:
            raise FormatError("baseline.device: expected a device id")
        baseline = cls(device, config)
        cfg = baseline.config
        where = f"device {device[:60]}"
        if not isinstance(fields["frozen"], bool):
            raise FormatError(f"{where}: frozen: expected true or false")
        baseline.frozen = fields["frozen"]
        baseline.windows = read_count(fields["windows"], f"{where}: windows")
        for name in ("first_window_start", "last_window_end", "enforcing_since"):
            value = fields[name]
            parsed = None if value is None else parse_time(value, f"{where}: {name}")
            setattr(baseline, name, parsed)
        baseline._facts_from_dict(fields["facts"], baseline.facts, f"{where}: facts", True)
        pending = FactTable()
        baseline._facts_from_dict(fields["pending"], pending, f"{where}: pending", False)
        if pending:
            baseline.pending = pending
        for key, value in read_mapping(fields["cadence"], f"{where}: cadence").items():
            if not isinstance(key, str) or not key:
                raise FormatError(f"{where}: cadence: a conversation key must be text")
            baseline.cadence[key] = Cadence.from_dict(
                value,
                f"{where}: cadence.{key[:60]}",
                cfg.cadence_burst_gap,
                cfg.cadence_max_gaps,
            )
        baseline.volumes = VolumeHistory.from_dict(
            fields["volumes"],
            f"{where}: volumes",
            cfg.history_windows,
            cfg.seasonal_weeks,
            cfg.seasonal_min_weeks,
        )
        return baseline

    def _facts_to_lists(self, table: FactTable, with_approvals: bool) -> dict[str, Any]:
        """The state file's form: ``[value, count, first, last]`` (+ ``by, why, at``), times
        as epoch floats (JSON keeps them exactly): several times faster than the YAML form."""
        out: dict[str, Any] = {}
        for kind in sorted(table):
            entries: list[list[Any]] = []
            for value, first, last, count in table.sorted_numbers(kind):
                entry: list[Any] = [value, count, first, last]
                approval = self.approvals.get((kind, value)) if with_approvals else None
                if approval is not None:
                    entry += [approval.by, approval.why, approval.at]
                entries.append(entry)
            if entries:
                out[kind] = entries
        return out

    def _fact_from_list(
        self, kind: str, entry: list[Any], values: dict[str, Fact], at: str, approvals: bool
    ) -> None:
        if len(entry) not in ((4, 7) if approvals else (4,)):
            raise FormatError(f"{at}: expected [value, count, first, last]")
        value = entry[0]
        if not isinstance(value, str) or not value:
            raise FormatError(f"{at}: expected a value")
        if value in values:
            raise FormatError(f"{at}: value listed twice")
        first, last = _epoch(entry[2], at), _epoch(entry[3], at)
        if last < first:
            raise FormatError(f"{at}: last seen is before first seen")
        values[value] = Fact(first, last, read_count(entry[1], at))
        if len(entry) == 7:
            by, why = entry[4], entry[5]
            if not isinstance(by, str) or not isinstance(why, str) or not by or not why:
                raise FormatError(f"{at}: approved_by and why must be non-empty text")
            self._approvals_to_write()[(kind, value)] = Approval(by, why, _epoch(entry[6], at))

    def _facts_from_dict(self, data: object, table: FactTable, where: str, approvals: bool) -> None:
        for kind, entries in read_mapping(data, where).items():
            if kind not in FACT_KINDS:
                raise FormatError(f"{where}: unknown fact kind {str(kind)[:40]!r}")
            if not isinstance(entries, list):
                raise FormatError(f"{where}.{kind}: expected a list")
            values: dict[str, Fact] = {}
            for i, entry_data in enumerate(entries):
                at = f"{where}.{kind}[{i}]"
                if isinstance(entry_data, list):
                    self._fact_from_list(kind, entry_data, values, at, approvals)
                    continue
                entry = read_mapping(entry_data, at)
                optional = {"approved_by", "why", "approved_at"} if approvals else set()
                check_keys(
                    entry,
                    at,
                    required={"value", "count", "first_seen", "last_seen"},
                    optional=optional,
                )
                value = entry["value"]
                if not isinstance(value, str) or not value:
                    raise FormatError(f"{at}.value: expected a string")
                if value in values:
                    raise FormatError(f"{at}.value: listed twice")
                first = parse_time(entry["first_seen"], f"{at}.first_seen")
                last = parse_time(entry["last_seen"], f"{at}.last_seen")
                if last < first:
                    raise FormatError(f"{at}: last_seen is before first_seen")
                values[value] = Fact(first, last, read_count(entry["count"], f"{at}.count"))
                if "approved_by" in entry or "why" in entry or "approved_at" in entry:
                    if not {"approved_by", "why", "approved_at"} <= entry.keys():
                        raise FormatError(f"{at}: approved_by, why and approved_at go together")
                    by, why = entry["approved_by"], entry["why"]
                    if not isinstance(by, str) or not isinstance(why, str) or not by or not why:
                        raise FormatError(f"{at}: approved_by and why must be non-empty text")
                    self._approvals_to_write()[(kind, value)] = Approval(
                        by, why, parse_time(entry["approved_at"], f"{at}.approved_at")
                    )
            if values:
                table[kind] = values


_NO_APPROVALS: Mapping[tuple[str, str], Approval] = MappingProxyType({})


def _epoch(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FormatError(f"{where}: expected a time in seconds")
    if not math.isfinite(value) or value < 0:
        raise FormatError(f"{where}: expected a time in seconds")
    return quantize_time(float(value))


def _time_or_none(t: float | None) -> str | None:
    return None if t is None else format_time(t)


class HasDevices(Protocol):
    """What ``learn_window`` needs of the pipeline's ``Analysis``."""

    @property
    def devices(self) -> Mapping[str, Device]: ...


@dataclass
class BaselineStore:
    """The baselines of all devices, with what changed since the last checkpoint."""

    config: BaselineConfig = field(default_factory=BaselineConfig)
    baselines: dict[str, Baseline] = field(default_factory=dict)
    # device ids whose baseline changed / was removed since the last checkpoint
    dirty: set[str] = field(default_factory=set)
    removed: set[str] = field(default_factory=set)
    # the capture time of the latest window learned (the store's clock)
    now: float | None = None
    # the devices of the last analysis seen, so the state can persist the inventory
    devices: Mapping[str, Device] = field(default_factory=dict)
    # changes made by a person (approve, reset, import, freeze) not yet in the state file
    edits: list[dict[str, Any]] = field(default_factory=list)

    def get(self, device_id: str) -> Baseline | None:
        """The device's baseline, or None when it has none yet. Read-only use: scoring."""
        return self.baselines.get(device_id)

    def __len__(self) -> int:
        return len(self.baselines)

    def learn_window(
        self,
        profiles: Iterable[WindowProfile],
        analysis: HasDevices | None = None,
        skip: Iterable[str] = (),
    ) -> int:
        """Learn one closed window (call AFTER scoring it). ``skip`` names devices whose window
        was found anomalous and must not be learned as normal. Returns how many baselines
        learned something."""
        skipped = set(skip)
        learned = 0
        latest = self.now
        for profile in profiles:
            if latest is None or profile.end > latest:
                latest = quantize_time(profile.end)
            if profile.device_id in skipped:
                continue
            baseline = self.baselines.get(profile.device_id)
            if baseline is None:
                baseline = Baseline(profile.device_id, self.config)
                self.baselines[profile.device_id] = baseline
            if baseline.learn(profile):
                learned += 1
                self.dirty.add(profile.device_id)
                self.removed.discard(profile.device_id)
        if analysis is not None:
            self.devices = analysis.devices
        if latest is not None:
            previous, self.now = self.now, latest
            # Devices that went silent still age out: sweep once per hour of capture time.
            if previous is None or int(previous // 3600) != int(latest // 3600):
                self.expire(latest)
        return learned

    def expire(self, now: float) -> int:
        gone = 0
        for device_id, baseline in self.baselines.items():
            if baseline.frozen:
                continue
            n = baseline.expire(now)
            if n:
                gone += n
                self.dirty.add(device_id)
        return gone

    def edit(self, change: Mapping[str, Any]) -> None:
        """Apply a person's change and remember it for the state file (``edits``).

        ``change`` is one of ``{"op": "approve", "device", "kind", "value", "by", "why",
        "at"}``, ``{"op": "reset", "device"}``, ``{"op": "freeze", "device", "frozen"}``,
        ``{"op": "put", "baseline": <to_dict form>}``. The state file keeps the changes so
        that a running daemon, whose checkpoint would otherwise overwrite what a command
        wrote, applies them to its own store first (see ``monitor.state``).
        """
        self.apply(change)
        self.edits.append(dict(change))

    def apply(self, change: Mapping[str, Any]) -> None:
        """Apply a change (see ``edit``) without recording it; ``ValueError`` if malformed."""
        op = change.get("op")
        try:
            if op == "approve":
                self.approve(
                    str(change["device"]),
                    str(change["kind"]),
                    str(change["value"]),
                    str(change["by"]),
                    str(change["why"]),
                    float(change["at"]),
                )
            elif op == "reset":
                self.reset(str(change["device"]))
            elif op == "freeze":
                self.set_frozen(str(change["device"]), bool(change["frozen"]))
            elif op == "put":
                self.put(Baseline.from_dict(change["baseline"], self.config))
            else:
                raise ValueError("unknown change")
        except (KeyError, TypeError, FormatError) as error:
            raise ValueError(f"malformed change ({type(error).__name__})") from None

    def approve(
        self, device_id: str, kind: str, value: str, who: str, why: str, when: float
    ) -> Fact:
        baseline = self.baselines.get(device_id)
        if baseline is None:
            baseline = Baseline(device_id, self.config)
            self.baselines[device_id] = baseline
        fact = baseline.approve(kind, value, who, why, when)
        self.dirty.add(device_id)
        self.removed.discard(device_id)
        return fact

    def reset(self, device_id: str) -> bool:
        """Start the device over (learning, nothing known). Returns False if it had none."""
        if self.baselines.pop(device_id, None) is None:
            return False
        self.dirty.discard(device_id)
        self.removed.add(device_id)
        return True

    def put(self, baseline: Baseline) -> None:
        """Replace a device's baseline (import)."""
        self.baselines[baseline.device_id] = baseline
        self.dirty.add(baseline.device_id)
        self.removed.discard(baseline.device_id)

    def set_frozen(self, device_id: str, frozen: bool) -> bool:
        baseline = self.baselines.get(device_id)
        if baseline is None:
            return False
        baseline.frozen = frozen
        self.dirty.add(device_id)
        return True

    def mark_clean(self) -> None:
        self.dirty.clear()
        self.removed.clear()

    def counts_by_state(self) -> dict[str, int]:
        counts = {LEARNING: 0, ENFORCING: 0}
        for baseline in self.baselines.values():
            counts[baseline.state] += 1
        return counts


# --- baselines as code: reviewable YAML ------------------------------------------------------

YAML_FORMAT = "santinel-baseline/1"
MAX_YAML_BYTES = 64 * 1024 * 1024


class _Dumper(yaml.SafeDumper):
    """Block style for structure, flow style for lists of numbers (histories, gaps)."""


def _represent_list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
    flow = bool(data) and all(isinstance(v, int | float) for v in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    # PyYAML writes NEL and the Unicode line/paragraph separators raw in plain or single-quoted
    # scalars, and reads them back as line breaks: double quotes escape them.
    if any(c in data for c in "\x85\u2028\u2029"):
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style='"')
    return dumper.represent_str(data)


_Dumper.add_representer(list, _represent_list)
_Dumper.add_representer(str, _represent_str)


def export_yaml(baselines: Iterable[Baseline]) -> str:
    """One YAML document per device, devices sorted by id, keys in a fixed order."""
    docs = []
    for baseline in sorted(baselines, key=lambda b: b.device_id):
        docs.append({"format": YAML_FORMAT, **baseline.to_dict()})
    if not docs:
        return ""
    return yaml.dump_all(
        docs,
        Dumper=_Dumper,
        sort_keys=False,
        explicit_start=True,
        allow_unicode=True,
        width=100,
    )


def import_yaml(text: str, source: str, config: BaselineConfig | None = None) -> list[Baseline]:
    """Read ``export_yaml``'s output; raises ``FormatError`` with a one-line message naming
    ``source`` and the document (or line) at fault. Untrusted input: safe loader only."""
    if len(text) > MAX_YAML_BYTES:
        raise FormatError(f"{source}: larger than {MAX_YAML_BYTES} bytes")
    try:
        docs = list(yaml.safe_load_all(text))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(error, "problem", None) or "invalid YAML"
        raise FormatError(f"{source}: {where}not valid YAML ({str(problem)[:80]})") from None
    baselines: list[Baseline] = []
    seen: set[str] = set()
    for number, doc in enumerate(docs, start=1):
        if doc is None:
            continue
        where = f"{source}: document {number}"
        if not isinstance(doc, dict) or doc.get("format") != YAML_FORMAT:
            raise FormatError(f"{where}: not a santinel baseline (format: {YAML_FORMAT})")
        body = {k: v for k, v in doc.items() if k != "format"}
        try:
            baseline = Baseline.from_dict(body, config)
        except FormatError as error:
            raise FormatError(f"{where}: {error}") from None
        if baseline.device_id in seen:
            raise FormatError(f"{where}: device listed twice")
        seen.add(baseline.device_id)
        baselines.append(baseline)
    return baselines
