"""In-memory store for the offline CLI and tests.

Stored objects are never changed in place (a put stores a copy, a replace stores new ones), so a
snapshot may keep them and hand out copies."""

from __future__ import annotations

import builtins
import copy
import threading
import time
from collections.abc import Callable, Iterable, Mapping

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
    forget_before,
    ignore_wait,
    replay,
)
from gatekeeper.admission.state import JSONObject, Key, key_of
from gatekeeper.backends.snapshot import Snapshot
from gatekeeper.backends.storable import storable


class MemoryStore:
    blocks = False

    def __init__(self, objects: Iterable[JSONObject] = ()) -> None:
        self._lock = threading.Lock()
        self._objects: dict[Key, JSONObject] = {}
        self._applied: dict[Key, str] = {}
        self.quota_ledger = MemoryLedger()
        self.replace_all(objects)

    def unavailable(self) -> str | None:
        return None

    def snapshot(self) -> Snapshot[JSONObject]:
        return Snapshot(self, self, copy.deepcopy)

    def get(self, resource: str, namespace: str, name: str) -> JSONObject | None:
        obj = self.get_stored(resource, namespace, name)
        return copy.deepcopy(obj) if obj is not None else None

    def list(self, resource: str, namespace: str) -> list[JSONObject]:
        return [copy.deepcopy(obj) for obj in self.list_stored(resource, namespace)]

    def get_stored(self, resource: str, namespace: str, name: str) -> JSONObject | None:
        with self._lock:
            return self._objects.get((resource, namespace, name))

    def list_stored(self, resource: str, namespace: str) -> builtins.list[JSONObject]:
        with self._lock:
            keys = sorted(k for k in self._objects if k[0] == resource and k[1] == namespace)
            return [self._objects[k] for k in keys]

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


class MemoryLedger:
    """The ledger of one process (offline CLI, tests): a dict behind a lock."""

    live = False

    def __init__(self) -> None:
        self.lock_wait: Callable[[float], None] = ignore_wait
        self._lock = threading.Lock()
        self._rows: dict[tuple[str, str], Used] = {}
        self._applied: dict[str, tuple[str, float]] = {}  # uid -> (fingerprint, when)

    def usage(self, namespace: str, seeds: Mapping[str, Used]) -> NamespaceUsage:
        with self._lock:
            return current(self._namespace_rows(namespace), seeds)

    def apply(
        self, namespace: str, request: RequestKey, seeds: Mapping[str, Used], change: Change
    ) -> Outcome:
        asked = time.perf_counter()
        with self._lock:
            self.lock_wait(time.perf_counter() - asked)
            if request.uid in self._applied:
                return replay(request, self._applied[request.uid][0])
            before = current(self._namespace_rows(namespace), seeds)
            after = change(before)
            if isinstance(after, Refused):
                return Outcome(Applied.REFUSED, after.message)
            for name, used in after.items():
                self._rows[(namespace, name)] = dict(used)
            now = time.time()
            self._forget_before(now - REMEMBER_REQUESTS_SECONDS)
            self._applied[request.uid] = (request.fingerprint, now)
            return Outcome(Applied.CHANGED)

    def reconcile(self, usage: Mapping[tuple[str, str], Used]) -> None:
        with self._lock:
            for key, used in usage.items():
                self._rows[key] = dict(used)

    def close(self) -> None:
        pass

    def _forget_before(self, cutoff: float) -> None:
        forget_before(self._applied, cutoff)

    def _namespace_rows(self, namespace: str) -> dict[str, Used]:
        return {name: row for (ns, name), row in self._rows.items() if ns == namespace}
