"""The etcd store against a real etcd: objects, manifests, the watched copy shared between stores,
quota charges racing from several processes, an unreachable etcd and its return."""

from __future__ import annotations

import multiprocessing
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from gatekeeper.admission.quota.ledger import Applied, NamespaceUsage, Refused, RequestKey
from gatekeeper.admission.state import StoreError
from gatekeeper.backends.etcd.client import MAX_TXN_OPS
from gatekeeper.backends.etcd.store import parse_endpoints
from gatekeeper.backends.factory import StoreURLError, open_store
from tests.support.etcd import etcd_store, fresh_prefix, make_cluster, open_etcd_store, shared_cluster


def namespace(name: str, phase: str = "Active") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}, "status": {"phase": phase}}


def limit_range(name: str, ns: str = "team-a") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": name, "namespace": ns}}


def eventually(predicate: Any, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.01)


def test_objects_round_trip() -> None:
    with etcd_store() as store:
        store.put(namespace("team-a"))
        store.put(limit_range("b"))
        store.put(limit_range("a"))
        store.put(limit_range("other", ns="team-b"))
        assert store.get("namespaces", "", "team-a") == namespace("team-a")
        assert store.get("namespaces", "", "absent") is None
        assert [o["metadata"]["name"] for o in store.list("limitranges", "team-a")] == ["a", "b"]
        store.delete("limitranges", "team-a", "a")
        assert [o["metadata"]["name"] for o in store.list("limitranges", "team-a")] == ["b"]
        assert [o["kind"] for o in store.all()] == ["LimitRange", "LimitRange", "Namespace"]


def test_a_write_through_one_store_is_seen_by_another() -> None:
    prefix = fresh_prefix()
    with etcd_store(prefix=prefix) as first, etcd_store(prefix=prefix) as second:
        eventually(lambda: second.unavailable() is None)
        first.put(namespace("team-a"))
        eventually(lambda: second.get("namespaces", "", "team-a") is not None)
        first.put(namespace("team-a", "Terminating"))
        eventually(lambda: (second.get("namespaces", "", "team-a") or {})["status"]["phase"] == "Terminating")
        first.delete("namespaces", "", "team-a")
        eventually(lambda: second.get("namespaces", "", "team-a") is None)


def test_prefixes_keep_stores_apart() -> None:
    with etcd_store() as first, etcd_store() as second:
        first.put(namespace("team-a"))
        assert second.all() == []


def test_replace_all_beyond_one_transaction() -> None:
    many = [limit_range(f"lr-{i:04}") for i in range(MAX_TXN_OPS * 2 + 7)]
    with etcd_store() as store:
        store.put(namespace("gone"))
        store.replace_all(many)
        assert store.get("namespaces", "", "gone") is None
        assert len(store.list("limitranges", "team-a")) == len(many)


def test_applied_manifests_are_kept_in_etcd() -> None:
    prefix = fresh_prefix()
    with etcd_store(prefix=prefix) as store:
        store.put(limit_range("dropped"))
        store.apply_manifests([namespace("team-a")], [("limitranges", "team-a", "dropped")],
                              {("namespaces", "", "team-a"): "digest-1"})
    with etcd_store(prefix=prefix) as reopened:
        assert reopened.applied_manifests() == {("namespaces", "", "team-a"): "digest-1"}
        assert [o["kind"] for o in reopened.all()] == ["Namespace"]


def _charge_many(endpoint: tuple[str, int], prefix: str, worker: int, count: int) -> int:
    from gatekeeper.backends.etcd.options import EtcdOptions
    from gatekeeper.backends.etcd.store import EtcdStore

    def add_pod(usage: NamespaceUsage) -> NamespaceUsage | Refused:
        pods = int(usage["compute"].get("pods", "0"))
        return Refused("full") if pods >= 25 else {"compute": {"pods": str(pods + 1)}}

    store = EtcdStore(EtcdOptions(endpoints=(endpoint,), prefix=prefix))
    changed = 0
    for i in range(count):
        outcome = store.quota_ledger.apply("ns", RequestKey(f"w{worker}-{i}"), {"compute": {}}, add_pod)
        changed += outcome.applied is Applied.CHANGED
    store.close()
    return changed


