"""Learned facts: what a device was seen doing, with first seen, last seen and count.

The inventory, the baselines and the signature matcher all speak in facts, keyed by a
fact *kind* (one of ``FACT_KINDS``) and a *value* (a short normalised string). Values are
metadata only: names, addresses, ports, identifiers — never payload content.

A ``FactTable`` (one per device, and two per baseline) reads as ``kind -> value -> Fact``
but keeps its values in one list and their numbers in one array, without an object per
value or a dict per kind: a site of 100,000 devices holds millions of values, most kinds of
a device have a few, and a dict costs more than those few (about 44 bytes a value, where a
dict per kind cost 64 to 87 and a ``Fact`` object per value 115 to 137). Promises:
iteration follows the order in which kinds and values were first recorded, as a dict
would; a ``Fact`` read from a table is a copy (change a table through ``record``,
``absorb``, item assignment or deletion, never through a fact read from it). A table's
``version`` moves on whenever a kind or value is added or removed or a first seen moves
earlier: what a reader derived from a table's values and their first seen (a rule's
finding) holds while it is the same table (``source``, which a view as of a time shares) at
the same version. ``shrinks`` moves on only when a value is removed or its numbers are
replaced (a first seen may then move later): while it stands still, the values of a kind as
of a time, read again as of the same time or a later one, are those read before and maybe
more, so the same number of them are the same values.

A ``FactCounts`` is what one window saw of a device, ``kind -> value -> count``: made once
when the window closes, read as the dict of dicts it was made from, in under a third of its
memory (a closing window holds every device's at once). Until then a ``FactTally`` counts
the window's sightings, added and taken back, in under half the memory of those dicts.
"""

from __future__ import annotations

import bisect
import math
import operator
import sys
from array import array
from collections.abc import ItemsView, Iterable, Iterator, Mapping
from dataclasses import dataclass
from itertools import chain, compress, count, repeat
from typing import Any, TypeVar, cast, overload

# kind -> what its values look like
FACT_KINDS: dict[str, str] = {
    "ip": "an IP address the device used as source: '10.1.2.3', 'fe80::1'",
    "hostname": "a name the device announced or was given (DHCP option 12, mDNS, DNS PTR)",
    "peer": "a peer: an inventory device id, or 'ext:203.0.113.9' for an external address",
    "peer_name": "a DNS or TLS SNI name of a peer the device talked to",
    "service_offered": "a port the device answers on: 'tcp/443', 'udp/161'",
    "service_used": "a port the device connects to on a peer: 'tcp/2575'",
    "protocol": "an application or network protocol: 'hl7', 'dicom', 'mqtt', 'tls', 'http', "
    "'dns', 'mdns', 'dhcp', 'ssdp', 'arp', 'icmp', 'icmpv6', 'tcp', 'udp'",
    "dns_query": "a DNS or mDNS name the device asked for",
    "tls_sni": "a TLS server name the device asked for in a ClientHello",
    "tls_ja4": "a JA4 fingerprint of the device's ClientHello",
    "http_host": "an HTTP Host header the device sent",
    "http_user_agent": "an HTTP User-Agent the device sent",
    "ssdp_server": "an SSDP SERVER header the device announced",
    "ssdp_type": "an SSDP NT or ST the device announced or searched",
    "mdns_service": "an mDNS service type the device announced: '_http._tcp.local'",
    "dhcp_vendor_class": "DHCP option 60",
    "dhcp_param_list": "DHCP option 55 as comma-separated decimals: '1,3,6,15'",
    "dhcp_client_id": "DHCP option 61, hex",
    "hl7_sending_application": "MSH-3^MSH-4 of messages the device sent",
    "hl7_receiving_application": "MSH-5^MSH-6 of messages the device sent",
    "hl7_message_type": "MSH-9 of messages the device sent: 'ORU^R01'",
    "hl7_version": "MSH-12",
    "dicom_calling_ae": "the AE title the device used as caller",
    "dicom_called_ae": "the AE title the device called",
    "dicom_sop_class": "an abstract syntax UID the device proposed",
    "dicom_implementation": "implementation class UID and version name: 'UID|NAME'",
    "dicom_command": "a DIMSE command the device sent: 'C-STORE-RQ'",
    "mqtt_client_id": "an MQTT CONNECT client id",
    "mqtt_protocol_level": "the MQTT protocol level of a CONNECT",
}


@dataclass(slots=True)
class Fact:
    """One learned value of one kind, with when it was first and last seen and how often."""

    first_seen: float
    last_seen: float
    count: int = 1

    def see(self, when: float, times: int = 1) -> None:
        if when < self.first_seen:
            self.first_seen = when
        if when > self.last_seen:
            self.last_seen = when
        self.count += times


# Values kept per kind per device. A device seen by the whole internet (a scan) or a server
# with every workstation as a peer must not grow without end: past the bound, the values
# seen least recently make room, an eighth at a time.
MAX_VALUES_PER_KIND = 1024
evicted_values = 0  # values dropped by that bound in this process

_T = TypeVar("_T")

