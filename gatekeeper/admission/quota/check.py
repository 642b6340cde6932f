"""The quota decision for one request, worded as Kubernetes words it (resourcequota/controller.go).

Two halves, because the second must run inside the ledger's transaction:
* `plan` (CheckRequest up to the delta): which quotas apply, what the object must declare, what
  the request asks of each quota. It reads a usage snapshot only to tell known from unknown usage.
* `charge` / `release`: given the usage *at commit time*, the new usage or the refusal.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from gatekeeper import errors
from gatekeeper.admission.quota.evaluators.base import Evaluator, JSONObject
from gatekeeper.admission.quota.ledger import NamespaceUsage, Refused, Used
from gatekeeper.admission.quota.quotas import Quota
from gatekeeper.admission.quota.resources import (
    ResourceList,
    add,
    exceeded_names,
    from_strings,
    mask,
    negative_names,
    non_zero,
    pretty,
    subtract_non_negative,
    to_strings,
)
from gatekeeper.admission.request import UPDATE, AdmissionRequest
from gatekeeper.k8s.quantity import ZERO


class QuotaRefusal(errors.Refused):
    """The request must be refused; the message is Kubernetes' (without the "<res> is forbidden" prefix)."""


@dataclass(frozen=True, slots=True)
class Plan:
    """What one request asks of each quota it touches (quota name -> non-zero request)."""

    quotas: tuple[Quota, ...]
    requested: dict[str, ResourceList]
    check_limits: bool = True  # the status subresource is charged without a limit check
    usage: ResourceList = field(default_factory=dict)  # what the object consumes, if a quota applies


def seeds(quotas: Sequence[Quota]) -> dict[str, Used]:
    return {quota.name: quota.seed for quota in quotas}


def effective_used(quota: Quota, used: Mapping[str, str]) -> ResourceList:
    """The quota's usage as numbers; a quota synced here has zero of whatever it has not used yet."""
    result = from_strings(used)
    if quota.synced_here:
        result = {name: ZERO for name in quota.hard} | result
    return result


def matches(evaluator: Evaluator, quota: Quota, obj: JSONObject) -> list[str]:
    """Matches(): the quota resources this object can consume, or [] if a scope excludes it."""
    resources = evaluator.matching_resources(quota.hard)
    if not resources or not all(evaluator.matches_scope(scope, obj) for scope in quota.scopes):
        return []
    return resources


def interesting(
    evaluator: Evaluator, quotas: Sequence[Quota], obj: JSONObject, usage: NamespaceUsage
) -> list[Quota]:
    """The quotas that apply, in order; QuotaRefusal for a missing declaration or unknown usage."""
    result = []
    for quota in quotas:
        resources = matches(evaluator, quota, obj)
        if not resources:
            continue
        error = evaluator.constraints(resources, obj)
        if error:
            raise QuotaRefusal(f"failed quota: {quota.name}: {error}")
        used = usage.get(quota.name, {})
        if not all(quota.usage_known(used, name) for name in resources):
            names = ",".join(sorted(resources))
            raise QuotaRefusal(f"status unknown for quota: {quota.name}, resources: {names}")
        result.append(quota)
    return result


def object_usage(evaluator: Evaluator, obj: JSONObject, which: str = "") -> ResourceList:
    """What the object consumes; a negative quantity is refused, in the new object as in the old
    one of an UPDATE: subtracted, a negative old usage would charge more than the object asks."""
    usage = evaluator.usage(obj)
    negative = negative_names(usage)
    if negative:
        raise QuotaRefusal(f"quota usage{which} is negative for resource(s): {','.join(negative)}")
    return usage


def plan(
    request: AdmissionRequest,
    evaluator: Evaluator,
    obj: JSONObject,
    quotas: Sequence[Quota],
    usage: NamespaceUsage,
) -> Plan:
    """CheckRequest up to the charge: quota name -> the non-zero usage this request adds to it.

    As in current Kubernetes, the object is measured (a negative usage refused, an UPDATE without
    its old object refused) whenever the namespace has a quota, before asking whether one applies."""
    applying = interesting(evaluator, quotas, obj, usage)
    new_usage = object_usage(evaluator, obj)
    old = request.old_object if request.operation == UPDATE else None
    if request.operation == UPDATE and old is None:
        raise QuotaRefusal("unable to get previous usage since prior version of object was not found")
    old_usage = object_usage(evaluator, old, " of the previous version") if old is not None else {}
    if not applying:
        return Plan(tuple(quotas), {})
    requested: dict[str, ResourceList] = {}
    for quota in applying:
        delta = new_usage
        if old is not None and _has_resource_version(old) and matches(evaluator, quota, old):
            delta = subtract_non_negative(new_usage, old_usage)
        wanted = non_zero(mask(delta, quota.hard))
        if wanted:
            requested[quota.name] = wanted
    return Plan(tuple(quotas), requested, check_limits=request.sub_resource != "status", usage=new_usage)


def _has_resource_version(obj: JSONObject) -> bool:
    """An UPDATE whose old object was never stored (no resourceVersion) is charged as a create."""
    return bool((obj.get("metadata") or {}).get("resourceVersion"))


def charge(the_plan: Plan, usage: NamespaceUsage) -> NamespaceUsage | Refused:
    """The new usage of every quota the plan touches, or the first quota it would exceed."""
    by_name = {quota.name: quota for quota in the_plan.quotas}
    result: NamespaceUsage = {}
    for name, requested in the_plan.requested.items():
        quota = by_name[name]
        used = effective_used(quota, usage.get(name, {}))
        new_used = add(used, requested)
        exceeded = exceeded_names(mask(new_used, requested), quota.hard) if the_plan.check_limits else []
        if exceeded:
            return Refused(
                exceeded_message(
                    name, mask(requested, exceeded), mask(used, exceeded), mask(quota.hard, exceeded)
                )
            )
        result[name] = to_strings(new_used)
    return result


def exceeded_message(name: str, requested: ResourceList, used: ResourceList, hard: ResourceList) -> str:
    return (
        f"exceeded quota: {name}, requested: {pretty(requested)}, used: {pretty(used)}, "
        f"limited: {pretty(hard)}"
    )
