"""Decide recorded requests under a new policy and a baseline; group what would change.

A change is keyed by direction, user, verb, target (group/resource/subresource, or the path) and
namespace; each key keeps its count and its first request as the example. Both sides' decisions
are cached per Attributes: real traffic repeats itself, and the answer depends on nothing else.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from gatekeeper.authz.attributes import Attributes, Decision

CACHE_LIMIT = 50_000  # distinct Attributes remembered per side before the cache starts over

Authorize = Callable[[Attributes], Decision]


class Direction(StrEnum):
    GAINED = "gained"
    LOST = "lost"


@dataclass(frozen=True, slots=True)
class ChangeKey:
    direction: Direction
    user: str
    impersonated_by: str  # who authenticated, when `user` was impersonated
    verb: str
    target: str
    namespace: str


@dataclass(frozen=True, slots=True)
class Seen:
    """Where a request was recorded."""

    source: str  # FILE:LINE of the event
    audit_id: str
    request_uri: str
    impersonated_by: str  # who authenticated, when the request impersonated its user; else ""


@dataclass(frozen=True, slots=True)
class Example:
    """One request of a group, and why each side decided as it did."""

    seen: Seen
    new_reason: str
    baseline_reason: str


@dataclass(slots=True)
class ChangeGroup:
    key: ChangeKey
    example: Example
    count: int = 0


@dataclass(slots=True)
class Replay:
    """Accumulates the decided requests; `groups` holds only the ones whose answer changes."""

    new: Authorize
    baseline: Authorize | None  # None: the decisions recorded in the events are the baseline
    decided: int = 0
    unchanged: int = 0
    groups: dict[ChangeKey, ChangeGroup] = field(default_factory=dict)
    _new_cache: dict[Attributes, Decision] = field(default_factory=dict)
    _baseline_cache: dict[Attributes, Decision] = field(default_factory=dict)

    def decide(self, a: Attributes, recorded: bool | None, seen: Seen) -> None:
        """Decide one request; `recorded` is the event's own decision (used without a baseline)."""
        new = _cached(self._new_cache, self.new, a)
        old = _baseline(self, a, recorded)
        self.decided += 1
        if new.allowed == old.allowed:
            self.unchanged += 1
            return
        key = ChangeKey(
            direction=Direction.GAINED if new.allowed else Direction.LOST,
            user=a.user,
            impersonated_by=seen.impersonated_by,
            verb=a.verb,
            target=target(a),
            namespace=a.namespace,
        )
        group = self.groups.get(key)
        if group is None:
            group = self.groups[key] = ChangeGroup(key, Example(seen, new.reason, old.reason))
        group.count += 1

    def totals(self) -> Counter[Direction]:
        counts: Counter[Direction] = Counter()
        for group in self.groups.values():
            counts[group.key.direction] += group.count
        return counts

    def ordered(self, direction: Direction) -> list[ChangeGroup]:
        """The groups of one direction, most requests first, then by user, verb and target."""
        chosen = [g for g in self.groups.values() if g.key.direction is direction]
        return sorted(chosen, key=lambda g: (-g.count, g.key.user, g.key.verb, g.key.target, g.key.namespace))


def target(a: Attributes) -> str:
    """group/resource/subresource as RBAC writes it (core group: resource alone), or the path."""
    if not a.resource_request:
        return a.path
    resource = f"{a.resource}/{a.subresource}" if a.subresource else a.resource
    return f"{a.api_group}/{resource}" if a.api_group else resource


RECORDED_ALLOW = Decision(allowed=True, reason="recorded: allow")
RECORDED_FORBID = Decision(allowed=False, reason="recorded: forbid")


def _baseline(replay: Replay, a: Attributes, recorded: bool | None) -> Decision:
    if replay.baseline is not None:
        return _cached(replay._baseline_cache, replay.baseline, a)
    if recorded is None:
        raise ValueError("a request without a recorded decision needs a baseline policy")
    return RECORDED_ALLOW if recorded else RECORDED_FORBID


def _cached(cache: dict[Attributes, Decision], authorize: Authorize, a: Attributes) -> Decision:
    decision = cache.get(a)
    if decision is None:
        if len(cache) >= CACHE_LIMIT:
            cache.clear()
        decision = cache[a] = authorize(a)
    return decision
