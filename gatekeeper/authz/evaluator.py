"""ABAC decisions: Kubernetes' matching rules, with rules indexed by subject and resource.

Kubernetes scans every rule for every request. Here the compiled rules are grouped by the user
they name, by the group they name, by the user and group both name, and the few that name
everyone; a request only looks at its own user's rules, its groups' and everyone's, so the cost
does not grow with rules for other subjects. A subject's resource rules are further indexed by
resource name (with its "*" rules merged into each name's list), its non-resource rules kept
apart, so a decision usually scans one or two rules. When several rules match, the earliest
line is reported, as Kubernetes' first-match scan would.
"""

from __future__ import annotations

import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from gatekeeper.authz.attributes import READ_ONLY_VERBS, Attributes, Decision
from gatekeeper.authz.policy import Policy, Rule, gc_paused, load_policy_file

NO_MATCH = "No policy matched."
NOWHERE = sys.maxsize  # a position after every rule


def subject_matches(rule: Rule, user: str, groups: Sequence[str]) -> bool:
    matched = False
    if rule.user:
        if rule.user != "*" and rule.user != user:
            return False
        matched = True
    if rule.group:
        if rule.group != "*" and rule.group not in groups:
            return False
        matched = True
    return matched  # a rule with neither user nor group matches nobody


def verb_matches(rule: Rule, verb: str) -> bool:
    return not rule.readonly or verb in READ_ONLY_VERBS


def resource_matches(rule: Rule, a: Attributes) -> bool:
    return (
        (rule.namespace == "*" or rule.namespace == a.namespace)
        and (rule.resource == "*" or rule.resource == a.resource)
        and (rule.api_group == "*" or rule.api_group == a.api_group)
    )


def non_resource_matches(rule: Rule, path: str) -> bool:
    return _path_matches(rule.path, path)


def _path_matches(pattern: str, path: str) -> bool:
    if pattern == "*" or pattern == path:
        return True
    return pattern.endswith("*") and path.startswith(pattern.rstrip("*"))


def matches(rule: Rule, a: Attributes) -> bool:
    """abac.go `matches`: subject, verb, and resource or non-resource attributes."""
    if not subject_matches(rule, a.user, a.groups) or not verb_matches(rule, a.verb):
        return False
    return resource_matches(rule, a) if a.resource_request else non_resource_matches(rule, a.path)


# A subject's rules for resource requests that name a resource (rules naming resource "" can
# only match a request for resource "", which takes the slow path): all of them in file order
# when few, else {resource: its rules and the "*" ones, in file order; None: the "*" ones}.
ResourceRules = tuple[Rule, ...] | dict[str | None, tuple[Rule, ...]]
# A non-resource rule as a scan reads it: (position, readonly, is a prefix, path or prefix, rule).
PathRule = tuple[int, bool, bool, str, Rule]
PathRules = tuple[PathRule, ...]
T = TypeVar("T")

SMALL = 2  # at most this many resource rules: scanned whole, no dict
MERGE_BUDGET = 4  # "*" rules are copied into each resource's list while that adds <= 4 per rule


def resource_rules(rules: Sequence[Rule]) -> ResourceRules:
    """A subject's rules for named resources: few, scanned whole; else indexed by resource."""
    if len(rules) <= SMALL:
        return tuple(rules)
    named: dict[str, list[Rule]] = defaultdict(list)
    star: list[Rule] = []
    for rule in rules:
        (star if rule.resource == "*" else named[rule.resource]).append(rule)
    if star and len(star) * len(named) > MERGE_BUDGET * len(rules):
        return {None: tuple(rules)}  # every lookup scans them all, checking the resource
    index: dict[str | None, tuple[Rule, ...]] = {None: tuple(star)}
    for resource, own in named.items():
        index[resource] = tuple(sorted([*own, *star], key=_position)) if star else tuple(own)
    return index


def path_rules(rules: Iterable[Rule]) -> PathRules:
    """_path_matches, decided ahead: "p*" (any number of trailing stars) is the prefix "p"."""
    return tuple(
        (rule.position, rule.readonly, True, rule.path.rstrip("*"), rule)
        if rule.path.endswith("*")
        else (rule.position, rule.readonly, False, rule.path, rule)
        for rule in rules
    )


def _position(rule: Rule) -> int:
    return rule.position


_BUILDERS: tuple[Callable[[list[Rule]], Any], ...] = (resource_rules, path_rules, tuple)


@dataclass(slots=True)
class Subjects(Generic[T]):
    """Something per subject: users, (user, group) pairs (rules naming both), groups, everyone."""

    users: dict[str, T] = field(default_factory=dict)
    pairs: dict[str, dict[str, T]] = field(default_factory=dict)
    groups: dict[str, T] = field(default_factory=dict)
    everyone: T | None = None

    def of(self, a: Attributes) -> Iterator[T]:
        """The values of the subjects `a` is: its user, its groups, then the rare ones."""
        if (value := self.users.get(a.user)) is not None:
            yield value
        for group in a.groups:
            if (value := self.groups.get(group)) is not None:
                yield value
        yield from self.rare(a)

    def rare(self, a: Attributes) -> Iterator[T]:
        """The values of the subjects few policies have: a user and group named together, everyone."""
        by_group = self.pairs.get(a.user)
        if by_group is not None:
            for group in a.groups:
                if (value := by_group.get(group)) is not None:
                    yield value
        if self.everyone is not None:
            yield self.everyone


