"""LimitRanger: default container resources from LimitRanges, then enforce their min/max/ratio.

Kubernetes' plugin/pkg/admission/limitranger (the newest, exact-Quantity, resize-aware version):
* handles Pod CREATE, Pod UPDATE on `resize`, PersistentVolumeClaim CREATE/UPDATE, never a
  subresource otherwise, and nothing whose old object is being deleted;
* `admit` (pods only) adds each LimitRange's Container defaults that a container lacks and
  records them in the `kubernetes.io/limit-ranger` annotation;
* `validate` checks every LimitRange of the namespace in turn; the first one with violations
  refuses the request with all of its (de-duplicated) messages.
Each rule is a small pure function over plain values, as in Kubernetes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from gatekeeper.admission.errors import (
    AdmissionDenied,
    bad_request,
    forbidden,
    internal,
    object_name,
    qualified_resource,
)
from gatekeeper.admission.patch import Patch, Path
from gatekeeper.admission.plugin import DEFAULT_OPTIONS, PluginOptions, Warnings
from gatekeeper.admission.podresources import (
    PodLevel,
    PodResourceError,
    ResourceList,
    containers,
    init_containers,
    pod_totals,
    resource_list,
)
from gatekeeper.admission.request import CREATE, UPDATE, AdmissionRequest, JSONObject
from gatekeeper.admission.state import LIMIT_RANGES, Store, StoreError
from gatekeeper.errors import InvalidInput
from gatekeeper.k8s.quantity import Quantity, exceeds_ratio, ratio_string

LIMIT_RANGER_ANNOTATION = "kubernetes.io/limit-ranger"

CONTAINER = "Container"
POD = "Pod"
PERSISTENT_VOLUME_CLAIM = "PersistentVolumeClaim"

PODS = "pods"
PERSISTENT_VOLUME_CLAIMS = "persistentvolumeclaims"
RESIZE = "resize"


class LimitRangeError(InvalidInput):
    """A stored LimitRange that cannot be read; the message names the object and the field."""


@dataclass(frozen=True, slots=True)
class LimitRangeItem:
    """One entry of a LimitRange's spec.limits, quantities parsed."""

    type: str
    min: ResourceList
    max: ResourceList
    default: ResourceList
    default_request: ResourceList
    max_limit_request_ratio: ResourceList


def limit_range_items(limit_range: Mapping[str, Any]) -> list[LimitRangeItem]:
    metadata = limit_range.get("metadata") or {}
    where = f"limitrange {metadata.get('namespace', '')}/{metadata.get('name', '')}"
    raw_items = (limit_range.get("spec") or {}).get("limits") or []
    if not isinstance(raw_items, list):
        raise LimitRangeError(f"{where}: spec.limits: expected a list")
    items = []
    for i, raw in enumerate(raw_items):
        path = f"spec.limits[{i}]"
        if not isinstance(raw, Mapping):
            raise LimitRangeError(f"{where}: {path}: expected an object")
        try:
            items.append(
                LimitRangeItem(
                    type=str(raw.get("type") or ""),
                    min=resource_list(raw.get("min"), f"{path}.min"),
                    max=resource_list(raw.get("max"), f"{path}.max"),
                    default=resource_list(raw.get("default"), f"{path}.default"),
                    default_request=resource_list(raw.get("defaultRequest"), f"{path}.defaultRequest"),
                    max_limit_request_ratio=resource_list(
                        raw.get("maxLimitRequestRatio"), f"{path}.maxLimitRequestRatio"
                    ),
                )
            )
        except PodResourceError as err:
            raise LimitRangeError(f"{where}: {err}") from None
    return items


# -- the rules: plain values in, an error message or None out -----------------------------------


def min_constraint(
    limit_type: str, resource: str, enforced: Quantity, requests: ResourceList, limits: ResourceList
) -> str | None:
    request, limit = requests.get(resource), limits.get(resource)
    if request is None:
        return f"minimum {resource} usage per {limit_type} is {enforced}.  No request is specified"
    if enforced > request:
        return f"minimum {resource} usage per {limit_type} is {enforced}, but request is {request}"
    if limit is not None and enforced > limit:
        return f"minimum {resource} usage per {limit_type} is {enforced}, but limit is {limit}"
    return None


