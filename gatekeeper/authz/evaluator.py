"""ABAC decisions: Kubernetes' matching rules, with rules indexed by subject.

Kubernetes scans every rule for every request. Here the compiled rules are bucketed by the user
they name, by the group they name, and the few that name everyone; a request only looks at its
own user's bucket, its groups' buckets and the everyone bucket, so the cost does not grow with
rules for other subjects. Within a bucket, resource rules are indexed by resource name. When
several rules match, the earliest line is reported, as Kubernetes' first-match scan would.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

from gatekeeper.authz.attributes import READ_ONLY_VERBS, Attributes, Decision
from gatekeeper.authz.policy import Policy, Rule, load_policy_file

NO_MATCH = "No policy matched."


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


# One rule as a bucket scans it: plain tuple fields unpack faster than attribute lookups.
# (position, readonly, required group or "", resource, namespace, api_group, path, rule)
Entry = tuple[int, bool, str, str, str, str, str, Rule]


def _entry(rule: Rule, check_groups: bool) -> Entry:
    required = rule.group if check_groups and rule.group not in ("", "*") else ""
    return (
        rule.position,
        rule.readonly,
        required,
        rule.resource,
        rule.namespace,
        rule.api_group,
        rule.path,
        rule,
    )


class Bucket:
    """The rules of one subject, in file order, split for quick lookup.

    A bucket already guarantees the subject: a user bucket's rules name that user, a group
    bucket's name that group (and a user that is "" or "*"), the everyone bucket's are "*". So
    only a user bucket rule that also names a group needs a subject check (its required group).
    Large buckets index resource rules by resource name; small ones are scanned whole.
    """

    SMALL = 8
    __slots__ = ("all_rules", "any_resource", "by_resource")

    def __init__(self, rules: Sequence[Rule], check_groups: bool = False) -> None:
        entries = [_entry(rule, check_groups) for rule in rules]
        self.all_rules: tuple[Entry, ...] = tuple(entries)
        self.by_resource: dict[str, tuple[Entry, ...]] | None = None
        self.any_resource: tuple[Entry, ...] = ()
        if len(entries) > self.SMALL:
            by_resource: dict[str, list[Entry]] = defaultdict(list)
            for entry in entries:
                by_resource[entry[3]].append(entry)
            self.any_resource = tuple(by_resource.pop("*", ()))
            self.by_resource = {k: tuple(v) for k, v in by_resource.items()}

    def scan(self, a: Attributes, read_only: bool, best: Rule | None) -> Rule | None:
        """The earliest rule here that matches `a`, if earlier than `best`; else `best`."""
        limit = best.position if best is not None else sys.maxsize
        resource_request = a.resource_request
        if resource_request and self.by_resource is not None:
            candidates: Iterable[tuple[Entry, ...]] = (
                self.by_resource.get(a.resource, ()),
                self.any_resource,
            )
        else:
            candidates = (self.all_rules,)
        for entries in candidates:
            for position, readonly, group, resource, namespace, api_group, path, rule in entries:
                if position >= limit:
                    break
                if (readonly and not read_only) or (group and group not in a.groups):
                    continue
                if resource_request:
                    if (
                        (resource != "*" and resource != a.resource)
                        or (namespace != "*" and namespace != a.namespace)
                        or (api_group != "*" and api_group != a.api_group)
                    ):
                        continue
                elif not _path_matches(path, a.path):
                    continue
                best, limit = rule, position
                break
        return best


class Evaluator:
    """An immutable, indexed view of one policy; safe to share between threads."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        by_user: dict[str, list[Rule]] = defaultdict(list)
        by_group: dict[str, list[Rule]] = defaultdict(list)
        everyone: list[Rule] = []
        for rule in policy.rules:
            if rule.user not in ("", "*"):
                by_user[rule.user].append(rule)
            elif rule.group not in ("", "*"):
                by_group[rule.group].append(rule)
            elif rule.user == "*" or rule.group == "*":
                everyone.append(rule)
            # a rule with neither user nor group can never match: it is not indexed
        self._by_user = {k: Bucket(v, check_groups=True) for k, v in by_user.items()}
        self._by_group = {k: Bucket(v) for k, v in by_group.items()}
        self._everyone = Bucket(everyone) if everyone else None

    @property
    def rule_count(self) -> int:
        return len(self.policy.rules)

    def first_match(self, a: Attributes) -> Rule | None:
        read_only = a.verb in READ_ONLY_VERBS
        best: Rule | None = None
        bucket = self._by_user.get(a.user)
        if bucket is not None:
            best = bucket.scan(a, read_only, best)
        by_group = self._by_group
        for group in a.groups:
            bucket = by_group.get(group)
            if bucket is not None:
                best = bucket.scan(a, read_only, best)
        if self._everyone is not None:
            best = self._everyone.scan(a, read_only, best)
        return best

    def authorize(self, a: Attributes, deny_unmatched: bool = False) -> Decision:
        """Allowed by the earliest matching line, else no opinion; with `deny_unmatched` (for
        clusters where gatekeeper is the only authorizer) no match is an explicit denial."""
        rule = self.first_match(a)
        if rule is not None:
            return Decision(allowed=True, reason=rule.source)
        return Decision(allowed=False, reason=NO_MATCH, denied=deny_unmatched)


def linear_first_match(rules: Sequence[Rule], a: Attributes) -> Rule | None:
    """Kubernetes' own algorithm (PolicyList.Authorize): the baseline the index is measured against."""
    for rule in rules:
        if matches(rule, a):
            return rule
    return None


def load_evaluator(path: Path) -> Evaluator:
    return Evaluator(load_policy_file(path))