Lists = dict[str, list[Rule]]
Sink = tuple[Lists, Lists, Lists]  # one kind of subject's rules: named resource, path, neither


def _sink() -> Sink:
    return defaultdict(list), defaultdict(list), defaultdict(list)


@dataclass(slots=True)
class Index:
    """Each subject's rules three ways: those naming a resource (for a request that names one),
    those naming a path (likewise), and the rest: what a blank request may also match."""

    resources: Subjects[ResourceRules]
    paths: Subjects[PathRules]
    rest: Subjects[tuple[Rule, ...]]


def build_index(rules: Iterable[Rule]) -> Index:
    """One pass over the rules, each under the one subject it names (a rule with neither user
    nor group matches nobody: nowhere), then each subject's lists built into its index."""
    users, groups, everyone = _sink(), _sink(), _sink()
    pairs: dict[str, Sink] = defaultdict(_sink)
    for rule in rules:
        user, group = rule.user, rule.group
        if user and user != "*":
            sink, name = (pairs[user], group) if group and group != "*" else (users, user)
        elif group and group != "*":
            sink, name = groups, group
        elif user or group:
            sink, name = everyone, ""
        else:
            continue
        if rule.resource:
            sink[0][name].append(rule)
        if rule.path:
            sink[1][name].append(rule)
        elif not rule.resource:
            sink[2][name].append(rule)
    return Index(*(_subjects(users, groups, everyone, pairs, way) for way in range(3)))


def _subjects(users: Sink, groups: Sink, everyone: Sink, pairs: dict[str, Sink], way: int) -> Subjects[Any]:
    """One of the index's three ways (0: resources, 1: paths, 2: the rest), built."""
    build = _BUILDERS[way]
    by_user = {user: _built(build, sink[way]) for user, sink in pairs.items()}
    return Subjects(
        _built(build, users[way]),
        {user: by_group for user, by_group in by_user.items() if by_group},
        _built(build, groups[way]),
        _built(build, everyone[way]).get(""),
    )


def _built(build: Callable[[list[Rule]], Any], lists: Lists) -> dict[str, Any]:
    return {name: build(own) for name, own in lists.items()}


def _earliest_resource_rule(
    rules: ResourceRules, a: Attributes, read_only: bool, limit: int
) -> Rule | None:
    """The first rule of `rules` before `limit` that matches resource request `a` (subject and
    verb class already known to fit)."""
    resource, namespace, api_group = a.resource, a.namespace, a.api_group
    if isinstance(rules, dict):
        rules = rules.get(resource) or rules[None]
    for rule in rules:
        _, _, readonly, rule_api_group, rule_resource, rule_namespace, _, _, position = rule
        if position >= limit:
            return None
        if (
            (readonly and not read_only)
            or (rule_resource != "*" and rule_resource != resource)
            or (rule_namespace != "*" and rule_namespace != namespace)
            or (rule_api_group != "*" and rule_api_group != api_group)
        ):
            continue
        return rule
    return None


def _earliest_path_rule(rules: PathRules, path: str, read_only: bool, limit: int) -> Rule | None:
    for position, readonly, prefix, text, rule in rules:
        if position >= limit:
            return None
        if readonly and not read_only:
            continue
        if path.startswith(text) if prefix else path == text:
            return rule
    return None


