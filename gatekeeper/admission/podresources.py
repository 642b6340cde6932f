"""Pod resource totals, as Kubernetes computes them (component-helpers resource.PodRequests/PodLimits).

Shared by LimitRanger (Pod-type items) and ResourceQuota (pod usage). Pods arrive as plain JSON
objects; every quantity is parsed exactly, and a malformed one raises PodResourceError naming its
path (`spec.containers[0].resources.limits.cpu: ...`).

Totals: Σ containers, plus init containers by the sidecar rule of KEP-753 —
    total = max(Σ containers + Σ sidecars, max over init containers i of (own value + Σ sidecars before i))
where a sidecar is an init container with `restartPolicy: Always`. Then pod-level `spec.resources`
overrides the supported names, and pod overhead (`spec.overhead`) is added if asked for: to every
request, and to a limit only where that limit is present and non-zero.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from gatekeeper.errors import InvalidInput
from gatekeeper.k8s.quantity import Quantity, QuantityError, parse_json_quantity

ResourceList = dict[str, Quantity]
"""Resource name → quantity, e.g. {"cpu": 500m, "memory": 1Gi}; a missing key means "not set"."""

HUGEPAGES_PREFIX = "hugepages-"


class PodResourceError(InvalidInput):
    """A pod field that cannot be read as resources; the message starts with the field's path."""


class PodLevel(enum.Enum):
    """Which names of pod-level `spec.resources` (PodLevelResources) override the container totals."""

    OFF = "off"  # feature gate off: spec.resources is ignored
    CPU_MEMORY = "cpu-memory"  # LimitRanger
    CPU_MEMORY_HUGEPAGES = "cpu-memory-hugepages"  # ResourceQuota (component-helpers)

    def supports(self, name: str) -> bool:
        if self is PodLevel.OFF:
            return False
        if name in ("cpu", "memory"):
            return True
        return self is PodLevel.CPU_MEMORY_HUGEPAGES and name.startswith(HUGEPAGES_PREFIX)


@dataclass(frozen=True, slots=True)
class ContainerResources:
    """One container's requests and limits; `sidecar` is an init container with restartPolicy Always."""

    name: str
    requests: ResourceList
    limits: ResourceList
    sidecar: bool = False


# -- reading ------------------------------------------------------------------------------------


def resource_list(raw: object, path: str) -> ResourceList:
    """A ResourceList from JSON (a mapping of name → quantity; null/absent is empty)."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise PodResourceError(f"{path}: expected a map of resource name to quantity, got {_kind(raw)}")
    result: ResourceList = {}
    for name, value in raw.items():
        try:
            result[str(name)] = parse_json_quantity(value)
        except QuantityError as err:
            raise PodResourceError(f"{path}.{name}: {err}") from None
    return result


def containers(pod: Mapping[str, Any]) -> list[ContainerResources]:
    """spec.containers, in order."""
    return _container_list(pod, "containers")


def init_containers(pod: Mapping[str, Any]) -> list[ContainerResources]:
    """spec.initContainers, in order, with sidecars marked."""
    return _container_list(pod, "initContainers")


def _container_list(pod: Mapping[str, Any], field: str) -> list[ContainerResources]:
    raw = _mapping(pod.get("spec"), "spec").get(field)
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise PodResourceError(f"spec.{field}: expected a list, got {_kind(raw)}")
    return [
        _container(item, f"spec.{field}[{i}]", init=field == "initContainers") for i, item in enumerate(raw)
    ]


def _container(raw: object, path: str, *, init: bool) -> ContainerResources:
    container = _mapping(raw, path)
    resources = _mapping(container.get("resources"), f"{path}.resources")
    return ContainerResources(
        name=str(container.get("name") or ""),
        requests=resource_list(resources.get("requests"), f"{path}.resources.requests"),
        limits=resource_list(resources.get("limits"), f"{path}.resources.limits"),
        sidecar=init and container.get("restartPolicy") == "Always",
    )


# -- totals -------------------------------------------------------------------------------------


def pod_totals(
    pod: Mapping[str, Any],
    *,
    pod_level: PodLevel = PodLevel.CPU_MEMORY,
    include_overhead: bool = False,
    use_status_resources: bool = False,
) -> tuple[ResourceList, ResourceList]:
    """(requests, limits) of a pod, as resourcehelper.PodRequests and PodLimits total them; the
    containers are read once for both.

    LimitRanger: the defaults. ResourceQuota: pod_level=CPU_MEMORY_HUGEPAGES, include_overhead=True,
    use_status_resources=True (in-place resize: the larger of spec and status resources counts).
    A limit that no container sets is absent from the limits.
    """
    ctrs, inits = containers(pod), init_containers(pod)
    if use_status_resources:
        ctrs, inits = _with_status(pod, ctrs, inits)
    requests = _aggregate([c.requests for c in ctrs], [(c.requests, c.sidecar) for c in inits])
    limits = _aggregate([c.limits for c in ctrs], [(c.limits, c.sidecar) for c in inits])
    for totals, field in ((requests, "requests"), (limits, "limits")):
        for name, quantity in _pod_level_resources(pod, field).items():
            if pod_level.supports(name):
                totals[name] = quantity
    if include_overhead:
        overhead = resource_list(_spec(pod).get("overhead"), "spec.overhead")
        _add_into(requests, overhead)
        for name, quantity in overhead.items():
            if name in limits and not limits[name].is_zero():  # overhead never turns "unlimited" into a limit
                limits[name] = limits[name] + quantity
    return requests, limits


def _aggregate(regular: Iterable[ResourceList], init: Iterable[tuple[ResourceList, bool]]) -> ResourceList:
    """Σ regular + Σ sidecars, then the max with each init container's peak (own + sidecars before it)."""
    totals: ResourceList = {}
    for values in regular:
        _add_into(totals, values)
    sidecars: ResourceList = {}
    init_peak: ResourceList = {}
    for values, sidecar in init:
        if sidecar:
            _add_into(totals, values)
            _add_into(sidecars, values)
            running = dict(sidecars)
        else:
            running = dict(values)
            _add_into(running, sidecars)
        _max_into(init_peak, running)
    _max_into(totals, init_peak)
    return totals


