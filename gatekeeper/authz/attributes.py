"""The attributes an authorizer decides on (Kubernetes' authorizer.Attributes, ABAC's subset)."""

from __future__ import annotations

from dataclasses import dataclass

READ_ONLY_VERBS = frozenset({"get", "list", "watch"})


@dataclass(frozen=True, slots=True)
class Attributes:
    user: str
    groups: tuple[str, ...]
    verb: str
    resource_request: bool
    namespace: str = ""
    api_group: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""
    path: str = ""

    @property
    def read_only(self) -> bool:
        # Exact and case-sensitive, as AttributesRecord.IsReadOnly: "GET" is not read-only.
        return self.verb in READ_ONLY_VERBS


@dataclass(frozen=True, slots=True)
class Decision:
    """allowed, or no opinion (denied=False), or an explicit deny; reason explains which."""

    allowed: bool
    reason: str
    denied: bool = False