_FIELDS = 3  # numbers per value in a table's array: first seen, last seen, count
# A kind is one character in a table's layout (``FactTable._kinds``): its number among the
# kinds known to the process, FACT_KINDS first. Characters below 256 are shared objects.
_KIND_CHAR: dict[str, str] = {kind: chr(code) for code, kind in enumerate(FACT_KINDS)}
_KIND_OF_CHAR: dict[str, str] = {char: kind for kind, char in _KIND_CHAR.items()}
# Past this many values, a kind's values are found through a dict rather than a scan: few
# kinds get there (a server's peers, a scanned device's), and for the others the dict would
# cost more than the values themselves.
_INDEXED_FROM = 48
_NO_ENDS: list[int] = []  # (read only) the layout of a table with no kind yet
_NO_VALUES: list[str] = []  # (read only)
_NO_NUMBERS = array("d")  # (read only)
# a view cuts its late values out one by one up to this many (each cut moves the rest)
_FEW_LATE = 32
_NO_KIND = "\uffff"  # a character no kind has: how a kind never recorded is looked up


def _kind_char(kind: str) -> str:
    char = _KIND_CHAR.get(kind)
    if char is None:  # a kind outside FACT_KINDS (tests, tools): numbered on first use
        if len(_KIND_CHAR) >= 255:
            raise ValueError(f"too many fact kinds to record {kind!r}")
        char = _KIND_CHAR[kind] = chr(len(_KIND_CHAR))
        _KIND_OF_CHAR[char] = kind
    return char


