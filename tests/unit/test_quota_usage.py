"""Usage evaluators and scopes: each Kubernetes rule as a small, direct example."""

from __future__ import annotations

from typing import Any

import pytest

from gatekeeper.admission.quota.evaluators.counts import ObjectCountEvaluator
from gatekeeper.admission.quota.evaluators.pods import PodEvaluator, is_best_effort
from gatekeeper.admission.quota.evaluators.pvcs import PersistentVolumeClaimEvaluator
from gatekeeper.admission.quota.evaluators.registry import evaluator_for
from gatekeeper.admission.quota.evaluators.services import ServiceEvaluator
from gatekeeper.admission.quota.resources import QuotaError, ResourceList
from gatekeeper.admission.quota.scopes import ScopeRequirement, parse_scopes, priority_class_matches
from gatekeeper.k8s.quantity import parse_quantity


def q(values: dict[str, str]) -> ResourceList:
    return {name: parse_quantity(value) for name, value in values.items()}


def container(
    name: str, requests: dict[str, str] | None = None, limits: dict[str, str] | None = None, **extra: Any
) -> dict[str, Any]:
    return {"name": name, "resources": {"requests": requests or {}, "limits": limits or {}}, **extra}


def pod(containers: list[dict[str, Any]], phase: str = "Running", **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "p"}, "spec": {"containers": containers, **spec}, "status": {"phase": phase}}


def test_pod_usage_names_requests_limits_hugepages_and_extended_resources() -> None:
    p = pod(
        [
            container(
                "a",
                {"cpu": "1", "memory": "1Gi", "hugepages-2Mi": "4Mi", "example.com/gpu": "2"},
                {"cpu": "2", "memory": "1Gi", "ephemeral-storage": "1Gi"},
            )
        ]
    )
    assert PodEvaluator().usage(p) == q(
        {
            "count/pods": "1",
            "pods": "1",
            "cpu": "1",
            "requests.cpu": "1",
            "limits.cpu": "2",
            "memory": "1Gi",
            "requests.memory": "1Gi",
            "limits.memory": "1Gi",
            "limits.ephemeral-storage": "1Gi",
            "hugepages-2Mi": "4Mi",
            "requests.hugepages-2Mi": "4Mi",
            "requests.example.com/gpu": "2",
        }
    )


@pytest.mark.parametrize("phase", ["Succeeded", "Failed"])
def test_a_terminal_pod_counts_only_as_an_object(phase: str) -> None:
    assert PodEvaluator().usage(pod([container("a", {"cpu": "1"})], phase=phase)) == q({"count/pods": "1"})


def test_a_pod_past_its_deletion_grace_period_counts_only_as_an_object() -> None:
    p = pod([container("a", {"cpu": "1"})])
    p["metadata"] |= {"deletionTimestamp": "2020-01-01T00:00:00Z", "deletionGracePeriodSeconds": 30}
    assert PodEvaluator().usage(p) == q({"count/pods": "1"})


def test_sidecar_aware_init_maximum_and_overhead() -> None:
    p = pod(
        [container("app", {"cpu": "1"}, {"cpu": "1"})],
        initContainers=[container("init", {"cpu": "3"}, {"cpu": "3"})],
        overhead={"cpu": "250m"},
    )
    usage = PodEvaluator().usage(p)
    assert (usage["requests.cpu"], usage["limits.cpu"]) == (parse_quantity("3250m"), parse_quantity("3250m"))


def test_must_specify_lists_resources_and_containers_sorted() -> None:
    p = pod(
        [container("b"), container("a", {"cpu": "1"})], initContainers=[container("init", {"memory": "1"})]
    )
    message = PodEvaluator().constraints(["requests.cpu", "memory", "pods"], p)
    assert message == "must specify memory for: a,b; requests.cpu for: b,init"


def test_pod_level_resources_lift_the_declaration_rule() -> None:
    p = pod([container("a")], resources={"requests": {"cpu": "1"}})
    assert PodEvaluator().constraints(["requests.cpu"], p) is None


