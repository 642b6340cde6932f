"""SecurityContextDeny (deprecated, removed in Kubernetes 1.30; kept for old flag lists).

Refuses pods that set the security-context fields the in-tree plugin forbade: at pod level
supplementalGroups, seLinuxOptions, runAsUser, fsGroup; per init container and container
seLinuxOptions and runAsUser. The first offending field is reported, in Kubernetes' order.
"""

from __future__ import annotations

import logging
from typing import ClassVar

from gatekeeper.admission.errors import bad_request, forbidden
from gatekeeper.admission.plugin import DEFAULT_OPTIONS, PluginOptions, Warnings
from gatekeeper.admission.request import CREATE, UPDATE, AdmissionRequest, JSONObject
from gatekeeper.admission.state import Store
from gatekeeper.k8s.fields import InvalidObject
from gatekeeper.k8s.objects import Pod, PodSpec

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
        violation = first_violation(_spec(request, obj))
        if violation is not None:
            raise forbidden(request, f"{violation} is forbidden")
        return None


def _spec(request: AdmissionRequest, obj: JSONObject) -> PodSpec:
    if obj is request.object and request.pod is not None:
        return request.pod.spec
    try:  # a pods request whose kind the review parser does not decode
        return Pod.decode(obj).spec
    except InvalidObject as err:
        raise bad_request(str(err)) from None


def first_violation(spec: PodSpec) -> str | None:
    """The Go name of the first forbidden field set in a pod spec, or None."""
    for field in POD_FIELDS:
        if spec.security_context.get(field) is not None:
            return f"pod.Spec.SecurityContext.{_GO_NAMES[field]}"
    for container in (*spec.init_containers, *spec.containers):
        for field in CONTAINER_FIELDS:
            if container.security_context.get(field) is not None:
                return f"SecurityContext.{_GO_NAMES[field]}"
    return None