class FactTable(Mapping[str, "KindFacts"]):
    """``kind -> value -> Fact`` for one device: see the module docstring.

    The values of all kinds are one list, each kind's together in the order first recorded,
    and their numbers (first seen, last seen, count) one float array in the same order: no
    dict per kind (a small dict costs 184 bytes, more than the few values most kinds of a
    device have). ``_kinds`` names the kinds in the order first recorded, one character
    each; ``_ends[i]`` is where kind ``i``'s values end. A value is found by a scan of its
    kind, or through ``_index`` for a kind of many values.
    """

    __slots__ = ("_ends", "_index", "_kinds", "_numbers", "_values", "shrinks", "version")

    def __init__(self, facts: Mapping[str, Mapping[str, Fact]] | None = None) -> None:
        self._kinds = ""
        self._ends = _NO_ENDS
        self._values = _NO_VALUES
        self._numbers = _NO_NUMBERS
        # kind character -> value -> its offset in the kind, for the kinds of many values
        self._index: dict[str, dict[str, int]] | None = None
        # changes so far (see the module docstring): a count of its own, so that it stays
        # a small shared int for most tables
        self.version = 0
        self.shrinks = 0  # removals and replacements so far (see the module docstring)
        if facts:
            for kind, values in facts.items():
                self[kind] = values

    @property
    def source(self) -> FactTable:
        """The table whose values these are: this one (a view as of a time names its own)."""
        return self

    # --- where values are -----------------------------------------------------------------
    def _span(self, kind: str) -> tuple[int, int, int]:
        """(place of the kind in the layout, start, end) of ``kind``'s values; place -1 when
        the table has no such kind."""
        place = self._kinds.find(_KIND_CHAR.get(kind, _NO_KIND))
        if place < 0:
            return -1, 0, 0
        ends = self._ends
        return place, ends[place - 1] if place else 0, ends[place]

    def _span_to_write(self, kind: str) -> tuple[str, int, int, int]:
        """(character, place, start, end) of ``kind``, made the last kind if it had none."""
        try:
            char = _KIND_CHAR[kind]
        except KeyError:
            char = _kind_char(kind)
        place = self._kinds.find(char)
        if place < 0:
            place = self._add_kind(kind)
        ends = self._ends
        return char, place, (ends[place - 1] if place else 0), ends[place]

    def _find(self, char: str, start: int, end: int, value: str) -> int:
        """Where ``value`` is among the values from ``start`` to ``end`` (one kind's), or -1."""
        if end - start < _INDEXED_FROM:
            try:
                return self._values.index(value, start, end)
            except ValueError:
                return -1
        offset = self._offsets(char, start, end).get(value)
        return -1 if offset is None else start + offset

    def _offsets(self, char: str, start: int, end: int) -> dict[str, int]:
        """The index of a kind of many values (made when first needed): value -> offset."""
        index = self._index
        offsets = index.get(char) if index is not None else None
        if offsets is None:
            offsets = {v: k for k, v in enumerate(self._values[start:end])}
            if index is None:
                index = self._index = {}
            index[char] = offsets
        return offsets

    def _add_kind(self, kind: str) -> int:
        """Make ``kind`` the last kind, with no value yet; returns its place."""
        self.version += 1
        if self._ends is _NO_ENDS:
            self._ends, self._values, self._numbers = [], [], array("d")
        self._kinds = sys.intern(self._kinds + _kind_char(kind))
        self._ends.append(len(self._values))
        return len(self._kinds) - 1

    def _insert(
        self, place: int, end: int, value: str, first: float, last: float, count: float
    ) -> None:
        """Add ``value`` as the last of the kind at ``place`` (whose values end at ``end``)."""
        self.version += 1
        self._values.insert(end, value)
        base = end * _FIELDS
        numbers = self._numbers
        numbers.insert(base, count)  # (three inserts cost less than one of a new array)
        numbers.insert(base, last)
        numbers.insert(base, first)
        ends = self._ends
        for later in range(place, len(ends)):
            ends[later] += 1
        index = self._index
        if index is not None:
            offsets = index.get(self._kinds[place])
            if offsets is not None:
                offsets[value] = end - (ends[place - 1] if place else 0)

    def _remove(self, place: int, at: int, upto: int) -> None:
        """Remove the values from ``at`` to ``upto`` of the kind at ``place``."""
        removed = upto - at
        if removed <= 0:
            return
        self.version += 1
        self.shrinks += removed
        del self._values[at:upto]
        del self._numbers[at * _FIELDS : upto * _FIELDS]
        ends = self._ends
        for later in range(place, len(ends)):
            ends[later] -= removed
        self._forget_index(place)

    def _forget_index(self, place: int) -> None:
        """The kind at ``place`` lost values: its offsets moved (made again when needed)."""
        index = self._index
        if index is not None:
            index.pop(self._kinds[place], None)
            if not index:
                self._index = None

    def _drop_kind(self, place: int) -> None:
        """Remove the kind at ``place``, which has no value left."""
        self._forget_index(place)
        kinds = self._kinds
        self._kinds = sys.intern(kinds[:place] + kinds[place + 1 :])
        del self._ends[place]
        if not self._kinds:  # nothing left: give the arrays back
            self._ends, self._values, self._numbers = _NO_ENDS, _NO_VALUES, _NO_NUMBERS

    # --- reading: a mapping of kinds ------------------------------------------------------
    def __getitem__(self, kind: str) -> KindFacts:
        if _KIND_CHAR.get(kind, _NO_KIND) not in self._kinds:
            raise KeyError(kind)
        return KindFacts(self, kind)

    @overload  # type: ignore[override]
    def get(self, kind: str) -> KindFacts | None: ...
    @overload
    def get(self, kind: str, default: dict[str, Fact]) -> KindFacts | dict[str, Fact]: ...
    @overload
    def get(self, kind: str, default: _T) -> KindFacts | _T: ...
    def get(self, kind: str, default: Any = None) -> Any:
        if _KIND_CHAR.get(kind, _NO_KIND) not in self._kinds:
            return default
        return KindFacts(self, kind)

    def __contains__(self, kind: object) -> bool:
        return isinstance(kind, str) and _KIND_CHAR.get(kind, _NO_KIND) in self._kinds

    def __iter__(self) -> Iterator[str]:
        return map(_KIND_OF_CHAR.__getitem__, self._kinds)

    def __len__(self) -> int:
        return len(self._kinds)

    def values(self) -> list[KindFacts]:  # type: ignore[override]
        return [KindFacts(self, kind) for kind in self]

    def items(self) -> list[tuple[str, KindFacts]]:  # type: ignore[override]
        return [(kind, KindFacts(self, kind)) for kind in self]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Mapping):
            return NotImplemented
        return _plain(self) == _plain(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"FactTable({_plain(self)!r})"

    def values_of(self, kind: str) -> list[str]:
        """The values of ``kind`` (empty if none), in the order first recorded: the fast way
        to read values without their numbers."""
        place = self._kinds.find(_KIND_CHAR.get(kind, _NO_KIND))
        if place < 0:
            return []
        ends = self._ends
        return self._values[ends[place - 1] if place else 0 : ends[place]]

    def sorted_numbers(self, kind: str) -> list[tuple[str, float, float, int]]:
        """``(value, first seen, last seen, count)`` of each value of ``kind``, sorted by
        value, without making a ``Fact`` each (state files write them all, in this order)."""
        _, start, end = self._span(kind)
        values = self._values
        numbers = self._numbers[start * _FIELDS : end * _FIELDS].tolist()
        out = []
        for at in sorted(range(end - start), key=lambda k: values[start + k]):
            base = at * _FIELDS
            out.append(
                (values[start + at], numbers[base], numbers[base + 1], int(numbers[base + 2]))
            )
        return out

    def has(self, kind: str, value: str) -> bool:
        char = _KIND_CHAR.get(kind, _NO_KIND)
        place = self._kinds.find(char)
        if place < 0:
            return False
        ends = self._ends
        start, end = (ends[place - 1] if place else 0), ends[place]
        if end - start < _INDEXED_FROM:
            return value in self._values[start:end]
        return self._find(char, start, end, value) >= 0

    def count_of(self, kind: str) -> int:
        """How many values ``kind`` has (0 for a kind it has none of)."""
        place = self._kinds.find(_KIND_CHAR.get(kind, _NO_KIND))
        if place < 0:
            return 0
        ends = self._ends
        return ends[place] - (ends[place - 1] if place else 0)

    def counts_of(self, kinds: Iterable[str]) -> tuple[int, ...]:
        """How many values each of ``kinds`` has (0 for a kind it has none of)."""
        ends = self._ends
        count_of = dict(zip(self._kinds, map(operator.sub, ends, [0, *ends[:-1]]), strict=True))
        return tuple(map(count_of.get, map(_KIND_CHAR.get, kinds, repeat(_NO_KIND)), repeat(0)))

    def value_count(self) -> int:
        """How many values, over all kinds."""
        return len(self._values)

    def total_sightings(self) -> int:
        """The sum of every value's count."""
        return int(sum(self._numbers[2::_FIELDS]))

    def newest_first_seen(self) -> float:
        """The latest first-seen time of any value; -inf for an empty table."""
        return max(self._numbers[0::_FIELDS], default=-math.inf)

    def _late(self, end: float) -> list[int]:
        """Where the values first seen at or after ``end`` are."""
        return list(compress(count(), map(float(end).__le__, self._numbers[0::_FIELDS])))

    def first_seen_since(self, end: float) -> list[tuple[str, str]]:
        """``(kind, value)`` of the values first seen at or after ``end``."""
        late = self._late(end)
        if not late:
            return []
        ends, values = self._ends, self._values
        found = []
        for at in late:
            place = bisect.bisect_right(ends, at)
            found.append((_KIND_OF_CHAR[self._kinds[place]], values[at]))
        return found

    def first_seen_before(self, end: float) -> FactTable:
        """The values first seen before ``end``, kinds left empty dropped: a read-only view.
        With nothing first seen since ``end`` (at a window's close, most devices: detectors
        take one per device and window) it shares this table's values and numbers, and is
        valid until this table changes; else it holds a copy of those it keeps."""
        kept = _FactsAsOf()
        kept._source = self
        kept.version = self.version  # with its value count, says which view of which values
        kept.shrinks = self.shrinks
        if not self._kinds:
            return kept
        kinds, ends, values, numbers = self._kinds, self._ends, self._values, self._numbers
        late = self._late(end)
        if not late:
            out_values, out_numbers = values, numbers  # shared
            if ends[0] and len(set(ends)) == len(ends):  # and no kind empty: the same layout
                kept._kinds, kept._ends, kept._values, kept._numbers = kinds, ends, values, numbers
                return kept
        elif len(late) <= _FEW_LATE:
            # A few values are late (a batch runs ahead of the window it closes): copy and
            # cut them out, last first so that the places before stay where they are.
            out_values = values.copy()
            out_numbers = array("d", numbers)
            for at in reversed(late):
                del out_values[at]
                del out_numbers[at * _FIELDS : (at + 1) * _FIELDS]
        else:  # many: one pass over all (each cut would move the rest)
            keep = [True] * len(values)
            for at in late:
                keep[at] = False
            out_values = list(compress(values, keep))
            out_numbers = array(
                "d", compress(numbers, chain.from_iterable(zip(keep, keep, keep, strict=True)))
            )
        out_kinds: list[str] = []
        out_ends: list[int] = []
        for place, char in enumerate(kinds):
            kept_so_far = ends[place] - bisect.bisect_left(late, ends[place])
            if kept_so_far > (out_ends[-1] if out_ends else 0):  # (a kind left empty: out)
                out_kinds.append(char)
                out_ends.append(kept_so_far)
        if out_kinds:
            kept._kinds = sys.intern("".join(out_kinds))
            kept._ends, kept._values, kept._numbers = out_ends, out_values, out_numbers
        return kept

    # --- writing ----------------------------------------------------------------------------
    def setdefault(self, kind: str, default: object = None) -> KindFacts:
        """The values of ``kind``, made empty if it had none (``default`` is ignored: it is
        there for code written against a dict of dicts)."""
        if self._span(kind)[0] < 0:
            self._add_kind(kind)
        return KindFacts(self, kind)

    def __setitem__(self, kind: str, values: Mapping[str, Fact]) -> None:
        if kind in self:
            del self[kind]
        place = self._add_kind(kind)
        for value, fact in values.items():
            self._insert(
                place, self._ends[place], value, fact.first_seen, fact.last_seen, fact.count
            )

    def __delitem__(self, kind: str) -> None:
        place, start, end = self._span(kind)
        if place < 0:
            raise KeyError(kind)
        self.version += 1
        self._remove(place, start, end)
        self._drop_kind(place)

    def record(
        self, kind: str, value: str, when: float, times: int = 1, last: float | None = None
    ) -> bool:
        """Record ``times`` sightings from ``when`` to ``last`` (default: all at ``when``);
        returns True when the value is new for that kind. Past ``MAX_VALUES_PER_KIND`` values
        of a kind, the stalest eighth makes room (counted in ``evicted_values``)."""
        char = _KIND_CHAR.get(kind) or _kind_char(kind)  # (inlined: this runs per sighting)
        place = self._kinds.find(char)
        if place < 0:
            place = self._add_kind(kind)
        ends = self._ends
        start, end = (ends[place - 1] if place else 0), ends[place]
        newest = when if last is None or last < when else last
        if end - start < _INDEXED_FROM:
            try:
                at = self._values.index(value, start, end)
            except ValueError:
                at = -1
        else:
            at = self._find(char, start, end, value)
        if at < 0:
            if end - start >= MAX_VALUES_PER_KIND:
                self._forget_stalest(place, start, end)
                end = self._ends[place]
            if place == len(self._kinds) - 1 and self._index is None:
                # the last kind's, in a table of small kinds (inlined: this runs for every
                # new value of every device)
                self.version += 1
                self._values.append(value)
                self._numbers.extend((when, newest, times))
                self._ends[place] = end + 1
            else:
                self._insert(place, end, value, when, newest, times)
            return True
        numbers = self._numbers
        base = at * 3  # _FIELDS, written out: this runs for every sighting noted
        if when < numbers[base]:
            numbers[base] = when
            self.version += 1
        if newest > numbers[base + 1]:
            numbers[base + 1] = newest
        numbers[base + 2] += times
        return False

    def record_counts(self, kind: str, counts: Mapping[str, int], when: float) -> None:
        """``record(kind, value, when, count)`` for each value and count of ``counts``: a
        baseline learns a window's facts this way."""
        char, place, start, end = self._span_to_write(kind)
        if end - start + len(counts) > MAX_VALUES_PER_KIND:  # values may make room: in order
            for value, times in counts.items():
                self.record(kind, value, when, times)
            return
        # the kind's values found once rather than a scan each (no value goes meanwhile)
        kind_values = self._values[start:end]
        offsets: dict[str, int] | None = None
        if end - start >= _INDEXED_FROM:
            offsets = self._offsets(char, start, end)
        elif len(counts) > 8 and end - start > 8:  # a dict costs what eight scans do
            offsets = dict(zip(kind_values, range(end - start), strict=True))
        numbers = self._numbers
        new: list[str] = []
        new_counts: list[int] = []
        for value, times in counts.items():
            if offsets is not None:
                offset = offsets.get(value)
                at = -1 if offset is None else start + offset
            else:  # (no exception for a new value: it is new about as often as not)
                at = start + kind_values.index(value) if value in kind_values else -1
            if at < 0:
                new.append(value)
                new_counts.append(times)
                continue
            base = at * 3
            if when < numbers[base]:
                numbers[base] = when
                self.version += 1
            if when > numbers[base + 1]:
                numbers[base + 1] = when
            numbers[base + 2] += times
        if new:
            self._append_new(place, end, new, new_counts, when)

    def _append_new(
        self, place: int, end: int, values: list[str], counts: list[int], when: float
    ) -> None:
        """Add ``values`` (none in the table), each seen its count of ``counts`` times at
        ``when``, as the last of the kind at ``place``, whose values end at ``end``: one
        insertion for all of them, where a baseline learning a window's new peers made one
        each."""
        new = len(values)
        self.version += new
        self._values[end:end] = values
        numbers = [when] * (_FIELDS * new)  # first and last seen, then the counts among them
        numbers[2::_FIELDS] = counts
        self._numbers[end * _FIELDS : end * _FIELDS] = array("d", numbers)
        ends = self._ends
        for later in range(place, len(ends)):
            ends[later] += new
        index = self._index
        if index is not None:
            offsets = index.get(self._kinds[place])
            if offsets is not None:
                first = end - (ends[place - 1] if place else 0)  # (its start stays)
                offsets.update(zip(values, range(first, first + new), strict=True))

    def take_back(self, kind: str, value: str, times: int = 1) -> bool:
        """Take back ``times`` sightings of ``value`` (recorded under a name that turned out
        to stand for another); the value goes when none is left, and its kind when it was
        the last. Returns True when the value went. Its first and last seen stay: what is
        left of it was seen within them."""
        place, start, end = self._span(kind)
        if place < 0:
            return False
        at = self._find(self._kinds[place], start, end, value)
        if at < 0:
            return False
        base = at * _FIELDS
        left = self._numbers[base + 2] - times
        if left > 0:
            self._numbers[base + 2] = left
            return False
        self._remove(place, at, at + 1)
        if end - start == 1:
            self._drop_kind(place)
        return True

    def absorb(self, other: FactTable | Mapping[str, Mapping[str, Fact]]) -> None:
        """Add ``other``'s values: first seen is the earlier, last seen the later, counts
        add up. Unbounded (the parts were bounded)."""
        for kind, values in other.items():
            place = self._span(kind)[0]
            if place < 0:
                place = self._add_kind(kind)
            char = self._kinds[place]
            for value, fact in values.items():
                ends = self._ends
                start, end = (ends[place - 1] if place else 0), ends[place]
                at = self._find(char, start, end, value)
                if at < 0:
                    self._insert(place, end, value, fact.first_seen, fact.last_seen, fact.count)
                    continue
                numbers = self._numbers
                base = at * _FIELDS
                if fact.first_seen < numbers[base]:
                    numbers[base] = fact.first_seen
                    self.version += 1
                numbers[base + 1] = max(numbers[base + 1], fact.last_seen)
                numbers[base + 2] += fact.count

    # --- one value --------------------------------------------------------------------------
    def _fact(self, at: int) -> Fact:
        base = at * _FIELDS
        numbers = self._numbers
        return Fact(numbers[base], numbers[base + 1], int(numbers[base + 2]))

    def _replace(self, at: int, fact: Fact) -> None:
        self.version += 1
        self.shrinks += 1
        base = at * _FIELDS
        self._numbers[base : base + _FIELDS] = array(
            "d", (fact.first_seen, fact.last_seen, fact.count)
        )

    def _forget_stalest(self, place: int, start: int, end: int) -> None:
        """Make room in the kind at ``place``: its eighth seen least recently goes."""
        global evicted_values
        numbers = self._numbers
        stalest = set(
            sorted(range(start, end), key=lambda at: numbers[at * _FIELDS + 1])[
                : MAX_VALUES_PER_KIND // 8
            ]
        )
        kept = [at for at in range(start, end) if at not in stalest]
        values = self._values
        kept_values = [values[at] for at in kept]
        kept_numbers = array("d")
        for at in kept:
            kept_numbers.extend(numbers[at * _FIELDS : (at + 1) * _FIELDS])
        self._remove(place, start, end)
        self._values[start:start] = kept_values
        self._numbers[start * _FIELDS : start * _FIELDS] = kept_numbers
        ends = self._ends
        for later in range(place, len(ends)):
            ends[later] += len(kept)
        self.shrinks -= len(kept)  # (only the stalest went)
        evicted_values += MAX_VALUES_PER_KIND // 8


class FactJournal:
    """The fact sightings recorded since the last ``take``, per device: what a capture worker
    reports to the daemon instead of its whole devices (``monitor.merge``), so that a report
    costs what changed, not what is known.

    Each ``(device, kind, value)`` keeps its earliest first seen, latest last seen and the sum
    of its counts since the last take, and values removed since then are listed apart (a
    value removed and then seen again is both); ``touched`` names the devices whose traffic
    moved. Unbounded between takes: a worker takes once a second, and the tables it journals
    for are bounded.
    """

    __slots__ = ("_removed", "_seen", "touched")

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str, str], list[float]] = {}
        self._removed: set[tuple[str, str, str]] = set()
        # devices made, or whose traffic counters moved, since the last take: the inventory
        # and the pipeline add them here
        self.touched: set[str] = set()

    def record(
        self,
        device_id: str,
        kind: str,
        value: str,
        when: float,
        times: int = 1,
        last: float | None = None,
    ) -> None:
        newest = when if last is None or last < when else last
        key = (device_id, kind, value)
        entry = self._seen.get(key)
        if entry is None:
            self._seen[key] = [when, newest, times]
            return
        if when < entry[0]:
            entry[0] = when
        if newest > entry[1]:
            entry[1] = newest
        entry[2] += times

    def remove(self, device_id: str, kind: str, value: str) -> None:
        key = (device_id, kind, value)
        self._seen.pop(key, None)
        self._removed.add(key)

    def take(
        self,
    ) -> tuple[dict[tuple[str, str, str], list[float]], set[tuple[str, str, str]], set[str]]:
        """``(sightings, removed, touched)`` since the last take, and start again empty. A key
        in both sightings and removed was removed first and seen again after."""
        seen, removed, touched = self._seen, self._removed, self.touched
        self._seen, self._removed, self.touched = {}, set(), set()
        return seen, removed, touched


