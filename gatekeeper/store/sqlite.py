"""SQLite store: the embedded default for `serve`; one file, WAL, every write in a transaction.

Tables: `objects` (the cluster objects), `manifests` (the digest of each manifest object as
last applied, so a restart with unchanged manifests keeps what the admission stream learned).

Safe across restarts and across worker processes sharing the file. Objects are kept as JSON
in one table keyed like the interface: (resource, namespace, name). Further tables (for
example a quota ledger) live beside it; `transaction()` gives them the same atomicity.
"""

from __future__ import annotations

import builtins
import contextlib
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import orjson

from gatekeeper.quota.sqlite_ledger import SQLiteLedger
from gatekeeper.store.base import JSONObject, Key, StoreError, key_of

SCHEMA_VERSION = 1
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
"""


class SQLiteStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.RLock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            with self.transaction() as db:
                _create_schema(db)
            self.quota_ledger = SQLiteLedger(path)
        except (OSError, sqlite3.Error, StoreError) as exc:
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
        rows = self._read(
            "SELECT body FROM objects WHERE resource = ? AND namespace = ? AND name = ?",
            (resource, namespace, name),
        )
        return _decode(rows[0][0]) if rows else None

    def list(self, resource: str, namespace: str) -> builtins.list[JSONObject]:
        rows = self._read(
            "SELECT body FROM objects WHERE resource = ? AND namespace = ? ORDER BY name",
            (resource, namespace),
        )
        return [_decode(row[0]) for row in rows]

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
        rows = [(*key_of(obj), orjson.dumps(obj)) for obj in objects]  # validate before writing
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
        rows = [(*key_of(obj), orjson.dumps(obj)) for obj in puts]
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


def _create_schema(db: sqlite3.Connection) -> None:
    for statement in _SCHEMA.split(";"):
        if statement.strip():
            db.execute(statement)
    row = db.execute("SELECT version FROM schema_version").fetchone()
    if row is None:
        db.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))
    elif row[0] != SCHEMA_VERSION:
        raise StoreError(f"schema version {row[0]}, this gatekeeper understands {SCHEMA_VERSION}")


def _put(db: sqlite3.Connection, obj: JSONObject) -> None:
    db.execute("INSERT OR REPLACE INTO objects VALUES (?, ?, ?, ?)", (*key_of(obj), orjson.dumps(obj)))


def _delete(db: sqlite3.Connection, key: Key) -> None:
    db.execute("DELETE FROM objects WHERE resource = ? AND namespace = ? AND name = ?", key)


def _decode(body: bytes) -> JSONObject:
    value = orjson.loads(body)
    if not isinstance(value, dict):
        raise StoreError("a stored object is not a JSON object; the store file is corrupt")
    return value
