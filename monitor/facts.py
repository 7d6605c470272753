"""Learned facts: what a device was seen doing, with first seen, last seen and count.

The inventory, the baselines and the signature matcher all speak in facts, keyed by a
fact *kind* (one of ``FACT_KINDS``) and a *value* (a short normalised string). Values are
metadata only: names, addresses, ports, identifiers — never payload content.

A ``FactTable`` (one per device, and two per baseline) reads as ``kind -> value -> Fact``
but keeps the numbers of all its values in one array: a site of 100,000 devices holds
millions of values, and an object per value cost 64 bytes more each (plus its times).
Promises: iteration follows the order in which kinds and values were first recorded, as a
dict would; a ``Fact`` read from a table is a copy (change a table through ``record``,
``absorb``, item assignment or deletion, never through a fact read from it). A table's
``version`` moves on whenever a kind or value is added or removed or a first seen moves
earlier: what a reader derived from a table's values and their first seen (a rule's
finding) holds while it is the same table (``source``, which a view as of a time shares) at
the same version. ``shrinks`` moves on only when a value is removed or its numbers are
replaced (a first seen may then move later): while it stands still, the values of a kind as
of a time, read again as of the same time or a later one, are those read before and maybe
more, so the same number of them are the same values.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable, Iterator, KeysView, Mapping
from dataclasses import dataclass
from itertools import compress, count, repeat
from typing import Any, TypeVar, overload

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
# One int object per cell number, shared by every table (a number above 256 is an object of
# its own each time it is made: 32 bytes per value of a large device otherwise).
_CELL_NUMBERS: tuple[int, ...] = tuple(range(len(FACT_KINDS) * MAX_VALUES_PER_KIND))


_CELLS = len(_CELL_NUMBERS)
_NO_CELLS: dict[str, int] = {}  # (read only) the cells of a kind a table has no value of


def _number(cell: int) -> int:
    return _CELL_NUMBERS[cell] if cell < _CELLS else cell


class FactTable(Mapping[str, "KindFacts"]):
    """``kind -> value -> Fact`` for one device: see the module docstring.

    Per kind, a dict maps each value to its cell; a cell is three numbers of ``_numbers``.
    Cells freed by deletion are reused.
    """

    __slots__ = ("_cells", "_free", "_numbers", "shrinks", "version")

    def __init__(self, facts: Mapping[str, Mapping[str, Fact]] | None = None) -> None:
        self._cells: dict[str, dict[str, int]] = {}
        self._numbers = array("d")
        self._free: list[int] | None = None
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

    # --- reading: a mapping of kinds ------------------------------------------------------
    def __getitem__(self, kind: str) -> KindFacts:
        return KindFacts(self, self._cells[kind])

    @overload  # type: ignore[override]
    def get(self, kind: str) -> KindFacts | None: ...
    @overload
    def get(self, kind: str, default: dict[str, Fact]) -> KindFacts | dict[str, Fact]: ...
    @overload
    def get(self, kind: str, default: _T) -> KindFacts | _T: ...
    def get(self, kind: str, default: Any = None) -> Any:
        cells = self._cells.get(kind)
        return default if cells is None else KindFacts(self, cells)

    def __contains__(self, kind: object) -> bool:
        return kind in self._cells

    def __iter__(self) -> Iterator[str]:
        return iter(self._cells)

    def __len__(self) -> int:
        return len(self._cells)

    def keys(self) -> KeysView[str]:
        return self._cells.keys()

    def values(self) -> list[KindFacts]:  # type: ignore[override]
        return [KindFacts(self, cells) for cells in self._cells.values()]

    def items(self) -> list[tuple[str, KindFacts]]:  # type: ignore[override]
        return [(kind, KindFacts(self, cells)) for kind, cells in self._cells.items()]

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
        cells = self._cells.get(kind)
        return list(cells) if cells is not None else []

    def sorted_numbers(self, kind: str) -> list[tuple[str, float, float, int]]:
        """``(value, first seen, last seen, count)`` of each value of ``kind``, sorted by
        value, without making a ``Fact`` each (state files write them all, in this order)."""
        cells = self._cells.get(kind)
        if cells is None:
            return []
        numbers = self._numbers.tolist()  # one list of floats: cheaper than reading each
        out = []
        for value in sorted(cells):
            base = cells[value] * 3
            out.append((value, numbers[base], numbers[base + 1], int(numbers[base + 2])))
        return out

    def has(self, kind: str, value: str) -> bool:
        cells = self._cells.get(kind)
        return cells is not None and value in cells

    def count_of(self, kind: str) -> int:
        """How many values ``kind`` has (0 for a kind it has none of)."""
        cells = self._cells.get(kind)
        return 0 if cells is None else len(cells)

    def counts_of(self, kinds: Iterable[str]) -> tuple[int, ...]:
        """How many values each of ``kinds`` has (0 for a kind it has none of)."""
        return tuple(map(len, map(self._cells.get, kinds, repeat(_NO_CELLS))))

    def value_count(self) -> int:
        """How many values, over all kinds."""
        return sum(len(cells) for cells in self._cells.values())

    def total_sightings(self) -> int:
        """The sum of every value's count (freed cells count 0)."""
        return int(sum(self._numbers[2::_FIELDS]))

    def newest_first_seen(self) -> float:
        """The latest first-seen time of any value; -inf for an empty table."""
        return max(self._numbers[0::_FIELDS], default=-math.inf)

    def first_seen_since(self, end: float) -> list[tuple[str, str]]:
        """``(kind, value)`` of the values first seen at or after ``end``."""
        late = set(compress(count(), map(float(end).__le__, self._numbers[0::_FIELDS])))
        if not late:
            return []
        return [
            (kind, value)
            for kind, cells in self._cells.items()
            for value, cell in cells.items()
            if cell in late
        ]

    def first_seen_before(self, end: float) -> FactTable:
        """The values first seen before ``end``, kinds left empty dropped: a read-only view
        that shares this table's numbers, and the values of each kind with none first seen
        since ``end`` (no copy: detectors take one per device and window, and at a window's
        close most of a device's kinds have nothing newer), valid until this table changes."""
        kept = _FactsAsOf()
        kept._numbers = self._numbers
        kept._source = self
        kept.version = self.version  # with its value count, says which view of which values
        kept.shrinks = self.shrinks
        # the cells first seen since end (a freed cell reads as never seen: not among them)
        late = set(compress(count(), map(float(end).__le__, self._numbers[0::_FIELDS])))
        for kind, cells in self._cells.items():
            if late.isdisjoint(cells.values()):
                if cells:
                    kept._cells[kind] = cells
                continue
            into = {value: cell for value, cell in cells.items() if cell not in late}
            if into:
                kept._cells[kind] = into
        return kept

    # --- writing ----------------------------------------------------------------------------
    def setdefault(self, kind: str, default: object = None) -> KindFacts:
        """The values of ``kind``, made empty if it had none (``default`` is ignored: it is
        there for code written against a dict of dicts)."""
        cells = self._cells.get(kind)
        if cells is None:
            cells = self._cells[kind] = {}
            self.version += 1
        return KindFacts(self, cells)

    def __setitem__(self, kind: str, values: Mapping[str, Fact]) -> None:
        if kind in self._cells:
            del self[kind]
        cells = self._cells[kind] = {}
        self.version += 1
        for value, fact in values.items():
            cells[value] = self._new_cell(fact.first_seen, fact.last_seen, fact.count)

    def __delitem__(self, kind: str) -> None:
        cells = self._cells.pop(kind)
        self.version += 1
        for cell in cells.values():
            self._release(cell)
        self._compact_if_sparse()

    def record(
        self, kind: str, value: str, when: float, times: int = 1, last: float | None = None
    ) -> bool:
        """Record ``times`` sightings from ``when`` to ``last`` (default: all at ``when``);
        returns True when the value is new for that kind. Past ``MAX_VALUES_PER_KIND`` values
        of a kind, the stalest eighth makes room (counted in ``evicted_values``)."""
        cells = self._cells.get(kind)
        if cells is None:
            cells = self._cells[kind] = {}
        cell = cells.get(value)
        newest = when if last is None or last < when else last
        if cell is None:
            self.version += 1
            if len(cells) >= MAX_VALUES_PER_KIND:
                self._forget_stalest(cells)  # (may renumber the cells into a new array)
            if self._free:
                cells[value] = self._new_cell(when, newest, times)
            else:  # inlined: this runs for every new value of every device
                numbers = self._numbers
                cell = len(numbers) // 3
                cells[value] = _CELL_NUMBERS[cell] if cell < _CELLS else cell
                numbers.extend((when, newest, times))
            return True
        numbers = self._numbers
        base = cell * 3  # _FIELDS, written out: this runs for every sighting noted
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
        cells = self._cells.get(kind)
        if cells is None:
            cells = self._cells[kind] = {}
            self.version += 1
        numbers = self._numbers
        for value, times in counts.items():
            cell = cells.get(value)
            if cell is None:
                self.record(kind, value, when, times)
                numbers = self._numbers  # making room may have renumbered the cells
                continue
            base = cell * 3
            if when < numbers[base]:
                numbers[base] = when
                self.version += 1
            if when > numbers[base + 1]:
                numbers[base + 1] = when
            numbers[base + 2] += times

    def take_back(self, kind: str, value: str, times: int = 1) -> bool:
        """Take back ``times`` sightings of ``value`` (recorded under a name that turned out
        to stand for another); the value goes when none is left, and its kind when it was
        the last. Returns True when the value went. Its first and last seen stay: what is
        left of it was seen within them."""
        cells = self._cells.get(kind, _NO_CELLS)
        cell = cells.get(value)
        if cell is None:
            return False
        base = cell * _FIELDS
        left = self._numbers[base + 2] - times
        if left > 0:
            self._numbers[base + 2] = left
            return False
        del cells[value]
        self._release(cell)
        if not cells:
            del self._cells[kind]
        self._compact_if_sparse()
        return True

    def absorb(self, other: FactTable | Mapping[str, Mapping[str, Fact]]) -> None:
        """Add ``other``'s values: first seen is the earlier, last seen the later, counts
        add up. Unbounded (the parts were bounded)."""
        for kind, values in other.items():
            cells = self._cells.get(kind)
            if cells is None:
                cells = self._cells[kind] = {}
                self.version += 1
            numbers = self._numbers  # (a new cell is added to it, never a new array)
            for value, fact in values.items():
                cell = cells.get(value)
                if cell is None:
                    cells[value] = self._new_cell(fact.first_seen, fact.last_seen, fact.count)
                    continue
                base = cell * _FIELDS
                if fact.first_seen < numbers[base]:
                    numbers[base] = fact.first_seen
                    self.version += 1
                numbers[base + 1] = max(numbers[base + 1], fact.last_seen)
                numbers[base + 2] += fact.count

    # --- cells ------------------------------------------------------------------------------
    def _fact(self, cell: int) -> Fact:
        base = cell * _FIELDS
        numbers = self._numbers
        return Fact(numbers[base], numbers[base + 1], int(numbers[base + 2]))

    def _new_cell(self, first: float, last: float, count: float) -> int:
        self.version += 1
        numbers = self._numbers
        if self._free:
            cell = self._free.pop()
            base = cell * _FIELDS
            numbers[base] = first
            numbers[base + 1] = last
            numbers[base + 2] = count
            return cell
        cell = len(numbers) // _FIELDS
        numbers.extend((first, last, count))
        return _number(cell)

    def _set_cell(self, cell: int, fact: Fact) -> None:
        self.version += 1
        self.shrinks += 1
        base = cell * _FIELDS
        self._numbers[base : base + _FIELDS] = array(
            "d", (fact.first_seen, fact.last_seen, fact.count)
        )

    def _release(self, cell: int) -> None:
        # a freed cell reads as never seen: it does not move newest_first_seen or the counts
        self.version += 1
        self.shrinks += 1
        base = cell * _FIELDS
        self._numbers[base : base + _FIELDS] = array("d", (-math.inf, -math.inf, 0.0))
        if self._free is None:
            self._free = []
        self._free.append(cell)

    def _compact_if_sparse(self) -> None:
        """Renumber the cells in use when most are free, so a table that shrank gives its
        memory back. Only between operations: cell numbers change."""
        if self._free is None or len(self._free) * 2 <= len(self._numbers) // _FIELDS:
            return
        numbers = self._numbers
        packed = array("d")
        for cells in self._cells.values():
            for value, cell in cells.items():
                base = cell * _FIELDS
                cells[value] = _number(len(packed) // _FIELDS)
                packed.extend(numbers[base : base + _FIELDS])
        self._numbers = packed
        self._free = None

    def _forget_stalest(self, cells: dict[str, int]) -> None:
        global evicted_values
        numbers = self._numbers
        stalest = sorted(cells, key=lambda v: numbers[cells[v] * _FIELDS + 1])
        for value in stalest[: MAX_VALUES_PER_KIND // 8]:
            self._release(cells.pop(value))
        evicted_values += MAX_VALUES_PER_KIND // 8
        self._compact_if_sparse()


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


class _FactsAsOf(FactTable):
    """What ``FactTable.first_seen_before`` returns: some of another table's cells."""

    __slots__ = ("_source",)
    _source: FactTable

    @property
    def source(self) -> FactTable:
        return self._source

    def _cells_in_view(self) -> list[int]:
        return [cell for cells in self._cells.values() for cell in cells.values()]

    def newest_first_seen(self) -> float:
        return max((self._numbers[cell * 3] for cell in self._cells_in_view()), default=-math.inf)

    def total_sightings(self) -> int:
        return int(sum(self._numbers[cell * 3 + 2] for cell in self._cells_in_view()))

    def _read_only(self, *_: object, **__: object) -> Any:
        raise TypeError("a view of facts as of a time is read-only")

    record = record_counts = absorb = take_back = _read_only  # type: ignore[assignment]
    setdefault = __setitem__ = __delitem__ = _read_only  # type: ignore[assignment]
    _new_cell = _set_cell = _release = _read_only  # type: ignore[assignment]


class KindFacts(Mapping[str, Fact]):
    """The values of one kind in a ``FactTable``: ``value -> Fact`` (a copy; see the module
    docstring). Made on access; holds nothing of its own."""

    __slots__ = ("_cells", "_table")

    def __init__(self, table: FactTable, cells: dict[str, int]) -> None:
        self._table = table
        self._cells = cells

    def __getitem__(self, value: str) -> Fact:
        return self._table._fact(self._cells[value])

    @overload  # type: ignore[override]
    def get(self, value: str) -> Fact | None: ...
    @overload
    def get(self, value: str, default: _T) -> Fact | _T: ...
    def get(self, value: str, default: Any = None) -> Any:
        cell = self._cells.get(value)
        return default if cell is None else self._table._fact(cell)

    def __contains__(self, value: object) -> bool:
        return value in self._cells

    def __iter__(self) -> Iterator[str]:
        return iter(self._cells)

    def __len__(self) -> int:
        return len(self._cells)

    def keys(self) -> KeysView[str]:
        # the dict's own view: Mapping's would iterate through a generator, a call a value
        return self._cells.keys()

    def items(self) -> list[tuple[str, Fact]]:  # type: ignore[override]
        fact = self._table._fact
        return [(value, fact(cell)) for value, cell in self._cells.items()]

    def values(self) -> list[Fact]:  # type: ignore[override]
        fact = self._table._fact
        return [fact(cell) for cell in self._cells.values()]

    def __setitem__(self, value: str, fact: Fact) -> None:
        cell = self._cells.get(value)
        if cell is None:
            self._cells[value] = self._table._new_cell(fact.first_seen, fact.last_seen, fact.count)
        else:
            self._table._set_cell(cell, fact)

    def __delitem__(self, value: str) -> None:
        self._table._release(self._cells[value])
        del self._cells[value]
        self._table._compact_if_sparse()

    def pop(self, value: str, default: Any = None) -> Any:
        cell = self._cells.get(value)
        if cell is None:
            return default
        fact = self._table._fact(cell)
        del self[value]
        return fact

    def __repr__(self) -> str:
        return f"KindFacts({dict(self.items())!r})"


def _plain(table: FactTable | Mapping[str, Mapping[str, Fact]]) -> dict[str, dict[str, Fact]]:
    return {kind: dict(values.items()) for kind, values in table.items()}
