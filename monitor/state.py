"""The sensor's state: ONE SQLite file with the inventory, the baselines and a few counters.

Promises:

- **Crash safety.** The file is in WAL mode with ``synchronous=FULL``: every ``checkpoint()``
  is one transaction that is durable once it returns (WAL + FULL syncs the log at each
  commit, so even a power cut keeps committed checkpoints; NORMAL would survive ``kill -9``
  too but could lose the last commits on power loss, and at one commit per interval the extra
  fsync costs nothing). A ``kill -9`` at any moment loses at most what changed since the last
  checkpoint, and never corrupts the file: SQLite's WAL replays or discards the last partial
  transaction when the file is next opened.
- **Schema versioning.** ``PRAGMA user_version`` is the schema version and ``PRAGMA
  application_id`` marks the file as Santinel's. Older versions are brought up to date by
  the ``MIGRATIONS`` list, in one transaction; a newer version is refused.
- **Refusal, never replacement.** A file that is not SQLite, is another program's database,
  is corrupt, or has a newer schema raises ``StateError`` with a one-line message naming the
  file; the file is left untouched (a person decides what to do with it).
- **Metadata only.** Rows hold device ids, addresses, names, counts and times: the fact
  values of monitor.facts, never payload content.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
import zlib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from monitor.baseline import Baseline, BaselineConfig, BaselineStore
from monitor.facts import Fact, FactTable
from monitor.model import Classification, Device, Evidence
from monitor.profiles import FormatError

SCHEMA_VERSION = 2
APPLICATION_ID = 0x53414E54  # "SANT"
SQLITE_MAGIC = b"SQLite format 3\x00"
MAX_EDITS = 10_000  # changes kept for running daemons to pick up


class StateError(Exception):
    """The state file cannot be used; ``str()`` is one line naming the file."""


def _schema_v1(db: sqlite3.Connection) -> None:
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    db.execute("CREATE TABLE devices (id TEXT PRIMARY KEY, data TEXT NOT NULL)")
    # data: zlib-compressed JSON of Baseline.to_dict(derived=False, compact=True)
    db.execute("CREATE TABLE baselines (device_id TEXT PRIMARY KEY, data BLOB NOT NULL)")
    db.execute(
        "CREATE TABLE counters (name TEXT NOT NULL, key TEXT NOT NULL, value INTEGER NOT NULL,"
        " PRIMARY KEY (name, key))"
    )


def _schema_v2(db: sqlite3.Connection) -> None:
    # Changes made by commands (approve, reset, import, freeze), so that a running daemon
    # applies them to its in-memory baselines instead of overwriting them.
    db.execute("CREATE TABLE edits (id INTEGER PRIMARY KEY AUTOINCREMENT, data TEXT NOT NULL)")


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_schema_v1, _schema_v2]
"""``MIGRATIONS[i]`` takes a database from schema version ``i`` to ``i + 1``."""
assert len(MIGRATIONS) == SCHEMA_VERSION


class State:
    """An open state file. Use as a context manager, or call ``close()``."""

    def __init__(self, path: str | os.PathLike[str], *, create: bool = True) -> None:
        self.path = Path(path)
        self.checkpoints = 0
        self._edits_seen = 0  # the last edit already reflected in the store loaded from here
        self._written_devices: dict[str, tuple[Any, ...]] = {}
        self._counters: dict[tuple[str, str], int] = {}
        self._written_counters: dict[tuple[str, str], int] = {}
        self._db = self._open(create)
        try:
            self._load_meta()
        except BaseException:
            self._db.close()
            raise

    # --- opening ---------------------------------------------------------------------------

    def _refuse(self, reason: str) -> StateError:
        return StateError(f"{self.path}: {reason}; refusing to use or replace it")

    def _open(self, create: bool) -> sqlite3.Connection:
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            if not create:
                raise StateError(f"{self.path}: no such state file") from None
            size = 0
        except OSError as error:
            raise StateError(f"{self.path}: cannot read ({error.strerror})") from None
        if not size and create:
            # A new file is private from its first byte (SQLite gives -wal/-shm the same mode):
            # it names hosts and addresses.
            try:
                os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
            except OSError as error:
                raise StateError(f"{self.path}: cannot create ({error.strerror})") from None
        if size:
            try:
                with self.path.open("rb") as handle:
                    head = handle.read(len(SQLITE_MAGIC))
            except OSError as error:
                raise StateError(f"{self.path}: cannot read ({error.strerror})") from None
            if head != SQLITE_MAGIC:
                raise self._refuse("not a SQLite database")
        try:
            db = sqlite3.connect(self.path, isolation_level=None, timeout=60.0)
        except sqlite3.Error as error:
            raise StateError(f"{self.path}: cannot open ({error})") from None
        try:
            self._prepare(db)
        except sqlite3.DatabaseError as error:
            db.close()
            raise self._refuse(f"corrupt SQLite file ({_sqlite_reason(error)})") from None
        except BaseException:
            db.close()
            raise
        return db

    def _prepare(self, db: sqlite3.Connection) -> None:
        app_id = db.execute("PRAGMA application_id").fetchone()[0]
        version = db.execute("PRAGMA user_version").fetchone()[0]
        tables = db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        # A file with no table and no marks is one whose creation was cut short (killed
        # before the first commit): nothing in it to lose, so it is initialised like a new one.
        if tables or app_id or version:
            if app_id != APPLICATION_ID:
                raise self._refuse("not a santinel state file (another program's database)")
            if version > SCHEMA_VERSION:
                raise self._refuse(
                    f"written by a newer santinel (schema {version}, this one knows "
                    f"{SCHEMA_VERSION})"
                )
            check = db.execute("PRAGMA quick_check").fetchall()
            if check != [("ok",)]:
                raise self._refuse("corrupt SQLite file (integrity check failed)")
        mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise self._refuse("cannot switch the file to WAL mode")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA foreign_keys=ON")
        if version < SCHEMA_VERSION:
            db.execute("BEGIN IMMEDIATE")
            try:
                for migration in MIGRATIONS[version:]:
                    migration(db)
                db.execute(f"PRAGMA application_id={APPLICATION_ID}")
                db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:  # SQLite may have rolled back already (disk full)
                    db.execute("ROLLBACK")
                raise

    def _load_meta(self) -> None:
        try:
            row = self._db.execute("SELECT value FROM meta WHERE key='checkpoints'").fetchone()
            self.checkpoints = int(json.loads(row[0])) if row else 0
            for name, key, value in self._db.execute("SELECT name, key, value FROM counters"):
                self._counters[(name, key)] = int(value)
        except (sqlite3.DatabaseError, ValueError, TypeError) as error:
            raise self._refuse(f"unreadable state ({_sqlite_reason(error)})") from None
        self._written_counters = dict(self._counters)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> State:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- reading ---------------------------------------------------------------------------

    def meta(self, key: str, default: Any = None) -> Any:
        """A value checkpointed with ``meta=``, or ``default``."""
        try:
            row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
            return default if row is None else json.loads(row[0])
        except (sqlite3.DatabaseError, ValueError) as error:
            raise self._refuse(f"unreadable state ({_sqlite_reason(error)})") from None

    def load_store(self, config: BaselineConfig | None = None) -> BaselineStore:
        """All baselines, in a store with nothing dirty."""
        store = BaselineStore(config or self.baseline_config())
        try:
            # one read transaction: the rows and the edit they reflect are from one moment
            self._db.execute("BEGIN")
            rows = self._db.execute("SELECT device_id, data FROM baselines").fetchall()
            self._edits_seen = self._db.execute(
                "SELECT coalesce(max(id), 0) FROM edits"
            ).fetchone()[0]
            self._db.execute("COMMIT")
        except sqlite3.DatabaseError as error:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise self._refuse(f"unreadable state ({_sqlite_reason(error)})") from None
        for device_id, data in rows:
            try:
                baseline = Baseline.from_dict(_unpack(data), store.config)
            except (ValueError, FormatError, zlib.error) as error:
                raise self._refuse(
                    f"baseline row of device {device_id[:60]} is malformed ({str(error)[:200]})"
                ) from None
            store.baselines[baseline.device_id] = baseline
        now = self.meta("baseline_now")
        store.now = float(now) if isinstance(now, int | float) else None
        return store

    def baseline_config(self) -> BaselineConfig:
        """The learning config last checkpointed with the baselines (defaults if none), so
        that a command reading the file keeps the daemon's history sizes."""
        data = self.meta("baseline_config")
        if data is None:
            return BaselineConfig()
        try:
            return BaselineConfig(**data)
        except (TypeError, ValueError):
            raise self._refuse("the stored baseline config is malformed") from None

    def load_baseline(
        self, device_id: str, config: BaselineConfig | None = None
    ) -> Baseline | None:
        row = self._db.execute(
            "SELECT data FROM baselines WHERE device_id=?", (device_id,)
        ).fetchone()
        if row is None:
            return None
        try:
            return Baseline.from_dict(_unpack(row[0]), config or self.baseline_config())
        except (ValueError, FormatError, zlib.error) as error:
            raise self._refuse(
                f"baseline row of device {device_id[:60]} is malformed ({str(error)[:200]})"
            ) from None

    def baseline_ids(self) -> list[str]:
        return [r[0] for r in self._db.execute("SELECT device_id FROM baselines ORDER BY 1")]

    def load_devices(self) -> dict[str, Device]:
        """The inventory as last checkpointed."""
        devices: dict[str, Device] = {}
        for device_id, data in self._rows("SELECT id, data FROM devices"):
            try:
                device = device_from_dict(json.loads(data))
            except (ValueError, TypeError, KeyError, AttributeError) as error:
                raise self._refuse(
                    f"device row {device_id[:60]} is malformed ({type(error).__name__})"
                ) from None
            devices[device.id] = device
            self._written_devices[device.id] = _device_signature(device)
        return devices

    def _rows(self, sql: str) -> Iterable[tuple[str, str]]:
        try:
            rows = self._db.execute(sql).fetchall()
        except sqlite3.DatabaseError as error:
            raise self._refuse(f"unreadable state ({_sqlite_reason(error)})") from None
        return rows

    @property
    def counters(self) -> Mapping[tuple[str, str], int]:
        """Sensor counters, (name, key) -> value, e.g. ("device_tx_bytes", device id)."""
        return self._counters

    def set_counter(self, name: str, key: str, value: int) -> None:
        """Set a counter; written at the next checkpoint."""
        self._counters[(name, key)] = int(value)

    # --- writing ---------------------------------------------------------------------------

    def checkpoint(
        self,
        store: BaselineStore | None = None,
        devices: Mapping[str, Device] | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> int:
        """Write everything changed since the last checkpoint in ONE transaction.

        Writes the store's dirty and removed baselines, the devices whose traffic, facts or
        classification changed (``devices`` defaults to the store's last analysis), changed
        counters and ``meta``; returns the checkpoint number (1, 2, … over the file's life).
        On failure nothing is written, and the next checkpoint tries again.
        """
        if devices is None and store is not None:
            devices = store.devices
        device_rows: list[tuple[str, str]] = []
        signatures: dict[str, tuple[Any, ...]] = {}
        for device_id, device in (devices or {}).items():
            signature = _device_signature(device)
            if self._written_devices.get(device_id) != signature:
                device_rows.append((device_id, json.dumps(device_to_dict(device))))
                signatures[device_id] = signature
        counter_rows = [
            (name, key, value)
            for (name, key), value in self._counters.items()
            if self._written_counters.get((name, key)) != value
        ]
        db = self._db
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                number = self._write(db, store, device_rows, counter_rows, meta)
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:  # SQLite may have rolled back already (disk full)
                    db.execute("ROLLBACK")
                raise
        except sqlite3.Error as error:
            raise StateError(
                f"{self.path}: checkpoint failed ({_sqlite_reason(error)}); nothing was written"
            ) from None
        self.checkpoints = number
        self._written_devices.update(signatures)
        for name, key, value in counter_rows:
            self._written_counters[(name, key)] = value
        if store is not None:
            store.mark_clean()
            store.edits.clear()
        return number

    def _write(
        self,
        db: sqlite3.Connection,
        store: BaselineStore | None,
        device_rows: list[tuple[str, str]],
        counter_rows: list[tuple[str, str, int]],
        meta: Mapping[str, Any] | None,
    ) -> int:
        """The body of a checkpoint, inside its write transaction."""
        baseline_rows: list[tuple[str, bytes]] = []
        removed: list[tuple[str]] = []
        if store is not None:
            # Changes other processes made since this store was loaded come first: a command
            # may have approved a fact while this daemon was running.
            for edit_id, data in db.execute(
                "SELECT id, data FROM edits WHERE id > ? ORDER BY id", (self._edits_seen,)
            ).fetchall():
                self._edits_seen = edit_id
                try:
                    store.apply(json.loads(data))
                except ValueError:
                    continue  # a malformed change is skipped, never blocks checkpoints
            for edit in store.edits:
                cursor = db.execute("INSERT INTO edits (data) VALUES (?)", (json.dumps(edit),))
                self._edits_seen = max(self._edits_seen, cursor.lastrowid or 0)
            db.execute(
                "DELETE FROM edits WHERE id <= (SELECT max(id) FROM edits) - ?", (MAX_EDITS,)
            )
            for device_id in sorted(store.dirty):
                baseline = store.baselines.get(device_id)
                if baseline is not None:
                    baseline_rows.append(
                        (device_id, _pack(baseline.to_dict(derived=False, compact=True)))
                    )
            removed = [(device_id,) for device_id in sorted(store.removed)]
        row = db.execute("SELECT value FROM meta WHERE key='checkpoints'").fetchone()
        number = int(json.loads(row[0])) + 1 if row else 1  # other processes count too
        meta_rows = [("checkpoints", json.dumps(number))]
        if store is not None:
            meta_rows.append(("baseline_config", json.dumps(dataclasses.asdict(store.config))))
            if store.now is not None:
                meta_rows.append(("baseline_now", json.dumps(store.now)))
        meta_rows += [(key, json.dumps(value)) for key, value in (meta or {}).items()]
        db.executemany(
            "INSERT INTO devices (id, data) VALUES (?, ?) "
            "ON CONFLICT (id) DO UPDATE SET data=excluded.data",
            device_rows,
        )
        db.executemany(
            "INSERT INTO baselines (device_id, data) VALUES (?, ?) "
            "ON CONFLICT (device_id) DO UPDATE SET data=excluded.data",
            baseline_rows,
        )
        db.executemany("DELETE FROM baselines WHERE device_id=?", removed)
        db.executemany(
            "INSERT INTO counters (name, key, value) VALUES (?, ?, ?) "
            "ON CONFLICT (name, key) DO UPDATE SET value=excluded.value",
            counter_rows,
        )
        db.executemany(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value=excluded.value",
            meta_rows,
        )
        return number

    def integrity_check(self) -> list[str]:
        """``PRAGMA integrity_check``: ``["ok"]`` for a sound file."""
        return [row[0] for row in self._db.execute("PRAGMA integrity_check")]


def _pack(data: dict[str, Any]) -> bytes:
    # Baselines are repetitive JSON (times, keys): zlib level 1 makes them ~6x smaller, fast.
    return zlib.compress(json.dumps(data, separators=(",", ":")).encode(), 1)


def _unpack(blob: object) -> Any:
    if not isinstance(blob, bytes):
        raise ValueError("not a compressed row")
    return json.loads(zlib.decompress(blob))


def _sqlite_reason(error: Exception) -> str:
    # SQLite's messages name the problem ("file is not a database", "database disk image is
    # malformed"), never row content; keep them short anyway.
    return str(error).splitlines()[0][:120] if str(error) else type(error).__name__


# --- devices -------------------------------------------------------------------------------


def _device_signature(device: Device) -> tuple[Any, ...]:
    """Cheap fingerprint of what a checkpoint would write for a device."""
    return (
        device.last_seen,
        device.first_seen,
        device.tx_packets,
        device.rx_packets,
        device.tx_bytes,
        device.rx_bytes,
        device.vendor,
        device.classification,
        device.local,
        sum(fact.count for values in device.facts.values() for fact in values.values()),
        sum(len(values) for values in device.facts.values()),
    )


def device_to_dict(device: Device) -> dict[str, Any]:
    """A JSON-safe form of a Device (times as floats, which JSON keeps exactly)."""
    cls = device.classification
    return {
        "id": device.id,
        "mac": device.mac,
        "locally_administered": device.locally_administered,
        "vendor": device.vendor,
        "first_seen": device.first_seen,
        "last_seen": device.last_seen,
        "local": device.local,
        "tx_packets": device.tx_packets,
        "tx_bytes": device.tx_bytes,
        "rx_packets": device.rx_packets,
        "rx_bytes": device.rx_bytes,
        "facts": _facts_to_lists(device.facts),
        "classification": None
        if cls is None
        else {
            "signature": cls.signature,
            "vendor": cls.vendor,
            "device_class": cls.device_class,
            "model": cls.model,
            "criticality": cls.criticality,
            "confidence": cls.confidence,
            "evidence": [[e.kind, e.value, e.weight] for e in cls.evidence],
        },
    }


def _facts_to_lists(table: FactTable) -> dict[str, dict[str, list[float | int]]]:
    return {
        kind: {
            value: [first, last, count] for value, first, last, count in table.sorted_numbers(kind)
        }
        for kind in sorted(table)
    }


def device_from_dict(data: dict[str, Any]) -> Device:
    cls = data["classification"]
    classification = None
    if cls is not None:
        classification = Classification(
            signature=str(cls["signature"]),
            vendor=cls["vendor"],
            device_class=str(cls["device_class"]),
            model=cls["model"],
            criticality=str(cls["criticality"]),
            confidence=float(cls["confidence"]),
            evidence=tuple(Evidence(str(k), str(v), float(w)) for k, v, w in cls["evidence"]),
        )
    facts = FactTable(
        {
            str(kind): {
                str(value): Fact(float(first), float(last), int(count))
                for value, (first, last, count) in values.items()
            }
            for kind, values in data["facts"].items()
        }
    )
    return Device(
        id=str(data["id"]),
        mac=data["mac"],
        locally_administered=bool(data["locally_administered"]),
        vendor=data["vendor"],
        first_seen=float(data["first_seen"]),
        last_seen=float(data["last_seen"]),
        facts=facts,
        tx_packets=int(data["tx_packets"]),
        tx_bytes=int(data["tx_bytes"]),
        rx_packets=int(data["rx_packets"]),
        rx_bytes=int(data["rx_bytes"]),
        classification=classification,
        local=bool(data["local"]),
    )