def max_constraint(
    limit_type: str, resource: str, enforced: Quantity, requests: ResourceList, limits: ResourceList
) -> str | None:
    request, limit = requests.get(resource), limits.get(resource)
    if limit is None:
        return f"maximum {resource} usage per {limit_type} is {enforced}.  No limit is specified"
    if limit > enforced:
        return f"maximum {resource} usage per {limit_type} is {enforced}, but limit is {limit}"
    if request is not None and request > enforced:
        return f"maximum {resource} usage per {limit_type} is {enforced}, but request is {request}"
    return None


def max_request_constraint(
    limit_type: str, resource: str, enforced: Quantity, requests: ResourceList
) -> str | None:
    """The max rule for kinds whose limits are not user input (PersistentVolumeClaim)."""
    request = requests.get(resource)
    if request is None:
        return f"maximum {resource} usage per {limit_type} is {enforced}.  No request is specified"
    if request > enforced:
        return f"maximum {resource} usage per {limit_type} is {enforced}, but request is {request}"
    return None


def limit_request_ratio_constraint(
    limit_type: str, resource: str, enforced: Quantity, requests: ResourceList, limits: ResourceList
) -> str | None:
    request, limit = requests.get(resource), limits.get(resource)
    prefix = f"{resource} max limit to request ratio per {limit_type} is {enforced}"
    if request is None or request.is_zero():
        return f"{prefix}, but no request is specified or request is 0"
    if limit is None or limit.is_zero():
        return f"{prefix}, but no limit is specified or limit is 0"
    if exceeds_ratio(limit, request, enforced):
        return f"{prefix}, but provided ratio is {ratio_string(limit, request)}"
    return None


def aggregate(errors: list[str]) -> str | None:
    """utilerrors.NewAggregate(...).Error(): identical messages collapse; several print as [a, b]."""
    unique = list(dict.fromkeys(errors))
    if not unique:
        return None
    return unique[0] if len(unique) == 1 else "[" + ", ".join(unique) + "]"


def resource_unchanged(
    resource: str,
    requests: ResourceList,
    old_requests: ResourceList,
    limits: ResourceList,
    old_limits: ResourceList,
) -> bool:
    """Both the request and the limit are absent from both, or present in both and equal."""
    return requests.get(resource) == old_requests.get(resource) and limits.get(resource) == old_limits.get(
        resource
    )


# -- defaulting (pods) --------------------------------------------------------------------------


def default_requirements(items: list[LimitRangeItem]) -> tuple[ResourceList, ResourceList]:
    """(requests, limits) defaults from the Container items; a later item wins per resource."""
    requests: ResourceList = {}
    limits: ResourceList = {}
    for item in items:
        if item.type == CONTAINER:
            requests.update(item.default_request)
            limits.update(item.default)
    return requests, limits


def merge_container_resources(
    container: JSONObject,
    at: Path,
    defaults: tuple[ResourceList, ResourceList],
    label: str,
    patch: Patch,
) -> list[str]:
    """Add the (requests, limits) defaults the container at `at` lacks; the annotation parts naming
    what was set."""
    default_requests, default_limits = defaults
    set_limits = _fill_absent(container, at, "limits", default_limits, patch)
    set_requests = _fill_absent(container, at, "requests", default_requests, patch)
    parts = []
    if set_requests:
        parts.append(f"{', '.join(sorted(set_requests))} request for {label} {container.get('name', '')}")
    if set_limits:
        parts.append(f"{', '.join(sorted(set_limits))} limit for {label} {container.get('name', '')}")
    return parts


