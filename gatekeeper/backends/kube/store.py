"""The store of `serve --kubeconfig`: the API server's objects, watched, never written by admission.

Namespaces, LimitRanges, ResourceQuotas, ServiceAccounts and Secrets are each listed and watched
by a Reflector. A Secret is kept as its name, type and annotations only: its data is dropped as
soon as it is decoded. Until every kind's first list is in, `unavailable()` says what is missing
(admission and /readyz answer 503, so the webhook's failurePolicy decides). Quota usage is the
ResourceQuota objects' own status (ledger.py). Each replica, and each worker, keeps its own copy.
"""

from __future__ import annotations

import builtins
import copy
import threading
import time
from collections.abc import Iterable, Mapping

from gatekeeper.admission.state import (
    LIMIT_RANGES,
    NAMESPACES,
    RESOURCE_QUOTAS,
    SECRETS,
    SERVICE_ACCOUNTS,
    JSONObject,
    Key,
    StoreError,
)
from gatekeeper.backends.kube.client import KubeClient
from gatekeeper.backends.kube.ledger import ResourceQuotaStatusLedger
from gatekeeper.backends.kube.quota_controller import COUNTED, QuotaController, counted_strip
from gatekeeper.backends.kube.quota_controller import KINDS as KINDS_COUNTED
from gatekeeper.backends.kube.reflector import KindStatus, Reflector, Strip
from gatekeeper.backends.snapshot import Snapshot
from gatekeeper.backends.storable import strip_secret

WATCHED = {
    NAMESPACES: "/api/v1/namespaces",
    LIMIT_RANGES: "/api/v1/limitranges",
    RESOURCE_QUOTAS: "/api/v1/resourcequotas",
    SERVICE_ACCOUNTS: "/api/v1/serviceaccounts",
    SECRETS: "/api/v1/secrets",
}
KINDS = {
    NAMESPACES: "Namespace",
    LIMIT_RANGES: "LimitRange",
    RESOURCE_QUOTAS: "ResourceQuota",
    SERVICE_ACCOUNTS: "ServiceAccount",
    SECRETS: "Secret",
}
LIVE_GET = frozenset({NAMESPACES, SERVICE_ACCOUNTS, SECRETS})
LIVE_LIST = frozenset({LIMIT_RANGES, RESOURCE_QUOTAS})
LIVE_LIST_SECONDS = 30.0  # the in-tree plugins' live-lookup TTL
LIVE_LIST_ENTRIES = 10_000
READ_ONLY = "the live cluster's objects are the API server's: gatekeeper never writes them from admission"


def with_kind(kind: str) -> Strip:
    """List items arrive without apiVersion/kind; the store's objects always carry them."""

    def strip(obj: JSONObject) -> JSONObject:
        obj["apiVersion"], obj["kind"] = "v1", kind
        return obj

    return strip


