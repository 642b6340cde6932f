"""The store interface: the cluster objects admission reads, kept as plain Kubernetes objects.

Objects are addressed by (resource, namespace, name), where resource is the lower-case plural
("namespaces", "limitranges", "resourcequotas", "serviceaccounts", "secrets") and namespace is ""
for cluster-scoped objects. Implementations, all in gatekeeper/backends/: memory.py (offline CLI),
sqlite/ (serve), etcd/ (several replicas), kube/ (a live cluster). Nothing outside backends/ names
one: the server asks the interface what it needs (a snapshot per request, whether calls block,
whether the store can answer now).

Every failure to reach or read the store is a StoreError (errors.Unavailable: 503, so the
caller's failurePolicy decides), whichever backend and wherever it is met.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from gatekeeper.admission.quota.ledger import QuotaLedger
from gatekeeper.errors import Unavailable

JSONObject = dict[str, Any]

NAMESPACES = "namespaces"
LIMIT_RANGES = "limitranges"
RESOURCE_QUOTAS = "resourcequotas"
SERVICE_ACCOUNTS = "serviceaccounts"
SECRETS = "secrets"

KIND_TO_RESOURCE = {
    "Namespace": NAMESPACES,
    "LimitRange": LIMIT_RANGES,
    "ResourceQuota": RESOURCE_QUOTAS,
    "ServiceAccount": SERVICE_ACCOUNTS,
    "Secret": SECRETS,
}
CLUSTER_SCOPED = frozenset({NAMESPACES})

Key = tuple[str, str, str]  # (resource, namespace, name)


class StoreError(Unavailable):
    """The store cannot answer (unreachable, corrupt); callers turn it into a clear error."""


class Store(Protocol):
    @property
    def quota_ledger(self) -> QuotaLedger:
        """Quota usage, kept beside the objects (gatekeeper/admission/quota/ledger.py)."""
        ...

    @property
    def blocks(self) -> bool:
        """True when a call may wait for a network round trip (etcd, a live cluster's API server):
        the server runs admission for such a store on a thread. A local store (memory, SQLite)
        answers in microseconds, so admission runs on the event loop: a hop to a thread costs
        more than the work, and dozens of threads contending for the GIL while one of them holds
        SQLite's write lock make every request wait."""
        ...

    def unavailable(self) -> str | None:
        """Why the store cannot answer now (etcd unreachable, a live cluster's first lists not in
        yet), or None; a local store is always available (its failures are StoreErrors)."""
        ...

    def snapshot(self) -> Store:
        """The store as one request reads it: each object read at most once, and every later read of
        the request sees the same object (a fresh copy each time, so a plugin may change it).
        Writes go through to the store and are read back. A snapshot's snapshot is itself."""
        ...

    def get(self, resource: str, namespace: str, name: str) -> JSONObject | None: ...

    def list(self, resource: str, namespace: str) -> list[JSONObject]:
        """Objects of `resource` in `namespace`, ordered by name."""
        ...

    def put(self, obj: JSONObject) -> None:
        """Create or replace, keyed by the object's kind, namespace and name."""
        ...

    def delete(self, resource: str, namespace: str, name: str) -> None: ...

    def replace_all(self, objects: Iterable[JSONObject]) -> None:
        """Atomically replace every stored object with `objects` (state sync)."""
        ...

    def applied_manifests(self) -> dict[Key, str]:
        """The digest of each manifest object as last applied (see backends/manifests.py)."""
        ...

    def apply_manifests(
        self, puts: Iterable[JSONObject], deletes: Iterable[Key], applied: Mapping[Key, str]
    ) -> None:
        """Atomically: put `puts`, delete the objects at `deletes`, remember `applied` as the manifests."""
        ...

    def all(self) -> builtins.list[JSONObject]: ...

    def close(self) -> None: ...


def key_of(obj: JSONObject) -> Key:
    """(resource, namespace, name) of a stored kind; KeyError/ValueError name what is wrong."""
    kind = obj.get("kind")
    if not isinstance(kind, str) or kind not in KIND_TO_RESOURCE:
        known = ", ".join(sorted(KIND_TO_RESOURCE))
        raise ValueError(f"kind: expected one of {known}, got {kind!r}")
    resource = KIND_TO_RESOURCE[kind]
    metadata = obj.get("metadata")
    if not isinstance(metadata, dict) or not isinstance(metadata.get("name"), str):
        raise ValueError("metadata.name: expected a string")
    namespace = "" if resource in CLUSTER_SCOPED else metadata.get("namespace", "")
    if resource not in CLUSTER_SCOPED and not (isinstance(namespace, str) and namespace):
        raise ValueError(f"metadata.namespace: a {kind} must name its namespace")
    return resource, str(namespace), metadata["name"]
