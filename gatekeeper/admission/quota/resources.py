"""Resource lists (name -> Quantity) and the arithmetic quota does on them (quota/v1/resources.go)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from gatekeeper.admission.podresources import PodResourceError, resource_list
from gatekeeper.errors import InvalidInput
from gatekeeper.k8s.quantity import ZERO, Quantity, parse_quantity

ResourceList = dict[str, Quantity]


class QuotaError(InvalidInput):
    """An object quota reads is malformed; the message says where and what was expected."""


def parse_list(value: object, where: str) -> ResourceList:
    """A JSON map of quantities ({"cpu": "1", "pods": 3}); QuotaError names the bad entry."""
    try:
        return resource_list(value, where)
    except PodResourceError as exc:
        raise QuotaError(str(exc)) from None


NEGATIVE = "must be greater than or equal to 0"  # Kubernetes' validation of a quota's quantities


def parse_non_negative(value: object, where: str) -> ResourceList:
    """parse_list, refusing a negative quantity as the API server's validation does."""
    resources = parse_list(value, where)
    negative = negative_names(resources)
    if negative:
        raise QuotaError(f"{where}.{negative[0]}: {NEGATIVE}")
    return resources


def to_strings(resources: Mapping[str, Quantity]) -> dict[str, str]:
    """Canonical text of every quantity, as the ledger and status.used hold them."""
    return {name: str(quantity) for name, quantity in sorted(resources.items())}


def from_strings(resources: Mapping[str, str]) -> ResourceList:
    """The inverse of to_strings, for ledger rows (always canonical, so always parseable)."""
    return {name: parse_quantity(text) for name, text in resources.items()}


def add(a: Mapping[str, Quantity], b: Mapping[str, Quantity]) -> ResourceList:
    """quota.Add: every name of either list; a name in both is summed."""
    result = dict(a)
    for name, quantity in b.items():
        result[name] = result[name] + quantity if name in result else quantity
    return result


def subtract_non_negative(a: Mapping[str, Quantity], b: Mapping[str, Quantity]) -> ResourceList:
    """quota.SubtractWithNonNegativeResult: a - b per name of a, never below zero."""
    result: ResourceList = {}
    for name, quantity in a.items():
        difference = quantity - b[name] if name in b else quantity
        result[name] = difference if difference.sign() > 0 else Quantity(0, quantity.format)
    return result


def mask(resources: Mapping[str, Quantity], names: Iterable[str]) -> ResourceList:
    """quota.Mask: only the entries whose name is in `names`."""
    wanted = set(names)
    return {name: quantity for name, quantity in resources.items() if name in wanted}


def non_zero(resources: Mapping[str, Quantity]) -> ResourceList:
    return {name: quantity for name, quantity in resources.items() if not quantity.is_zero()}


def negative_names(resources: Mapping[str, Quantity]) -> list[str]:
    return sorted(name for name, quantity in resources.items() if quantity.sign() < 0)


def exceeded_names(new_used: Mapping[str, Quantity], hard: Mapping[str, Quantity]) -> list[str]:
    """quota.LessThanOrEqual's failures: names of new_used above their hard (equality is allowed)."""
    return sorted(name for name, quantity in new_used.items() if name in hard and quantity > hard[name])


def pretty(resources: Mapping[str, Quantity]) -> str:
    """quota's prettyPrint: "cpu=1,memory=1Gi", names sorted, quantities canonical."""
    return ",".join(f"{name}={quantity}" for name, quantity in sorted(resources.items()))


def get(resources: Mapping[str, Quantity], name: str) -> Quantity:
    return resources.get(name, ZERO)
