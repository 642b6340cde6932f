"""The quota ledger in a SQLite file, shared by every worker process that opens the same file.

Each `apply` is one `BEGIN IMMEDIATE` transaction: it takes SQLite's write lock before reading, so
the read-check-write of two requests (in any threads or processes) never interleaves, and the
usage and the request uid are committed together or not at all (kill -9 loses neither half).
WAL lets readers (GET /quota, and the usage a request plans with) proceed while a charge is being
written: each thread reads on a connection of its own.

Writers queue on an flock of a lock file beside the database before they ask SQLite for its write
lock. SQLite's own busy handler polls with sleeps of up to 100 ms, so two worker processes that
contend for it would mostly sleep; the kernel wakes an flock waiter the moment the lock is free.
The flock only orders writers; correctness still rests on SQLite's lock (and a writer that does
not take the flock, like the store's manifest sync, is merely slower when it collides).

Durability: synchronous=NORMAL in WAL mode. A commit is in the WAL file, through the operating
system, when `apply` returns, so it survives kill -9 of any process at any moment; only a power
loss or kernel crash can lose the last commits before a checkpoint (usage then undercounts until
`gatekeeper quota reconcile`). synchronous=FULL would fsync every charge, which bounds the whole
server to the disk's fsync rate.

Checkpoints (copying the WAL back into the database file, with an fsync) happen on a background
thread, not in the charge that happens to cross SQLite's 1000-page mark: that charge would hold
the write lock through the copy, and every worker's next charge (on its event loop) would wait.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import orjson

from gatekeeper.admission.quota.ledger import (
    REMEMBER_REQUESTS_SECONDS,
    Applied,
    Change,
    NamespaceUsage,
    Outcome,
    Refused,
    RequestKey,
    Used,
    current,
    replay,
)
from gatekeeper.admission.state import StoreError

log = logging.getLogger("gatekeeper.admission.quota")

BUSY_TIMEOUT_MS = 30_000
CHECKPOINT_SECONDS = 0.5
FORGET_EVERY_SECONDS = 60.0  # expired request uids are deleted at most this often, not on every charge

SCHEMA = """
CREATE TABLE IF NOT EXISTS quota_usage (
    namespace TEXT NOT NULL,
    quota     TEXT NOT NULL,
    used      TEXT NOT NULL,  -- JSON {resource: canonical quantity}
    PRIMARY KEY (namespace, quota)
);
CREATE TABLE IF NOT EXISTS quota_requests (
    uid       TEXT PRIMARY KEY,  -- admission request uid, applied at most once
    fingerprint TEXT NOT NULL,   -- what that request consumes: the same uid asking for more is a conflict
    namespace TEXT NOT NULL,
    at        REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS quota_requests_at ON quota_requests (at);
"""


class SQLiteLedger:
    live = False

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        self._lock = threading.Lock()
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._forgotten_at = 0.0
        self._closed = threading.Event()
        try:
            self._writer_lock = os.open(f"{self.path}.writer-lock", os.O_RDWR | os.O_CREAT, 0o600)
            self._db = self._connect()
            self._db.execute("PRAGMA journal_mode = WAL")
            with self._transaction():
                for statement in SCHEMA.split(";"):
                    if statement.strip():
                        self._db.execute(statement)
            self._checkpointer = threading.Thread(
                target=self._checkpoint_until_closed,
                args=(self._connect(),),
                name="ledger-checkpoint",
                daemon=True,
            )
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"quota ledger {self.path}: {exc}") from None
        self._checkpointer.start()

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
        )
        db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute("PRAGMA wal_autocheckpoint = 0")  # the checkpoint thread does it
        return db

    def _checkpoint_until_closed(self, db: sqlite3.Connection) -> None:
        """PASSIVE: copies what no reader still needs, never waits for a writer or blocks one."""
        try:
            while not self._closed.wait(CHECKPOINT_SECONDS):
                try:
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except Exception as exc:  # the next round tries again; the WAL only grows meanwhile
                    log.warning("quota ledger %s: checkpoint failed: %s", self.path, exc)
        finally:
            db.close()

    def _reader(self) -> sqlite3.Connection:
        """This thread's read connection (a SELECT in autocommit mode reads one snapshot)."""
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = self._connect()
            with self._lock:
                self._readers.append(db)
        return db

    def usage(self, namespace: str, seeds: Mapping[str, Used]) -> NamespaceUsage:
        try:
            return current(self._rows(namespace, self._reader()), seeds)
        except sqlite3.Error as exc:
            raise StoreError(f"quota ledger {self.path}: {exc}") from None

    def apply(
        self, namespace: str, request: RequestKey, seeds: Mapping[str, Used], change: Change
    ) -> Outcome:
        try:
            with self._transaction():
                seen = self._db.execute(
                    "SELECT fingerprint FROM quota_requests WHERE uid = ?", (request.uid,)
                )
                row = seen.fetchone()
                if row is not None:
                    return replay(request, row[0])
                after = change(current(self._rows(namespace, self._db), seeds))
                if isinstance(after, Refused):
                    return Outcome(Applied.REFUSED, after.message)
                for name, used in after.items():
                    self._write(namespace, name, used)
                self._remember(namespace, request)
                return Outcome(Applied.CHANGED)
        except sqlite3.Error as exc:
            raise StoreError(f"quota ledger {self.path}: {exc}") from None

    def reconcile(self, usage: Mapping[tuple[str, str], Used]) -> None:
        try:
            with self._transaction():
                for (namespace, name), used in usage.items():
                    self._write(namespace, name, used)
        except sqlite3.Error as exc:
            raise StoreError(f"quota ledger {self.path}: {exc}") from None

    def close(self) -> None:
        self._closed.set()
        self._checkpointer.join()
        with self._lock:
            for db in [self._db, *self._readers]:
                db.close()
            os.close(self._writer_lock)

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any exception (a refusal writes nothing)."""
        with self._lock:
            fcntl.flock(self._writer_lock, fcntl.LOCK_EX)
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            finally:
                fcntl.flock(self._writer_lock, fcntl.LOCK_UN)

    def _rows(self, namespace: str, db: sqlite3.Connection) -> dict[str, Used]:
        cursor = db.execute("SELECT quota, used FROM quota_usage WHERE namespace = ?", (namespace,))
        return {quota: orjson.loads(used) for quota, used in cursor}

    def _write(self, namespace: str, name: str, used: Used) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO quota_usage (namespace, quota, used) VALUES (?, ?, ?)",
            (namespace, name, _json(used)),
        )

    def _remember(self, namespace: str, request: RequestKey) -> None:
        now = time.time()
        if now - self._forgotten_at >= FORGET_EVERY_SECONDS:
            self._db.execute("DELETE FROM quota_requests WHERE at < ?", (now - REMEMBER_REQUESTS_SECONDS,))
            self._forgotten_at = now
        self._db.execute(
            "INSERT INTO quota_requests (uid, fingerprint, namespace, at) VALUES (?, ?, ?, ?)",
            (request.uid, request.fingerprint, namespace, now),
        )


def _json(used: Used) -> str:
    return orjson.dumps(used, option=orjson.OPT_SORT_KEYS).decode()