def _fill_absent(
    container: JSONObject, at: Path, field: str, defaults: ResourceList, patch: Patch
) -> list[str]:
    resources = container.get("resources")
    values = resources.get(field) if isinstance(resources, dict) else None
    present = values if isinstance(values, dict) else {}
    missing = {name: str(quantity) for name, quantity in defaults.items() if name not in present}
    if not missing:
        return []
    if isinstance(values, dict):
        for name, value in missing.items():
            patch.set(values, (*at, "resources", field), name, value)
    else:  # resources (or its field) absent or null: created with the values, in one operation
        patch.put(container, at, ("resources", field), missing)
    return list(missing)


def merge_pod_resource_requirements(
    pod: JSONObject, default_requests: ResourceList, default_limits: ResourceList, patch: Patch | None = None
) -> None:
    """Default the pod's containers in place; `patch` records the changes (a pod being admitted)."""
    patch = patch if patch is not None else Patch()
    parts: list[str] = []
    spec = pod.get("spec")
    if not isinstance(spec, dict):
        return  # nothing to default; validation names what is malformed
    for field, label in (("containers", "container"), ("initContainers", "init container")):
        containers = spec.get(field)
        for index, container in enumerate(containers if isinstance(containers, list) else []):
            if isinstance(container, dict):
                at = ("spec", field, index)
                parts.extend(
                    merge_container_resources(container, at, (default_requests, default_limits), label, patch)
                )
    if parts:
        value = "LimitRanger plugin set: " + "; ".join(parts)
        # metadata: null decodes to an empty ObjectMeta in Go
        patch.put(pod, (), ("metadata", "annotations", LIMIT_RANGER_ANNOTATION), value)


# -- validation ---------------------------------------------------------------------------------

Rule = Callable[[str, str, Quantity, ResourceList, ResourceList], "str | None"]


def _item_rules(item: LimitRangeItem) -> Iterator[tuple[Rule, str, Quantity]]:
    for name, enforced in item.min.items():
        yield min_constraint, name, enforced
    for name, enforced in item.max.items():
        yield max_constraint, name, enforced
    for name, enforced in item.max_limit_request_ratio.items():
        yield limit_request_ratio_constraint, name, enforced


def _check(
    item: LimitRangeItem,
    requests: ResourceList,
    limits: ResourceList,
    old: tuple[ResourceList, ResourceList] | None,
) -> list[str]:
    """Every rule of one item on one set of requests/limits; with `old`, unchanged values are skipped."""
    errors = []
    for rule, name, enforced in _item_rules(item):
        if old is not None and resource_unchanged(name, requests, old[0], limits, old[1]):
            continue
        error = rule(item.type, name, enforced, requests, limits)
        if error is not None:
            errors.append(error)
    return errors


def validate_pod(items: list[LimitRangeItem], pod: JSONObject, old_pod: JSONObject | None) -> list[str]:
    """PodValidateLimitFunc: Container items per container and init container, Pod items on totals."""
    errors: list[str] = []
    for item in items:
        if item.type == CONTAINER:
            for listing in (containers, init_containers):
                old_by_name = {c.name: (c.requests, c.limits) for c in listing(old_pod)} if old_pod else {}
                for container in listing(pod):
                    errors += _check(
                        item, container.requests, container.limits, old_by_name.get(container.name)
                    )
        elif item.type == POD:
            old = _pod_totals(old_pod) if old_pod is not None else None
            requests, limits = _pod_totals(pod)
            errors += _check(item, requests, limits, old)
    return errors


def _pod_totals(pod: JSONObject) -> tuple[ResourceList, ResourceList]:
    # LimitRanger sees spec values only, pod-level cpu/memory, and no overhead.
    return pod_totals(pod, pod_level=PodLevel.CPU_MEMORY)


