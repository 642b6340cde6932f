"""Pods: object counts and compute usage, the cpu/memory declaration rule, scopes (evaluator/core/pods.go)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from gatekeeper.admission.podresources import (
    PodLevel,
    containers,
    init_containers,
    pod_totals,
    resource_list,
)
from gatekeeper.admission.quota.evaluators.base import JSONObject
from gatekeeper.admission.quota.resources import QuotaError, ResourceList, add
from gatekeeper.admission.quota.scopes import ScopeRequirement, is_terminating, pod_matches
from gatekeeper.admission.request import CREATE, UPDATE, AdmissionRequest
from gatekeeper.k8s.quantity import Quantity

COUNT = "count/pods"
PODS = "pods"
# Plain, requests.* and limits.* names; hugepages and extended resources are matched by prefix.
COMPUTE = ("cpu", "memory", "ephemeral-storage")
RESOURCES = frozenset(
    {COUNT, PODS, *COMPUTE, *(f"requests.{n}" for n in COMPUTE), *(f"limits.{n}" for n in COMPUTE)}
)
HUGEPAGES = "hugepages-"
REQUESTS = "requests."
# A quota on any of these makes every container declare it: a mistake Kubernetes keeps for compatibility.
MUST_DECLARE = frozenset({"cpu", "memory", "requests.cpu", "requests.memory", "limits.cpu", "limits.memory"})
TERMINAL_PHASES = ("Succeeded", "Failed")


class PodEvaluator:
    def handles(self, request: AdmissionRequest) -> bool:
        """CREATE; UPDATE of pods/resize; a plain UPDATE only when it moves the pod between
        Terminating and NotTerminating (since Kubernetes 1.33)."""
        if request.operation == CREATE:
            return request.sub_resource == ""
        if request.operation != UPDATE:
            return False
        if request.sub_resource == "resize":
            return True
        return request.sub_resource == "" and _terminating_changed(request.old_object, request.object)

    def matching_resources(self, names: Iterable[str]) -> list[str]:
        return [name for name in names if name in RESOURCES or _prefixed_pod_resource(name)]

    def matches_scope(self, requirement: ScopeRequirement, obj: JSONObject) -> bool:
        return pod_matches(requirement, obj, lambda: is_best_effort(obj))

    def constraints(self, required: Iterable[str], obj: JSONObject) -> str | None:
        """Every container and init container must declare each cpu/memory name the quota tracks."""
        wanted = MUST_DECLARE.intersection(required)
        if not wanted or _has_pod_level_resources(obj):
            return None
        missing: dict[str, set[str]] = {}
        for container in containers(obj) + init_containers(obj):
            declared = compute_usage(container.requests, container.limits)
            for name in wanted - declared.keys():
                missing.setdefault(name, set()).add(container.name)
        if not missing:
            return None
        parts = [f"{name} for: {','.join(sorted(missing[name]))}" for name in sorted(missing)]
        return f"must specify {'; '.join(parts)}"

    def usage(self, obj: JSONObject) -> ResourceList:
        """count/pods always; the rest only while the pod counts (PodUsageFunc)."""
        if not counts_compute(obj):
            return {COUNT: Quantity.from_int(1)}
        return self.charged(obj)

    def charged(self, obj: JSONObject) -> ResourceList:
        """What admission charged for the pod while it ran: its usage as if it still counted.

        A DELETE gives this back. A finished pod (Succeeded/Failed) no longer counts, but its
        finishing never passed through admission, so its compute charge must go back on delete.
        """
        result: ResourceList = {COUNT: Quantity.from_int(1)}
        level = PodLevel.CPU_MEMORY_HUGEPAGES  # quota counts overhead and the larger of spec and status
        requests, limits = pod_totals(obj, pod_level=level, include_overhead=True, use_status_resources=True)
        return add(result, compute_usage(requests, limits))


def compute_usage(requests: ResourceList, limits: ResourceList) -> ResourceList:
    """podComputeUsageHelper: what one pod (or one container) consumes, by quota resource name."""
    result: ResourceList = {PODS: Quantity.from_int(1)}
    for name in COMPUTE:
        if name in requests:
            result[name] = requests[name]
            result[f"{REQUESTS}{name}"] = requests[name]
        if name in limits:
            result[f"limits.{name}"] = limits[name]
    for name, quantity in requests.items():
        if name.startswith(HUGEPAGES):
            result[name] = quantity
            result[f"{REQUESTS}{name}"] = quantity
        elif is_extended_resource(name):
            result[f"{REQUESTS}{name}"] = quantity  # extended resources are quota'd as requests.<name> only
    return result


def is_native_resource(name: str) -> bool:
    return "/" not in name or "kubernetes.io/" in name


def is_extended_resource(name: str) -> bool:
    return not is_native_resource(name) and not name.startswith(REQUESTS)


def _prefixed_pod_resource(name: str) -> bool:
    if name.startswith((HUGEPAGES, f"{REQUESTS}{HUGEPAGES}")):
        return True
    return not is_native_resource(name) and name.startswith(REQUESTS)


def counts_compute(pod: JSONObject) -> bool:
    """QuotaV1Pod: not terminal, and not stuck terminating past its grace period."""
    status = pod.get("status")
    if isinstance(status, dict) and status.get("phase") in TERMINAL_PHASES:
        return False
    metadata = pod.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise QuotaError("metadata: expected an object")
    deleted, grace = metadata.get("deletionTimestamp"), metadata.get("deletionGracePeriodSeconds")
    if deleted is None or not isinstance(grace, int):
        return True
    return datetime.now(UTC) <= _timestamp(deleted) + timedelta(seconds=grace)


def _timestamp(value: object) -> datetime:
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise QuotaError(f"metadata.deletionTimestamp: expected an RFC 3339 time, got {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def is_best_effort(pod: JSONObject) -> bool:
    """QoS BestEffort: status.qosClass when set, else no cpu/memory request or limit above zero."""
    status = pod.get("status")
    reported = status.get("qosClass") if isinstance(status, dict) else None
    if reported:
        return bool(reported == "BestEffort")
    spec = pod.get("spec") or {}
    pod_level = spec.get("resources") or {}
    if _has_pod_level_resources(pod):
        lists = [resource_list(pod_level.get(f), f"spec.resources.{f}") for f in ("requests", "limits")]
    else:
        lists = [c.requests for c in containers(pod) + init_containers(pod)]
        lists += [c.limits for c in containers(pod) + init_containers(pod)]
    return not any(q.sign() > 0 for values in lists for n, q in values.items() if n in ("cpu", "memory"))


def _has_pod_level_resources(pod: JSONObject) -> bool:
    spec = pod.get("spec") or {}
    resources = (spec.get("resources") if isinstance(spec, dict) else None) or {}
    if not isinstance(resources, dict):
        raise QuotaError("spec.resources: expected an object")
    names = [*(resources.get("requests") or {}), *(resources.get("limits") or {})]
    return any(PodLevel.CPU_MEMORY_HUGEPAGES.supports(str(name)) for name in names)


def _terminating_changed(old: JSONObject | None, new: JSONObject | None) -> bool:
    if old is None or new is None:
        return False
    return is_terminating(old.get("spec") or {}) != is_terminating(new.get("spec") or {})
