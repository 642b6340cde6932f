"""NamespaceLifecycle: no new content in missing or terminating namespaces; immortal namespaces.

In Kubernetes it is a mutating-phase plugin that only refuses, so it runs before any other plugin
can mutate or look things up. gatekeeper runs the same check in the validating phase too: behind
split webhooks, /mutate sees only pods, while /validate sees every kind the plugins guard
(namespace deletes, services, secrets, quotas...), which must be refused in a terminating
namespace just the same. The check is pure, so running it twice in /admit changes nothing.
"""

from __future__ import annotations

from typing import ClassVar

from gatekeeper.admission.errors import Cause, forbidden, internal, not_found
from gatekeeper.admission.patch import Patch
from gatekeeper.admission.plugin import DEFAULT_OPTIONS, PluginOptions, Warnings
from gatekeeper.admission.request import CREATE, DELETE, UPDATE, AdmissionRequest, JSONObject
from gatekeeper.admission.state import NAMESPACES, Store
from gatekeeper.k8s.fields import InvalidObject
from gatekeeper.k8s.objects import Namespace

IMMORTAL_NAMESPACES = frozenset({"default", "kube-system", "kube-public"})
TERMINATING = "Terminating"


def is_namespace(request: AdmissionRequest) -> bool:
    return request.kind.group == "" and request.kind.kind == "Namespace"


def is_access_review(request: AdmissionRequest) -> bool:
    """Namespaced access reviews pass, so they cannot be used to probe for namespaces."""
    resource = request.resource
    return resource.group == "authorization.k8s.io" and resource.resource == "localsubjectaccessreviews"


class NamespaceLifecycle:
    name: ClassVar[str] = "NamespaceLifecycle"
    operations: ClassVar[frozenset[str]] = frozenset({CREATE, UPDATE, DELETE})

    def __init__(self, options: PluginOptions = DEFAULT_OPTIONS) -> None:
        self.immortal = IMMORTAL_NAMESPACES

    def handles(self, request: AdmissionRequest) -> bool:
        return request.operation in self.operations

    def admit(self, request: AdmissionRequest, obj: JSONObject, store: Store, patch: Patch) -> Warnings:
        return self.check(request, store)

    def validate(self, request: AdmissionRequest, obj: JSONObject | None, store: Store) -> Warnings:
        return self.check(request, store)

    def check(self, request: AdmissionRequest, store: Store) -> Warnings:
        if request.operation == DELETE and is_namespace(request) and request.name in self.immortal:
            raise forbidden(request, "this namespace may not be deleted")
        if is_namespace(request) or not request.namespace:
            return None
        if request.operation != CREATE or is_access_review(request):
            return None  # deletes and updates of content always pass
        stored = store.get(NAMESPACES, "", request.namespace)
        if stored is None:
            raise not_found(NAMESPACES, request.namespace)
        try:
            namespace = Namespace.decode(stored)
        except InvalidObject as err:  # the stored object is malformed: no fault of the caller's
            raise internal(f"NamespaceLifecycle: {err}") from None
        if namespace.phase == TERMINATING:
            raise terminating(request)
        return None


def terminating(request: AdmissionRequest) -> Exception:
    ns = request.namespace
    cause = Cause("NamespaceTerminating", f"namespace {ns} is being terminated", "metadata.namespace")
    return forbidden(
        request, f"unable to create new content in namespace {ns} because it is being terminated", [cause]
    )
