"""audit.k8s.io/v1 Event -> the authorization Attributes kube-apiserver decided the request on.

kube-apiserver's handler chain audits before it impersonates and authorizes, so:
- the request was authorized as `impersonatedUser` when that is set (its groups as recorded,
  which already hold the system:authenticated the impersonation filter adds), else as `user`;
- `verb` is RequestInfo's verb (list, watch, deletecollection, ... for resources; the lower-case
  HTTP method for non-resource requests), exactly what the authorizer saw;
- `objectRef` is set for resource requests only; a non-resource request's path is `requestURI`
  without its query;
- the authorizer's answer is recorded as the `authorization.k8s.io/decision` annotation, which
  only events from ResponseStarted on carry. Each request is decided once, at its
  ResponseComplete (or Panic) event; other stages are counted, not decided.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from gatekeeper.authz.attributes import Attributes
from gatekeeper.errors import InvalidInput

API_VERSION = "audit.k8s.io/v1"
DECISION_ANNOTATION = "authorization.k8s.io/decision"
DECIDED_STAGES = frozenset({"ResponseComplete", "Panic"})
STAGES = frozenset({"RequestReceived", "ResponseStarted", *DECIDED_STAGES})
RESOURCE_VERBS = frozenset(
    {"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection", "proxy"}
)
NON_RESOURCE_VERBS = frozenset({"get", "head", "post", "put", "patch", "delete", "options"})


@dataclass(frozen=True, slots=True)
class Request:
    """One audited request: what was authorized, and what the cluster answered then."""

    attributes: Attributes
    audit_id: str
    request_uri: str
    impersonated_by: str  # the authenticated user when the request impersonated another; else ""
    recorded: bool | None  # the decision annotation: allow -> True, forbid -> False, absent -> None


class Unmapped(InvalidInput):
    """An event that names no decidable request; the message says which field and why."""


class OtherStage(Exception):
    """An event of a stage at which the request is not decided; args[0] is the stage."""


def parse_event(event: Any) -> Request:
    """The request an event records, or Unmapped / OtherStage."""
    if not isinstance(event, dict):
        raise Unmapped(f"not a JSON object but {type(event).__name__}")
    kind, version = event.get("kind"), event.get("apiVersion")
    if kind != "Event" or version != API_VERSION:
        raise Unmapped(f"apiVersion/kind {version}/{kind}: expected {API_VERSION}/Event")
    stage = _string(event, "stage")
    if stage not in STAGES:
        raise Unmapped(f"stage {stage!r}: not one of {', '.join(sorted(STAGES))}")
    if stage not in DECIDED_STAGES:
        raise OtherStage(stage)
    return Request(
        attributes=_attributes(event),
        audit_id=_string(event, "auditID"),
        request_uri=_string(event, "requestURI"),
        impersonated_by=_string(_object(event, "user"), "username") if event.get("impersonatedUser") else "",
        recorded=_recorded(event),
    )


def _attributes(event: dict[str, Any]) -> Attributes:
    name, groups = _subject(event)
    verb = _string(event, "verb")
    ref = event.get("objectRef")
    if ref is None:
        if verb not in NON_RESOURCE_VERBS:
            raise Unmapped(f"verb {verb!r}: not an HTTP method a non-resource request is authorized with")
        path = unquote(_string(event, "requestURI").split("?", 1)[0])
        return Attributes(user=name, groups=groups, verb=verb, resource_request=False, path=path)
    if verb not in RESOURCE_VERBS:
        raise Unmapped(f"verb {verb!r}: not a verb kube-apiserver authorizes resource requests with")
    ref = _object(event, "objectRef")
    return Attributes(
        user=name,
        groups=groups,
        verb=verb,
        resource_request=True,
        namespace=_string(ref, "namespace", "objectRef."),
        api_group=_string(ref, "apiGroup", "objectRef."),
        resource=_string(ref, "resource", "objectRef."),
        subresource=_string(ref, "subresource", "objectRef."),
        name=_string(ref, "name", "objectRef."),
    )


def _subject(event: dict[str, Any]) -> tuple[str, tuple[str, ...]]:
    field = "impersonatedUser" if event.get("impersonatedUser") else "user"
    info = _object(event, field)
    name = _string(info, "username", f"{field}.")
    if not name:
        raise Unmapped(f"{field}.username: empty; no authenticated user was authorized")
    groups = info.get("groups") or []
    if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
        raise Unmapped(f"{field}.groups: expected a list of strings")
    return name, tuple(groups)


def _recorded(event: dict[str, Any]) -> bool | None:
    annotations = event.get("annotations") or {}
    if not isinstance(annotations, dict):
        raise Unmapped("annotations: expected an object")
    value = annotations.get(DECISION_ANNOTATION)
    if value is None:
        return None
    if value not in ("allow", "forbid"):
        raise Unmapped(f"annotations.{DECISION_ANNOTATION}: {value!r}, expected allow or forbid")
    return bool(value == "allow")


def _object(parent: dict[str, Any], key: str) -> dict[str, Any]:
    value = parent.get(key)
    if not isinstance(value, dict):
        raise Unmapped(f"{key}: expected an object")
    return value


def _string(parent: dict[str, Any], key: str, prefix: str = "") -> str:
    value = parent.get(key, "")
    if not isinstance(value, str):
        raise Unmapped(f"{prefix}{key}: expected a string")
    return value
