"""The SQLite file as the store and its quota ledger share it: one connection setup, one schema,
one order of writers, one checkpoint thread.

Connections, all made by `_connect` with the same PRAGMAs: one writer for every write
transaction of this process (objects and quota usage alike), one reader per thread (WAL: a read
never waits for a write, and a SELECT in autocommit mode reads one snapshot), one for the
checkpoint thread.

Writers queue on an flock of a lock file beside the database before they ask SQLite for its write
lock. SQLite's own busy handler polls with sleeps of up to 100 ms, so two worker processes that
contend for it would mostly sleep; the kernel wakes an flock waiter the moment the lock is free.
The flock only orders writers; correctness still rests on SQLite's lock.

One busy timeout, BUSY_TIMEOUT_MS = 5 s. gatekeeper's writers meet in the flock first, so SQLite's
handler only waits for a writer outside that order (an older binary during an upgrade, the sqlite3
shell) or for WAL recovery. Admission on SQLite runs on the event loop, so the wait stalls the
worker; kube-apiserver gives a webhook 10 s by default. At 5 s the request fails with StoreError
(503) while the caller still listens and its failurePolicy decides; the 30 s the ledger used to
wait would answer nobody.

Durability: synchronous=NORMAL in WAL mode. A commit is in the WAL file, through the operating
system, when the transaction returns, so it survives kill -9 of any process at any moment; only a
power loss or kernel crash can lose the last commits before a checkpoint (usage then undercounts
until `gatekeeper quota reconcile`). synchronous=FULL would fsync every charge, which bounds the
whole server to the disk's fsync rate.

Checkpoints (copying the WAL back into the database file, with an fsync) and the deletion of
expired quota request uids happen on the background thread, not in the charge that happens to
cross SQLite's 1000-page mark or the minute: that charge would hold the write lock through the
work, and every worker's next charge (on its event loop) would wait.

The files (the database, its -wal and -shm, the lock file) are readable by their owner only, in a
folder made 0700 if it does not exist.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from gatekeeper.admission.quota.ledger import REMEMBER_REQUESTS_SECONDS
from gatekeeper.admission.state import StoreError

log = logging.getLogger("gatekeeper.store")

SCHEMA_VERSION = 2  # 2: the generation table
BUSY_TIMEOUT_MS = 5000
CHECKPOINT_SECONDS = 0.5
FORGET_EVERY_SECONDS = 60.0  # expired request uids are deleted this often, by the background thread
FORGET_BATCH = 1000  # rows per delete transaction: each holds the write lock for a moment only

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
# Whoever writes the objects (gatekeeper, another process, an older binary still running during
# an upgrade, an operator with the sqlite3 shell) counts up the generation.
_GENERATION_TRIGGERS = [
    f"CREATE TRIGGER IF NOT EXISTS objects_{event.lower()} AFTER {event} ON objects "
    "BEGIN UPDATE generation SET value = value + 1; END"
    for event in ("INSERT", "UPDATE", "DELETE")
]


class Database:
    """One SQLite file opened by one process; StoreError names the file for anything that fails."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()  # this process's writers, before the flock orders processes
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._closed = threading.Event()
        try:
            _private_files(path)
            self._writer_lock = os.open(f"{path}.writer-lock", os.O_RDWR | os.O_CREAT, 0o600)
            self._writer = _connect(path)
            self._writer.execute("PRAGMA journal_mode=WAL")  # kept in the file: once is enough
            with self.writing() as db:
                _create_schema(db)
            self._background = threading.Thread(
                target=self._maintain_until_closed,
                args=(_connect(path),),
                name="sqlite-checkpoint",
                daemon=True,
            )
        except (OSError, sqlite3.Error, StoreError) as exc:
            self._close_opened()
            raise StoreError(f"cannot open SQLite store {path}: {exc}") from None
        self._background.start()

    def failed(self, exc: BaseException | str) -> StoreError:
        return StoreError(f"SQLite store {self.path}: {exc}")

    def writing(self) -> _Writing:
        """One write transaction (BEGIN IMMEDIATE ... COMMIT, ROLLBACK on any exception): all of it
        happens or none of it does. sqlite3.Error and OSError come out as StoreError."""
        return _Writing(self)

    def _begin(self) -> sqlite3.Connection:
        self._lock.acquire()
        try:
            fcntl.flock(self._writer_lock, fcntl.LOCK_EX)
        except OSError as exc:
            self._lock.release()
            raise self.failed(exc) from None
        try:
            self._writer.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            self._unlock()
            raise self.failed(exc) from None
        return self._writer

    def _end(self, exc: BaseException | None) -> None:
        try:
            if exc is None:
                self._commit()
                return
            with contextlib.suppress(sqlite3.Error):
                self._writer.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise self.failed(exc) from None
        finally:
            self._unlock()

    def _commit(self) -> None:
        try:
            self._writer.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                self._writer.execute("ROLLBACK")
            raise self.failed(f"commit failed: {exc}") from None

    def _unlock(self) -> None:
        try:
            fcntl.flock(self._writer_lock, fcntl.LOCK_UN)
        finally:
            self._lock.release()

    def read(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        """The rows of one SELECT, on this thread's own connection."""
        try:
            return self._reader().execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise self.failed(exc) from None

    def vacuum(self) -> None:
        """Rewrite the file (pages freed before secure_delete may still hold old data)."""
        with self._lock:
            try:
                self._writer.execute("VACUUM")
                self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as exc:
                raise self.failed(exc) from None

    def close(self) -> None:
        self._closed.set()
        if self._background.is_alive():
            self._background.join()
        self._close_opened()

    def _close_opened(self) -> None:
        with self._lock:
            for db in [getattr(self, "_writer", None), *self._readers]:
                if db is not None:
                    with contextlib.suppress(sqlite3.Error):
                        db.close()
            self._readers.clear()
            if hasattr(self, "_writer_lock"):
                with contextlib.suppress(OSError):
                    os.close(self._writer_lock)

    def _reader(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = _connect(self.path)
            with self._lock:
                self._readers.append(db)
        return db

    def _maintain_until_closed(self, db: sqlite3.Connection) -> None:
        """Checkpoints (PASSIVE: copies what no reader still needs, never waits for a writer or
        blocks one) and, every FORGET_EVERY_SECONDS, the deletion of expired request uids."""
        forgotten_at = 0.0
        try:
            while not self._closed.wait(CHECKPOINT_SECONDS):
                try:
                    if time.monotonic() - forgotten_at >= FORGET_EVERY_SECONDS:
                        self._forget_expired_requests()
                        forgotten_at = time.monotonic()
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except Exception as exc:  # the next round tries again; the WAL only grows meanwhile
                    log.warning("SQLite store %s: background maintenance failed: %s", self.path, exc)
        finally:
            db.close()

    def _forget_expired_requests(self) -> None:
        cutoff = time.time() - REMEMBER_REQUESTS_SECONDS
        while not self._closed.is_set():
            with self.writing() as db:
                deleted = db.execute(
                    "DELETE FROM quota_requests WHERE rowid IN "
                    "(SELECT rowid FROM quota_requests WHERE at < ? LIMIT ?)",
                    (cutoff, FORGET_BATCH),
                ).rowcount
            if deleted < FORGET_BATCH:
                return


class _Writing:
    """Database.writing(); a class rather than a generator, as it is on every charge's path."""

    def __init__(self, database: Database) -> None:
        self._database = database

    def __enter__(self) -> sqlite3.Connection:
        return self._database._begin()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._database._end(exc)


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000)
    db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA secure_delete=ON")  # a replaced row leaves no old bytes behind
    db.execute("PRAGMA wal_autocheckpoint=0")  # the background thread checkpoints
    return db


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
