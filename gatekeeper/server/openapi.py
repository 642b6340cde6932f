"""GET /openapi.json: the API's OpenAPI schema, for authenticated, authorized callers only.

Every route but /healthz and /readyz needs a caller, and the schema is no exception: it tells
whoever reads it what this server accepts, which is nobody's business but its callers'
(--webhook-callers or --metrics-readers).

The document is derived from the route table (server/routes.py): each route's method, summary,
query parameters and request body. The webhook handlers read their bodies themselves
(server/body.py), so the review shapes below describe what each accepts, in Kubernetes' own
field names, so that clients and schema-driven fuzzers (schemathesis, tests/fuzz) know what to send.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from starlette.requests import Request

import gatekeeper
from gatekeeper.server.responses import JSONResponse
from gatekeeper.server.routing import Route

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


def schema(routes: Iterable[Route]) -> dict[str, Any]:
    """The OpenAPI document of the route table: each route's method, parameters, request body."""
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
    info = {"title": "gatekeeper", "version": gatekeeper.__version__}
    return {"openapi": "3.1.0", "info": info, "paths": paths}


def _operation(route: Route) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": route.handler.__name__,
        "summary": route.summary,
        "responses": {"200": {"description": "OK", "content": {route.media_type: {}}}},
    }
    if route.query:
        operation["parameters"] = [
            {"in": "query", "name": name, "required": False, "schema": STR} for name in route.query
        ]
    if route.body is not None:
        content = {"application/json": {"schema": route.body}}
        operation["requestBody"] = {"required": True, "content": content}
    return operation


async def openapi(request: Request) -> JSONResponse:
    return JSONResponse(schema(request.app.routes))
