"""Building AdmissionRequests for tests the way kube-apiserver's reviews carry them."""

from __future__ import annotations

from typing import Any

from gatekeeper.admission.request import AdmissionRequest, JSONObject
from gatekeeper.api.admission import parse_admission_review


def pod(name: str = "web", namespace: str = "team", **spec: Any) -> JSONObject:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"containers": [{"name": "app", "image": "nginx"}], **spec},
    }


def review(operation: str = "CREATE", resource: str = "pods", kind: str = "Pod", namespace: str = "team",
           name: str = "web", obj: Any = None, dry_run: bool = False, old: Any = None,
           sub_resource: str = "") -> dict[str, Any]:
    if obj is None and operation != "DELETE":
        obj = pod(name, namespace)
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": f"uid-{operation}-{resource}-{name}",
            "kind": {"group": "", "version": "v1", "kind": kind},
            "resource": {"group": "", "version": "v1", "resource": resource},
            "subResource": sub_resource,
            "name": name, "namespace": namespace, "operation": operation,
            "userInfo": {"username": "alice"}, "object": obj, "oldObject": old, "dryRun": dry_run,
        },
    }


def request(operation: str = "CREATE", resource: str = "pods", kind: str = "Pod", namespace: str = "team",
            name: str = "web", obj: Any = None, dry_run: bool = False, old: Any = None,
            sub_resource: str = "") -> AdmissionRequest:
    doc = review(operation, resource, kind, namespace, name, obj, dry_run, old, sub_resource)
    return parse_admission_review(doc)[1]


def namespace(name: str, phase: str = "Active") -> JSONObject:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}, "status": {"phase": phase}}


def service_account(name: str = "default", namespace: str = "team", **fields: Any) -> JSONObject:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": namespace},
            **fields}