class _ReadOnlyFacts(FactTable):
    """A table no write reaches: each write raises ``TypeError`` with the class's ``_WHY``."""

    __slots__ = ()
    _WHY = "this fact table is read-only"

    def _read_only(self, *_: object, **__: object) -> Any:
        raise TypeError(self._WHY)

    record = record_counts = absorb = take_back = _read_only  # type: ignore[assignment]
    setdefault = __setitem__ = __delitem__ = _read_only  # type: ignore[assignment]
    _add_kind = _insert = _remove = _replace = _read_only  # type: ignore[assignment]


class _FactsAsOf(_ReadOnlyFacts):
    """What ``FactTable.first_seen_before`` returns: some of another table's values."""

    __slots__ = ("_source",)
    _source: FactTable
    _WHY = "a view of facts as of a time is read-only"

    @property
    def source(self) -> FactTable:
        return self._source


class _NoFacts(_ReadOnlyFacts):
    """``NO_FACTS``: an empty table that stays empty."""

    __slots__ = ()
    _WHY = "the shared empty fact table is read-only: make a table of its own"


# One empty table for all the holders with nothing to hold yet (a baseline's pending facts,
# which most baselines never have): each makes a table of its own when it records.
NO_FACTS: FactTable = _NoFacts()


class KindFacts(Mapping[str, Fact]):
    """The values of one kind in a ``FactTable``: ``value -> Fact`` (a copy; see the module
    docstring). Made on access; holds nothing of its own, and reads the table as it is
    now."""

    __slots__ = ("_kind", "_table")

    def __init__(self, table: FactTable, kind: str) -> None:
        self._table = table
        self._kind = kind

    def _at(self, value: object) -> int:
        """Where ``value`` is in the table, or -1."""
        table = self._table
        place, start, end = table._span(self._kind)
        if place < 0 or not isinstance(value, str):
            return -1
        return table._find(table._kinds[place], start, end, value)

    def __getitem__(self, value: str) -> Fact:
        at = self._at(value)
        if at < 0:
            raise KeyError(value)
        return self._table._fact(at)

    @overload  # type: ignore[override]
    def get(self, value: str) -> Fact | None: ...
    @overload
    def get(self, value: str, default: _T) -> Fact | _T: ...
    def get(self, value: str, default: Any = None) -> Any:
        at = self._at(value)
        return default if at < 0 else self._table._fact(at)

    def __contains__(self, value: object) -> bool:
        return self._at(value) >= 0

    def __iter__(self) -> Iterator[str]:
        return iter(self._table.values_of(self._kind))

    def keys(self) -> list[str]:  # type: ignore[override]
        # a list, not Mapping's view: a view iterates through a generator, a call a value
        return self._table.values_of(self._kind)

    def __len__(self) -> int:
        return self._table.count_of(self._kind)

    def items(self) -> list[tuple[str, Fact]]:  # type: ignore[override]
        table = self._table
        _, start, end = table._span(self._kind)
        values, fact = table._values, table._fact
        return [(values[at], fact(at)) for at in range(start, end)]

    def values(self) -> list[Fact]:  # type: ignore[override]
        table = self._table
        _, start, end = table._span(self._kind)
        return [table._fact(at) for at in range(start, end)]

    def __setitem__(self, value: str, fact: Fact) -> None:
        table = self._table
        place, start, end = table._span(self._kind)
        if place < 0:
            place = table._add_kind(self._kind)
            start = end = table._ends[place]
        at = table._find(table._kinds[place], start, end, value)
        if at < 0:
            table._insert(place, end, value, fact.first_seen, fact.last_seen, fact.count)
        else:
            table._replace(at, fact)

    def __delitem__(self, value: str) -> None:
        at = self._at(value)
        if at < 0:
            raise KeyError(value)
        table = self._table
        table._remove(table._span(self._kind)[0], at, at + 1)

    def pop(self, value: str, default: Any = None) -> Any:
        at = self._at(value)
        if at < 0:
            return default
        fact = self._table._fact(at)
        del self[value]
        return fact

    def __repr__(self) -> str:
        return f"KindFacts({dict(self.items())!r})"


