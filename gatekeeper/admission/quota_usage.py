"""Quotas as stored, and as shown with their current usage (GET /quota, `admit --state-out`)."""

from __future__ import annotations

import copy

from gatekeeper.admission.quota.check import effective_used, seeds
from gatekeeper.admission.quota.quotas import Quota, parse_quota
from gatekeeper.admission.quota.resources import QuotaError, to_strings
from gatekeeper.admission.state import RESOURCE_QUOTAS, JSONObject, Store


def namespace_quotas(store: Store, namespace: str) -> list[Quota]:
    """The namespace's quotas, ordered by name; QuotaError names a malformed one."""
    live = store.quota_ledger.live
    return [parse_quota(obj, live) for obj in store.list(RESOURCE_QUOTAS, namespace)]


def quota_objects(store: Store) -> list[JSONObject]:
    return [obj for obj in store.all() if obj.get("kind") == "ResourceQuota"]


def with_usage(store: Store, namespace: str | None = None) -> list[JSONObject]:
    """Every ResourceQuota (of `namespace`, if given) with status.hard and status.used as enforced now."""
    objects = [o for o in quota_objects(store) if namespace is None or _namespace(o) == namespace]
    result = []
    for ns in sorted({_namespace(o) for o in objects}):
        in_namespace = [o for o in objects if _namespace(o) == ns]
        try:
            quotas = [parse_quota(o, store.quota_ledger.live) for o in in_namespace]
        except QuotaError:
            result.extend(in_namespace)  # shown as stored; admission names the problem when it reads them
            continue
        usage = store.quota_ledger.usage(ns, seeds(quotas))
        for obj, quota in zip(in_namespace, quotas, strict=True):
            shown = copy.deepcopy(obj)
            status = shown.setdefault("status", {})
            status["hard"] = to_strings(quota.hard)
            status["used"] = to_strings(effective_used(quota, usage[quota.name]))
            result.append(shown)
    return result


def _namespace(obj: JSONObject) -> str:
    return str((obj.get("metadata") or {}).get("namespace") or "")
