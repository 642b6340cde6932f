"""The quota ledger: atomic, once per request uid, seeded once; in memory and in a real SQLite file."""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from gatekeeper.admission.quota.ledger import (
    Applied,
    Change,
    NamespaceUsage,
    Outcome,
    QuotaLedger,
    Refused,
    RequestKey,
)
from gatekeeper.backends.memory import MemoryLedger
from gatekeeper.backends.sqlite.store import SQLiteStore
from tests.support.etcd import etcd_store
from tests.support.waiting import wait_for

SEEDS = {"compute": {"pods": "3"}}


def add_pod(limit: int) -> Change:
    def change(usage: NamespaceUsage) -> NamespaceUsage | Refused:
        pods = int(usage["compute"].get("pods", "0"))
        if pods + 1 > limit:
            return Refused(f"exceeded quota: compute, pods={pods}")
        return {"compute": {"pods": str(pods + 1)}}

    return change


@pytest.fixture(params=["memory", "sqlite", "etcd"])
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[QuotaLedger]:
    if request.param == "etcd":  # a real etcd (tests/support/etcd.py), a prefix of this test's own
        with etcd_store() as store:
            yield store.quota_ledger
        return
    if request.param == "sqlite":  # the ledger shares the store's file and connections
        store = SQLiteStore(tmp_path / "q.db")
        yield store.quota_ledger
        store.close()
        return
    opened = MemoryLedger()
    yield opened
    opened.close()


def test_usage_starts_from_the_seed(ledger: QuotaLedger) -> None:
    assert ledger.usage("ns", SEEDS) == {"compute": {"pods": "3"}}
    assert ledger.usage("other", SEEDS) == {"compute": {"pods": "3"}}


def test_apply_changes_usage_once_per_request_uid(ledger: QuotaLedger) -> None:
    assert ledger.apply("ns", RequestKey("uid-1"), SEEDS, add_pod(10)).applied is Applied.CHANGED
    assert ledger.apply("ns", RequestKey("uid-1"), SEEDS, add_pod(10)).applied is Applied.REPLAYED
    assert ledger.usage("ns", SEEDS) == {"compute": {"pods": "4"}}


def test_a_refusal_writes_nothing_and_does_not_use_up_the_uid(ledger: QuotaLedger) -> None:
    outcome = ledger.apply("ns", RequestKey("uid-1"), SEEDS, add_pod(3))
    assert (outcome.applied, outcome.message) == (Applied.REFUSED, "exceeded quota: compute, pods=3")
    assert ledger.usage("ns", SEEDS) == {"compute": {"pods": "3"}}
    assert ledger.apply("ns", RequestKey("uid-1"), SEEDS, add_pod(4)).applied is Applied.CHANGED


def test_once_charged_the_ledger_wins_over_a_changed_seed(ledger: QuotaLedger) -> None:
    ledger.apply("ns", RequestKey("uid-1"), SEEDS, add_pod(10))
    assert ledger.usage("ns", {"compute": {"pods": "0"}}) == {"compute": {"pods": "4"}}


def test_reconcile_replaces_usage(ledger: QuotaLedger) -> None:
    ledger.apply("ns", RequestKey("uid-1"), SEEDS, add_pod(10))
    ledger.reconcile({("ns", "compute"): {"pods": "1"}})
    assert ledger.usage("ns", SEEDS) == {"compute": {"pods": "1"}}


def test_an_exception_in_change_rolls_back(ledger: QuotaLedger) -> None:
    def broken(usage: NamespaceUsage) -> NamespaceUsage:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        ledger.apply("ns", RequestKey("uid-1"), SEEDS, broken)
    assert ledger.apply("ns", RequestKey("uid-1"), SEEDS, add_pod(10)).applied is Applied.CHANGED


def test_sqlite_usage_and_request_uids_survive_reopening(tmp_path: Path) -> None:
    first = SQLiteStore(tmp_path / "q.db")
    first.quota_ledger.apply("ns", RequestKey("uid-1"), SEEDS, add_pod(10))
    first.close()
    second = SQLiteStore(tmp_path / "q.db")
    ledger = second.quota_ledger
    assert ledger.usage("ns", SEEDS) == {"compute": {"pods": "4"}}
    assert ledger.apply("ns", RequestKey("uid-1"), SEEDS, add_pod(10)).applied is Applied.REPLAYED
    second.close()


def _charge_many(path: str, worker: int, count: int) -> int:
    store = SQLiteStore(Path(path))
    changed = 0
    for i in range(count):
        outcome = store.quota_ledger.apply("ns", RequestKey(f"w{worker}-{i}"), {"compute": {}}, add_pod(25))
        changed += outcome.applied is Applied.CHANGED
    store.close()
    return changed


def test_sqlite_processes_racing_for_the_last_units_never_overshoot(tmp_path: Path) -> None:
    path = str(tmp_path / "q.db")
    SQLiteStore(Path(path)).close()
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        changed = pool.starmap(_charge_many, [(path, worker, 20) for worker in range(4)])
    assert sum(changed) == 25
    assert SQLiteStore(Path(path)).quota_ledger.usage("ns", {"compute": {}}) == {"compute": {"pods": "25"}}


def test_a_reused_uid_for_a_different_request_is_a_conflict(ledger: QuotaLedger) -> None:
    ledger.apply("ns", RequestKey("uid-1", "pod a: 1 pod"), SEEDS, add_pod(10))
    assert (
        ledger.apply("ns", RequestKey("uid-1", "pod a: 1 pod"), SEEDS, add_pod(10)).applied
        is Applied.REPLAYED
    )
    outcome = ledger.apply("ns", RequestKey("uid-1", "pod b: 9 pods"), SEEDS, add_pod(10))
    assert outcome == Outcome(
        Applied.CONFLICT, "request uid uid-1 was already charged for a different request"
    )
    assert ledger.usage("ns", SEEDS) == {"compute": {"pods": "4"}}


def _rows_in_database_file(path: Path) -> int:
    """Request rows in the main database file alone, ignoring the write-ahead log."""
    db = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)
    try:
        return int(db.execute("SELECT count(*) FROM quota_requests").fetchone()[0])
    finally:
        db.close()


def test_sqlite_charges_are_checkpointed_into_the_database_file(tmp_path: Path) -> None:
    """No charge checkpoints (it would hold the write lock through an fsync); a thread does."""
    path = tmp_path / "q.db"
    before = set(threading.enumerate())
    store = SQLiteStore(path)
    (checkpointer,) = set(threading.enumerate()) - before
    for i in range(50):
        store.quota_ledger.apply("ns", RequestKey(f"uid-{i}"), {"compute": {}}, add_pod(100))
    wait_for(lambda: _rows_in_database_file(path) == 50, timeout=10, tolerate=(sqlite3.OperationalError,))
    store.close()
    assert not checkpointer.is_alive()