def _plain(table: Mapping[str, Mapping[str, _T]]) -> dict[str, dict[str, _T]]:
    """A table (of facts or of counts) as the dict of dicts it reads as."""
    return {kind: dict(values.items()) for kind, values in table.items()}


# Past this many values, a table of counts finds a value through a dict rather than a scan
# (a server's peers in a window): a detector asks of each value it reads.
_COUNTS_INDEXED_FROM = 16
_NO_COUNTS: Mapping[str, Mapping[str, int]] = {}  # (read only)


class FactCounts(Mapping[str, Mapping[str, int]]):
    """``kind -> value -> count``, read as the dict of dicts it is made from, and never
    changed: what one window saw of a device (``WindowProfile.facts``).

    A window that closes holds a profile per device at once, each with a few values of a
    few kinds (5.6 values in 3.8 kinds at the flood of ``bench/memory.py``). As dicts (a
    dict per kind) they cost about 920 bytes a profile, 96 MiB at 100,000 devices; here
    about 270. The values of all kinds are one tuple, each kind's
    together, with one byte per value naming its kind and their counts a tuple alongside.
    Kinds and values keep their order, a kind left empty included (it reads as an empty
    mapping, as its empty dict did). A copy pickles as the dicts it was made from, so a
    worker's profile reads the same in the process that merges it."""

    __slots__ = ("_codes", "_counts", "_index", "_values")

    def __init__(self, facts: Mapping[str, Mapping[str, int]] = _NO_COUNTS) -> None:
        codes = bytearray()
        values: list[str | None] = []
        counts: list[int] = []
        for kind, of_kind in facts.items():
            code = ord(_KIND_CHAR.get(kind) or _kind_char(kind))
            if of_kind:
                codes.extend(bytes((code,)) * len(of_kind))
                values.extend(of_kind)
                counts.extend(of_kind.values())
            else:  # a kind left empty keeps its place
                codes.append(code)
                values.append(None)
                counts.append(0)
        self._codes = bytes(codes)
        self._values = tuple(values)
        self._counts = tuple(counts)
        self._index: dict[tuple[int, str], int] | None = None
        if len(values) >= _COUNTS_INDEXED_FROM:
            self._index = {
                (code, value): at
                for at, (code, value) in enumerate(zip(self._codes, values, strict=True))
                if value is not None
            }

    def __reduce__(self) -> tuple[Any, ...]:
        # kinds outside FACT_KINDS are numbered per process: the names travel, not the codes
        return (FactCounts, (_plain(self),))

    def _view(self, kind: str) -> _KindCounts | None:
        char = _KIND_CHAR.get(kind)
        if char is None:
            return None
        code = ord(char)
        start = self._codes.find(code)
        if start < 0:
            return None
        if self._values[start] is None:
            return _KindCounts(self, code, start, start)
        return _KindCounts(self, code, start, self._codes.rfind(code) + 1)

    def __getitem__(self, kind: str) -> Mapping[str, int]:
        found = self._view(kind)
        if found is None:
            raise KeyError(kind)
        return found

    def get(self, kind: str, default: Any = None) -> Any:
        found = self._view(kind)
        return default if found is None else found

    def __contains__(self, kind: object) -> bool:
        char = _KIND_CHAR.get(kind) if isinstance(kind, str) else None
        return char is not None and ord(char) in self._codes

    def __iter__(self) -> Iterator[str]:
        return (_KIND_OF_CHAR[chr(code)] for code in dict.fromkeys(self._codes))

    def __len__(self) -> int:
        return len(set(self._codes))

    def items(self) -> ItemsView[str, Mapping[str, int]]:
        # each kind's span found once: the detectors and a baseline read every closed
        # window's counts through here
        codes, values = self._codes, self._values
        found: dict[str, Mapping[str, int]] = {}
        start = 0
        while start < len(codes):
            code = codes[start]
            end = codes.rfind(code) + 1
            found[_KIND_OF_CHAR[chr(code)]] = _KindCounts(
                self, code, start, start if values[start] is None else end
            )
            start = end
        return found.items()

    def as_dicts(self) -> dict[str, dict[str, int]]:
        """The dict of dicts these counts read as, each a new dict the caller may change: a
        baseline learns every closed window's counts from it, so it is built a kind at a
        time at C speed, without a mapping object per kind."""
        codes, values, counts = self._codes, self._values, self._counts
        found: dict[str, dict[str, int]] = {}
        start = 0
        while start < len(codes):
            code = codes[start]
            end = codes.rfind(code) + 1
            found[_KIND_OF_CHAR[chr(code)]] = (
                {}
                if values[start] is None
                else dict(zip(values[start:end], counts[start:end], strict=True))  # type: ignore[arg-type]
            )
            start = end
        return found

    def __repr__(self) -> str:
        return f"FactCounts({_plain(self)!r})"


