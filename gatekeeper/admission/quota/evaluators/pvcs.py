"""PersistentVolumeClaims: the count and requested storage, overall and per storage class; the
VolumeAttributesClass scope."""

from __future__ import annotations

from collections.abc import Iterable

from gatekeeper.admission.quota.evaluators.base import JSONObject, NoScopes
from gatekeeper.admission.quota.resources import QuotaError, ResourceList
from gatekeeper.admission.quota.scopes import ScopeRequirement, claim_matches
from gatekeeper.admission.request import CREATE, UPDATE, AdmissionRequest
from gatekeeper.k8s.quantity import NANOS_PER_UNIT, Quantity, QuantityError, parse_json_quantity

CLAIMS = "persistentvolumeclaims"
COUNT = "count/persistentvolumeclaims"
STORAGE = "requests.storage"
RESOURCES = (CLAIMS, COUNT, STORAGE)
STORAGE_CLASS_SUFFIX = ".storageclass.storage.k8s.io/"
BETA_STORAGE_CLASS_ANNOTATION = "volume.beta.kubernetes.io/storage-class"


class PersistentVolumeClaimEvaluator(NoScopes):
    def handles(self, request: AdmissionRequest) -> bool:
        return request.operation in (CREATE, UPDATE)

    def matching_resources(self, names: Iterable[str]) -> list[str]:
        return [name for name in names if name in RESOURCES or _per_class(name)]

    def matches_scope(self, requirement: ScopeRequirement, obj: JSONObject) -> bool:
        return claim_matches(requirement, obj)

    def charged(self, obj: JSONObject) -> ResourceList:
        """What admission charged for the object: its usage (only pods stop counting)."""
        return self.usage(obj)

    def usage(self, obj: JSONObject) -> ResourceList:
        one = Quantity.from_int(1)
        result: ResourceList = {CLAIMS: one, COUNT: one}
        storage_class = claim_class(obj)
        if storage_class:
            result[f"{storage_class}{STORAGE_CLASS_SUFFIX}{CLAIMS}"] = one
        storage = requested_storage(obj)
        if storage is not None:
            result[STORAGE] = storage
            if storage_class:
                result[f"{storage_class}{STORAGE_CLASS_SUFFIX}{STORAGE}"] = storage
        return result


def _per_class(name: str) -> bool:
    _, found, tail = name.partition(STORAGE_CLASS_SUFFIX)
    return bool(found) and tail in (CLAIMS, STORAGE)


def claim_class(obj: JSONObject) -> str:
    """The beta annotation wins over spec.storageClassName (storagehelpers.GetPersistentVolumeClaimClass)."""
    annotations = _mapping(_mapping(obj, "metadata", ""), "annotations", "metadata.")
    if BETA_STORAGE_CLASS_ANNOTATION in annotations:
        return str(annotations[BETA_STORAGE_CLASS_ANNOTATION] or "")
    return str(_mapping(obj, "spec", "").get("storageClassName") or "")


def requested_storage(obj: JSONObject) -> Quantity | None:
    """spec.resources.requests.storage, at least status.allocatedResources.storage, in whole bytes."""
    resources = _mapping(_mapping(obj, "spec", ""), "resources", "spec.")
    request = _storage(resources, "requests", "spec.resources")
    allocated = _storage(_mapping(obj, "status", ""), "allocatedResources", "status")
    if request is None:
        return None
    largest = allocated if allocated is not None and allocated > request else request
    return round_up_to_bytes(largest)


def round_up_to_bytes(quantity: Quantity) -> Quantity:
    whole = -(-quantity.nanos // NANOS_PER_UNIT)
    return Quantity(whole * NANOS_PER_UNIT, quantity.format)


def _mapping(parent: JSONObject, field: str, where: str) -> JSONObject:
    """parent[field] as an object ({} when absent or null); QuotaError naming the field otherwise."""
    value = parent.get(field)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise QuotaError(f"{where}{field}: expected an object")
    return value


def _storage(parent: JSONObject, field: str, where: str) -> Quantity | None:
    value = _mapping(parent, field, f"{where}.").get("storage")
    if value is None:
        return None
    try:
        return parse_json_quantity(value)
    except QuantityError as exc:
        raise QuotaError(f"{where}.{field}.storage: {exc}") from None
