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
