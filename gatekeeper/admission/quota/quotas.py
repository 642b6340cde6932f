"""A ResourceQuota object as quota admission reads it: what is enforced, from where usage starts.

Kubernetes' admission reads only `status.hard`, filled by the quota controller from `spec.hard`.
Standalone, gatekeeper is its own quota controller, so a quota without `status.hard` enforces
`spec.hard` (and its missing usage counts as zero, as the controller would have written it); a
quota with `status.hard` is a snapshot of a live cluster and is enforced exactly as Kubernetes does.
Against a live cluster (`live=True`) the objects are the API server's own: only `status.hard`
counts, so a quota the controller has not synced yet is not enforced, as in-tree.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gatekeeper.admission.quota.resources import QuotaError, ResourceList, parse_non_negative, to_strings
from gatekeeper.admission.quota.scopes import ScopeRequirement, parse_scopes


@dataclass(frozen=True, slots=True)
class Quota:
    namespace: str
    name: str
    hard: ResourceList
    seed: dict[str, str]  # status.used of the manifest, canonical: where the ledger starts
    scopes: tuple[ScopeRequirement, ...]
    synced_here: bool  # no status.hard: gatekeeper acts as the controller that syncs spec.hard

    def usage_known(self, used: Mapping[str, object], resource: str) -> bool:
        """hasUsageStats for one resource: a snapshot must list it; our own quotas start at zero."""
        return self.synced_here or resource in used


def parse_quota(obj: Mapping[str, Any], live: bool = False) -> Quota:
    """A stored ResourceQuota as a Quota; QuotaError names the malformed field. A negative hard or
    used is refused, as the API server's validation refuses it: usage that starts below zero would
    let the namespace use more than its hard."""
    metadata = obj.get("metadata") or {}
    namespace, name = str(metadata.get("namespace") or ""), str(metadata.get("name") or "")
    where = f"resourcequota {namespace}/{name}"
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    if not isinstance(spec, dict) or not isinstance(status, dict):
        raise QuotaError(f"{where}: spec and status must be objects")
    synced_here = status.get("hard") is None and not live
    hard = parse_non_negative(
        spec.get("hard") if synced_here else status.get("hard") or {},
        f"{where}: {'spec' if synced_here else 'status'}.hard",
    )
    used = parse_non_negative(status.get("used"), f"{where}: status.used")
    return Quota(namespace, name, hard, to_strings(used), parse_scopes(spec, f"{where}: spec"), synced_here)
