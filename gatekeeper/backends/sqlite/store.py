"""SQLite store: the embedded default for `serve`; one file, WAL, every write in a transaction.

Tables: `objects` (the cluster objects), `manifests` (the digest of each manifest object as
last applied, so a restart with unchanged manifests keeps what the admission stream learned).

Safe across restarts and across worker processes sharing the file. Objects are kept as JSON
in one table keyed like the interface: (resource, namespace, name). Further tables (for
example a quota ledger) live beside it; `transaction()` gives them the same atomicity.

The files (the database, its -wal and -shm) are readable by their owner only, in a folder made
0700 if it does not exist; a Secret is stored without its data (store/base.py `storable`), and a
store written by an older version is scrubbed of any Secret data when it is opened.

Every write of the objects counts up `generation` (triggers, whoever writes), so one query tells
whether any process has changed them. An admission request reads through `snapshot()`: it asks
that once, and its reads (about seven for a pod) come from bytes cached since the last change
instead of from SQLite.
"""

from __future__ import annotations

import builtins
import contextlib
import logging
import os
import sqlite3
import stat
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path

import orjson

from gatekeeper.admission.state import SECRETS, JSONObject, Key, StoreError, key_of
from gatekeeper.backends.sqlite.ledger import SQLiteLedger
from gatekeeper.backends.storable import storable

log = logging.getLogger("gatekeeper.store")

