"""AdmissionReview v1/v1beta1 <-> AdmissionRequest/Outcome: fields, errors, responses."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from gatekeeper.admission.errors import AdmissionDenied, Cause
from gatekeeper.admission.outcome import Outcome
from gatekeeper.api.admission import parse_admission_review, review_response
from gatekeeper.k8s.fields import InvalidObject


def review(version: str = "v1", **request: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "uid": "u-1",
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "name": "web",
        "namespace": "team",
        "operation": "CREATE",
        "userInfo": {"username": "alice", "uid": "42", "groups": ["dev"], "extra": {"scopes": ["a"]}},
        "object": {"kind": "Pod", "metadata": {"name": "web"}},
        "oldObject": None,
        "dryRun": True,
    }
    body.update(request)
    return {"apiVersion": f"admission.k8s.io/{version}", "kind": "AdmissionReview", "request": body}


@pytest.mark.parametrize("version", ["v1", "v1beta1"])
def test_parses_every_field(version: str) -> None:
    got_version, request = parse_admission_review(review(version, subResource="status"))
    assert got_version == version
    assert request.uid == "u-1"
    assert (request.kind.kind, request.resource.resource, request.sub_resource) == ("Pod", "pods", "status")
    assert (request.name, request.namespace, request.operation) == ("web", "team", "CREATE")
    assert request.user.name == "alice" and request.user.groups == ("dev",)
    assert request.user.extra == {"scopes": ("a",)}
    assert request.object == {"kind": "Pod", "metadata": {"name": "web"}}
    assert request.old_object is None and request.dry_run is True


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"apiVersion": "admission.k8s.io/v2", "kind": "AdmissionReview"}, "apiVersion: expected one of"),
        ({"apiVersion": "admission.k8s.io/v1", "kind": "Review"}, "kind: expected 'AdmissionReview'"),
        ({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}, "request: required field"),
        (review(uid=None), "request.uid: required field is missing"),
        (review(uid=7), "request.uid: expected a string, got number"),
        (review(operation="PATCH"), "request.operation: expected one of CREATE, UPDATE, DELETE, CONNECT"),
        (review(kind={"version": "v1"}), "request.kind.kind: required field is missing"),
        (review(resource="pods"), "request.resource: expected an object, got string"),
        (review(object=[1]), "request.object: expected an object, got array"),
        (review(dryRun="yes"), "request.dryRun: expected a boolean, got string"),
        (review(userInfo={"groups": "dev"}), "request.userInfo.groups: expected an array of strings"),
        (review(object={"kind": "Pod", "spec": "x"}), "request.object.spec: expected an object, got string"),
        (review(object={"kind": "Pod", "spec": {"containers": [{"name": "a", "env": {"A": "1"}}]}}),
         "request.object.spec.containers[0].env: expected an array, got object"),
        (review(object={"kind": "Pod", "spec": {"volumes": ["v"]}}),
         "request.object.spec.volumes[0]: expected an object, got string"),
        (review(object={"kind": "Pod", "spec": {"automountServiceAccountToken": "no"}}),
         "request.object.spec.automountServiceAccountToken: expected a boolean, got string"),
        (review(oldObject={"kind": "Pod", "metadata": {"annotations": ["a"]}}),
         "request.oldObject.metadata.annotations: expected an object, got array"),
    ],
)
def test_bad_reviews_name_the_field(doc: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidObject) as info:
        parse_admission_review(doc)
    assert message in str(info.value)


def test_an_allowed_response_carries_uid_allowed_and_a_base64_json_patch() -> None:
    patch = [{"op": "add", "path": "/spec/serviceAccountName", "value": "default"}]
    body = review_response("v1beta1", "u-1", Outcome(patch=patch, warnings=("careful",)))
    assert body["apiVersion"] == "admission.k8s.io/v1beta1" and body["kind"] == "AdmissionReview"
    response = body["response"]
    assert response["uid"] == "u-1" and response["allowed"] is True
    assert response["patchType"] == "JSONPatch"
    assert json.loads(base64.b64decode(response["patch"])) == patch
    assert response["warnings"] == ["careful"]
    assert "status" not in response


def test_without_patch_there_is_no_patch_type_and_validate_never_patches() -> None:
    assert "patchType" not in review_response("v1", "u", Outcome())["response"]
    patch = [{"op": "remove", "path": "/a"}]
    response = review_response("v1", "u", Outcome(patch=patch), with_patch=False)["response"]
    assert "patch" not in response and "patchType" not in response


def test_a_denial_carries_a_kubernetes_status_with_causes() -> None:
    denied = AdmissionDenied(403, "Forbidden", 'pods "x" is forbidden: no', [Cause("T", "m", "f")])
    response = review_response("v1", "u", Outcome(denied=denied))["response"]
    assert response["allowed"] is False
    assert response["status"] == {
        "metadata": {},
        "status": "Failure",
        "message": 'pods "x" is forbidden: no',
        "reason": "Forbidden",
        "code": 403,
        "details": {"causes": [{"type": "T", "message": "m", "field": "f"}]},
    }


def test_a_pod_is_decoded_once_at_the_edge_into_a_read_only_view() -> None:
    from gatekeeper.k8s.objects import Pod

    spec = {
        "serviceAccountName": "ci", "imagePullSecrets": [{"name": "registry"}],
        "volumes": [{"name": "v", "secret": {"secretName": "db"}},
                    {"name": "p", "projected": {"sources": [{"serviceAccountToken": {"path": "t"}},
                                                            {"secret": {"name": "tls"}}]}}],
        "containers": [{"name": "app", "envFrom": [{"secretRef": {"name": "env"}}],
                        "volumeMounts": [{"name": "v", "mountPath": "/db"}]}],
    }
    obj = {"kind": "Pod", "metadata": {"name": "web", "annotations": {"a": "b"}}, "spec": spec}
    _version, request = parse_admission_review(review(object=obj))
    assert request.pod is not None and request.pod == Pod.decode(obj)
    pod = request.pod
    assert (pod.name, pod.spec.service_account_name) == ("web", "ci")
    assert pod.spec.image_pull_secrets == ("registry",)
    assert [(v.name, v.secret_name, v.projects_token) for v in pod.spec.volumes] == [
        ("v", "db", False), ("p", None, True)
    ]
    assert pod.spec.containers[0].mount_paths == ("/db",)
    assert sorted(pod.spec.secret_names()) == ["db", "env", "registry", "tls"]
    with pytest.raises(TypeError):
        pod.annotations["a"] = "c"  # type: ignore[index]
    with pytest.raises(AttributeError):
        pod.spec.service_account_name = "x"  # type: ignore[misc]


def test_a_request_carrying_the_mutated_object_decodes_its_view_again() -> None:
    _version, request = parse_admission_review(review(object={"kind": "Pod", "spec": {}}))
    mutated = request.with_object({"kind": "Pod", "spec": {"serviceAccountName": "default"}})
    assert mutated.pod is not None and mutated.pod.spec.service_account_name == "default"
    secret_kind = {"group": "", "version": "v1", "kind": "Secret"}
    _version, other = parse_admission_review(review(kind=secret_kind, object={"kind": "Secret"}))
    assert other.pod is None and other.with_object({"kind": "Secret", "type": "x"}).pod is None