class _KindCounts(Mapping[str, int]):
    """The values of one kind of a ``FactCounts``, and their counts."""

    __slots__ = ("_code", "_end", "_start", "_table")

    def __init__(self, table: FactCounts, code: int, start: int, end: int) -> None:
        self._table, self._code, self._start, self._end = table, code, start, end

    def _at(self, value: object) -> int:
        table = self._table
        if table._index is not None:
            return table._index.get((self._code, value), -1)  # type: ignore[arg-type]
        try:
            return table._values.index(value, self._start, self._end)
        except ValueError:
            return -1

    def __getitem__(self, value: str) -> int:
        at = self._at(value)
        if at < 0:
            raise KeyError(value)
        return self._table._counts[at]

    def get(self, value: str, default: Any = None) -> Any:
        at = self._at(value)
        return default if at < 0 else self._table._counts[at]

    def __contains__(self, value: object) -> bool:
        return self._at(value) >= 0

    def __iter__(self) -> Iterator[str]:
        return iter(self._table._values[self._start : self._end])  # type: ignore[arg-type]

    def __len__(self) -> int:
        return self._end - self._start

    def items(self) -> ItemsView[str, int]:
        # at C speed: a baseline learns every closed window's counts through here
        table, start, end = self._table, self._start, self._end
        pairs = zip(table._values[start:end], table._counts[start:end], strict=True)
        return cast(dict[str, int], dict(pairs)).items()

    def __repr__(self) -> str:
        return f"{dict(self.items())!r}"


