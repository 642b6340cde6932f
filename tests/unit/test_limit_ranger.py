"""LimitRanger: its rules one by one, defaulting, resize/PVC updates, and every LimitRanger case of
tests/conformance/admission/cases.json run through admit + validate on a MemoryStore."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import jsonpatch
import pytest

from gatekeeper.admission.errors import AdmissionDenied
from gatekeeper.admission.patch import Patch
from gatekeeper.admission.plugins.limit_ranger import (
    LIMIT_RANGER_ANNOTATION,
    LimitRanger,
    aggregate,
    limit_request_ratio_constraint,
    max_constraint,
    max_request_constraint,
    min_constraint,
)
from gatekeeper.admission.request import AdmissionRequest, GroupVersionKind, GroupVersionResource
from gatekeeper.admission.state import StoreError
from gatekeeper.authn.user import UserInfo
from gatekeeper.backends.memory import MemoryStore
from gatekeeper.k8s.quantity import Quantity, QuantityError, parse_quantity

CASES = Path(__file__).resolve().parents[1] / "conformance" / "admission" / "cases.json"


def q(text: str) -> Quantity:
    return parse_quantity(text)


def rl(**values: str) -> dict[str, Quantity]:
    return {name.replace("_", "-"): q(v) for name, v in values.items()}


# -- the rules ----------------------------------------------------------------------------------


def test_min_constraint() -> None:
    assert min_constraint("Container", "cpu", q("50m"), rl(cpu="50m"), rl(cpu="50m")) is None
    assert min_constraint("Container", "cpu", q("50m"), {}, {}) == (
        "minimum cpu usage per Container is 50m.  No request is specified"
    )
    assert min_constraint("Pod", "cpu", q("100m"), rl(cpu="75m"), {}) == (
        "minimum cpu usage per Pod is 100m, but request is 75m"
    )
    assert min_constraint("Container", "memory", q("1.5Gi"), rl(memory="2Gi"), rl(memory="1Gi")) == (
        "minimum memory usage per Container is 1536Mi, but limit is 1Gi"
    )


def test_max_constraint() -> None:
    assert max_constraint("Container", "cpu", q("2"), rl(cpu="1"), rl(cpu="2")) is None
    assert max_constraint("Container", "cpu", q("2"), rl(cpu="1"), {}) == (
        "maximum cpu usage per Container is 2.  No limit is specified"
    )
    assert max_constraint("Container", "cpu", q("2"), rl(cpu="1"), rl(cpu="2.5")) == (
        "maximum cpu usage per Container is 2, but limit is 2500m"
    )
    assert max_constraint("Pod", "cpu", q("2"), rl(cpu="2500m"), rl(cpu="1500m")) == (
        "maximum cpu usage per Pod is 2, but request is 2500m"
    )


def test_max_request_constraint() -> None:
    pvc = "PersistentVolumeClaim"
    assert max_request_constraint(pvc, "storage", q("10Gi"), rl(storage="10Gi")) is None
    assert max_request_constraint(pvc, "storage", q("10Gi"), {}) == (
        "maximum storage usage per PersistentVolumeClaim is 10Gi.  No request is specified"
    )
    assert max_request_constraint(pvc, "storage", q("10Gi"), rl(storage="20Gi")) == (
        "maximum storage usage per PersistentVolumeClaim is 10Gi, but request is 20Gi"
    )


def test_limit_request_ratio_constraint() -> None:
    rule = limit_request_ratio_constraint
    assert rule("Container", "cpu", q("2"), rl(cpu="1"), rl(cpu="2")) is None
    assert rule("Container", "cpu", q("2"), rl(cpu="0"), rl(cpu="2")) == (
        "cpu max limit to request ratio per Container is 2, but no request is specified or request is 0"
    )
    assert rule("Container", "cpu", q("2"), rl(cpu="1"), {}) == (
        "cpu max limit to request ratio per Container is 2, but no limit is specified or limit is 0"
    )
    assert rule("Pod", "memory", q("1.5"), rl(memory="1Gi"), rl(memory="2Gi")) == (
        "memory max limit to request ratio per Pod is 1500m, but provided ratio is 2.000000"
    )


def test_aggregate_collapses_identical_messages_and_brackets_several() -> None:
    assert aggregate([]) is None
    assert aggregate(["a"]) == "a"
    assert aggregate(["a", "a"]) == "a"
    assert aggregate(["a", "b", "a"]) == "[a, b]"


# -- the plugin, on hand-made requests ----------------------------------------------------------


def request(
    obj: dict[str, Any] | None,
    *,
    operation: str = "CREATE",
    kind: str = "Pod",
    resource: str = "pods",
    sub_resource: str = "",
    old: dict[str, Any] | None = None,
) -> AdmissionRequest:
    name = ((obj or old or {}).get("metadata") or {}).get("name", "")
    return AdmissionRequest(
        uid="u",
        kind=GroupVersionKind("", "v1", kind),
        resource=GroupVersionResource("", "v1", resource),
        sub_resource=sub_resource,
        name=name,
        namespace="test",
        operation=operation,
        user=UserInfo("tester"),
        object=obj,
        old_object=old,
        dry_run=False,
    )


def limit_range(name: str, *items: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": {"name": name, "namespace": "test"},
        "spec": {"limits": list(items)},
    }


def pod(*ctrs: dict[str, Any], inits: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": list(ctrs)}
    if inits:
        spec["initContainers"] = inits
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "test"}, "spec": spec}


def ctr(
    name: str, requests: dict[str, str] | None = None, limits: dict[str, str] | None = None
) -> dict[str, Any]:
    resources: dict[str, Any] = {}
    if requests:
        resources["requests"] = requests
    if limits:
        resources["limits"] = limits
    return {"name": name, "image": "pause", "resources": resources}


def run(req: AdmissionRequest, store: MemoryStore) -> dict[str, Any] | None:
    """admit then validate, as the chain does; the mutated object."""
    plugin = LimitRanger()
    if not plugin.handles(req):
        return req.object
    obj = copy.deepcopy(req.object) if req.object is not None else {}
    patch = Patch()
    plugin.admit(req, obj, store, patch)
    mutated = obj if req.object is not None else None
    if req.object is not None:  # the recorded patch replays the mutation exactly
        assert jsonpatch.apply_patch(req.object, patch.ops) == obj
    plugin.validate(req, mutated, store)
    return mutated


@pytest.mark.parametrize(
    ("operation", "kind", "resource", "sub", "handled"),
    [
        ("CREATE", "Pod", "pods", "", True),
        ("UPDATE", "Pod", "pods", "", False),
        ("UPDATE", "Pod", "pods", "resize", True),
        ("CREATE", "Pod", "pods", "resize", False),
        ("UPDATE", "Pod", "pods", "status", False),
        ("DELETE", "Pod", "pods", "", False),
        ("CONNECT", "Pod", "pods", "exec", False),
        ("CREATE", "PersistentVolumeClaim", "persistentvolumeclaims", "", True),
        ("UPDATE", "PersistentVolumeClaim", "persistentvolumeclaims", "", True),
        ("UPDATE", "PersistentVolumeClaim", "persistentvolumeclaims", "status", False),
        ("CREATE", "Service", "services", "", False),
    ],
)
def test_handles(operation: str, kind: str, resource: str, sub: str, handled: bool) -> None:
    req = request({}, operation=operation, kind=kind, resource=resource, sub_resource=sub)
    assert LimitRanger().handles(req) is handled


def test_defaults_fill_only_absent_values_and_keep_other_annotations() -> None:
    store = MemoryStore(
        [
            limit_range(
                "lr",
                {
                    "type": "Container",
                    "default": {"cpu": "1", "memory": "1Gi"},
                    "defaultRequest": {"cpu": "500m"},
                },
            )
        ]
    )
    obj = pod(ctr("app", {"cpu": "250m"}), ctr("bare"), inits=[ctr("init", limits={"memory": "2Gi"})])
    obj["metadata"]["annotations"] = {"team": "blue"}
    after = run(request(obj), store)
    assert after is not None
    spec = after["spec"]
    assert spec["containers"][0]["resources"] == {
        "requests": {"cpu": "250m"},
        "limits": {"cpu": "1", "memory": "1Gi"},
    }
    assert spec["containers"][1]["resources"] == {
        "requests": {"cpu": "500m"},
        "limits": {"cpu": "1", "memory": "1Gi"},
    }
    assert spec["initContainers"][0]["resources"] == {
        "limits": {"memory": "2Gi", "cpu": "1"},
        "requests": {"cpu": "500m"},
    }
    assert after["metadata"]["annotations"] == {
        "team": "blue",
        LIMIT_RANGER_ANNOTATION: "LimitRanger plugin set: cpu, memory limit for container app; "
        "cpu request for container bare; cpu, memory limit for container bare; "
        "cpu request for init container init; cpu limit for init container init",
    }


def test_no_defaults_no_change_not_even_empty_maps() -> None:
    store = MemoryStore([limit_range("lr", {"type": "Container", "max": {"cpu": "2"}})])
    obj = pod(
        {"name": "app", "image": "pause", "resources": {"limits": {"cpu": "1"}, "requests": {"cpu": "1"}}}
    )
    assert run(request(obj), store) == obj
    bare = pod({"name": "app", "image": "pause"})
    store = MemoryStore([limit_range("lr", {"type": "Pod", "max": {"cpu": "2"}})])
    with pytest.raises(AdmissionDenied):
        run(request(bare), store)
    plugin, copied = LimitRanger(), copy.deepcopy(bare)
    plugin.admit(request(bare), copied, store, Patch())
    assert copied == bare


def test_several_distinct_violations_are_listed_together() -> None:
    store = MemoryStore(
        [limit_range("lr", {"type": "Container", "min": {"cpu": "100m"}, "max": {"memory": "1Gi"}})]
    )
    with pytest.raises(AdmissionDenied) as denied:
        run(request(pod(ctr("app", {"cpu": "50m"}, {"memory": "2Gi"}))), store)
    assert denied.value.code == 403
    assert denied.value.message == (
        'pods "p" is forbidden: [minimum cpu usage per Container is 100m, but request is 50m, '
        "maximum memory usage per Container is 1Gi, but limit is 2Gi]"
    )


def test_the_first_limit_range_with_errors_rejects() -> None:
    store = MemoryStore(
        [
            limit_range("a", {"type": "Container", "max": {"cpu": "1"}}),
            limit_range("b", {"type": "Container", "max": {"cpu": "500m"}}),
        ]
    )
    with pytest.raises(AdmissionDenied, match=r"maximum cpu usage per Container is 1, but limit is 2$"):
        run(request(pod(ctr("app", {"cpu": "2"}, {"cpu": "2"}))), store)


def test_resize_skips_values_that_did_not_change() -> None:
    store = MemoryStore([limit_range("lr", {"type": "Container", "max": {"cpu": "1", "memory": "1Gi"}})])
    old = pod(ctr("app", {"cpu": "2", "memory": "512Mi"}, {"cpu": "2", "memory": "512Mi"}))
    grown = pod(ctr("app", {"cpu": "2", "memory": "2Gi"}, {"cpu": "2", "memory": "2Gi"}))
    same_cpu = pod(ctr("app", {"cpu": "2", "memory": "768Mi"}, {"cpu": "2", "memory": "768Mi"}))
    resize: dict[str, Any] = {"operation": "UPDATE", "sub_resource": "resize"}
    assert run(request(same_cpu, old=old, **resize), store) is not None  # cpu over max, but unchanged
    with pytest.raises(
        AdmissionDenied, match=r"maximum memory usage per Container is 1Gi, but limit is 2Gi$"
    ):
        run(request(grown, old=old, **resize), store)


def test_resize_skips_unchanged_pod_totals() -> None:
    store = MemoryStore([limit_range("lr", {"type": "Pod", "max": {"cpu": "1"}})])
    old = pod(ctr("a", {"cpu": "1"}, {"cpu": "1"}), ctr("b", {"cpu": "1"}, {"cpu": "1"}))
    moved = pod(ctr("a", {"cpu": "1500m"}, {"cpu": "1500m"}), ctr("b", {"cpu": "500m"}, {"cpu": "500m"}))
    assert run(request(moved, old=old, operation="UPDATE", sub_resource="resize"), store) is not None
    with pytest.raises(AdmissionDenied):
        run(request(moved), store)


def test_pvc_limits_and_unchanged_requests() -> None:
    store = MemoryStore(
        [
            limit_range(
                "lr", {"type": "PersistentVolumeClaim", "min": {"storage": "1Gi"}, "max": {"storage": "10Gi"}}
            )
        ]
    )

    def pvc(size: str | None) -> dict[str, Any]:
        requests = {"storage": size} if size else {}
        return {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "c", "namespace": "test"},
            "spec": {"resources": {"requests": requests, "limits": {"storage": "100Gi"}}},
        }

    kw: dict[str, Any] = {"kind": "PersistentVolumeClaim", "resource": "persistentvolumeclaims"}
    assert run(request(pvc("5Gi"), **kw), store) == pvc("5Gi")
    with pytest.raises(AdmissionDenied) as denied:
        run(request(pvc(None), **kw), store)
    assert denied.value.message == (
        'persistentvolumeclaims "c" is forbidden: [minimum storage usage per PersistentVolumeClaim is 1Gi.  '
        "No request is specified, maximum storage usage per PersistentVolumeClaim is 10Gi.  "
        "No request is specified]"
    )
    run(request(pvc("20Gi"), old=pvc("20Gi"), operation="UPDATE", **kw), store)
    with pytest.raises(AdmissionDenied, match=r"but request is 30Gi$"):
        run(request(pvc("30Gi"), old=pvc("20Gi"), operation="UPDATE", **kw), store)


def test_objects_being_deleted_are_ignored() -> None:
    store = MemoryStore([limit_range("lr", {"type": "Container", "max": {"cpu": "1"}})])
    old = pod(ctr("app", {"cpu": "2"}, {"cpu": "2"}))
    old["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    new = pod(ctr("app", {"cpu": "3"}, {"cpu": "3"}))
    assert run(request(new, old=old, operation="UPDATE", sub_resource="resize"), store) == new


def test_malformed_input_is_a_clear_error_not_a_traceback() -> None:
    store = MemoryStore([limit_range("lr", {"type": "Container", "max": {"cpu": "1"}})])
    with pytest.raises(AdmissionDenied) as denied:
        run(request(pod(ctr("app", {"cpu": "one"}))), store)
    assert denied.value.code == 400
    assert "spec.containers[0].resources.requests.cpu" in denied.value.message
    bad = MemoryStore([limit_range("lr", {"type": "Container", "max": {"cpu": "lots"}})])
    with pytest.raises(AdmissionDenied) as denied:
        run(request(pod(ctr("app"))), bad)
    assert denied.value.code == 500
    assert "limitrange test/lr: spec.limits[0].max.cpu" in denied.value.message


class BrokenStore(MemoryStore):
    def list(self, resource: str, namespace: str) -> list[dict[str, Any]]:
        raise StoreError("disk on fire")


def test_store_failure_refuses() -> None:
    with pytest.raises(AdmissionDenied, match="because there was an error enforcing limit ranges"):
        run(request(pod(ctr("app"))), BrokenStore())


# -- the conformance corpus ---------------------------------------------------------------------

ABSENT = "{{absent}}"


def corpus_cases() -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = json.loads(CASES.read_text())
    return [case for case in cases if case["plugin"] == "LimitRanger"]


def review_request(review: dict[str, Any]) -> AdmissionRequest:
    req = review["request"]
    user = req.get("userInfo") or {}
    return AdmissionRequest(
        uid=req["uid"],
        kind=GroupVersionKind(**req["kind"]),
        resource=GroupVersionResource(**req["resource"]),
        sub_resource=req.get("subResource", ""),
        name=req.get("name", ""),
        namespace=req.get("namespace", ""),
        operation=req["operation"],
        user=UserInfo(user.get("username", ""), user.get("uid", ""), tuple(user.get("groups") or ())),
        object=req.get("object"),
        old_object=req.get("oldObject"),
        dry_run=bool(req.get("dryRun")),
    )


def matches(expected: Any, actual: Any) -> bool:
    if expected == ABSENT:
        return actual in (None, {}, [], "")
    if isinstance(expected, str) and expected.startswith("{{re:") and expected.endswith("}}"):
        return isinstance(actual, str) and re.fullmatch(expected[5:-2], actual) is not None
    if isinstance(expected, dict):
        actual = actual or {}
        return isinstance(actual, dict) and all(matches(v, actual.get(k)) for k, v in expected.items())
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(actual) == len(expected)
            and all(matches(e, a) for e, a in zip(expected, actual, strict=True))
        )
    if expected == actual:
        return True
    try:  # quantities by value
        return isinstance(expected, str) and isinstance(actual, str) and q(expected) == q(actual)
    except QuantityError:
        return False


@pytest.mark.parametrize("case", corpus_cases(), ids=lambda case: str(case["id"]))
def test_conformance_case(case: dict[str, Any]) -> None:
    store = MemoryStore(obj for objects in case["state"].values() for obj in objects)
    req = review_request(case["request"])
    expect = case["expect"]
    try:
        after = run(req, store)
        denied = None
    except AdmissionDenied as err:
        after, denied = None, err
    assert (denied is None) is expect["allowed"], denied.message if denied else "allowed"
    if denied is not None:
        assert denied.code == expect.get("status_code", denied.code)
        assert denied.reason == expect.get("reason", denied.reason)
        for needle in [expect.get("message_contains"), *expect.get("message_contains_all", [])]:
            assert needle is None or needle in denied.message
        assert not any(needle in denied.message for needle in expect.get("message_not_contains", []))
        return
    if "object_after" in expect:
        assert matches(expect["object_after"], after), json.dumps(after, indent=1)
    if expect.get("mutated") is False:
        assert after == req.object


def test_the_corpus_has_the_limit_ranger_cases() -> None:
    assert len(corpus_cases()) >= 61


def test_quantities_print_as_kubernetes_prints_them() -> None:
    # Kubernetes' String() keeps some non-canonical input text ("1.500"), and sums are canonical.
    store = MemoryStore(
        [
            limit_range(
                "lr",
                {"type": "Pod", "max": {"cpu": "1.500"}},
                {"type": "Container", "default": {"cpu": "1.500"}},
            )
        ]
    )
    with pytest.raises(AdmissionDenied) as denied:
        run(request(pod(ctr("a", {"cpu": "1"}), ctr("b", {"cpu": "0.5"}))), store)
    assert denied.value.message == 'pods "p" is forbidden: maximum cpu usage per Pod is 1.500, but limit is 3'


def test_each_limit_range_that_sets_something_overwrites_the_annotation() -> None:
    store = MemoryStore(
        [
            limit_range("a", {"type": "Container", "defaultRequest": {"cpu": "100m"}}),
            limit_range("b", {"type": "Container", "default": {"memory": "1Gi"}}),
            limit_range("c", {"type": "Container", "default": {"memory": "2Gi"}}),  # nothing left to set
        ]
    )
    after = run(request(pod(ctr("app"))), store)
    assert after is not None
    assert after["spec"]["containers"][0]["resources"] == {
        "requests": {"cpu": "100m"},
        "limits": {"memory": "1Gi"},
    }
    assert after["metadata"]["annotations"] == {
        LIMIT_RANGER_ANNOTATION: "LimitRanger plugin set: memory limit for container app"
    }


def test_a_resize_is_defaulted_too() -> None:
    # SupportsAttributes admits pods/resize, so MutateLimit runs on it as on a create.
    store = MemoryStore([limit_range("lr", {"type": "Container", "default": {"cpu": "1"}})])
    old = pod(ctr("app", {"cpu": "1"}, {"cpu": "1"}))
    after = run(
        request(pod(ctr("app", {"cpu": "500m"})), old=old, operation="UPDATE", sub_resource="resize"), store
    )
    assert after is not None
    assert after["spec"]["containers"][0]["resources"] == {
        "requests": {"cpu": "500m"},
        "limits": {"cpu": "1"},
    }
