"""Object counts: count/<resource>[.<group>] for anything, plus the legacy bare names of a few core kinds."""

from __future__ import annotations

from collections.abc import Iterable

from gatekeeper.admission.quota.evaluators.base import JSONObject, NoScopes, object_count_name
from gatekeeper.admission.quota.resources import ResourceList
from gatekeeper.admission.request import CREATE, AdmissionRequest
from gatekeeper.k8s.quantity import Quantity

# Core kinds Kubernetes also counts under their bare resource name ("secrets" as well as "count/secrets").
LEGACY_ALIASES = frozenset({"configmaps", "secrets", "replicationcontrollers", "resourcequotas"})


class ObjectCountEvaluator(NoScopes):
    def __init__(self, group: str, resource: str) -> None:
        self.names = [object_count_name(group, resource)]
        if group == "" and resource in LEGACY_ALIASES:
            self.names.append(resource)

    def handles(self, request: AdmissionRequest) -> bool:
        return request.operation == CREATE and not request.sub_resource

    def matching_resources(self, names: Iterable[str]) -> list[str]:
        return [name for name in names if name in self.names]

    def charged(self, obj: JSONObject) -> ResourceList:
        """What admission charged for the object: its usage (only pods stop counting)."""
        return self.usage(obj)

    def usage(self, obj: JSONObject) -> ResourceList:
        return {name: Quantity.from_int(1) for name in self.names}