def test_processes_racing_for_the_last_units_never_overshoot() -> None:
    endpoint = ("127.0.0.1", shared_cluster().members[0].client_port)
    prefix = fresh_prefix()
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        changed = pool.starmap(_charge_many, [(endpoint, prefix, worker, 20) for worker in range(4)])
    assert sum(changed) == 25
    with etcd_store(prefix=prefix) as store:
        assert store.quota_ledger.usage("ns", {"compute": {}}) == {"compute": {"pods": "25"}}


def test_an_unreachable_etcd_is_a_clear_error_until_it_returns(tmp_path: Path) -> None:
    cluster = make_cluster(tmp_path)
    store = open_etcd_store(cluster)
    try:
        eventually(lambda: "etcd is unavailable" in (store.unavailable() or ""))
        assert cluster.members[0].endpoint in (store.unavailable() or "")
        with pytest.raises(StoreError, match="etcd is unavailable"):
            store.get("namespaces", "", "team-a")
        cluster.start_all()
        eventually(lambda: store.unavailable() is None, timeout=30)
        store.put(namespace("team-a"))
        assert store.get("namespaces", "", "team-a") == namespace("team-a")
    finally:
        store.close()
        cluster.stop_all()


def test_etcd_urls() -> None:
    assert parse_endpoints("a:1,127.0.0.1:2379,[::1]:3") == (("a", 1), ("127.0.0.1", 2379), ("::1", 3))
    for bad in ("etcd://", "etcd://host", "etcd://host:port", "etcd://a:1,,b:2", "etcd://h:70000"):
        with pytest.raises(StoreURLError, match="HOST:PORT"):
            open_store(bad)


def pods_change(delta: int, limit: int = 2) -> Any:
    def change(usage: NamespaceUsage) -> NamespaceUsage | Refused:
        pods = int(usage["compute"].get("pods", "0")) + delta
        return Refused(f"full at {pods - delta}") if pods > limit else {"compute": {"pods": str(pods)}}

    return change


def test_two_stores_charging_in_turn_never_decide_on_an_old_memory() -> None:
    """Each ledger first tries its compare-and-swap on its own last write; another store's charge or
    release in between must make it read again, and it only refuses on what etcd holds now."""
    prefix, seeds = fresh_prefix(), {"compute": {}}
    with etcd_store(prefix=prefix) as a, etcd_store(prefix=prefix) as b:
        first, second = a.quota_ledger, b.quota_ledger
        assert first.apply("ns", RequestKey("1"), seeds, pods_change(+1)).applied is Applied.CHANGED
        assert first.apply("ns", RequestKey("2"), seeds, pods_change(+1)).applied is Applied.CHANGED
        assert second.apply("ns", RequestKey("3"), seeds, pods_change(+1)).applied is Applied.REFUSED
        assert second.apply("ns", RequestKey("4"), seeds, pods_change(-1)).applied is Applied.CHANGED
        # first remembers "2 of 2 used"; etcd holds 1: the charge must go through
        assert first.apply("ns", RequestKey("5"), seeds, pods_change(+1)).applied is Applied.CHANGED
        # second remembers 1; etcd holds 2 again: its swap fails, it reads, and refuses
        outcome = second.apply("ns", RequestKey("6"), seeds, pods_change(+1))
        assert (outcome.applied, outcome.message) == (Applied.REFUSED, "full at 2")
        assert second.apply("ns", RequestKey("1"), seeds, pods_change(+1)).applied is Applied.REPLAYED
        assert first.usage("ns", seeds) == second.usage("ns", seeds) == {"compute": {"pods": "2"}}


def test_threads_charging_one_namespace_together_never_overshoot_nor_charge_a_uid_twice() -> None:
    """32 threads, 60 uids each sent twice at once (a retry racing its original), 25 units: charges
    that arrive together share a transaction, decided one after the other."""
    uids = [f"uid-{i}" for i in range(60)] * 2
    with etcd_store() as store:
        ledger = store.quota_ledger

        def charge(uid: str) -> tuple[str, Applied]:
            outcome = ledger.apply("ns", RequestKey(uid), {"compute": {}}, pods_change(+1, limit=25))
            return uid, outcome.applied

        with ThreadPoolExecutor(max_workers=32) as pool:
            results = list(pool.map(charge, uids))
        changed = [uid for uid, applied in results if applied is Applied.CHANGED]
        assert len(changed) == len(set(changed)) == 25
        assert ledger.usage("ns", {"compute": {}}) == {"compute": {"pods": "25"}}
        replayed = {uid for uid, applied in results if applied is Applied.REPLAYED}
        assert replayed <= set(changed)
