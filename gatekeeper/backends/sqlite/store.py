"""SQLite store: the embedded default for `serve`; one file, WAL, every write in a transaction.

Tables: `objects` (the cluster objects), `manifests` (the digest of each manifest object as
last applied, so a restart with unchanged manifests keeps what the admission stream learned), and
the quota ledger's (ledger.py). The connections, the schema and the order of writers are the
file's Database (database.py), which the store and its ledger share.

Safe across restarts and across worker processes sharing the file. Objects are kept as JSON
in one table keyed like the interface: (resource, namespace, name). A Secret is stored without its
data (backends/storable.py), and a store written by an older version is scrubbed of any Secret
data when it is opened.

Every write of the objects counts up `generation` (triggers, whoever writes), so one query tells
whether any process has changed them. An admission request reads through `snapshot()`: it asks
that once, and its reads (about seven for a pod) come from bytes cached since the last change
instead of from SQLite.
"""

from __future__ import annotations

import builtins
import logging
import sqlite3
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path

import orjson

from gatekeeper.admission.state import SECRETS, JSONObject, Key, StoreError, key_of
from gatekeeper.backends.snapshot import Cache, Snapshot
from gatekeeper.backends.sqlite.database import Database
from gatekeeper.backends.sqlite.ledger import SQLiteLedger
from gatekeeper.backends.storable import decode_stored, storable

log = logging.getLogger("gatekeeper.store")

MAX_CACHED_READS = 10_000  # a cache that outgrows this starts again (names a request chose, all missing)


class SQLiteStore:
    blocks = False  # a local file answers in microseconds: admission runs on the event loop

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()  # the cache
        self._cache: Cache = {}
        self._cached_generation: int | None = None
        self._db = Database(path)
        try:
            with self._db.writing() as db:
                scrubbed = _scrub_secrets(db)
            if scrubbed:
                self._db.vacuum()
                log.warning(
                    "SQLite store %s: removed the data of %d Secrets written by an older version",
                    path,
                    scrubbed,
                )
        except StoreError:
            self._db.close()
            raise
        self.quota_ledger = SQLiteLedger(self._db)

    def unavailable(self) -> str | None:
        return None  # a failing file shows as StoreError on the read that meets it

    def _read(self, sql: str, args: tuple[str, ...]) -> builtins.list[tuple[bytes]]:
        return self._db.read(sql, args)

    def get(self, resource: str, namespace: str, name: str) -> JSONObject | None:
        body = self.get_stored(resource, namespace, name)
        return _decode(body) if body is not None else None

    def list(self, resource: str, namespace: str) -> builtins.list[JSONObject]:
        return [_decode(body) for body in self.list_stored(resource, namespace)]

    def get_stored(self, resource: str, namespace: str, name: str) -> bytes | None:
        rows = self._read(
            "SELECT body FROM objects WHERE resource = ? AND namespace = ? AND name = ?",
            (resource, namespace, name),
        )
        return rows[0][0] if rows else None

    def list_stored(self, resource: str, namespace: str) -> builtins.list[bytes]:
        rows = self._read(
            "SELECT body FROM objects WHERE resource = ? AND namespace = ? ORDER BY name",
            (resource, namespace),
        )
        return [row[0] for row in rows]

    def snapshot(self) -> Snapshot[bytes]:
        """The store for one request (backends/snapshot.py). Its cache is shared by every snapshot
        taken since the generation was last seen to change, so the bytes read by one request serve
        the next ones: valid because the cache was started when the generation was known, and
        everything read into it since is at least that new. A write by any process makes the next
        snapshot start an empty one."""
        rows = self._read("SELECT value FROM generation", ())
        generation = int(rows[0][0]) if rows else None
        with self._lock:
            stale = generation is None or generation != self._cached_generation
            if stale or len(self._cache) > MAX_CACHED_READS:
                self._cache, self._cached_generation = {}, generation
            return Snapshot(self, self, _decode, self._cache, self.forget_cached)

    def forget_cached(self) -> None:
        with self._lock:
            self._cache, self._cached_generation = {}, None

    def all(self) -> builtins.list[JSONObject]:
        rows = self._read("SELECT body FROM objects ORDER BY resource, namespace, name", ())
        return [_decode(row[0]) for row in rows]

    def put(self, obj: JSONObject) -> None:
        with self._db.writing() as db:
            _put(db, obj)

    def delete(self, resource: str, namespace: str, name: str) -> None:
        with self._db.writing() as db:
            _delete(db, (resource, namespace, name))

    def replace_all(self, objects: Iterable[JSONObject]) -> None:
        rows = [_row(obj) for obj in objects]  # validate before writing
        with self._db.writing() as db:
            db.execute("DELETE FROM objects")
            db.executemany("INSERT OR REPLACE INTO objects VALUES (?, ?, ?, ?)", rows)

    def applied_manifests(self) -> dict[Key, str]:
        rows = self._db.read("SELECT resource, namespace, name, digest FROM manifests")
        return {(r, ns, n): digest for r, ns, n, digest in rows}

    def apply_manifests(
        self, puts: Iterable[JSONObject], deletes: Iterable[Key], applied: Mapping[Key, str]
    ) -> None:
        rows = [_row(obj) for obj in puts]
        with self._db.writing() as db:
            for key in deletes:
                _delete(db, key)
            db.executemany("INSERT OR REPLACE INTO objects VALUES (?, ?, ?, ?)", rows)
            db.execute("DELETE FROM manifests")
            db.executemany("INSERT INTO manifests VALUES (?, ?, ?, ?)", [(*k, d) for k, d in applied.items()])

    def close(self) -> None:
        self._db.close()


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


def _delete(db: sqlite3.Connection, key: Key) -> None:
    db.execute("DELETE FROM objects WHERE resource = ? AND namespace = ? AND name = ?", key)


def _decode(body: bytes) -> JSONObject:
    return decode_stored(body, "a stored object is not a JSON object; the store file is corrupt")
