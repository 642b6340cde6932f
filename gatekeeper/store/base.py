"""The store interface: the cluster objects admission reads, kept as plain Kubernetes objects.

Objects are addressed by (resource, namespace, name), where resource is the lower-case plural
("namespaces", "limitranges", "resourcequotas", "serviceaccounts", "secrets") and namespace is ""
for cluster-scoped objects. Implementations: memory.py (offline CLI), sqlite.py (serve), etcd.py
(several replicas).
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Mapping
from typing import Any, Protocol, runtime_checkable

from gatekeeper.quota.ledger import QuotaLedger

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

# What the plugins read of a Secret (the ServiceAccount plugin: which secrets exist, their type and
# the service-account annotations); everything else, data and stringData above all, is dropped.
SECRET_METADATA = ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
SERVICE_ACCOUNT_ANNOTATIONS = "kubernetes.io/service-account."


class StoreError(Exception):
    """The store cannot answer (unreachable, corrupt); callers turn it into a clear error."""


class Store(Protocol):
    @property
    def quota_ledger(self) -> QuotaLedger:
        """Quota usage, kept beside the objects (gatekeeper/quota/ledger.py)."""
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
        """The digest of each manifest object as last applied (see store/manifests.py)."""
        ...

    def apply_manifests(
        self, puts: Iterable[JSONObject], deletes: Iterable[Key], applied: Mapping[Key, str]
    ) -> None:
        """Atomically: put `puts`, delete the objects at `deletes`, remember `applied` as the manifests."""
        ...

    def all(self) -> builtins.list[JSONObject]: ...

    def close(self) -> None: ...


@runtime_checkable
class ReportsAvailability(Protocol):
    """A store on a server of its own (etcd) can be unreachable for a while; memory and SQLite cannot."""

    def unavailable(self) -> str | None:
        """Why the store cannot answer now, or None."""
        ...


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


def strip_secret(obj: JSONObject) -> JSONObject:
    """Name, type and the service-account annotations; an annotation such as kubectl's
    last-applied-configuration would carry the data itself, so no other is kept."""
    metadata = obj.get("metadata")
    metadata = metadata if isinstance(metadata, dict) else {}
    kept = {key: metadata[key] for key in SECRET_METADATA if key in metadata}
    annotations = metadata.get("annotations")
    annotations = annotations if isinstance(annotations, dict) else {}
    kept["annotations"] = {
        key: value for key, value in annotations.items() if key.startswith(SERVICE_ACCOUNT_ANNOTATIONS)
    }
    return {"apiVersion": "v1", "kind": "Secret", "metadata": kept, "type": obj.get("type", "Opaque")}


def storable(obj: JSONObject) -> JSONObject:
    """The object as every store keeps it: a Secret without its data (strip_secret), others as given.
    Every write path of every store goes through here, so a Secret's values are never at rest."""
    return strip_secret(obj) if obj.get("kind") == "Secret" else obj
