"""The ResourceQuota plugin through the real chain and stores: what the corpus cannot express
(retries, dryRun, deletes, gatekeeper acting as the quota controller, malformed input)."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gatekeeper.admission.chain import Chain, build_chain
from gatekeeper.admission.outcome import Outcome
from gatekeeper.admission.quota.scopes import ScopeRequirement, claim_matches
from gatekeeper.admission.quota_usage import with_usage
from gatekeeper.admission.state import Store
from gatekeeper.api.admission import parse_admission_review
from gatekeeper.backends.memory import MemoryStore
from gatekeeper.backends.sqlite.store import SQLiteStore
from tests.support.etcd import open_etcd_store

NS = "team-a"


def quota(hard: dict[str, str], status: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "compute", "namespace": NS},
        "spec": {"hard": hard, **spec},
    }
    if status is not None:
        obj["status"] = status
    return obj


def pod(name: str = "p", cpu: str | None = "100m", **spec: Any) -> dict[str, Any]:
    resources = {"requests": {"cpu": cpu}, "limits": {"cpu": cpu}} if cpu else {}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"containers": [{"name": "app", "image": "nginx", "resources": resources}], **spec},
        "status": {"phase": "Pending"},
    }


def review(
    operation: str,
    obj: dict[str, Any] | None,
    old: dict[str, Any] | None = None,
    resource: str = "pods",
    kind: str = "Pod",
    uid: str | None = None,
    dry_run: bool = False,
    sub_resource: str = "",
) -> dict[str, Any]:
    name = (obj or old or {}).get("metadata", {}).get("name", "x")
    request: dict[str, Any] = {
        "uid": uid or str(uuid.uuid4()),
        "name": name,
        "namespace": NS,
        "operation": operation,
        "kind": {"group": "", "version": "v1", "kind": kind},
        "resource": {"group": "", "version": "v1", "resource": resource},
        "userInfo": {"username": "alice"},
        "object": obj,
        "oldObject": old,
        "dryRun": dry_run,
    }
    if sub_resource:
        request["subResource"] = sub_resource
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}


@pytest.fixture
def chain() -> Chain:
    return build_chain(["ResourceQuota"])


@pytest.fixture(params=["memory", "sqlite", "etcd"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    opened: list[Store] = []

    def make(*objects: dict[str, Any]) -> Store:
        if request.param == "memory":
            store: Store = MemoryStore(objects)
        elif request.param == "etcd":  # a real etcd (tests/support/etcd.py), a prefix of this store's own
            store = open_etcd_store()
            store.replace_all(objects)
        else:
            store = SQLiteStore(tmp_path / f"gk-{len(opened)}.db")
            store.replace_all(objects)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


def validate(chain: Chain, store: Store, doc: dict[str, Any]) -> Outcome:
    return chain.validate(parse_admission_review(doc)[1], store)


def used(store: Store) -> dict[str, str]:
    return dict(with_usage(store, NS)[0]["status"]["used"])


def test_spec_hard_is_enforced_when_there_is_no_status(chain: Chain, make_store: Any) -> None:
    store = make_store(quota({"pods": "1", "requests.cpu": "1"}))
    assert validate(chain, store, review("CREATE", pod("a"))).allowed
    denied = validate(chain, store, review("CREATE", pod("b"))).denied
    assert denied is not None and denied.code == 403
    assert denied.message == (
        'pods "b" is forbidden: exceeded quota: compute, requested: pods=1, used: pods=1, limited: pods=1'
    )
    assert used(store) == {"pods": "1", "requests.cpu": "100m"}


def test_status_hard_wins_over_spec_hard(chain: Chain, make_store: Any) -> None:
    store = make_store(quota({"pods": "5"}, {"hard": {"pods": "1"}, "used": {"pods": "1"}}))
    denied = validate(chain, store, review("CREATE", pod())).denied
    assert denied is not None and "limited: pods=1" in denied.message


def test_a_retry_with_the_same_uid_is_charged_once(chain: Chain, make_store: Any) -> None:
    store = make_store(quota({"pods": "10"}))
    doc = review("CREATE", pod(), uid="4a3d0a52-0000-4000-8000-000000000001")
    assert validate(chain, store, doc).allowed
    assert validate(chain, store, doc).allowed
    assert chain.admit(parse_admission_review(doc)[1], store).allowed  # a reinvocation through /admit
    assert used(store) == {"pods": "1"}


def test_dry_run_is_checked_but_never_charged(chain: Chain, make_store: Any) -> None:
    store = make_store(quota({"pods": "1"}, {"hard": {"pods": "1"}, "used": {"pods": "0"}}))
    assert validate(chain, store, review("CREATE", pod(), dry_run=True)).allowed
    assert used(store) == {"pods": "0"}
    store2 = make_store(quota({"pods": "1"}, {"hard": {"pods": "1"}, "used": {"pods": "1"}}))
    assert not validate(chain, store2, review("CREATE", pod(), dry_run=True)).allowed


def test_a_delete_gives_nothing_back_however_it_arrives(chain: Chain, make_store: Any) -> None:
    """Admitting a DELETE does not end the object (a graceful delete leaves the pod running for its
    grace period; storage or a later webhook may still refuse the delete), so, as in Kubernetes, no
    DELETE gives usage back. The recount (`quota reconcile`, or the cluster's quota controller) does."""
    store = make_store(
        quota(
            {"pods": "10", "requests.cpu": "1"},
            {"hard": {"pods": "10", "requests.cpu": "1"}, "used": {"pods": "2", "requests.cpu": "300m"}},
        )
    )
    running = pod(cpu="200m")
    running["spec"]["terminationGracePeriodSeconds"] = 31536000
    terminating = copy.deepcopy(running)
    terminating["metadata"] |= {"deletionTimestamp": "2030-01-01T00:00:00Z", "deletionGracePeriodSeconds": 30}
    finished = copy.deepcopy(running)
    finished["status"] = {"phase": "Succeeded"}
    for old in (running, terminating, finished, None):
        assert validate(chain, store, review("DELETE", None, old=old)).allowed
        assert validate(chain, store, review("DELETE", None, old=old, dry_run=True)).allowed
    assert used(store) == {"pods": "2", "requests.cpu": "300m"}


def test_update_charges_only_the_increase(chain: Chain, make_store: Any) -> None:
    store = make_store(
        quota({"requests.cpu": "1"}, {"hard": {"requests.cpu": "1"}, "used": {"requests.cpu": "100m"}})
    )
    old = pod(cpu="100m")
    old["metadata"]["resourceVersion"] = "7"
    new = copy.deepcopy(old)
    new["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "300m"}, "limits": {"cpu": "300m"}}
    assert validate(chain, store, review("UPDATE", new, old, sub_resource="resize")).allowed
    assert used(store) == {"requests.cpu": "300m"}
    assert validate(chain, store, review("UPDATE", old, new, sub_resource="resize")).allowed
    assert used(store) == {"requests.cpu": "300m"}  # a decrease is not given back at admission


def test_changing_hard_keeps_the_usage(chain: Chain, make_store: Any) -> None:
    store = make_store(quota({"pods": "10"}))
    validate(chain, store, review("CREATE", pod()))
    store.put(quota({"pods": "1"}))
    assert used(store) == {"pods": "1"}
    assert not validate(chain, store, review("CREATE", pod("b"))).allowed


def test_a_new_hard_resource_of_our_own_quota_starts_at_zero(chain: Chain, make_store: Any) -> None:
    store = make_store(quota({"pods": "10"}))
    validate(chain, store, review("CREATE", pod()))
    store.put(quota({"pods": "10", "requests.cpu": "150m"}))
    assert validate(chain, store, review("CREATE", pod("b"))).allowed
    denied = validate(chain, store, review("CREATE", pod("c"))).denied
    assert denied is not None and "used: requests.cpu=100m, limited: requests.cpu=150m" in denied.message


def test_a_malformed_quota_is_a_clear_500(chain: Chain, make_store: Any) -> None:
    store = make_store(quota({"pods": "ten"}))
    denied = validate(chain, store, review("CREATE", pod())).denied
    assert denied is not None and denied.code == 500
    assert "resourcequota team-a/compute: spec.hard.pods: invalid quantity 'ten'" in denied.message


def test_a_malformed_pod_quantity_is_a_clear_400(chain: Chain, make_store: Any) -> None:
    store = make_store(quota({"pods": "10"}))
    denied = validate(chain, store, review("CREATE", pod(cpu="lots"))).denied
    assert denied is not None and denied.code == 400
    assert "spec.containers[0].resources.requests.cpu" in denied.message


def test_other_namespaces_and_unhandled_requests_are_not_charged(chain: Chain, make_store: Any) -> None:
    store = make_store(quota({"pods": "10", "count/pods": "10"}))
    assert validate(chain, store, review("UPDATE", pod(), pod(), sub_resource="status")).allowed
    assert validate(chain, store, review("CREATE", pod(), sub_resource="eviction")).allowed
    assert used(store) == {"count/pods": "0", "pods": "0"}


def test_a_reused_uid_for_a_bigger_request_is_a_conflict(chain: Chain, make_store: Any) -> None:
    store = make_store(quota({"requests.cpu": "1"}))
    uid = "4a3d0a52-0000-4000-8000-000000000002"
    assert validate(chain, store, review("CREATE", pod(cpu="100m"), uid=uid)).allowed
    denied = validate(chain, store, review("CREATE", pod(cpu="900m"), uid=uid)).denied
    assert denied is not None and (denied.code, denied.reason) == (409, "Conflict")
    assert used(store) == {"requests.cpu": "100m"}


def test_an_empty_uid_cannot_be_charged(chain: Chain, make_store: Any) -> None:
    store = make_store(quota({"pods": "10"}))
    denied = validate(chain, store, review("CREATE", pod(), uid=" ")).denied
    assert denied is not None and denied.code == 400 and "request.uid: must not be empty" in denied.message


def test_a_created_quota_starts_from_its_own_status_not_a_namesakes_usage(
    chain: Chain, make_store: Any
) -> None:
    store = make_store(quota({"pods": "10"}))
    validate(chain, store, review("CREATE", pod("a")))
    validate(
        chain,
        store,
        review("DELETE", None, old=quota({"pods": "10"}), resource="resourcequotas", kind="ResourceQuota"),
    )
    store.delete("resourcequotas", NS, "compute")
    recreated = quota({"pods": "5"})
    assert validate(
        chain, store, review("CREATE", recreated, resource="resourcequotas", kind="ResourceQuota")
    ).allowed
    store.put(recreated)
    assert used(store) == {"pods": "0"}


def test_an_update_without_the_old_object_is_refused(chain: Chain, make_store: Any) -> None:
    store = make_store(quota({"services": "10"}))
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": NS}, "spec": {}}
    denied = validate(
        chain, store, review("UPDATE", service, None, resource="services", kind="Service")
    ).denied
    assert denied is not None and denied.code == 403
    assert denied.message.endswith("unable to get previous usage since prior version of object was not found")


def test_creating_a_quota_that_exists_leaves_its_usage_alone(chain: Chain, make_store: Any) -> None:
    store = make_store(quota({"pods": "10"}))
    validate(chain, store, review("CREATE", pod("a")))
    again = review("CREATE", quota({"pods": "10"}), resource="resourcequotas", kind="ResourceQuota")
    assert validate(chain, store, again).allowed  # storage, not admission, answers AlreadyExists
    assert used(store) == {"pods": "1"}


def claim(name: str, attributes_class: str | None = None, storage: str = "1Gi") -> dict[str, Any]:
    spec: dict[str, Any] = {"resources": {"requests": {"storage": storage}}}
    if attributes_class is not None:
        spec["volumeAttributesClassName"] = attributes_class
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name, "namespace": NS},
            "spec": spec}


