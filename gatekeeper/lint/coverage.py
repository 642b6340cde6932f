"""Does one ABAC rule grant everything another one grants? Shadowing, diffs and --explain use it.

`covers(b, a)` is true when every request `a` allows, `b` allows too (Kubernetes' matching, see
gatekeeper/authz/evaluator.py). `RuleIndex` finds the rules that may cover a rule without
comparing all pairs: by the subject they constrain, the resource and the namespace they name.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence

from gatekeeper.authz.policy import Rule

Key = tuple[str | None, str | None, str, str]


def grant(rule: Rule) -> tuple[str, str, bool, str, str, str, str]:
    """What a rule grants, without where it was written."""
    return (rule.user, rule.group, rule.readonly, rule.api_group, rule.resource, rule.namespace, rule.path)


def matches_nobody(rule: Rule) -> bool:
    return not rule.user and not rule.group


def _field_covers(b: str, a: str) -> bool:
    return b == "*" or b == a


def path_covers(b: str, a: str) -> bool:
    """Every request path pattern `a` matches, pattern `b` matches."""
    if b == "*" or b == a:
        return True
    if a == "*":
        return False
    b_prefix = b.rstrip("*") if b.endswith("*") else None
    if a.endswith("*"):
        return b_prefix is not None and a.rstrip("*").startswith(b_prefix)
    return b_prefix is not None and a.startswith(b_prefix)


def subject_covers(b: Rule, a: Rule) -> bool:
    if matches_nobody(b):
        return False
    if b.user not in ("", "*") and b.user != a.user:
        return False
    return b.group in ("", "*") or b.group == a.group


def covers(b: Rule, a: Rule) -> bool:
    """b allows every request a allows (resource and non-resource requests alike)."""
    return (
        subject_covers(b, a)
        and (a.readonly or not b.readonly)
        and _field_covers(b.namespace, a.namespace)
        and _field_covers(b.resource, a.resource)
        and _field_covers(b.api_group, a.api_group)
        and path_covers(b.path, a.path)
    )


def _subject_key(rule: Rule) -> tuple[str | None, str | None]:
    user = rule.user if rule.user not in ("", "*") else None
    group = rule.group if rule.group not in ("", "*") else None
    return user, group


class RuleIndex:
    """Rules bucketed by subject (user, group), then by (resource, namespace), so the rules that
    may cover a rule are found by a handful of lookups."""

    def __init__(self, rules: Iterable[Rule]) -> None:
        self._by_subject: dict[tuple[str | None, str | None], dict[tuple[str, str], list[Rule]]] = {}
        for rule in rules:
            if not matches_nobody(rule):
                scope = self._by_subject.setdefault(_subject_key(rule), defaultdict(list))
                scope[(rule.resource, rule.namespace)].append(rule)

    def candidates(self, a: Rule) -> Iterator[Rule]:
        """Every indexed rule that could cover `a` (a superset; check with covers())."""
        user, group = _subject_key(a)
        resources = (a.resource, "*") if a.resource != "*" else ("*",)
        namespaces = (a.namespace, "*") if a.namespace != "*" else ("*",)
        for subject in {(user, group), (user, None), (None, group), (None, None)}:
            scope = self._by_subject.get(subject)
            if scope is None:
                continue
            for resource in resources:
                for namespace in namespaces:
                    found = scope.get((resource, namespace))
                    if found:
                        yield from found

    def first_coverer(self, a: Rule, exclude_same_grant: bool = True) -> Rule | None:
        """The earliest other rule that grants everything `a` grants, if any."""
        best: Rule | None = None
        for b in self.candidates(a):
            if b is a or (exclude_same_grant and grant(b) == grant(a)):
                continue
            if covers(b, a) and (best is None or b.position < best.position):
                best = b
        return best


def shadowed(rules: Sequence[Rule]) -> Iterator[tuple[Rule, Rule]]:
    """(rule, an earlier-or-other rule that already grants all of it), for each shadowed rule."""
    index = RuleIndex(rules)
    for rule in rules:
        if matches_nobody(rule):
            continue
        coverer = index.first_coverer(rule)
        if coverer is not None:
            yield rule, coverer
