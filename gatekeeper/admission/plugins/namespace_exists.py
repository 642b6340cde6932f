"""NamespaceExists (deprecated in Kubernetes, kept for old --admission-control lists).

Refuses any namespaced request whose namespace does not exist; NamespaceLifecycle does this
and more, which is why Kubernetes folded this plugin into it.
"""

from __future__ import annotations

from typing import ClassVar

from gatekeeper.admission.errors import not_found
from gatekeeper.admission.plugin import DEFAULT_OPTIONS, PluginOptions, Warnings
from gatekeeper.admission.plugins.namespace_lifecycle import is_namespace
from gatekeeper.admission.request import CREATE, DELETE, UPDATE, AdmissionRequest, JSONObject
from gatekeeper.admission.state import NAMESPACES, Store


class NamespaceExists:
    name: ClassVar[str] = "NamespaceExists"
    operations: ClassVar[frozenset[str]] = frozenset({CREATE, UPDATE, DELETE})

    def __init__(self, options: PluginOptions = DEFAULT_OPTIONS) -> None:
        pass  # nothing to set: this plugin reads only the request and the store

    def handles(self, request: AdmissionRequest) -> bool:
        return request.operation in self.operations and bool(request.namespace) and not is_namespace(request)

    def validate(self, request: AdmissionRequest, obj: JSONObject | None, store: Store) -> Warnings:
        if store.get(NAMESPACES, "", request.namespace) is None:
            raise not_found(NAMESPACES, request.namespace)
        return None