def validate_pvc(items: list[LimitRangeItem], pvc: JSONObject, old_pvc: JSONObject | None) -> list[str]:
    """PersistentVolumeClaimValidateLimitFunc: spec.resources.requests only; an unchanged request passes."""
    requests = _pvc_requests(pvc)
    old_requests = _pvc_requests(old_pvc) if old_pvc is not None else {}
    errors: list[str] = []
    for item in items:
        if item.type != PERSISTENT_VOLUME_CLAIM:
            continue
        found = [
            *(
                min_constraint(item.type, name, enforced, requests, {})
                for name, enforced in item.min.items()
                if not _unchanged_request(name, requests, old_requests)
            ),
            *(
                max_request_constraint(item.type, name, enforced, requests)
                for name, enforced in item.max.items()
                if not _unchanged_request(name, requests, old_requests)
            ),
        ]
        errors += [error for error in found if error is not None]
    return errors


def _pvc_requests(pvc: JSONObject) -> ResourceList:
    spec = pvc.get("spec") or {}
    if not isinstance(spec, Mapping):
        raise PodResourceError("spec: expected an object")
    resources = spec.get("resources") or {}
    if not isinstance(resources, Mapping):
        raise PodResourceError("spec.resources: expected an object")
    return resource_list(resources.get("requests"), "spec.resources.requests")


def _unchanged_request(name: str, requests: ResourceList, old_requests: ResourceList) -> bool:
    return name in requests and name in old_requests and requests[name] == old_requests[name]


# -- the plugin ---------------------------------------------------------------------------------


class LimitRanger:
    name: ClassVar[str] = "LimitRanger"

    def __init__(self, options: PluginOptions = DEFAULT_OPTIONS) -> None:
        pass  # nothing to set: this plugin reads only the request and the store

    def handles(self, request: AdmissionRequest) -> bool:
        """SupportsAttributes plus NewHandler(Create, Update)."""
        kind = request.kind
        if kind.group != "" or request.operation not in (CREATE, UPDATE):
            return False
        if kind.kind == "Pod" and request.sub_resource == RESIZE:
            return request.operation == UPDATE
        if request.sub_resource:
            return False
        if kind.kind == "Pod":
            return request.operation == CREATE  # containers are immutable: plain updates change nothing
        return kind.kind == PERSISTENT_VOLUME_CLAIM

    def admit(self, request: AdmissionRequest, obj: JSONObject, store: Store, patch: Patch) -> Warnings:
        if not _applies(request) or request.resource.resource != PODS:
            return None
        try:  # refuse a malformed pod before touching it
            containers(obj)
            init_containers(obj)
        except PodResourceError as err:
            raise _malformed(request, err) from None
        for items in _limit_ranges(request, store):
            merge_pod_resource_requirements(obj, *default_requirements(items), patch)
        return None

    def validate(self, request: AdmissionRequest, obj: JSONObject | None, store: Store) -> Warnings:
        if obj is None or not _applies(request):
            return None
        check = {PODS: validate_pod, PERSISTENT_VOLUME_CLAIMS: validate_pvc}.get(request.resource.resource)
        if check is None:
            return None
        for items in _limit_ranges(request, store):
            try:
                message = aggregate(check(items, obj, request.old_object))
            except PodResourceError as err:
                raise _malformed(request, err) from None
            if message is not None:
                raise forbidden(request, message)
        return None


def _applies(request: AdmissionRequest) -> bool:
    """False when the old object is being deleted: nothing to enforce on its way out."""
    old_metadata = (request.old_object or {}).get("metadata") or {}
    return not old_metadata.get("deletionTimestamp")


def _limit_ranges(request: AdmissionRequest, store: Store) -> list[list[LimitRangeItem]]:
    try:
        stored = store.list(LIMIT_RANGES, request.namespace)
    except StoreError:
        gvr = request.resource
        raise forbidden(
            request,
            f"unable to {request.operation} {gvr.group}/{gvr.version}, Resource={gvr.resource} at this time "
            "because there was an error enforcing limit ranges",
        ) from None
    try:
        return [limit_range_items(limit_range) for limit_range in stored]
    except LimitRangeError as err:
        raise internal(f"LimitRanger: {err}") from None


def _malformed(request: AdmissionRequest, err: PodResourceError) -> AdmissionDenied:
    return bad_request(f'{qualified_resource(request)} "{object_name(request)}" is invalid: {err}')
