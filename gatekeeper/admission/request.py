"""One admission request as the plugins see it (admission.Attributes), free of the wire format."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from gatekeeper.authn.user import UserInfo
from gatekeeper.k8s.objects import Pod

JSONObject = dict[str, Any]

CREATE = "CREATE"
UPDATE = "UPDATE"
DELETE = "DELETE"
CONNECT = "CONNECT"


@dataclass(frozen=True, slots=True)
class GroupVersionKind:
    group: str
    version: str
    kind: str


@dataclass(frozen=True, slots=True)
class GroupVersionResource:
    group: str
    version: str
    resource: str


@dataclass(frozen=True, slots=True)
class AdmissionRequest:
    uid: str
    kind: GroupVersionKind
    resource: GroupVersionResource
    sub_resource: str
    name: str
    namespace: str
    operation: str
    user: UserInfo
    object: JSONObject | None
    old_object: JSONObject | None
    dry_run: bool
    pod: Pod | None = None  # the typed view of `object` when it is a core Pod, decoded at the edge

    def with_object(self, obj: JSONObject | None) -> AdmissionRequest:
        """The request carrying `obj` (the object after mutation), its views decoded again."""
        pod = Pod.decode(obj) if self.pod is not None and obj is not None else None
        return dataclasses.replace(self, object=obj, pod=pod)

    def is_core(self, resource: str) -> bool:
        """True for a request on the core-group resource `resource` (any subresource)."""
        return self.resource.group == "" and self.resource.resource == resource
