"""What quota needs to know about one kind of object (quota.Evaluator, minus listing)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from gatekeeper.admission.quota.resources import ResourceList
from gatekeeper.admission.quota.scopes import ScopeRequirement
from gatekeeper.admission.request import AdmissionRequest

JSONObject = dict[str, Any]


class Evaluator(Protocol):
    def handles(self, request: AdmissionRequest) -> bool:
        """Whether a CREATE/UPDATE is charged (Evaluator.Handles); a DELETE never is."""
        ...

    def matching_resources(self, names: Iterable[str]) -> list[str]:
        """The quota resource names among `names` that this evaluator measures."""
        ...

    def matches_scope(self, requirement: ScopeRequirement, obj: JSONObject) -> bool: ...

    def constraints(self, required: Iterable[str], obj: JSONObject) -> str | None:
        """What the object must declare for a quota on `required` (the error text), or None."""
        ...

    def usage(self, obj: JSONObject) -> ResourceList: ...

    def charged(self, obj: JSONObject) -> ResourceList:
        """What admission charged for the object over its life: what a DELETE gives back."""
        ...


class NoScopes:
    """No scope matches the object: a scoped quota never applies to it (MatchesNoScopeFunc)."""

    def matches_scope(self, requirement: ScopeRequirement, obj: JSONObject) -> bool:
        return False

    def constraints(self, required: Iterable[str], obj: JSONObject) -> str | None:
        return None


def object_count_name(group: str, resource: str) -> str:
    """count/<resource>[.<group>] (generic.ObjectCountQuotaResourceNameFor)."""
    return f"count/{resource}.{group}" if group else f"count/{resource}"
