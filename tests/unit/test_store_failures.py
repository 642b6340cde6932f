"""A store that cannot answer says so with a StoreError (errors.Unavailable: 503, so the caller's
failurePolicy decides), whichever backend it is and whichever call meets the failure: never a
sqlite3, JSON, HTTP client or KeyError exception."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gatekeeper import errors
from gatekeeper.admission.quota.ledger import NamespaceUsage, RequestKey
from gatekeeper.admission.state import Store, StoreError
from gatekeeper.backends.etcd.options import EtcdOptions
from gatekeeper.backends.factory import open_cluster, open_store
from gatekeeper.backends.sqlite import database
from tests.support.admission import namespace
from tests.support.etcd import require_etcd
from tests.support.server import free_port

SEEDS = {"compute": {"pods": "0"}}
Call = Callable[[Store], object]


def _add_pod(usage: NamespaceUsage) -> NamespaceUsage:
    return {"compute": {"pods": str(int(usage["compute"].get("pods", "0")) + 1)}}


READS: dict[str, Call] = {
    "get": lambda store: store.get("namespaces", "", "team"),
    "list": lambda store: store.list("limitranges", "team"),
    "snapshot get": lambda store: store.snapshot().get("namespaces", "", "team"),
    "snapshot list": lambda store: store.snapshot().list("limitranges", "team"),
}
CHARGE: dict[str, Call] = {
    "charge": lambda store: store.quota_ledger.apply("team", RequestKey("uid-1"), SEEDS, _add_pod),
}
WRITES: dict[str, Call] = {"put": lambda store: store.put(namespace("team"))}


def assert_unavailable(store: Store, calls: dict[str, Call], says: str) -> None:
    for name, call in calls.items():
        with pytest.raises(StoreError, match=says) as raised:
            call(store)
        assert isinstance(raised.value, errors.Unavailable), name


@contextlib.contextmanager
def sqlite_store(path: Path) -> Iterator[Store]:
    store = open_store(f"sqlite:///{path}")
    try:
        yield store
    finally:
        store.close()


def test_sqlite_objects_and_usage_that_do_not_decode_are_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with sqlite_store(path) as store:
        store.put(namespace("team"))
        store.quota_ledger.reconcile({("team", "compute"): {"pods": "1"}})
        with sqlite3.connect(path) as outside:  # a disk error, an operator with the sqlite3 shell
            outside.execute("UPDATE objects SET body = x'7b7b'")
            outside.execute("INSERT INTO objects VALUES ('limitranges', 'team', 'x', '[1]')")
            outside.execute("UPDATE quota_usage SET used = 'not json'")
        assert_unavailable(store, {**READS, **CHARGE}, "corrupt")
        with pytest.raises(StoreError, match="quota usage of namespace team is corrupt"):
            store.quota_ledger.usage("team", SEEDS)


def test_sqlite_locked_by_a_writer_outside_gatekeeper_is_a_store_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(database, "BUSY_TIMEOUT_MS", 50)  # the wait, not what follows it, is long
    path = tmp_path / "s.db"
    with sqlite_store(path) as store:
        store.put(namespace("team"))
        outside = sqlite3.connect(path, isolation_level=None)
        outside.execute("BEGIN IMMEDIATE")  # holds SQLite's write lock, not gatekeeper's flock
        try:
            assert_unavailable(store, {**CHARGE, **WRITES}, "database is locked")
            assert store.snapshot().get("namespaces", "", "team") == namespace("team")  # WAL: reads go on
        finally:
            outside.execute("ROLLBACK")
            outside.close()
        store.put(namespace("team"))  # and it recovers


def test_a_file_that_is_no_sqlite_database_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    path.write_bytes(b"not a database, just some bytes" * 100)
    with pytest.raises(StoreError, match=f"cannot open SQLite store {path}") as raised:
        open_store(f"sqlite:///{path}")
    assert isinstance(raised.value, errors.Unavailable)


def test_an_unreachable_etcd_is_a_store_error_for_every_call() -> None:
    require_etcd()
    options = EtcdOptions(endpoints=(), timeout=0.2)
    store = open_store(f"etcd://127.0.0.1:{free_port()}", options)
    try:
        assert "etcd" in (store.unavailable() or "")
        assert_unavailable(store, {**READS, **CHARGE, **WRITES}, "etcd is unavailable")
        with pytest.raises(StoreError, match="etcd is unavailable"):
            store.quota_ledger.usage("team", SEEDS)
    finally:
        store.close()


def test_an_unreachable_api_server_is_a_store_error_for_every_lookup(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        f"""apiVersion: v1
kind: Config
clusters: [{{name: c, cluster: {{server: "http://127.0.0.1:{free_port()}"}}}}]
users: [{{name: u, user: {{token: t}}}}]
contexts: [{{name: x, context: {{cluster: c, user: u}}}}]
current-context: x
"""
    )
    store = open_cluster(str(kubeconfig))
    try:
        # A miss in the watched copy is looked up live (namespaces, limit ranges), and a charge
        # reads the quota it charges: each one meets the API server that is not there.
        charge_a_quota: Call = lambda s: s.quota_ledger.apply(  # noqa: E731
            "team", RequestKey("uid-1"), SEEDS, _add_pod
        )
        calls = {**READS, "charge": charge_a_quota}
        assert_unavailable(store, calls, "cannot reach the API server")
        assert "waiting for the first list" in (store.unavailable() or "")
    finally:
        store.close()
