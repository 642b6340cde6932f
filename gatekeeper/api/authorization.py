"""authorization.k8s.io SubjectAccessReview (v1, v1beta1) <-> Attributes and Decision."""

from __future__ import annotations

from typing import Any

from gatekeeper.authz.attributes import Attributes, Decision
from gatekeeper.k8s import fields

GROUP = "authorization.k8s.io"
VERSIONS = ("v1", "v1beta1")
KIND = "SubjectAccessReview"


def parse_subject_access_review(doc: Any) -> tuple[str, Attributes]:
    """(version, attributes) of a review, as kube-apiserver's AuthorizationAttributesFrom builds them."""
    version = fields.type_meta(doc, GROUP, VERSIONS, KIND)
    spec = fields.obj(doc, "spec", "spec", required=True)
    user = fields.string(spec, "user", "spec.user")
    groups_key = "groups" if version == "v1" else "group"  # v1beta1 names the list "group"
    groups = fields.strings(spec, groups_key, f"spec.{groups_key}")
    resource = fields.obj(spec, "resourceAttributes", "spec.resourceAttributes")
    non_resource = fields.obj(spec, "nonResourceAttributes", "spec.nonResourceAttributes")
    has_resource = spec.get("resourceAttributes") is not None
    if has_resource and spec.get("nonResourceAttributes") is not None:
        raise fields.InvalidObject(
            "spec: exactly one of resourceAttributes and nonResourceAttributes may be set"
        )
    if has_resource:
        path = "spec.resourceAttributes"
        return version, Attributes(
            user=user,
            groups=groups,
            verb=fields.string(resource, "verb", f"{path}.verb"),
            resource_request=True,
            namespace=fields.string(resource, "namespace", f"{path}.namespace"),
            api_group=fields.string(resource, "group", f"{path}.group"),
            resource=fields.string(resource, "resource", f"{path}.resource"),
            subresource=fields.string(resource, "subresource", f"{path}.subresource"),
            name=fields.string(resource, "name", f"{path}.name"),
        )
    path = "spec.nonResourceAttributes"
    return version, Attributes(
        user=user,
        groups=groups,
        verb=fields.string(non_resource, "verb", f"{path}.verb"),
        resource_request=False,
        path=fields.string(non_resource, "path", f"{path}.path"),
    )


def review_response(doc: dict[str, Any], version: str, decision: Decision) -> dict[str, Any]:
    status: dict[str, Any] = {"allowed": decision.allowed, "reason": decision.reason}
    if decision.denied:
        status["denied"] = True
    return {
        "apiVersion": f"{GROUP}/{version}",
        "kind": KIND,
        "metadata": doc.get("metadata") or {},
        "spec": doc.get("spec"),
        "status": status,
    }