class KubeStore:
    blocks = True  # a miss is looked up live, and a quota charge is a PUT to the API server

    def __init__(self, source: str, start: bool = True, quota_controller: float | None = None) -> None:
        """`quota_controller`: recount quotas from watches, fully every this many seconds (None:
        the cluster's own resourcequota controller does)."""
        self.source = source
        self._client = KubeClient(source)
        self._reflectors = {
            resource: Reflector(
                KINDS[resource],
                path,
                self._client,
                strip=strip_secret if resource == SECRETS else with_kind(KINDS[resource]),
            )
            for resource, path in WATCHED.items()
        }
        self._counted: dict[str, Reflector] = {}
        self.quota_controller: QuotaController | None = None
        if quota_controller is not None:
            self._start_quota_controller(quota_controller)
        self.quota_ledger = ResourceQuotaStatusLedger(self._client, self._reflectors[RESOURCE_QUOTAS])
        self._live_lock = threading.Lock()
        self._live_lists: dict[tuple[str, str], tuple[float, builtins.list[JSONObject]]] = {}
        self.started_at = time.time()
        if start:
            for reflector in self._all_reflectors():
                reflector.start()
            if self.quota_controller is not None:
                self.quota_controller.start()

    def _start_quota_controller(self, period: float) -> None:
        self._counted = {
            resource: Reflector(KINDS_COUNTED[resource], path, self._client, strip=counted_strip(resource))
            for resource, path in COUNTED.items()
        }
        counted = {**self._counted, SECRETS: self._reflectors[SECRETS]}
        controller = QuotaController(self._client, self._reflectors[RESOURCE_QUOTAS], counted, period)
        self._reflectors[RESOURCE_QUOTAS].on_change = controller.quota_changed
        for reflector in counted.values():
            reflector.on_change = controller.object_changed
        self.quota_controller = controller

    def _all_reflectors(self) -> builtins.list[Reflector]:
        return [*self._reflectors.values(), *self._counted.values()]

    @property
    def server(self) -> str:
        return self._client.host

    def unavailable(self) -> str | None:
        """Why admission cannot answer yet: a kind whose first list is not in."""
        waiting = [r.kind for r in self._all_reflectors() if not r.status.synced]
        if not waiting:
            return None
        errors = [f"{r.kind}: {r.status.error}" for r in self._all_reflectors() if r.status.error]
        reason = f"waiting for the first list of {', '.join(waiting)} from the API server {self.server}"
        return f"{reason} ({'; '.join(errors)})" if errors else reason

    def watches(self) -> dict[str, KindStatus]:
        reflectors = {**self._reflectors, **self._counted}
        return {resource: reflector.status for resource, reflector in reflectors.items()}

    def disconnected(self) -> str | None:
        """A gap after the first sync: a watch that broke and has not come back yet, or None."""
        broken = [f"{r.kind}: {r.status.error}" for r in self._all_reflectors() if r.status.error]
        return f"watches broken, serving the last state seen: {'; '.join(broken)}" if broken else None

    def snapshot(self) -> Snapshot[JSONObject]:
        """A request's reads, each looked up once (a miss is looked up live once, not once per
        plugin that reads it) (backends/snapshot.py)."""
        return Snapshot(self, self, copy.deepcopy)

    def get(self, resource: str, namespace: str, name: str) -> JSONObject | None:
        obj = self.get_stored(resource, namespace, name)
        return copy.deepcopy(obj) if obj is not None else None

    def list(self, resource: str, namespace: str) -> list[JSONObject]:
        return copy.deepcopy(self.list_stored(resource, namespace))

    def get_stored(self, resource: str, namespace: str, name: str) -> JSONObject | None:
        """From the watched copy; a miss is looked up live, as the in-tree plugins do: a namespace
        or service account created a moment ago may not have reached the watch yet."""
        reflector = self._reflectors.get(resource)
        if reflector is None:
            return None
        obj = reflector.get(namespace, name)
        if obj is None and resource in LIVE_GET:
            obj = reflector.fetch(namespace, name)
        return obj

    def list_stored(self, resource: str, namespace: str) -> builtins.list[JSONObject]:
        """From the watched copy; a namespace with none is listed live at most every
        LIVE_LIST_SECONDS, as the in-tree ResourceQuota and LimitRanger plugins do, so that a quota
        created a moment ago is enforced before the watch delivers it."""
        reflector = self._reflectors.get(resource)
        if reflector is None:
            return []
        found = reflector.list(namespace)
        if not found and resource in LIVE_LIST:
            found = self._live_list(reflector, resource, namespace)
        return found

    def _live_list(self, reflector: Reflector, resource: str, namespace: str) -> builtins.list[JSONObject]:
        key, now = (resource, namespace), time.monotonic()
        with self._live_lock:
            cached = self._live_lists.get(key)
            if cached is not None and cached[0] > now:
                return cached[1]
        found = reflector.fetch_namespace(namespace)
        with self._live_lock:
            if len(self._live_lists) >= LIVE_LIST_ENTRIES:
                self._live_lists.clear()
            self._live_lists[key] = (now + LIVE_LIST_SECONDS, found)
        return found

    def all(self) -> builtins.list[JSONObject]:
        return [copy.deepcopy(obj) for reflector in self._reflectors.values() for obj in reflector.all()]

    def put(self, obj: JSONObject) -> None:
        raise StoreError(READ_ONLY)

    def delete(self, resource: str, namespace: str, name: str) -> None:
        raise StoreError(READ_ONLY)

    def replace_all(self, objects: Iterable[JSONObject]) -> None:
        raise StoreError(READ_ONLY)

    def applied_manifests(self) -> dict[Key, str]:
        return {}

    def apply_manifests(
        self, puts: Iterable[JSONObject], deletes: Iterable[Key], applied: Mapping[Key, str]
    ) -> None:
        raise StoreError(READ_ONLY)

    def close(self) -> None:
        if self.quota_controller is not None:
            self.quota_controller.stop()
        for reflector in self._all_reflectors():
            reflector.stop()
        self._client.close()
