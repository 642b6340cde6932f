"""Services: the count, load balancers and node ports (evaluator/core/services.go)."""

from __future__ import annotations

from collections.abc import Iterable

from gatekeeper.admission.quota.evaluators.base import JSONObject, NoScopes
from gatekeeper.admission.quota.resources import QuotaError, ResourceList
from gatekeeper.admission.request import CREATE, UPDATE, AdmissionRequest
from gatekeeper.k8s.quantity import Quantity

SERVICES = "services"
COUNT = "count/services"
LOAD_BALANCERS = "services.loadbalancers"
NODE_PORTS = "services.nodeports"
RESOURCES = (SERVICES, COUNT, LOAD_BALANCERS, NODE_PORTS)


class ServiceEvaluator(NoScopes):
    def handles(self, request: AdmissionRequest) -> bool:
        return request.operation in (CREATE, UPDATE)

    def matching_resources(self, names: Iterable[str]) -> list[str]:
        return [name for name in names if name in RESOURCES]

    def charged(self, obj: JSONObject) -> ResourceList:
        """What admission charged for the object: its usage (only pods stop counting)."""
        return self.usage(obj)

    def usage(self, obj: JSONObject) -> dict[str, Quantity]:
        spec = obj.get("spec") or {}
        if not isinstance(spec, dict):
            raise QuotaError("spec: expected an object")
        kind = spec.get("type") or "ClusterIP"
        return {
            SERVICES: Quantity.from_int(1),
            COUNT: Quantity.from_int(1),
            LOAD_BALANCERS: Quantity.from_int(1 if kind == "LoadBalancer" else 0),
            NODE_PORTS: Quantity.from_int(node_ports(kind, spec)),
        }


def node_ports(kind: str, spec: JSONObject) -> int:
    """NodePort: every port; LoadBalancer: every port, or only explicit nodePorts when allocation is off."""
    listed = spec.get("ports") or []
    if not isinstance(listed, list):
        raise QuotaError("spec.ports: expected an array")
    ports = [p for p in listed if isinstance(p, dict)]
    if kind == "NodePort":
        return len(ports)
    if kind != "LoadBalancer":
        return 0
    if spec.get("allocateLoadBalancerNodePorts") is False:
        return sum(1 for p in ports if p.get("nodePort"))
    return len(ports)
