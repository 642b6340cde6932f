"""GET /openapi.json: the API's OpenAPI schema, for authenticated, authorized callers only.

Every route but /healthz and /readyz needs a caller, and the schema is no exception: it tells
whoever reads it what this server accepts, which is nobody's business but its callers'. The
ABAC policy decides who may read it (non-resource path /openapi.json, verb get).

The webhook handlers read their bodies themselves (server/body.py), so FastAPI cannot infer
them; the shapes below describe what each endpoint accepts, in Kubernetes' own field names,
so that clients and schema-driven fuzzers (schemathesis, tests/fuzz) know what to send.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from gatekeeper.authn.user import UserInfo
from gatekeeper.server.caller import require_caller
from gatekeeper.server.responses import JSONResponse

router = APIRouter()

STR: dict[str, Any] = {"type": "string"}
STRINGS: dict[str, Any] = {"type": "array", "items": STR}
STRING_MAP: dict[str, Any] = {"type": "object", "additionalProperties": STR}


def _obj(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {"type": "object", "properties": properties, **({"required": required} if required else {})}


def _review(group: str, kind: str, body: dict[str, Any], body_key: str) -> dict[str, Any]:
    return _obj(
        {
            "apiVersion": {"type": "string", "enum": [f"{group}/v1", f"{group}/v1beta1"]},
            "kind": {"type": "string", "enum": [kind]},
            body_key: body,
        },
        ["apiVersion", "kind", body_key],
    )


SUBJECT_ACCESS_REVIEW = _review("authorization.k8s.io", "SubjectAccessReview", _obj({
    "user": STR, "uid": STR, "groups": STRINGS, "group": STRINGS,
    "extra": {"type": "object", "additionalProperties": STRINGS},
    "resourceAttributes": _obj({k: STR for k in (
        "namespace", "verb", "group", "version", "resource", "subresource", "name")}),
    "nonResourceAttributes": _obj({"path": STR, "verb": STR}),
}), "spec")

TOKEN_REVIEW = _review(
    "authentication.k8s.io", "TokenReview", _obj({"token": STR, "audiences": STRINGS}), "spec"
)

_QUANTITIES = {"type": "object", "additionalProperties": {"type": ["string", "number"]}}
_CONTAINER = _obj({"name": STR, "image": STR,
                   "resources": _obj({"requests": _QUANTITIES, "limits": _QUANTITIES})})
_OBJECT = _obj({
    "apiVersion": STR, "kind": STR,
    "metadata": _obj({"name": STR, "namespace": STR, "generateName": STR,
                      "labels": STRING_MAP, "annotations": STRING_MAP}),
    "spec": _obj({"containers": {"type": "array", "items": _CONTAINER},
                  "initContainers": {"type": "array", "items": _CONTAINER},
                  "serviceAccountName": STR, "type": STR, "hard": _QUANTITIES}),
})
ADMISSION_REVIEW = _review("admission.k8s.io", "AdmissionReview", _obj({
    "uid": STR,
    "kind": _obj({"group": STR, "version": STR, "kind": STR}),
    "resource": _obj({"group": STR, "version": STR, "resource": STR}),
    "subResource": STR, "name": STR, "namespace": STR,
    "operation": {"type": "string", "enum": ["CREATE", "UPDATE", "DELETE", "CONNECT"]},
    "userInfo": _obj({"username": STR, "uid": STR, "groups": STRINGS}),
    "object": _OBJECT, "oldObject": _OBJECT, "dryRun": {"type": "boolean"},
}, ["uid", "kind", "resource", "operation"]), "request")

REQUEST_BODIES = {
    "/authorize": SUBJECT_ACCESS_REVIEW,
    "/authenticate": TOKEN_REVIEW,
    "/mutate": ADMISSION_REVIEW,
    "/validate": ADMISSION_REVIEW,
    "/admit": ADMISSION_REVIEW,
}


def with_request_bodies(schema: dict[str, Any]) -> dict[str, Any]:
    """The generated schema with each webhook's request body described (idempotent)."""
    for path, body in REQUEST_BODIES.items():
        operation = schema.get("paths", {}).get(path, {}).get("post")
        if operation is not None:
            operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    return schema


@router.get("/openapi.json", include_in_schema=False)
async def openapi(request: Request, _caller: UserInfo = Depends(require_caller)) -> JSONResponse:
    return JSONResponse(with_request_bodies(request.app.openapi()))
