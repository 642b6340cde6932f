"""One kind of object kept in memory from the API server: list, then watch, as client-go's Reflector.

* The first list is paginated (`limit`/`continue`), so memory holds one page of JSON at a time
  beyond the cache itself; its resourceVersion is where the watch starts.
* The watch asks for bookmarks, so a quiet kind still moves its resourceVersion forward, and is
  resumed from the last resourceVersion seen whenever it ends (the server closes watches after
  `timeoutSeconds`) or breaks.
* `410 Gone` (the resourceVersion was compacted away) means a relist; the new list replaces the
  cache whole, so objects deleted while disconnected disappear.
* Errors back off exponentially with jitter (0.2 s up to 30 s); a watch that was open and then
  broke (an API server restarting) starts again from 0.2 s, so only a server that keeps refusing
  is waited for long.

`strip` runs on every decoded object before the cache sees it: a Secret's data is dropped there.
"""

from __future__ import annotations

import builtins
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import orjson

from gatekeeper.admission.state import JSONObject
from gatekeeper.backends.kube.client import ApiError, KubeClient, api_error

log = logging.getLogger("gatekeeper.kube")

PAGE_SIZE = 500
TOMBSTONES = 10_000
NOT_FOUND = 404
WATCH_SECONDS = 300  # the server ends each watch after this (with jitter); it is resumed at once
BACKOFF_START, BACKOFF_MAX = 0.2, 30.0
GONE = 410

Strip = Callable[[JSONObject], JSONObject]
OnChange = Callable[[str, JSONObject | None], None]
"""Told of each change: the event type (ADDED, MODIFIED, DELETED; LIST for a whole new list, with
no object) and the object as the cache now holds it (the last state, for DELETED)."""
NamespacedName = tuple[str, str]


@dataclass
class KindStatus:
    """What /readyz and /metrics show of one watched kind."""

    synced: bool = False  # the first full list is in
    connected: bool = False  # a watch is open now
    events: int = 0
    relists: int = 0
    last_event_at: float = 0.0  # wall-clock time of the newest event (list, watch or bookmark)
    error: str | None = None
    resource_version: str = ""


