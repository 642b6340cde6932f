"""SecurityContextDeny (deprecated, removed in Kubernetes 1.30; kept for old flag lists).

Refuses pods that set the security-context fields the in-tree plugin forbade: at pod level
supplementalGroups, seLinuxOptions, runAsUser, fsGroup; per init container and container
seLinuxOptions and runAsUser. The first offending field is reported, in Kubernetes' order.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any, ClassVar

from gatekeeper.admission.errors import bad_request, forbidden
from gatekeeper.admission.plugin import DEFAULT_OPTIONS, PluginOptions, Warnings
from gatekeeper.admission.request import CREATE, UPDATE, AdmissionRequest, JSONObject
from gatekeeper.admission.state import Store

log = logging.getLogger("gatekeeper.admission")

POD_FIELDS = ("supplementalGroups", "seLinuxOptions", "runAsUser", "fsGroup")
CONTAINER_FIELDS = ("seLinuxOptions", "runAsUser")
_GO_NAMES = {
    "supplementalGroups": "SupplementalGroups",
    "seLinuxOptions": "SELinuxOptions",
    "runAsUser": "RunAsUser",
    "fsGroup": "FSGroup",
}


class SecurityContextDeny:
    name: ClassVar[str] = "SecurityContextDeny"
    operations: ClassVar[frozenset[str]] = frozenset({CREATE, UPDATE})

    def __init__(self, options: PluginOptions = DEFAULT_OPTIONS) -> None:
        log.warning(
            "SecurityContextDeny is deprecated (removed from Kubernetes in 1.30); "
            "prefer Pod Security admission"
        )

    def handles(self, request: AdmissionRequest) -> bool:
        return request.operation in self.operations and request.is_core("pods") and not request.sub_resource

    def validate(self, request: AdmissionRequest, obj: JSONObject | None, store: Store) -> Warnings:
        if obj is None or obj.get("kind", "Pod") != "Pod":
            raise bad_request("Resource was marked with kind Pod but was unable to be converted")
        violation = first_violation(obj.get("spec") or {})
        if violation is not None:
            raise forbidden(request, f"{violation} is forbidden")
        return None


def first_violation(spec: dict[str, Any]) -> str | None:
    """The Go name of the first forbidden field set in a pod spec, or None."""
    pod_context = spec.get("securityContext") or {}
    for field in POD_FIELDS:
        if pod_context.get(field) is not None:
            return f"pod.Spec.SecurityContext.{_GO_NAMES[field]}"
    for context in _container_contexts(spec):
        for field in CONTAINER_FIELDS:
            if context.get(field) is not None:
                return f"SecurityContext.{_GO_NAMES[field]}"
    return None


def _container_contexts(spec: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for key in ("initContainers", "containers"):
        for container in spec.get(key) or []:
            context = container.get("securityContext") if isinstance(container, dict) else None
            if isinstance(context, dict):
                yield context
