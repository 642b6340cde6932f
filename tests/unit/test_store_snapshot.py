"""Store.snapshot() on every standalone backend: a request's reads are repeatable (an object read
once is the same object on every later read of the request, whatever another writer does
meanwhile), each read hands out a fresh copy, a write through the snapshot is read back, and the
next snapshot sees the other writer's change. The server learns whether to leave the event loop
from the store itself."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gatekeeper.admission.state import Store
from gatekeeper.backends.factory import open_store
from tests.support.admission import namespace
from tests.support.etcd import fresh_prefix, open_etcd_store, require_etcd

Pair = tuple[Store, Store]  # (ours, another writer of the same state)


@pytest.fixture(params=["memory", "sqlite", "etcd"])
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Pair]:
    if request.param == "memory":
        store = open_store("memory://")
        yield store, store
    elif request.param == "sqlite":  # another worker process: a second store on the same file
        ours, theirs = open_store(f"sqlite:///{tmp_path}/s.db"), open_store(f"sqlite:///{tmp_path}/s.db")
        yield ours, theirs
        theirs.close()
        ours.close()
    else:  # another replica: a second store under the same prefix
        require_etcd()
        prefix = fresh_prefix()
        ours, theirs = open_etcd_store(prefix=prefix), open_etcd_store(prefix=prefix)
        yield ours, theirs
        theirs.close()
        ours.close()


def eventually(predicate: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.01)


def test_a_request_reads_the_same_object_however_the_store_changes_meanwhile(stores: Pair) -> None:
    ours, theirs = stores
    theirs.put(namespace("team"))
    eventually(lambda: ours.get("namespaces", "", "team") is not None)
    request = ours.snapshot()
    assert request.get("namespaces", "", "team") == namespace("team")
    assert request.list("namespaces", "") == [namespace("team")]
    theirs.put(namespace("team", phase="Terminating"))
    eventually(lambda: ours.get("namespaces", "", "team") == namespace("team", phase="Terminating"))
    assert request.get("namespaces", "", "team") == namespace("team")  # read once, for the request
    assert request.list("namespaces", "") == [namespace("team")]
    assert ours.snapshot().get("namespaces", "", "team") == namespace("team", phase="Terminating")


def test_a_snapshot_hands_out_copies_and_reads_its_own_writes(stores: Pair) -> None:
    ours, _theirs = stores
    ours.put(namespace("team"))
    request = ours.snapshot()
    given = request.get("namespaces", "", "team")
    assert given is not None
    given["status"]["phase"] = "Terminating"  # a plugin changing what it read
    request.list("namespaces", "")[0]["status"]["phase"] = "Terminating"
    assert request.get("namespaces", "", "team") == namespace("team")
    request.put(namespace("other"))
    assert request.get("namespaces", "", "other") == namespace("other")
    assert [obj["metadata"]["name"] for obj in request.list("namespaces", "")] == ["other", "team"]
    assert request.snapshot() is request


def test_the_store_says_whether_its_calls_block_and_whether_it_can_answer(stores: Pair) -> None:
    ours, _theirs = stores
    networked = "etcd" in type(ours).__module__
    assert ours.blocks is networked
    assert ours.snapshot().blocks is networked
    eventually(lambda: ours.unavailable() is None)
    assert ours.snapshot().unavailable() is None
