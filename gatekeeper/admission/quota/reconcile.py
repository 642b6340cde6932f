"""Recount quota usage from live objects, as Kubernetes' quota controller does (UsageStats).

Admission over-counts by design: a request gatekeeper charged may be refused later by another
admission step, a pod that finishes keeps its charge, an UPDATE never gives usage back. A recount
from `kubectl get ... -o json` repairs all of that.

Only resources the input can speak for are recounted: those of pods, services, secrets,
configmaps and persistentvolumeclaims (what the documented kubectl command lists, so an empty
list means "none"), and object counts of any other resource that appears in the input. Every
other resource of a quota keeps its current usage.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from gatekeeper.admission.quota.check import effective_used, matches
from gatekeeper.admission.quota.evaluators.base import Evaluator, JSONObject
from gatekeeper.admission.quota.evaluators.registry import evaluator_for
from gatekeeper.admission.quota.quotas import Quota
from gatekeeper.admission.quota.resources import QuotaError, ResourceList, add, mask, negative_names
from gatekeeper.k8s.quantity import ZERO

# resources whose absence from the input means zero of them (the documented kubectl command lists them)
LISTED = ("pods", "services", "secrets", "configmaps", "persistentvolumeclaims")
# kinds whose plural is not the lower-case kind + "s"
_IRREGULAR = {
    "Ingress": "ingresses",
    "NetworkPolicy": "networkpolicies",
    "PriorityClass": "priorityclasses",
    "StorageClass": "storageclasses",
    "Endpoints": "endpoints",
}


@dataclass(frozen=True, slots=True)
class LiveObject:
    group: str
    resource: str
    namespace: str
    body: JSONObject
    where: str = ""  # where the input holds it, for errors ("live.json: document 0, items[3]")

    def described(self) -> str:
        name = str((self.body.get("metadata") or {}).get("name") or "")
        return self.where or f"{self.resource} {self.namespace}/{name}"


@dataclass(frozen=True, slots=True)
class Recount:
    quota: Quota
    before: ResourceList
    after: ResourceList


def live_object(obj: JSONObject, where: str) -> LiveObject:
    """Group, resource and namespace of one item of a kubectl list; QuotaError if it has none."""
    kind, api_version = obj.get("kind"), obj.get("apiVersion")
    metadata = obj.get("metadata")
    if not isinstance(kind, str) or not isinstance(api_version, str) or not isinstance(metadata, dict):
        raise QuotaError(f"{where}: expected a Kubernetes object with apiVersion, kind and metadata")
    group = api_version.rpartition("/")[0]
    return LiveObject(group, resource_of(kind), str(metadata.get("namespace") or ""), obj, where)


def resource_of(kind: str) -> str:
    """The resource of a kind, as kubectl names it: Pod -> pods, Ingress -> ingresses, Policy -> policies."""
    if kind in _IRREGULAR:
        return _IRREGULAR[kind]
    word = kind.lower()
    if word.endswith(("s", "x", "ch", "sh")):
        return f"{word}es"
    if word.endswith("y") and word[-2:-1] not in ("a", "e", "i", "o", "u"):
        return f"{word[:-1]}ies"
    return f"{word}s"


def recount(
    quotas: Sequence[Quota],
    usage: Mapping[str, Mapping[str, Mapping[str, str]]],
    objects: Sequence[LiveObject],
) -> list[Recount]:
    """New usage of every quota: recounted where the input speaks for a resource, else unchanged.

    `usage` is the ledger's current usage: namespace -> quota name -> used.
    """
    covered = _covered_evaluators(objects)
    result = []
    for quota in quotas:
        before = effective_used(quota, usage.get(quota.namespace, {}).get(quota.name, {}))
        in_namespace = [o for o in objects if o.namespace == quota.namespace]
        counted = _count(quota, covered, in_namespace)
        result.append(Recount(quota, before, before | counted))
    return result


def _covered_evaluators(objects: Iterable[LiveObject]) -> dict[tuple[str, str], Evaluator]:
    return covered_evaluators([*(("", name) for name in LISTED), *((o.group, o.resource) for o in objects)])


def _count(
    quota: Quota, covered: Mapping[tuple[str, str], Evaluator], objects: Iterable[LiveObject]
) -> ResourceList:
    """Σ usage of the matching objects, per hard resource some covered evaluator measures (zero if none)."""
    total: ResourceList = {}
    for evaluator in covered.values():
        for name in evaluator.matching_resources(quota.hard):
            total[name] = ZERO
    for obj in objects:
        measuring = covered.get((obj.group, obj.resource))
        if measuring is not None:
            total = charge(total, quota, measuring, obj)
    return total


def charge(total: ResourceList, quota: Quota, evaluator: Evaluator, obj: LiveObject) -> ResourceList:
    """`total` plus what the object uses of the quota's hard resources, if the quota applies to it."""
    if not matches(evaluator, quota, obj.body):
        return total
    return add(total, mask(_usage(evaluator, obj), quota.hard))


def covered_evaluators(resources: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Evaluator]:
    """The evaluator of each (group, resource) that quota measures; ignored resources are left out."""
    evaluators = {key: evaluator_for(*key) for key in sorted(set(resources))}
    return {key: evaluator for key, evaluator in evaluators.items() if evaluator is not None}


def _usage(evaluator: Evaluator, obj: LiveObject) -> ResourceList:
    """An object's usage; a negative one (which the API server's validation never admits) is refused:
    counted, it would hide the usage of the others."""
    usage = evaluator.usage(obj.body)
    negative = negative_names(usage)
    if negative:
        raise QuotaError(f"{obj.described()}: quota usage is negative for resource(s): {','.join(negative)}")
    return usage
