"""Quota scopes: spec.scopes and spec.scopeSelector, and whether a pod falls in them (podMatchesScopeFunc)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from gatekeeper.admission.quota.resources import QuotaError

TERMINATING = "Terminating"
NOT_TERMINATING = "NotTerminating"
BEST_EFFORT = "BestEffort"
NOT_BEST_EFFORT = "NotBestEffort"
PRIORITY_CLASS = "PriorityClass"
CROSS_NAMESPACE_POD_AFFINITY = "CrossNamespacePodAffinity"
VOLUME_ATTRIBUTES_CLASS = "VolumeAttributesClass"  # PersistentVolumeClaims only
SCOPES = (
    TERMINATING,
    NOT_TERMINATING,
    BEST_EFFORT,
    NOT_BEST_EFFORT,
    PRIORITY_CLASS,
    CROSS_NAMESPACE_POD_AFFINITY,
    VOLUME_ATTRIBUTES_CLASS,
)

IN, NOT_IN, EXISTS, DOES_NOT_EXIST = "In", "NotIn", "Exists", "DoesNotExist"
OPERATORS = (IN, NOT_IN, EXISTS, DOES_NOT_EXIST)


@dataclass(frozen=True, slots=True)
class ScopeRequirement:
    """One ScopedResourceSelectorRequirement; a plain spec.scopes entry is (scope, Exists)."""

    scope: str
    operator: str = EXISTS
    values: tuple[str, ...] = ()


def parse_scopes(spec: Mapping[str, Any], where: str) -> tuple[ScopeRequirement, ...]:
    """spec.scopes as Exists requirements, then spec.scopeSelector.matchExpressions."""
    scopes = spec.get("scopes") or []
    if not isinstance(scopes, list):
        raise QuotaError(f"{where}.scopes: expected a list of scope names")
    requirements = [ScopeRequirement(_scope_name(s, f"{where}.scopes[{i}]")) for i, s in enumerate(scopes)]
    selector = spec.get("scopeSelector") or {}
    if not isinstance(selector, dict):
        raise QuotaError(f"{where}.scopeSelector: expected an object with matchExpressions")
    expressions = selector.get("matchExpressions") or []
    if not isinstance(expressions, list):
        raise QuotaError(f"{where}.scopeSelector.matchExpressions: expected a list")
    for i, expression in enumerate(expressions):
        requirements.append(_requirement(expression, f"{where}.scopeSelector.matchExpressions[{i}]"))
    return tuple(requirements)


def _scope_name(value: object, where: str) -> str:
    if value not in SCOPES:
        raise QuotaError(f"{where}: expected one of {', '.join(SCOPES)}, got {value!r}")
    return str(value)


def _requirement(expression: object, where: str) -> ScopeRequirement:
    if not isinstance(expression, dict):
        raise QuotaError(f"{where}: expected an object with scopeName, operator and values")
    scope = _scope_name(expression.get("scopeName"), f"{where}.scopeName")
    operator = expression.get("operator")
    if operator not in OPERATORS:
        raise QuotaError(f"{where}.operator: expected one of {', '.join(OPERATORS)}, got {operator!r}")
    values = expression.get("values") or []
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise QuotaError(f"{where}.values: expected a list of strings")
    if operator in (IN, NOT_IN) and not values:
        raise QuotaError(f"{where}.values: must be non-empty for operator {operator}")
    if operator in (EXISTS, DOES_NOT_EXIST) and values:
        raise QuotaError(f"{where}.values: must be empty for operator {operator}")
    return ScopeRequirement(scope, str(operator), tuple(values))


def pod_matches(
    requirement: ScopeRequirement, pod: Mapping[str, Any], best_effort: Callable[[], bool]
) -> bool:
    """podMatchesScopeFunc; `best_effort` computes the pod's QoS only when a scope asks for it."""
    spec = pod.get("spec") or {}
    if not isinstance(spec, Mapping):
        raise QuotaError("spec: expected an object")
    scope = requirement.scope
    if scope == TERMINATING:
        return is_terminating(spec)
    if scope == NOT_TERMINATING:
        return not is_terminating(spec)
    if scope == BEST_EFFORT:
        return best_effort()
    if scope == NOT_BEST_EFFORT:
        return not best_effort()
    if scope == PRIORITY_CLASS:
        return priority_class_matches(requirement, str(spec.get("priorityClassName") or ""))
    if scope == CROSS_NAMESPACE_POD_AFFINITY:
        return uses_cross_namespace_pod_affinity(spec)
    return False  # VolumeAttributesClass: a pod has none


def is_terminating(spec: Mapping[str, Any]) -> bool:
    if not isinstance(spec, Mapping):
        raise QuotaError("spec: expected an object")
    deadline = spec.get("activeDeadlineSeconds")
    return isinstance(deadline, int) and not isinstance(deadline, bool) and deadline >= 0


def priority_class_matches(requirement: ScopeRequirement, priority_class: str) -> bool:
    """A label selector over {PriorityClass: name}, which is the empty set when the pod names none."""
    return selector_matches(requirement, {priority_class} - {""})


def claim_matches(requirement: ScopeRequirement, claim: Mapping[str, Any]) -> bool:
    """pvcMatchesScopeFunc: the VolumeAttributesClass scope, over every class the claim names
    (spec, status, and the class a modification is heading for); no other scope matches a claim."""
    if requirement.scope != VOLUME_ATTRIBUTES_CLASS:
        return False
    spec, status = claim.get("spec") or {}, claim.get("status") or {}
    modifying = status.get("modifyVolumeStatus") or {}
    names = {
        spec.get("volumeAttributesClassName"),
        status.get("currentVolumeAttributesClassName"),
        modifying.get("targetVolumeAttributesClassName"),
    }
    return selector_matches(requirement, {str(name) for name in names if name})


def selector_matches(requirement: ScopeRequirement, names: set[str]) -> bool:
    """A label selector on {scope: name}, true if it matches for some name; no names is the empty
    label set (so NotIn and DoesNotExist match it)."""
    if requirement.operator == EXISTS:
        return bool(names)
    if requirement.operator == DOES_NOT_EXIST:
        return not names
    if requirement.operator == IN:
        return any(name in requirement.values for name in names)
    return not names or any(name not in requirement.values for name in names)


def uses_cross_namespace_pod_affinity(spec: Mapping[str, Any]) -> bool:
    affinity = spec.get("affinity") or {}
    for kind in ("podAffinity", "podAntiAffinity"):
        terms = affinity.get(kind) or {}
        required = terms.get("requiredDuringSchedulingIgnoredDuringExecution") or []
        preferred = terms.get("preferredDuringSchedulingIgnoredDuringExecution") or []
        if any(_cross_namespace(term) for term in required):
            return True
        if any(_cross_namespace(weighted.get("podAffinityTerm") or {}) for weighted in preferred):
            return True
    return False


def _cross_namespace(term: Mapping[str, Any]) -> bool:
    return bool(term.get("namespaces")) or term.get("namespaceSelector") is not None
