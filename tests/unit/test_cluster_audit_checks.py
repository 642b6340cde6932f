"""The audit's checks against Kubernetes' semantics for objects that already exist, and the dump
reader that streams them."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from gatekeeper.inspect import sources
from gatekeeper.inspect.checks import Audit, Context, Violation
from gatekeeper.inspect.sources import SourceError, _json_items

NS = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}, "status": {"phase": "Active"}}
SA = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": "a"}}


def obj(kind: str, name: str, ns: str = "a", **fields: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": kind, "metadata": {"name": name, "namespace": ns}, **fields}


def pod(name: str, resources: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    container = {"name": "c", "resources": resources or {}}
    return obj("Pod", name, spec={"serviceAccountName": "default", "containers": [container], **spec})


def limit_range(**item: Any) -> dict[str, Any]:
    return obj("LimitRange", "lr", spec={"limits": [{"type": "Container", **item}]})


def run(*objects: dict[str, Any]) -> list[Violation]:
    context = Context()
    for o in objects:
        context.add(o, "test")
    audit = Audit(context, context.kinds)
    found = [v for o in objects for v in audit.check(o, "test")]
    return audit.finish() + found


def rules(*objects: dict[str, Any]) -> list[tuple[str, str]]:
    return [(v.rule.id, v.obj.name) for v in run(*objects)]


def test_limit_range_defaults_are_merged_before_the_max_is_checked() -> None:
    capped = limit_range(max={"cpu": "1"}, default={"cpu": "500m"})
    assert rules(NS, SA, capped, pod("p")) == []  # admission would default the limit, then pass
    uncapped = limit_range(max={"cpu": "1"})
    [violation] = run(NS, SA, uncapped, pod("p"))
    assert violation.message == "limitrange lr: maximum cpu usage per Container is 1.  No limit is specified"


def test_a_pod_being_deleted_is_left_to_go() -> None:
    leaving = pod("p", {"limits": {"cpu": "2"}})
    leaving["metadata"]["deletionTimestamp"] = "2026-12-01T00:00:00Z"
    assert rules(NS, SA, limit_range(max={"cpu": "1"}), leaving) == []


def test_each_refusing_limit_range_is_one_finding() -> None:
    second = obj("LimitRange", "lr2", spec={"limits": [{"type": "Pod", "max": {"memory": "1Gi"}}]})
    found = run(
        NS, SA, limit_range(max={"cpu": "1"}), second, pod("p", {"limits": {"cpu": "2", "memory": "2Gi"}})
    )
    assert [v.message.split(":")[0] for v in found] == ["limitrange lr", "limitrange lr2"]


def test_a_claim_is_held_to_the_persistent_volume_claim_items() -> None:
    storage = obj(
        "LimitRange", "disk", spec={"limits": [{"type": "PersistentVolumeClaim", "max": {"storage": "1Gi"}}]}
    )

    def claim(name: str, size: str) -> dict[str, Any]:
        return obj("PersistentVolumeClaim", name, spec={"resources": {"requests": {"storage": size}}})

    [violation] = run(NS, SA, storage, claim("big", "2Gi"), claim("small", "500Mi"))
    assert (violation.obj.name, violation.message) == (
        "big",
        "limitrange disk: maximum storage usage per PersistentVolumeClaim is 1Gi, but request is 2Gi",
    )


def test_a_mirror_pod_is_not_held_to_a_service_account() -> None:
    mirror = pod("static", serviceAccountName="")
    mirror["metadata"]["annotations"] = {"kubernetes.io/config.mirror": "hash"}
    assert rules(NS, SA, mirror) == []
    assert rules(NS, SA, pod("plain", serviceAccountName="")) == [("serviceaccount-missing", "plain")]


def test_enforce_mountable_secrets_covers_volumes_and_pull_secrets() -> None:
    locked = obj(
        "ServiceAccount",
        "default",
        secrets=[{"name": "ok"}],
        imagePullSecrets=[{"name": "pull"}],
    )
    locked["metadata"]["annotations"] = {"kubernetes.io/enforce-mountable-secrets": "true"}
    volume = pod("v", volumes=[{"name": "s", "secret": {"secretName": "nope"}}])
    pulls = pod("i", imagePullSecrets=[{"name": "other"}])
    fine = pod(
        "f", volumes=[{"name": "s", "secret": {"secretName": "ok"}}], imagePullSecrets=[{"name": "pull"}]
    )
    assert rules(NS, locked, volume, pulls, fine) == [
        ("secret-not-mountable", "v"),
        ("secret-not-mountable", "i"),
    ]


def test_namespace_checks_run_only_when_the_input_holds_namespaces() -> None:
    context = Context()
    context.add(SA, "test")
    audit = Audit(context, context.kinds)
    assert audit.check(pod("p"), "test") == []
    assert any("no Namespace objects" in note for note in audit.notes)
    assert rules(
        NS, SA, obj("Namespace", "b", ns=""), {**pod("p"), "metadata": {"name": "p", "namespace": "c"}}
    ) == [("namespace-missing", "p")]


def quota(hard: dict[str, str], used: dict[str, str] | None, **spec: Any) -> dict[str, Any]:
    status = {"hard": hard, "used": used} if used is not None else None
    return obj("ResourceQuota", "q", spec={"hard": hard, **spec}, **({"status": status} if status else {}))


def test_a_recount_equal_in_value_is_no_drift() -> None:
    running = pod("p", {"requests": {"cpu": "500m"}})
    other = pod("r", {"requests": {"cpu": "0.5"}})
    assert rules(NS, SA, quota({"requests.cpu": "2"}, {"requests.cpu": "1"}), running, other) == []
    assert rules(NS, SA, quota({"requests.cpu": "2"}, None), running) == []  # no status yet: nothing to drift


def test_a_finished_pod_counts_as_an_object_but_not_as_compute() -> None:
    done = pod("done", {"requests": {"cpu": "1"}}, restartPolicy="Never")
    done["status"] = {"phase": "Succeeded"}
    q = quota(
        {"pods": "0", "count/pods": "1", "requests.cpu": "0"},
        {"pods": "0", "count/pods": "1", "requests.cpu": "0"},
    )
    assert rules(NS, SA, q, done) == []
    q = quota({"count/pods": "0"}, {"count/pods": "1"})
    [violation] = run(NS, SA, q, done)
    assert violation.message == "recounted usage count/pods=1 exceeds hard count/pods=0"


def test_a_kind_absent_from_the_input_is_not_recounted() -> None:
    q = quota({"count/secrets": "1", "pods": "5"}, {"count/secrets": "7", "pods": "3"})
    [violation] = run(NS, SA, q, pod("p"))
    assert violation.rule.id == "quota-drift"
    assert violation.message == "status.used drifted: pods recorded 3, counted 1"  # secrets: not in the input


def test_a_scoped_quota_counts_only_its_scope() -> None:
    q = quota({"pods": "0"}, {"pods": "0"}, scopes=["Terminating"])
    assert rules(NS, SA, q, pod("p")) == []  # no activeDeadlineSeconds: out of the Terminating scope


# -- the streaming reader -----------------------------------------------------------------------


def stream(text: str) -> list[tuple[str, dict[str, Any]]]:
    buffer = io.StringIO(text)
    first = buffer.read(1)
    return list(_json_items(buffer, "dump", first))


@pytest.mark.parametrize("chunk", [1, 3, 7, 64, 1 << 20])
def test_items_are_the_same_whatever_the_window(monkeypatch: pytest.MonkeyPatch, chunk: int) -> None:
    monkeypatch.setattr(sources, "CHUNK", chunk)
    items = [obj("ConfigMap", f"c{i}", metadata_number=12345678901234567890 + i) for i in range(5)]
    items.append(obj("Secret", "s", data={"k": "dmFsdWU="}, type="Opaque"))
    text = json.dumps({"apiVersion": "v1", "items": items, "kind": "List", "metadata": {}}, indent=4)
    got = stream(text)
    assert [o for _where, o in got][:5] == [sources.stripped(i) for i in items[:5]]
    assert "data" not in got[5][1]  # a Secret's data is dropped as it is read
    assert got[0][0] == "dump: document 0, items[0]"
    assert stream(" \n".join(json.dumps(i) for i in items[:2])) == [
        ("dump: document 0", items[0]),
        ("dump: document 1", items[1]),
    ]


def test_an_object_larger_than_the_bound_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sources, "CHUNK", 16)
    monkeypatch.setattr(sources, "MAX_OBJECT", 64)
    text = json.dumps({"items": [obj("ConfigMap", "big", data={"k": "x" * 500})]})
    with pytest.raises(SourceError, match="no object ends within 0 MiB"):
        stream(text)


def test_the_items_of_a_typed_list_take_its_kind() -> None:
    api_answer = {
        "kind": "PodList",
        "apiVersion": "v1",
        "metadata": {},
        "items": [{"metadata": {"name": "p"}}],
    }
    [(_where, item)] = stream(json.dumps(api_answer))
    assert (item["kind"], item["apiVersion"]) == ("Pod", "v1")