def test_a_volume_attributes_class_quota_charges_only_the_claims_it_selects(
    chain: Chain, make_store: Any
) -> None:
    """pvcMatchesScopeFunc: a claim's classes (spec, status, the modification's target) against the
    selector; a pod or a claim without a class is not in it, and the scope breaks nothing else."""
    gold = quota({"requests.storage": "3Gi"}, scopeSelector={"matchExpressions": [
        {"scopeName": "VolumeAttributesClass", "operator": "In", "values": ["gold"]}]})
    store = make_store(gold)

    def create(obj: dict[str, Any]) -> dict[str, Any]:
        return review("CREATE", obj, resource="persistentvolumeclaims", kind="PersistentVolumeClaim")

    assert validate(chain, store, create(claim("plain"))).allowed
    assert validate(chain, store, review("CREATE", pod())).allowed
    assert used(store) == {"requests.storage": "0"}
    assert validate(chain, store, create(claim("fast", "gold", "2Gi"))).allowed
    assert used(store) == {"requests.storage": "2Gi"}
    denied = validate(chain, store, create(claim("more", "gold", "2Gi"))).denied
    assert denied is not None and "exceeded quota: compute, requested: requests.storage=2Gi" in denied.message
    moving = claim("moving", "silver")
    moving["status"] = {"modifyVolumeStatus": {"targetVolumeAttributesClassName": "gold"}}
    assert validate(chain, store, create(moving)).allowed
    assert used(store) == {"requests.storage": "3Gi"}