SCHEMA_VERSION = 2  # 2: the generation table
BUSY_TIMEOUT_MS = 5000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    resource  TEXT NOT NULL,
    namespace TEXT NOT NULL,
    name      TEXT NOT NULL,
    body      BLOB NOT NULL,
    PRIMARY KEY (resource, namespace, name)
);
CREATE TABLE IF NOT EXISTS manifests (
    resource  TEXT NOT NULL,
    namespace TEXT NOT NULL,
    name      TEXT NOT NULL,
    digest    TEXT NOT NULL,
    PRIMARY KEY (resource, namespace, name)
);
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS generation (value INTEGER NOT NULL);
"""
# Whoever writes the objects (this class, another process, an older binary still running during
# an upgrade, an operator with the sqlite3 shell) counts up the generation.
_GENERATION_TRIGGERS = [
    f"CREATE TRIGGER IF NOT EXISTS objects_{event.lower()} AFTER {event} ON objects "
    "BEGIN UPDATE generation SET value = value + 1; END"
    for event in ("INSERT", "UPDATE", "DELETE")
]
MAX_CACHED_READS = 10_000  # a cache that outgrows this starts again (names a request chose, all missing)

# ("get", resource, namespace, name) -> body or None; ("list", resource, namespace) -> bodies
Cache = dict[tuple[str, ...], bytes | list[bytes] | None]


class SQLiteStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.RLock()
        self._cache: Cache = {}
        self._cached_generation: int | None = None
        try:
            _private_files(path)
            self._db = sqlite3.connect(
                path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            self._db.execute("PRAGMA secure_delete=ON")  # a replaced row leaves no old bytes behind
            self._db.execute("PRAGMA wal_autocheckpoint=0")  # the quota ledger's thread checkpoints
            with self.transaction() as db:
                _create_schema(db)
                scrubbed = _scrub_secrets(db)
            if scrubbed:
                self._db.execute("VACUUM")  # pages freed before secure_delete may still hold the data
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                log.warning(
                    "SQLite store %s: removed the data of %d Secrets written by an older version",
                    path,
                    scrubbed,
                )
            self.quota_ledger = SQLiteLedger(path)
        except (OSError, sqlite3.Error, StoreError) as exc:
            with contextlib.suppress(AttributeError, sqlite3.Error):  # opened before the failure
                self._db.close()
            raise StoreError(f"cannot open SQLite store {path}: {exc}") from None

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE): all of it happens or none of it does."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StoreError(f"SQLite store {self.path}: {exc}") from None
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            try:
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._db.execute("ROLLBACK")
                raise StoreError(f"SQLite store {self.path}: commit failed: {exc}") from None

    def _read(self, sql: str, args: tuple[str, ...]) -> builtins.list[tuple[bytes]]:
        with self._lock:
            try:
                return self._db.execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise StoreError(f"SQLite store {self.path}: {exc}") from None

    def get(self, resource: str, namespace: str, name: str) -> JSONObject | None:
        body = self.get_encoded(resource, namespace, name)
        return _decode(body) if body is not None else None

    def list(self, resource: str, namespace: str) -> builtins.list[JSONObject]:
        return [_decode(body) for body in self.list_encoded(resource, namespace)]

    def get_encoded(self, resource: str, namespace: str, name: str) -> bytes | None:
        rows = self._read(
            "SELECT body FROM objects WHERE resource = ? AND namespace = ? AND name = ?",
            (resource, namespace, name),
        )
        return rows[0][0] if rows else None

    def list_encoded(self, resource: str, namespace: str) -> builtins.list[bytes]:
        rows = self._read(
            "SELECT body FROM objects WHERE resource = ? AND namespace = ? ORDER BY name",
            (resource, namespace),
        )
        return [row[0] for row in rows]

    def snapshot(self) -> SQLiteSnapshot:
        """The store for one request: reads cached until a write by any process, writes through."""
        rows = self._read("SELECT value FROM generation", ())
        generation = int(rows[0][0]) if rows else None
        with self._lock:
            stale = generation is None or generation != self._cached_generation
            if stale or len(self._cache) > MAX_CACHED_READS:
                self._cache, self._cached_generation = {}, generation
            return SQLiteSnapshot(self, self._cache)

    def forget_cached(self) -> None:
        with self._lock:
            self._cache, self._cached_generation = {}, None

    def all(self) -> builtins.list[JSONObject]:
        rows = self._read("SELECT body FROM objects ORDER BY resource, namespace, name", ())
        return [_decode(row[0]) for row in rows]

    def put(self, obj: JSONObject) -> None:
        with self._writing() as db:
            _put(db, obj)

    def delete(self, resource: str, namespace: str, name: str) -> None:
        with self._writing() as db:
            _delete(db, (resource, namespace, name))

    def replace_all(self, objects: Iterable[JSONObject]) -> None:
        rows = [_row(obj) for obj in objects]  # validate before writing
        with self._writing() as db:
            db.execute("DELETE FROM objects")
            db.executemany("INSERT OR REPLACE INTO objects VALUES (?, ?, ?, ?)", rows)

    def applied_manifests(self) -> dict[Key, str]:
        with self._lock:
            try:
                rows = self._db.execute("SELECT resource, namespace, name, digest FROM manifests").fetchall()
            except sqlite3.Error as exc:
                raise StoreError(f"SQLite store {self.path}: {exc}") from None
        return {(r, ns, n): digest for r, ns, n, digest in rows}

    def apply_manifests(
        self, puts: Iterable[JSONObject], deletes: Iterable[Key], applied: Mapping[Key, str]
    ) -> None:
        rows = [_row(obj) for obj in puts]
        with self._writing() as db:
            for key in deletes:
                _delete(db, key)
            db.executemany("INSERT OR REPLACE INTO objects VALUES (?, ?, ?, ?)", rows)
            db.execute("DELETE FROM manifests")
            db.executemany("INSERT INTO manifests VALUES (?, ?, ?, ?)", [(*k, d) for k, d in applied.items()])

    @contextlib.contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        try:
            with self.transaction() as db:
                yield db
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite store {self.path}: {exc}") from None

    def close(self) -> None:
        with self._lock:
            self.quota_ledger.close()
            self._db.close()


class SQLiteSnapshot:
    """A SQLiteStore as one admission request sees it (SQLiteStore.snapshot).

    Reads come from the cache the snapshot was given, filled from SQLite on a miss; the cache holds
    the stored bytes, so every read decodes a fresh object that a plugin may change. The cache is
    valid because it was taken when the generation was known, and everything read into it since is
    at least that new: a write by any process makes the next snapshot start an empty one. A write
    through the snapshot goes to the store, and the snapshot reads afresh after it.
    """

    def __init__(self, store: SQLiteStore, cache: Cache) -> None:
        self._store = store
        self._cache = cache

    @property
    def quota_ledger(self) -> SQLiteLedger:
        return self._store.quota_ledger

    def get(self, resource: str, namespace: str, name: str) -> JSONObject | None:
        key = ("get", resource, namespace, name)
        if key not in self._cache:
            self._cache[key] = self._store.get_encoded(resource, namespace, name)
        body = self._cache[key]
        return _decode(body) if isinstance(body, bytes) else None

    def list(self, resource: str, namespace: str) -> builtins.list[JSONObject]:
        key = ("list", resource, namespace)
        if key not in self._cache:
            self._cache[key] = self._store.list_encoded(resource, namespace)
        bodies = self._cache[key]
        return [_decode(body) for body in bodies] if isinstance(bodies, builtins.list) else []

    def all(self) -> builtins.list[JSONObject]:
        return self._store.all()

    def applied_manifests(self) -> dict[Key, str]:
        return self._store.applied_manifests()

    def put(self, obj: JSONObject) -> None:
        self._writing(lambda: self._store.put(obj))

    def delete(self, resource: str, namespace: str, name: str) -> None:
        self._writing(lambda: self._store.delete(resource, namespace, name))

    def replace_all(self, objects: Iterable[JSONObject]) -> None:
        self._writing(lambda: self._store.replace_all(objects))

    def apply_manifests(
        self, puts: Iterable[JSONObject], deletes: Iterable[Key], applied: Mapping[Key, str]
    ) -> None:
        self._writing(lambda: self._store.apply_manifests(puts, deletes, applied))

    def close(self) -> None:
        """The store outlives its snapshots."""

    def _writing(self, write: Callable[[], None]) -> None:
        try:
            write()
        finally:
            self._cache = {}
            self._store.forget_cached()


def _create_schema(db: sqlite3.Connection) -> None:
    for statement in _SCHEMA.split(";"):
        if statement.strip():
            db.execute(statement)
    row = db.execute("SELECT version FROM schema_version").fetchone()
    if row is None:
        db.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))
    elif row[0] == 1:  # version 1 had no generation table; the statements above added it
        db.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))
    elif row[0] != SCHEMA_VERSION:
        raise StoreError(f"schema version {row[0]}, this gatekeeper understands {SCHEMA_VERSION}")
    if db.execute("SELECT value FROM generation").fetchone() is None:
        db.execute("INSERT INTO generation VALUES (0)")
    for trigger in _GENERATION_TRIGGERS:
        db.execute(trigger)


def _row(obj: JSONObject) -> tuple[str, str, str, bytes]:
    stored = storable(obj)
    return (*key_of(stored), orjson.dumps(stored))


def _put(db: sqlite3.Connection, obj: JSONObject) -> None:
    db.execute("INSERT OR REPLACE INTO objects VALUES (?, ?, ?, ?)", _row(obj))


def _scrub_secrets(db: sqlite3.Connection) -> int:
    """Strip the Secrets an older version stored whole; how many there were."""
    rows = db.execute("SELECT body FROM objects WHERE resource = ?", (SECRETS,)).fetchall()
    objects = [_decode(body) for (body,) in rows]
    stale = [obj for obj in objects if obj != storable(obj)]
    for obj in stale:
        _put(db, obj)
    if stale:  # their manifest digests were taken over the data
        db.execute("DELETE FROM manifests WHERE resource = ?", (SECRETS,))
    return len(stale)


def _private_files(path: Path) -> None:
    """The folder (made 0700 if new) and the database files, owner-only, before SQLite opens them:
    SQLite creates -wal and -shm with the database file's permissions."""
    folder = path.parent
    if not folder.exists():
        folder.mkdir(parents=True, mode=0o700)
    mode = folder.stat().st_mode
    if mode & (stat.S_IWGRP | stat.S_IWOTH) and not mode & stat.S_ISVTX:
        log.warning(
            "SQLite store folder %s is writable by group or others (mode %o): they can replace the "
            "store; make it 0700",
            folder,
            stat.S_IMODE(mode),
        )
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    for file in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        with contextlib.suppress(FileNotFoundError):
            if stat.S_IMODE(file.stat().st_mode) & 0o077:
                file.chmod(0o600)  # written by an older version with the umask's mode


def _delete(db: sqlite3.Connection, key: Key) -> None:
    db.execute("DELETE FROM objects WHERE resource = ? AND namespace = ? AND name = ?", key)


def _decode(body: bytes) -> JSONObject:
    value = orjson.loads(body)
    if not isinstance(value, dict):
        raise StoreError("a stored object is not a JSON object; the store file is corrupt")
    return value