class FactTally:
    """``kind -> value -> count`` being counted: what an open window has seen of a device so
    far, sightings added and taken back one at a time, until ``counts()`` hands the window's
    ``FactCounts`` over when it closes.

    An open window keeps one per device it saw (100,000 at the flood of
    ``bench/memory.py``). A dict per kind cost about 930 bytes a device of five values in
    four kinds; this keeps the values in the order first counted, one list, with one byte a
    value naming its kind and the counts a list alongside (about 420 bytes), and ``_kinds``
    the kinds in the order first counted. ``counts()`` reads as the dict of dicts the same
    sightings would have made: kinds and each kind's values in the order first counted, a
    value taken back to nothing gone (counted again, it comes last), and a kind whose values
    all went kept as an empty mapping. Past ``_COUNTS_INDEXED_FROM`` values a value is found
    through a dict per kind (a server's peers in a window) rather than a scan."""

    __slots__ = ("_codes", "_counts", "_index", "_kinds", "_values")

    def __init__(self) -> None:
        self._kinds = b""
        self._codes = bytearray()
        self._values: list[str] = []
        self._counts: list[int] = []
        # kind -> value -> where, in a tally of many values
        self._index: dict[int, dict[str, int]] | None = None

    def _kind_index(self, code: int) -> dict[str, int]:
        index = self._index
        if index is None:  # (made again after a take-back moved the values)
            index = self._index = {}
            for at, (code_of, value) in enumerate(zip(self._codes, self._values, strict=True)):
                index.setdefault(code_of, {})[value] = at
        of_kind = index.get(code)
        if of_kind is None:
            of_kind = index[code] = {}
        return of_kind

    def _at(self, code: int, value: str) -> int:
        values = self._values
        if len(values) >= _COUNTS_INDEXED_FROM:
            return self._kind_index(code).get(value, -1)
        if value not in values:  # (a scan in C, where a failed index() raises)
            return -1
        codes, at = self._codes, values.index(value)
        while codes[at] != code:  # a value may be counted under several kinds (an address)
            if value not in values[at + 1 :]:
                return -1
            at = values.index(value, at + 1)
        return at

    def add(self, kind: str, value: str, times: int = 1) -> None:
        # the pipeline counts each sighting of a batch here: the first look is made inline
        code = ord(_KIND_CHAR.get(kind) or _kind_char(kind))
        values = self._values
        of_kind = None
        if len(values) < _COUNTS_INDEXED_FROM:
            at = values.index(value) if value in values else -1
            if at >= 0 and self._codes[at] != code:
                at = self._at(code, value)  # (counted under another kind first)
        else:
            index = self._index
            of_kind = index.get(code) if index is not None else None
            if of_kind is None:
                of_kind = self._kind_index(code)
            at = of_kind.get(value, -1)
        if at >= 0:
            self._counts[at] += times
            return
        if code not in self._kinds:
            self._kinds += bytes((code,))
        if of_kind is not None:
            of_kind[value] = len(values)
        self._codes.append(code)
        values.append(value)
        self._counts.append(times)

    def take_back(self, kind: str, value: str) -> None:
        """One sighting of ``value`` fewer; gone at none. Nothing if it was not counted."""
        char = _KIND_CHAR.get(kind)
        at = -1 if char is None else self._at(ord(char), value)
        if at < 0:
            return
        if self._counts[at] > 1:
            self._counts[at] -= 1
            return
        del self._codes[at], self._values[at], self._counts[at]
        self._index = None

    def counts(self) -> FactCounts:
        """The counts as a ``FactCounts`` (see the class docstring)."""
        return FactCounts(self._as_dicts())

    def _as_dicts(self) -> dict[str, dict[str, int]]:
        found: dict[str, dict[str, int]] = {_KIND_OF_CHAR[chr(code)]: {} for code in self._kinds}
        for code, value, times in zip(self._codes, self._values, self._counts, strict=True):
            found[_KIND_OF_CHAR[chr(code)]][value] = times
        return found

    def __repr__(self) -> str:
        return f"FactTally({self._as_dicts()!r})"
