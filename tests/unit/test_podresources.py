"""Pod totals: containers, init containers (sidecar rule), pod-level resources, overhead, resize status."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gatekeeper.admission.podresources import (
    PodLevel,
    PodResourceError,
    ResourceList,
    containers,
    init_containers,
    pod_totals,
)
from gatekeeper.k8s.quantity import Quantity, parse_quantity


def pod_requests(p: dict[str, Any], **options: Any) -> ResourceList:
    return pod_totals(p, **options)[0]


def pod_limits(p: dict[str, Any], **options: Any) -> ResourceList:
    return pod_totals(p, **options)[1]


def ctr(
    name: str,
    requests: dict[str, str] | None = None,
    limits: dict[str, str] | None = None,
    sidecar: bool = False,
) -> dict[str, Any]:
    resources: dict[str, Any] = {}
    if requests is not None:
        resources["requests"] = requests
    if limits is not None:
        resources["limits"] = limits
    container: dict[str, Any] = {"name": name, "image": "pause", "resources": resources}
    if sidecar:
        container["restartPolicy"] = "Always"
    return container


def pod(ctrs: list[dict[str, Any]], inits: list[dict[str, Any]] | None = None, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"containers": ctrs, **spec}
    if inits is not None:
        body["initContainers"] = inits
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": body}


def text(resources: ResourceList) -> dict[str, str]:
    return {name: str(quantity) for name, quantity in resources.items()}


def test_containers_are_summed_and_keep_the_first_format() -> None:
    p = pod(
        [ctr("a", {"cpu": "100m", "memory": "1Gi"}), ctr("b", {"cpu": "1.5", "memory": "512Mi"}), ctr("c")]
    )
    assert text(pod_requests(p)) == {"cpu": "1600m", "memory": "1536Mi"}
    assert pod_limits(p) == {}


def test_a_name_set_by_only_some_containers_is_the_sum_of_those() -> None:
    p = pod([ctr("a", {"cpu": "1"}), ctr("b", {"memory": "1Gi"})])
    assert text(pod_requests(p)) == {"cpu": "1", "memory": "1Gi"}


def test_plain_init_containers_count_as_their_maximum() -> None:
    p = pod(
        [ctr("a", {"cpu": "1", "memory": "1Gi"})],
        [ctr("i1", {"cpu": "2"}), ctr("i2", {"cpu": "500m", "memory": "3Gi"})],
    )
    assert text(pod_requests(p)) == {"cpu": "2", "memory": "3Gi"}


def test_sidecars_add_to_the_pod_and_to_every_later_init_container() -> None:
    # KEP-753 example: total = max(Σ containers + Σ sidecars, max_i(init_i + Σ sidecars before i))
    p = pod(
        [ctr("app", {"cpu": "1"})],
        [
            ctr("early", {"cpu": "3"}),
            ctr("side", {"cpu": "500m"}, sidecar=True),
            ctr("late", {"cpu": "2500m"}),
        ],
    )
    # early: 3; after side: late runs with side = 3; steady state: 1 + 0.5 = 1.5 → max 3
    assert text(pod_requests(p)) == {"cpu": "3"}
    p = pod(
        [ctr("app", {"cpu": "1"})],
        [ctr("side", {"cpu": "1"}, sidecar=True), ctr("late", {"cpu": "2500m"})],
    )
    assert text(pod_requests(p)) == {"cpu": "3500m"}  # late (2.5) + side (1)
    p = pod(
        [ctr("app", {"cpu": "2"})],
        [ctr("s1", {"cpu": "1"}, sidecar=True), ctr("s2", {"cpu": "1"}, sidecar=True)],
    )
    assert text(pod_requests(p)) == {"cpu": "4"}


def test_limits_follow_the_same_rule() -> None:
    p = pod([ctr("app", limits={"memory": "1Gi"})], [ctr("side", limits={"memory": "512Mi"}, sidecar=True)])
    assert text(pod_limits(p)) == {"memory": "1536Mi"}


def test_pod_level_resources_override_cpu_and_memory_only_by_default() -> None:
    resources = {
        "requests": {"cpu": "4", "hugepages-2Mi": "4Mi", "ephemeral-storage": "1Gi"},
        "limits": {"memory": "8Gi"},
    }
    p = pod(
        [ctr("a", {"cpu": "1", "hugepages-2Mi": "2Mi", "ephemeral-storage": "2Gi"}, {"memory": "1Gi"})],
        resources=resources,
    )
    assert text(pod_requests(p)) == {"cpu": "4", "hugepages-2Mi": "2Mi", "ephemeral-storage": "2Gi"}
    assert text(pod_requests(p, pod_level=PodLevel.CPU_MEMORY_HUGEPAGES))["hugepages-2Mi"] == "4Mi"
    assert text(pod_requests(p, pod_level=PodLevel.OFF))["cpu"] == "1"
    assert text(pod_limits(p)) == {"memory": "8Gi"}


def test_overhead_only_when_asked_and_never_on_absent_or_zero_limits() -> None:
    p = pod(
        [ctr("a", {"cpu": "1", "memory": "1Gi"}, {"cpu": "2", "memory": "0"})],
        overhead={"cpu": "250m", "memory": "120Mi", "pods": "1"},
    )
    assert text(pod_requests(p)) == {"cpu": "1", "memory": "1Gi"}
    assert text(pod_requests(p, include_overhead=True)) == {"cpu": "1250m", "memory": "1144Mi", "pods": "1"}
    assert text(pod_limits(p, include_overhead=True)) == {"cpu": "2250m", "memory": "0"}


def test_status_resources_take_the_larger_value_during_a_resize() -> None:
    p = pod([ctr("a", {"cpu": "500m"}, {"cpu": "1"})])
    p["status"] = {
        "containerStatuses": [
            {
                "name": "a",
                "allocatedResources": {"cpu": "700m"},
                "resources": {"requests": {"cpu": "600m"}, "limits": {"cpu": "2"}},
            }
        ]
    }
    assert text(pod_requests(p)) == {"cpu": "500m"}
    assert text(pod_requests(p, use_status_resources=True)) == {"cpu": "700m"}
    assert text(pod_limits(p, use_status_resources=True)) == {"cpu": "2"}
    p["spec"]["containers"][0]["resources"]["requests"]["cpu"] = "900m"
    assert text(pod_requests(p, use_status_resources=True)) == {"cpu": "900m"}
    p["status"]["conditions"] = [{"type": "PodResizePending", "reason": "Infeasible"}]
    assert text(pod_requests(p, use_status_resources=True)) == {"cpu": "700m"}


def test_container_views_mark_sidecars() -> None:
    p = pod([ctr("a", {"cpu": "1"})], [ctr("s", sidecar=True), ctr("i")])
    assert [c.name for c in containers(p)] == ["a"]
    assert [(c.name, c.sidecar) for c in init_containers(p)] == [("s", True), ("i", False)]
    assert containers(p)[0].requests == {"cpu": parse_quantity("1")}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"containers": [ctr("a", {"cpu": "lots"})]},
            r"spec\.containers\[0\]\.resources\.requests\.cpu: .*'lots'",
        ),
        ({"containers": {"a": 1}}, r"spec\.containers: expected a list"),
        (
            {"containers": [ctr("a")], "initContainers": [{"name": "i", "resources": []}]},
            r"spec\.initContainers\[0\]\.resources: expected an object",
        ),
        (
            {"containers": [{"name": "a", "resources": {"limits": "1"}}]},
            r"spec\.containers\[0\]\.resources\.limits: expected a map",
        ),
        ({"containers": [], "overhead": {"cpu": True}}, r"spec\.overhead\.cpu: "),
    ],
)
def test_malformed_pods_name_the_field(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(PodResourceError, match=message):
        pod_requests({"spec": spec}, include_overhead=True)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.integers(0, 5000), max_size=4),
    st.lists(st.tuples(st.integers(0, 5000), st.booleans()), max_size=5),
)
def test_totals_follow_the_kep_753_formula(regular: list[int], inits: list[tuple[int, bool]]) -> None:
    p = pod(
        [ctr(f"c{i}", {"cpu": f"{m}m"}) for i, m in enumerate(regular)],
        [ctr(f"i{i}", {"cpu": f"{m}m"}, sidecar=side) for i, (m, side) in enumerate(inits)],
    )
    steady = sum(regular) + sum(m for m, side in inits if side)
    peaks = [m + sum(s for s, side in inits[:i] if side) for i, (m, _) in enumerate(inits)]
    expected = max([steady, *peaks])
    totals = pod_requests(p)
    if regular or inits:
        assert totals["cpu"] == Quantity.from_milli(expected)
    else:
        assert totals == {}
