"""A store as one admission request reads it (Store.snapshot), the same for every backend.

A request reads about seven objects for a pod (the namespace, its limit ranges and quotas, the
service account, twice over with /admit); the snapshot reads each from its backend once and keeps
what the backend stores: SQLite's and etcd's bytes, or the memory and live-cluster copies' own
objects, which those backends replace rather than change. Every read hands out a fresh object
made by `fresh` (a decode, or a deep copy), so a plugin may change what it was given.

A write through the snapshot goes to the store, empties the snapshot's cache and calls `written`
(SQLite drops the cache its snapshots share), so the request reads its own writes.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Generic, Protocol, TypeVar

from gatekeeper.admission.quota.ledger import QuotaLedger
from gatekeeper.admission.state import JSONObject, Key, Store

V = TypeVar("V")
Cache = dict[tuple[str, ...], Any]
"""("get", resource, namespace, name) -> stored value or None; ("list", resource, namespace) -> values"""


class StoredReads(Protocol[V]):
    """A backend's reads of objects as it keeps them; a value is never changed once handed out."""

    def get_stored(self, resource: str, namespace: str, name: str) -> V | None: ...

    def list_stored(self, resource: str, namespace: str) -> list[V]: ...


def _nothing() -> None:
    pass


class Snapshot(Generic[V]):
    def __init__(
        self,
        store: Store,
        reads: StoredReads[V],
        fresh: Callable[[V], JSONObject],
        cache: Cache | None = None,
        written: Callable[[], None] = _nothing,
    ) -> None:
        self._store = store
        self._reads = reads
        self._fresh = fresh
        self._cache: Cache = {} if cache is None else cache
        self._written = written

    @property
    def quota_ledger(self) -> QuotaLedger:
        return self._store.quota_ledger

    @property
    def blocks(self) -> bool:
        return self._store.blocks

    def unavailable(self) -> str | None:
        return self._store.unavailable()

    def snapshot(self) -> Snapshot[V]:
        return self

    def get(self, resource: str, namespace: str, name: str) -> JSONObject | None:
        key = ("get", resource, namespace, name)
        if key not in self._cache:
            self._cache[key] = self._reads.get_stored(resource, namespace, name)
        value = self._cache[key]
        return self._fresh(value) if value is not None else None

    def list(self, resource: str, namespace: str) -> builtins.list[JSONObject]:
        key = ("list", resource, namespace)
        if key not in self._cache:
            self._cache[key] = self._reads.list_stored(resource, namespace)
        return [self._fresh(value) for value in self._cache[key]]

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
            self._written()