def _add_into(totals: ResourceList, values: Mapping[str, Quantity]) -> None:
    for name, quantity in values.items():
        totals[name] = totals[name] + quantity if name in totals else quantity


def _max_into(totals: ResourceList, values: Mapping[str, Quantity]) -> None:
    for name, quantity in values.items():
        if name not in totals or quantity > totals[name]:
            totals[name] = quantity


# -- in-place resize: status resources ----------------------------------------------------------


def _with_status(
    pod: Mapping[str, Any], ctrs: list[ContainerResources], inits: list[ContainerResources]
) -> tuple[list[ContainerResources], list[ContainerResources]]:
    """Containers (and sidecars) with a reported status use max(spec, status, allocated) per name;
    when the resize is infeasible, only what the status reports (the spec will not be applied)."""
    status = _mapping(pod.get("status"), "status")
    infeasible = _resize_infeasible(status)
    reported: dict[str, Mapping[str, Any]] = {}
    for field in ("containerStatuses", "initContainerStatuses"):
        entries = status.get(field) or []
        if not isinstance(entries, list):
            raise PodResourceError(f"status.{field}: expected a list, got {_kind(entries)}")
        for i, entry in enumerate(entries):
            entry = _mapping(entry, f"status.{field}[{i}]")
            reported[str(entry.get("name") or "")] = entry
    updated = [_from_status(c, reported.get(c.name), infeasible) for c in ctrs]
    updated_inits = [_from_status(c, reported.get(c.name), infeasible) if c.sidecar else c for c in inits]
    return updated, updated_inits


def _from_status(
    container: ContainerResources, entry: Mapping[str, Any] | None, infeasible: bool
) -> ContainerResources:
    if entry is None or entry.get("resources") is None:
        return container
    path = f"status.containerStatuses[{container.name}]"
    reported = _mapping(entry.get("resources"), f"{path}.resources")
    status_requests = resource_list(reported.get("requests"), f"{path}.resources.requests")
    status_limits = resource_list(reported.get("limits"), f"{path}.resources.limits")
    allocated = resource_list(entry.get("allocatedResources"), f"{path}.allocatedResources")
    requests = {} if infeasible else dict(container.requests)
    _max_into(requests, status_requests)
    _max_into(requests, allocated)
    limits = {} if infeasible else dict(container.limits)
    _max_into(limits, status_limits)
    return ContainerResources(container.name, requests, limits, container.sidecar)


def _resize_infeasible(status: Mapping[str, Any]) -> bool:
    for condition in status.get("conditions") or []:
        if isinstance(condition, Mapping) and condition.get("type") == "PodResizePending":
            return condition.get("reason") == "Infeasible"
    return False


# -- helpers ------------------------------------------------------------------------------------


def _pod_level_resources(pod: Mapping[str, Any], field: str) -> ResourceList:
    resources = _mapping(_spec(pod).get("resources"), "spec.resources")
    return resource_list(resources.get(field), f"spec.resources.{field}")


def _spec(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    return _mapping(pod.get("spec"), "spec")


def _mapping(raw: object, path: str) -> Mapping[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise PodResourceError(f"{path}: expected an object, got {_kind(raw)}")
    return raw


def _kind(raw: object) -> str:
    return {list: "a list", str: "a string", bool: "a boolean"}.get(type(raw), type(raw).__name__)
