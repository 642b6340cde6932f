"""Which evaluator measures a request's resource (quota/v1/install/registry.go)."""

from __future__ import annotations

from gatekeeper.admission.quota.evaluators.base import Evaluator
from gatekeeper.admission.quota.evaluators.counts import ObjectCountEvaluator
from gatekeeper.admission.quota.evaluators.pods import PodEvaluator
from gatekeeper.admission.quota.evaluators.pvcs import PersistentVolumeClaimEvaluator
from gatekeeper.admission.quota.evaluators.services import ServiceEvaluator

# Virtual or unstored resources Kubernetes never charges (install/registry.go ignoredResources).
IGNORED = frozenset(
    {
        ("", "bindings"),
        ("", "componentstatuses"),
        ("", "events"),
        ("events.k8s.io", "events"),
        ("authentication.k8s.io", "tokenreviews"),
        ("authentication.k8s.io", "selfsubjectreviews"),
        ("authorization.k8s.io", "subjectaccessreviews"),
        ("authorization.k8s.io", "selfsubjectaccessreviews"),
        ("authorization.k8s.io", "localsubjectaccessreviews"),
        ("authorization.k8s.io", "selfsubjectrulesreviews"),
    }
)

_CORE: dict[str, Evaluator] = {
    "pods": PodEvaluator(),
    "services": ServiceEvaluator(),
    "persistentvolumeclaims": PersistentVolumeClaimEvaluator(),
}


def evaluator_for(group: str, resource: str) -> Evaluator | None:
    """The evaluator for a group/resource; a generic object counter for any other; None if ignored."""
    if (group, resource) in IGNORED:
        return None
    if group == "" and resource in _CORE:
        return _CORE[resource]
    return ObjectCountEvaluator(group, resource)
