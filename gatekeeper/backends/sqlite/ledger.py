"""The quota ledger in the store's SQLite file, shared by every worker process that opens it.

Each `apply` is one write transaction of the file's Database (database.py: flock, then
`BEGIN IMMEDIATE`): it takes the write lock before reading, so the read-check-write of two
requests (in any threads or processes) never interleaves, and the usage and the request uid are
committed together or not at all (kill -9 loses neither half). WAL lets readers (GET /quota, and
the usage a request plans with) proceed while a charge is being written.

The transaction holds only what must be decided on the usage at commit time: the uid lookup, the
namespace's rows, `change`, and the writes. Expired uids are deleted by the database's background
thread, in short transactions of their own. How long each charge waited for the write lock is
handed to `lock_wait` (gatekeeper_quota_lock_wait_seconds), apart from the time it held it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

import orjson

from gatekeeper.admission.quota.ledger import (
    Applied,
    Change,
    NamespaceUsage,
    Outcome,
    Refused,
    RequestKey,
    Used,
    current,
    ignore_wait,
    replay,
)
from gatekeeper.admission.state import StoreError
from gatekeeper.backends.sqlite.database import Database


class SQLiteLedger:
    live = False

    def __init__(self, database: Database) -> None:
        self._db = database
        self.lock_wait: Callable[[float], None] = ignore_wait

    def usage(self, namespace: str, seeds: Mapping[str, Used]) -> NamespaceUsage:
        rows = self._db.read("SELECT quota, used FROM quota_usage WHERE namespace = ?", (namespace,))
        return current(self._decoded(namespace, rows), seeds)

    def apply(
        self, namespace: str, request: RequestKey, seeds: Mapping[str, Used], change: Change
    ) -> Outcome:
        asked = time.perf_counter()
        with self._db.writing() as db:
            self.lock_wait(time.perf_counter() - asked)
            seen = db.execute("SELECT fingerprint FROM quota_requests WHERE uid = ?", (request.uid,))
            row = seen.fetchone()
            if row is not None:
                return replay(request, row[0])
            rows = db.execute("SELECT quota, used FROM quota_usage WHERE namespace = ?", (namespace,))
            after = change(current(self._decoded(namespace, rows.fetchall()), seeds))
            if isinstance(after, Refused):
                return Outcome(Applied.REFUSED, after.message)
            for name, used in after.items():  # mostly one quota: execute costs less than executemany
                db.execute(
                    "INSERT OR REPLACE INTO quota_usage (namespace, quota, used) VALUES (?, ?, ?)",
                    (namespace, name, _json(used)),
                )
            db.execute(
                "INSERT INTO quota_requests (uid, fingerprint, namespace, at) VALUES (?, ?, ?, ?)",
                (request.uid, request.fingerprint, namespace, time.time()),
            )
            return Outcome(Applied.CHANGED)

    def reconcile(self, usage: Mapping[tuple[str, str], Used]) -> None:
        with self._db.writing() as db:
            db.executemany(
                "INSERT OR REPLACE INTO quota_usage (namespace, quota, used) VALUES (?, ?, ?)",
                [(namespace, name, _json(used)) for (namespace, name), used in usage.items()],
            )

    def close(self) -> None:
        """The database belongs to the store."""

    def _decoded(self, namespace: str, rows: list[tuple[str, str]]) -> dict[str, Used]:
        try:
            decoded = {quota: orjson.loads(used) for quota, used in rows}
        except orjson.JSONDecodeError:
            raise self._corrupt(namespace) from None
        for used in decoded.values():
            if type(used) is not dict:
                raise self._corrupt(namespace)
        return decoded

    def _corrupt(self, namespace: str) -> StoreError:
        return StoreError(f"SQLite store {self._db.path}: quota usage of namespace {namespace} is corrupt")


def _json(used: Used) -> str:
    return orjson.dumps(used, option=orjson.OPT_SORT_KEYS).decode()
