"""In-memory store for the offline CLI and tests."""

from __future__ import annotations

import builtins
import copy
import threading
from collections.abc import Iterable, Mapping

from gatekeeper.quota.ledger import MemoryLedger
from gatekeeper.store.base import JSONObject, Key, key_of, storable


class MemoryStore:
    def __init__(self, objects: Iterable[JSONObject] = ()) -> None:
        self._lock = threading.Lock()
        self._objects: dict[Key, JSONObject] = {}
        self._applied: dict[Key, str] = {}
        self.quota_ledger = MemoryLedger()
        self.replace_all(objects)

    def get(self, resource: str, namespace: str, name: str) -> JSONObject | None:
        with self._lock:
            obj = self._objects.get((resource, namespace, name))
            return copy.deepcopy(obj) if obj is not None else None

    def list(self, resource: str, namespace: str) -> list[JSONObject]:
        with self._lock:
            keys = sorted(k for k in self._objects if k[0] == resource and k[1] == namespace)
            return [copy.deepcopy(self._objects[k]) for k in keys]

    def put(self, obj: JSONObject) -> None:
        stored = storable(obj)
        key = key_of(stored)
        with self._lock:
            self._objects[key] = copy.deepcopy(stored)

    def delete(self, resource: str, namespace: str, name: str) -> None:
        with self._lock:
            self._objects.pop((resource, namespace, name), None)

    def replace_all(self, objects: Iterable[JSONObject]) -> None:
        fresh = _keyed(objects)
        with self._lock:
            self._objects = fresh

    def applied_manifests(self) -> dict[Key, str]:
        with self._lock:
            return dict(self._applied)

    def apply_manifests(
        self, puts: Iterable[JSONObject], deletes: Iterable[Key], applied: Mapping[Key, str]
    ) -> None:
        fresh = _keyed(puts)
        with self._lock:
            for key in deletes:
                self._objects.pop(key, None)
            self._objects.update(fresh)
            self._applied = dict(applied)

    def all(self) -> builtins.list[JSONObject]:
        with self._lock:
            return [copy.deepcopy(self._objects[k]) for k in sorted(self._objects)]

    def close(self) -> None:
        pass


def _keyed(objects: Iterable[JSONObject]) -> dict[Key, JSONObject]:
    stored = [copy.deepcopy(storable(obj)) for obj in objects]
    return {key_of(obj): obj for obj in stored}