@pytest.mark.parametrize(
    ("operator", "values", "classes", "matches"),
    [
        ("Exists", [], [], False), ("Exists", [], ["gold"], True),
        ("DoesNotExist", [], [], True), ("DoesNotExist", [], ["gold"], False),
        ("In", ["gold"], [], False), ("In", ["gold"], ["silver", "gold"], True),
        ("NotIn", ["gold"], [], True), ("NotIn", ["gold"], ["gold"], False),
        ("NotIn", ["gold"], ["gold", "silver"], True),  # some class of the claim is not gold
    ],
)
def test_volume_attributes_class_selectors_read_as_label_selectors(
    operator: str, values: list[str], classes: list[str], matches: bool
) -> None:
    obj = claim("c")
    names = iter(classes)
    obj["spec"]["volumeAttributesClassName"] = next(names, None)
    obj["status"] = {"currentVolumeAttributesClassName": next(names, None)}
    requirement = ScopeRequirement("VolumeAttributesClass", operator, tuple(values))
    assert claim_matches(requirement, obj) is matches
    assert claim_matches(ScopeRequirement("Terminating"), obj) is False


def test_an_object_is_measured_whenever_the_namespace_has_a_quota(chain: Chain, make_store: Any) -> None:
    """CheckRequest measures the object before asking whether any quota applies to it."""
    store = make_store(quota({"services": "5"}))
    denied = validate(chain, store, review("CREATE", pod(cpu="-1"))).denied
    assert denied is not None and denied.message == (
        'pods "p" is forbidden: quota usage is negative for resource(s): cpu,limits.cpu,requests.cpu'
    )
    store = make_store(quota({"pods": "5"}))
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": NS},
               "spec": {"type": "ClusterIP", "ports": [{"port": 80}]}}
    update = review("UPDATE", service, None, resource="services", kind="Service")
    denied = validate(chain, store, update).denied
    assert denied is not None and denied.message.endswith(
        "unable to get previous usage since prior version of object was not found"
    )