def test_best_effort_uses_only_cpu_and_memory_or_the_reported_class() -> None:
    assert is_best_effort(pod([container("a", {"ephemeral-storage": "1Gi", "example.com/gpu": "1"})]))
    assert not is_best_effort(pod([container("a", limits={"memory": "1Gi"})]))
    reported = pod([container("a", {"cpu": "1"})])
    reported["status"]["qosClass"] = "BestEffort"
    assert is_best_effort(reported)


@pytest.mark.parametrize(
    ("operator", "values", "pod_class", "expected"),
    [
        ("In", ("high",), "high", True),
        ("In", ("high",), "", False),
        ("NotIn", ("high",), "", True),
        ("NotIn", ("high",), "high", False),
        ("Exists", (), "", False),
        ("DoesNotExist", (), "", True),
        ("DoesNotExist", (), "low", False),
    ],
)
def test_priority_class_selector(
    operator: str, values: tuple[str, ...], pod_class: str, expected: bool
) -> None:
    assert priority_class_matches(ScopeRequirement("PriorityClass", operator, values), pod_class) is expected


def test_scopes_and_selector_parse_with_clear_errors() -> None:
    spec = {
        "scopes": ["Terminating"],
        "scopeSelector": {
            "matchExpressions": [{"scopeName": "PriorityClass", "operator": "In", "values": ["high"]}]
        },
    }
    assert parse_scopes(spec, "q") == (
        ScopeRequirement("Terminating"),
        ScopeRequirement("PriorityClass", "In", ("high",)),
    )
    with pytest.raises(QuotaError, match=r"q.scopes\[0\]: expected one of .*, got 'Forever'"):
        parse_scopes({"scopes": ["Forever"]}, "q")
    with pytest.raises(QuotaError, match="values: must be non-empty for operator In"):
        parse_scopes(
            {"scopeSelector": {"matchExpressions": [{"scopeName": "PriorityClass", "operator": "In"}]}}, "q"
        )


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            {"type": "ClusterIP", "ports": [{"port": 80}]},
            {"services.loadbalancers": "0", "services.nodeports": "0"},
        ),
        (
            {"type": "NodePort", "ports": [{"port": 80}, {"port": 81}]},
            {"services.loadbalancers": "0", "services.nodeports": "2"},
        ),
        (
            {"type": "LoadBalancer", "ports": [{"port": 80}]},
            {"services.loadbalancers": "1", "services.nodeports": "1"},
        ),
        (
            {
                "type": "LoadBalancer",
                "allocateLoadBalancerNodePorts": False,
                "ports": [{"port": 80}, {"nodePort": 3}],
            },
            {"services.loadbalancers": "1", "services.nodeports": "1"},
        ),
    ],
)
def test_service_usage(spec: dict[str, Any], expected: dict[str, str]) -> None:
    assert ServiceEvaluator().usage({"spec": spec}) == q({"services": "1", "count/services": "1", **expected})


def test_pvc_usage_rounds_up_to_bytes_and_names_the_storage_class() -> None:
    claim = {
        "metadata": {"annotations": {"volume.beta.kubernetes.io/storage-class": "gold"}},
        "spec": {"storageClassName": "silver", "resources": {"requests": {"storage": "1500m"}}},
        "status": {"allocatedResources": {"storage": "1"}},
    }
    assert PersistentVolumeClaimEvaluator().usage(claim) == q(
        {
            "persistentvolumeclaims": "1",
            "count/persistentvolumeclaims": "1",
            "requests.storage": "2",
            "gold.storageclass.storage.k8s.io/persistentvolumeclaims": "1",
            "gold.storageclass.storage.k8s.io/requests.storage": "2",
        }
    )


def test_object_counts_and_the_registry() -> None:
    assert ObjectCountEvaluator("", "secrets").usage({}) == q({"count/secrets": "1", "secrets": "1"})
    assert ObjectCountEvaluator("apps", "deployments").usage({}) == q({"count/deployments.apps": "1"})
    assert evaluator_for("", "events") is None
    assert isinstance(evaluator_for("", "pods"), PodEvaluator)
    assert PodEvaluator().matching_resources(
        ["pods", "requests.example.com/gpu", "example.com/gpu", "requests.hugepages-2Mi", "services"]
    ) == ["pods", "requests.example.com/gpu", "requests.hugepages-2Mi"]
