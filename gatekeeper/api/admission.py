"""admission.k8s.io AdmissionReview (v1, v1beta1) <-> AdmissionRequest and Outcome."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

import orjson

from gatekeeper.admission.errors import AdmissionDenied
from gatekeeper.admission.outcome import Outcome
from gatekeeper.admission.request import (
    CONNECT,
    CREATE,
    DELETE,
    UPDATE,
    AdmissionRequest,
    GroupVersionKind,
    GroupVersionResource,
    JSONObject,
)
from gatekeeper.authn.user import UserInfo
from gatekeeper.k8s import fields
from gatekeeper.k8s.objects import Pod, check_object

GROUP = "admission.k8s.io"
VERSIONS = ("v1", "v1beta1")
KIND = "AdmissionReview"
OPERATIONS = (CREATE, UPDATE, DELETE, CONNECT)


def parse_admission_review(doc: Any) -> tuple[str, AdmissionRequest]:
    """(version, request) of a review; InvalidObject names the first bad field."""
    version = fields.type_meta(doc, GROUP, VERSIONS, KIND)
    req = fields.obj(doc, "request", "request", required=True)
    operation = fields.string(req, "operation", "request.operation", required=True)
    if operation not in OPERATIONS:
        raise fields.InvalidObject(
            f"request.operation: expected one of {', '.join(OPERATIONS)}, got {operation!r}"
        )
    kind = _gvk(fields.obj(req, "kind", "request.kind", required=True), "request.kind")
    obj = _optional_object(req, "object", "request.object", kind)
    return version, AdmissionRequest(
        uid=fields.string(req, "uid", "request.uid", required=True),
        kind=kind,
        resource=_gvr(fields.obj(req, "resource", "request.resource", required=True), "request.resource"),
        sub_resource=fields.string(req, "subResource", "request.subResource"),
        name=fields.string(req, "name", "request.name"),
        namespace=fields.string(req, "namespace", "request.namespace"),
        operation=operation,
        user=_user(fields.obj(req, "userInfo", "request.userInfo")),
        object=obj,
        old_object=_optional_object(req, "oldObject", "request.oldObject", kind),
        dry_run=fields.boolean(req, "dryRun", "request.dryRun"),
        pod=Pod.decode(obj, "request.object") if obj is not None and _is_pod(kind) else None,
    )


def _gvk(value: Mapping[str, Any], path: str) -> GroupVersionKind:
    return GroupVersionKind(
        group=fields.string(value, "group", f"{path}.group"),
        version=fields.string(value, "version", f"{path}.version", required=True),
        kind=fields.string(value, "kind", f"{path}.kind", required=True),
    )


def _gvr(value: Mapping[str, Any], path: str) -> GroupVersionResource:
    return GroupVersionResource(
        group=fields.string(value, "group", f"{path}.group"),
        version=fields.string(value, "version", f"{path}.version", required=True),
        resource=fields.string(value, "resource", f"{path}.resource", required=True),
    )


def _user(value: Mapping[str, Any]) -> UserInfo:
    extra_doc = fields.obj(value, "extra", "request.userInfo.extra")
    extra = {key: fields.strings(extra_doc, key, f"request.userInfo.extra.{key}") for key in extra_doc}
    return UserInfo(
        name=fields.string(value, "username", "request.userInfo.username"),
        uid=fields.string(value, "uid", "request.userInfo.uid"),
        groups=fields.strings(value, "groups", "request.userInfo.groups"),
        extra=extra,
    )


def _optional_object(
    req: Mapping[str, Any], key: str, path: str, kind: GroupVersionKind
) -> JSONObject | None:
    if req.get(key) is None:
        return None
    value = fields.obj(req, key, path)
    if _is_pod(kind):
        if key != "object":  # the object's view is the request's; the old one is only checked
            Pod.decode(value, path)
    else:
        check_object(value, path)
    return value


def _is_pod(kind: GroupVersionKind) -> bool:
    return kind.group == "" and kind.kind == "Pod"


def review_uid(doc: Any) -> str:
    """request.uid if it can be read at all, so even a refusal of a bad review can echo it."""
    if isinstance(doc, dict) and isinstance(doc.get("request"), dict):
        uid = doc["request"].get("uid")
        if isinstance(uid, str):
            return uid
    return ""


def review_response(version: str, uid: str, outcome: Outcome, with_patch: bool = True) -> JSONObject:
    """The AdmissionReview kube-apiserver expects back, in the version it sent."""
    response: JSONObject = {"uid": uid, "allowed": outcome.allowed}
    if outcome.denied is not None:
        response["status"] = status_of(outcome.denied)
    if with_patch and outcome.allowed and outcome.patch:
        response["patchType"] = "JSONPatch"
        response["patch"] = base64.b64encode(orjson.dumps(outcome.patch)).decode("ascii")
    if outcome.warnings:
        response["warnings"] = list(outcome.warnings)
    return {"apiVersion": f"{GROUP}/{version}", "kind": KIND, "response": response}


def status_of(denied: AdmissionDenied) -> JSONObject:
    """A metav1.Status as kube-apiserver builds it from an admission error."""
    status: JSONObject = {
        "metadata": {},
        "status": "Failure",
        "message": denied.message,
        "reason": denied.reason,
        "code": denied.code,
    }
    if denied.causes:
        status["details"] = {
            "causes": [{"type": c.type, "message": c.message, "field": c.field} for c in denied.causes]
        }
    return status


def bad_review_response(version: str, uid: str, message: str) -> JSONObject:
    """A review that cannot be read is refused with 400 BadRequest (never a 500)."""
    return review_response(version, uid, Outcome(denied=AdmissionDenied(400, "BadRequest", message)))