@dataclass
class Reflector:
    """The objects of one collection path (e.g. /api/v1/limitranges, every namespace) in memory."""

    kind: str
    path: str
    client: KubeClient
    strip: Strip = lambda obj: obj
    on_change: OnChange = lambda _event, _obj: None
    status: KindStatus = field(default_factory=KindStatus)
    _objects: dict[str, dict[str, JSONObject]] = field(default_factory=dict)  # namespace -> name -> obj
    # Deleted objects' last resourceVersions: an older copy read or written meanwhile must not
    # bring them back (observe, fetch).
    _deleted: dict[NamespacedName, str] = field(default_factory=dict)
    _resource_version: str = ""  # where the next watch resumes; "" lists first
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    # -- reads (any thread) ------------------------------------------------------------------

    def get(self, namespace: str, name: str) -> JSONObject | None:
        with self._lock:
            return self._objects.get(namespace, {}).get(name)

    def list(self, namespace: str) -> list[JSONObject]:
        with self._lock:
            found = self._objects.get(namespace, {})
            return [found[name] for name in sorted(found)]

    def all(self) -> builtins.list[JSONObject]:
        with self._lock:
            objects = self._objects
            return [objects[ns][name] for ns in sorted(objects) for name in sorted(objects[ns])]

    def fetch(self, namespace: str, name: str) -> JSONObject | None:
        """A live GET, for a miss the watch may not have caught up with yet (as the in-tree plugins
        look up a namespace or service account that their informer does not have)."""
        path = f"{self._collection(namespace)}/{quote(name, safe='')}"
        response = self.client.request("GET", path)
        if response.status == NOT_FOUND:
            return None
        if response.status != 200:
            raise api_error("GET", path, response.status, response.body)
        obj = self._decoded(response.body)
        self.observe(obj)
        return obj

    def fetch_namespace(self, namespace: str) -> builtins.list[JSONObject]:
        """A live list of one namespace's objects (the in-tree quota and LimitRanger live lookup)."""
        path = self._collection(namespace)
        response = self.client.request("GET", path)
        if response.status != 200:
            raise api_error("GET", path, response.status, response.body)
        found = [self._decoded(item) for item in response.body.get("items") or []]
        return sorted(found, key=lambda obj: str(obj["metadata"]["name"]))

    def _collection(self, namespace: str) -> str:
        if not namespace:
            return self.path
        prefix, _, resource = self.path.rpartition("/")
        return f"{prefix}/namespaces/{quote(namespace, safe='')}/{resource}"

    def observe(self, obj: JSONObject) -> None:
        """An object this process read or wrote itself (a quota's new status, a live lookup):
        newer than the cache, unless the watch got there first, deletion included."""
        namespace, name = _key(obj)
        with self._lock:
            held = self._objects.get(namespace, {}).get(name)
            deleted_at = self._deleted.get((namespace, name))
            if deleted_at is not None and not _newer_version(_version(obj), deleted_at):
                return
            if held is None or _newer(obj, held):
                self._objects.setdefault(namespace, {})[name] = obj

    def forget(self, namespace: str, name: str) -> None:
        """The API server answered 404 for it: gone, whatever the watch has said so far."""
        with self._lock:
            held = self._objects.get(namespace, {}).pop(name, None)
            if held is not None:
                self._remember_deleted(namespace, name, _version(held))

    def _remember_deleted(self, namespace: str, name: str, version: str) -> None:
        if len(self._deleted) >= TOMBSTONES:
            self._deleted.clear()  # only a race of milliseconds needs them; a relist clears them too
        self._deleted[(namespace, name)] = version

    # -- the loop ------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"watch-{self.kind}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        backoff = BACKOFF_START
        while not self._stop.is_set():
            try:
                if not self._resource_version:
                    self._resource_version = self._list()
                self._watch()
                backoff = BACKOFF_START
            except ApiError as exc:
                if self.status.connected:  # the watch was open, then broke: not a failing server
                    backoff = BACKOFF_START
                self.status.connected = False
                if exc.status == GONE:
                    log.info(
                        "watch %s: resourceVersion %s is gone; listing again",
                        self.kind,
                        self._resource_version,
                    )
                    self._resource_version = ""
                    continue
                self._failed(str(exc), backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
            except Exception as exc:  # a bug or a garbled stream must not end the watch for good
                if self.status.connected:
                    backoff = BACKOFF_START
                self.status.connected = False
                log.exception("watch %s failed", self.kind)
                self._failed(f"{type(exc).__name__}: {exc}", backoff)
                self._resource_version, backoff = "", min(backoff * 2, BACKOFF_MAX)

    def _failed(self, error: str, backoff: float) -> None:
        self.status.error = error
        log.warning("watch %s: %s; retrying in %.1f s", self.kind, error, backoff)
        self._stop.wait(backoff * random.uniform(0.8, 1.2))

    def _list(self) -> str:
        fresh: dict[str, dict[str, JSONObject]] = {}
        token, resource_version = "", ""
        while True:
            query = [("limit", str(PAGE_SIZE)), *([("continue", token)] if token else [])]
            response = self.client.request("GET", self.path, query)
            if response.status == GONE and token:
                fresh, token = {}, ""  # the continue token expired mid-list: start the list over
                continue
            if response.status != 200:
                raise api_error("GET", self.path, response.status, response.body)
            for item in response.body.get("items") or []:
                obj = self._decoded(item)
                namespace, name = _key(obj)
                fresh.setdefault(namespace, {})[name] = obj
            metadata = response.body.get("metadata") or {}
            token = str(metadata.get("continue") or "")
            resource_version = str(metadata.get("resourceVersion") or "")
            if not token:
                break
        with self._lock:
            self._objects, self._deleted = fresh, {}
        first = not self.status.synced
        self.status.relists += 0 if first else 1
        self.status.synced, self.status.error = True, None
        self.status.resource_version, self.status.last_event_at = resource_version, time.time()
        count = sum(len(names) for names in fresh.values())
        log.info("listed %d %s at resourceVersion %s", count, self.kind, resource_version)
        self.on_change("LIST", None)
        return resource_version

    def _watch(self) -> None:
        """Until the server ends the watch; the resourceVersion moves on with every event, so a
        watch that breaks resumes where it broke."""
        query = [
            ("watch", "true"),
            ("resourceVersion", self._resource_version),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", str(WATCH_SECONDS)),
        ]
        with self.client.watch(self.path, query, read_timeout=WATCH_SECONDS + 30) as lines:
            self.status.connected, self.status.error = True, None
            for line in lines:
                if self._stop.is_set():
                    break
                self._resource_version = self._apply(orjson.loads(line), self._resource_version)
        self.status.connected = False

    def _apply(self, event: dict[str, Any], resource_version: str) -> str:
        kind, obj = event.get("type"), event.get("object") or {}
        if kind == "ERROR":
            raise api_error("WATCH", self.path, int(obj.get("code") or 0), obj)
        metadata = obj.get("metadata") or {}
        new_version = str(metadata.get("resourceVersion") or resource_version)
        if kind in ("ADDED", "MODIFIED", "DELETED"):
            decoded = self._decoded(obj)
            namespace, name = _key(decoded)
            with self._lock:
                if kind == "DELETED":
                    self._objects.get(namespace, {}).pop(name, None)
                    self._remember_deleted(namespace, name, new_version)
                else:
                    self._objects.setdefault(namespace, {})[name] = decoded
                    self._deleted.pop((namespace, name), None)
            self.status.events += 1
            self.on_change(kind, decoded)
        self.status.resource_version, self.status.last_event_at = new_version, time.time()
        return new_version

    def _decoded(self, obj: JSONObject) -> JSONObject:
        metadata = obj.get("metadata")
        if not isinstance(metadata, dict) or not isinstance(metadata.get("name"), str):
            raise ApiError(f"{self.path}: an object without metadata.name")
        return self.strip(obj)


def _key(obj: JSONObject) -> NamespacedName:
    metadata = obj["metadata"]
    return str(metadata.get("namespace") or ""), str(metadata["name"])


def _version(obj: JSONObject) -> str:
    return str(obj["metadata"].get("resourceVersion") or "")


def _newer(candidate: JSONObject, held: JSONObject) -> bool:
    return _newer_version(_version(candidate), _version(held))


def _newer_version(new: str, old: str) -> bool:
    """resourceVersions are opaque, but etcd's are integers; compare them only when both are."""
    return new.isdigit() and old.isdigit() and int(new) > int(old)
