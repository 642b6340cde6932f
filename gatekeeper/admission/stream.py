"""The admission stream as a source of state: what an allowed, non-dry-run request changes.

A Namespace admitted for CREATE exists from then on (phase Active); a DELETE makes it
Terminating. ServiceAccounts, LimitRanges, ResourceQuotas and Secrets follow their creates,
updates and deletes. Subresource requests (status, token, ...) change nothing here.
"""

from __future__ import annotations

import copy
import logging

from gatekeeper.admission.errors import bad_request
from gatekeeper.admission.request import CREATE, DELETE, UPDATE, AdmissionRequest, JSONObject
from gatekeeper.admission.state import NAMESPACES, Store, key_of

log = logging.getLogger("gatekeeper.admission")

# resource -> kind of the core-group objects the store keeps
TRACKED = {
    "namespaces": "Namespace",
    "limitranges": "LimitRange",
    "resourcequotas": "ResourceQuota",
    "serviceaccounts": "ServiceAccount",
    "secrets": "Secret",
}


def record(request: AdmissionRequest, obj: JSONObject | None, store: Store) -> None:
    """Apply one allowed request to the store; callers skip dry-run requests."""
    resource = request.resource.resource
    if request.resource.group != "" or resource not in TRACKED or request.sub_resource:
        return
    if request.operation == DELETE:
        _record_delete(request, store)
    elif request.operation in (CREATE, UPDATE) and obj is not None:
        stored = _normalized(request, obj)
        try:
            key_of(stored)
        except ValueError as exc:  # admission allowed it; the store just cannot address it
            log.warning("not recording %s %s in the store: %s", request.operation, resource, exc)
            return
        store.put(stored)


def _record_delete(request: AdmissionRequest, store: Store) -> None:
    resource = request.resource.resource
    if resource != NAMESPACES:
        store.delete(resource, request.namespace, request.name)
        return
    namespace = store.get(NAMESPACES, "", request.name)
    if namespace is not None:
        namespace.setdefault("status", {})["phase"] = "Terminating"
        store.put(namespace)


def _normalized(request: AdmissionRequest, obj: JSONObject) -> JSONObject:
    """The object as the API server would store it: kind, name and namespace filled in."""
    stored = copy.deepcopy(obj)
    resource = request.resource.resource
    stored.setdefault("apiVersion", "v1")
    stored["kind"] = TRACKED[resource]
    metadata = stored.setdefault("metadata", {})
    if not isinstance(metadata, dict):
        raise bad_request("metadata: expected an object")
    if request.name and not metadata.get("name"):
        metadata["name"] = request.name
    if resource == NAMESPACES:
        metadata.pop("namespace", None)
        status = stored.setdefault("status", {})
        if not isinstance(status, dict):
            raise bad_request("status: expected an object")
        status.setdefault("phase", "Active")
    elif request.namespace:
        metadata["namespace"] = request.namespace
    return stored