class Evaluator:
    """An immutable, indexed view of one policy; safe to share between threads."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        with gc_paused():  # a large policy's index is many acyclic objects that all stay alive
            index = build_index(policy.rules)
        self._resources, self._paths, self._rest = index.resources, index.paths, index.rest
        # The hot path reads these straight off self: each attribute hop costs a decision ~3 %.
        self._resource_users, self._resource_groups = self._resources.users, self._resources.groups
        self._path_users, self._path_groups = self._paths.users, self._paths.groups
        subjects = (self._resources, self._paths, self._rest)
        self._rare = any(bool(s.pairs) or s.everyone is not None for s in subjects)

    @property
    def rule_count(self) -> int:
        return len(self.policy.rules)

    def first_match(self, a: Attributes) -> Rule | None:
        """The earliest rule that allows `a`. A decision costs a few hundred nanoseconds, of which
        every Python call is a sizeable part: the user's and groups' scans are written out here."""
        if not a.resource_request:
            return self._path_match(a)
        resource, namespace, api_group = a.resource, a.namespace, a.api_group
        if not resource:
            return self._blank_match(a)
        read_only = a.verb in READ_ONLY_VERBS
        best: Rule | None = None
        limit = NOWHERE
        rules = self._resource_users.get(a.user)
        if rules is not None:
            if isinstance(rules, dict):
                rules = rules.get(resource) or rules[None]
            for rule in rules:
                _, _, readonly, rule_api_group, rule_resource, rule_namespace, _, _, position = rule
                if (
                    (readonly and not read_only)
                    or (rule_resource != "*" and rule_resource != resource)
                    or (rule_namespace != "*" and rule_namespace != namespace)
                    or (rule_api_group != "*" and rule_api_group != api_group)
                ):
                    continue
                best, limit = rule, position
                break
        by_group = self._resource_groups
        for group in a.groups:
            rules = by_group.get(group)
            if rules is not None:
                if isinstance(rules, dict):
                    rules = rules.get(resource) or rules[None]
                for rule in rules:
                    _, _, readonly, rule_api_group, rule_resource, rule_namespace, _, _, position = rule
                    if position >= limit:
                        break
                    if (
                        (readonly and not read_only)
                        or (rule_resource != "*" and rule_resource != resource)
                        or (rule_namespace != "*" and rule_namespace != namespace)
                        or (rule_api_group != "*" and rule_api_group != api_group)
                    ):
                        continue
                    best, limit = rule, position
                    break
        if self._rare:
            for rules in self._resources.rare(a):
                found = _earliest_resource_rule(rules, a, read_only, limit)
                if found is not None:
                    best, limit = found, found.position
        return best

    def _path_match(self, a: Attributes) -> Rule | None:
        path = a.path
        if not path:
            return self._blank_match(a)
        read_only = a.verb in READ_ONLY_VERBS
        best: Rule | None = None
        limit = NOWHERE
        rules = self._path_users.get(a.user)
        if rules is not None:
            for position, readonly, prefix, text, rule in rules:
                if (not readonly or read_only) and (path.startswith(text) if prefix else path == text):
                    best, limit = rule, position
                    break
        by_group = self._path_groups
        for group in a.groups:
            rules = by_group.get(group)
            if rules is not None:
                for position, readonly, prefix, text, rule in rules:
                    if position >= limit:
                        break
                    if (not readonly or read_only) and (path.startswith(text) if prefix else path == text):
                        best, limit = rule, position
                        break
        if self._rare:
            for rules in self._paths.rare(a):
                found = _earliest_path_rule(rules, path, read_only, limit)
                if found is not None:
                    best, limit = found, found.position
        return best

    def _blank_match(self, a: Attributes) -> Rule | None:
        """A request for resource "" or path "" (no API server sends one; the indexes are keyed for
        the others): every rule of the request's subjects, with Kubernetes' own matching."""
        candidates = [
            *(rule for rules in self._resources.of(a) for rule in _all_resource_rules(rules)),
            *(entry[-1] for rules in self._paths.of(a) for entry in rules),
            *(rule for rules in self._rest.of(a) for rule in rules),
        ]
        return min((rule for rule in candidates if matches(rule, a)), key=_position, default=None)

    def authorize(self, a: Attributes, deny_unmatched: bool = False) -> Decision:
        """Allowed by the earliest matching line, else no opinion; with `deny_unmatched` (for
        clusters where gatekeeper is the only authorizer) no match is an explicit denial."""
        rule = self.first_match(a)
        if rule is not None:
            return Decision(allowed=True, reason=rule.source)
        return Decision(allowed=False, reason=NO_MATCH, denied=deny_unmatched)


def _all_resource_rules(rules: ResourceRules) -> Iterable[Rule]:
    return (rule for own in rules.values() for rule in own) if isinstance(rules, dict) else rules


def linear_first_match(rules: Sequence[Rule], a: Attributes) -> Rule | None:
    """Kubernetes' own algorithm (PolicyList.Authorize): the baseline the index is measured against."""
    for rule in rules:
        if matches(rule, a):
            return rule
    return None


def load_evaluator(path: Path) -> Evaluator:
    return Evaluator(load_policy_file(path))


RELEASE_STEP = 5_000  # subjects or rules freed between pauses: a few milliseconds' work at most


def release_in_steps(holder: list[Evaluator], pause: Callable[[], None], patience: float = 5.0) -> None:
    """Free the evaluator `holder` holds (its only long-lived reference), a slice at a time.

    Dropped at once, a large evaluator is one chain of deallocations with the GIL held: a
    1,000,000-rule index took ~0.5 s, a stop of every request in the process. Here its rules are
    held apart first, so emptying the index frees only its own containers, then the rules go
    in slices, with `pause` (which lets other threads run) between slices. It waits (up to
    `patience` seconds) until no one else holds the evaluator: a request still deciding with it
    must not see it emptied."""
    evaluator = holder.pop()
    deadline = time.monotonic() + patience
    while sys.getrefcount(evaluator) > 2 and time.monotonic() < deadline:  # this name, the call
        pause()
    if sys.getrefcount(evaluator) > 2:
        return  # still in use: whoever holds it last frees it, as any object
    rules = list(evaluator.policy.rules)
    for subjects in (evaluator._resources, evaluator._paths, evaluator._rest):
        for by_name in (subjects.users, subjects.groups, subjects.pairs):
            while by_name:
                for _ in range(min(RELEASE_STEP, len(by_name))):
                    by_name.popitem()
                pause()
    del evaluator, subjects, by_name
    while rules:
        del rules[-RELEASE_STEP:]
        pause()
