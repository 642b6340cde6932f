"""A concrete request one ABAC rule allows and no rule of another policy does, or proof there is none.

ABAC is a finite language: a rule constrains each attribute on its own (one value, every value
"*", or for paths a prefix), and a request is allowed when any rule matches it. Among the
requests a rule allows there is a least one, which every other rule that matches any of them
also matches:

- subject: the rule's own user and only its own group, or where it takes everyone, a user no
  rule names and no group;
- verb: a write (read-only rules cannot match it) unless the rule is read-only;
- namespace, resource, API group: the rule's own value, or where it takes "*", a value no rule
  names (then only other "*" rules match it);
- path: the rule's own; for a prefix, the prefix followed by text that starts with a character
  no pattern holds (then only "*" and the prefixes of the rule's own prefix match it); for "*",
  that text alone.

So the rule grants something the other policy does not exactly when the other policy does not
allow this least request, which is then the witness. Resource and non-resource requests are
separate regions of a rule; each has its least request.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from gatekeeper.authz.attributes import Attributes
from gatekeeper.authz.evaluator import Evaluator
from gatekeeper.authz.policy import Policy, Rule

FRESH = "other"  # the stem of values no rule names: other-namespace, other-user, /~other


class Witnesses:
    """Witnesses against one policy for any number of rules: the policy indexed once (the
    evaluator's index, not a scan of every rule per rule), the values no rule names chosen once
    over both sides."""

    def __init__(self, others: Sequence[Rule], also: Sequence[Rule] = ()) -> None:
        every = (*others, *also)
        self._others = Evaluator(Policy("other", tuple(others), 0, ""))
        self._user = fresh({r.user for r in every}, "user")
        self._namespace = fresh({r.namespace for r in every}, "namespace")
        self._api_group = fresh({r.api_group for r in every}, "api-group")
        self._resource = fresh({r.resource for r in every}, "resource")
        self._tail = _fresh_tail(r.path for r in every)

    def of(self, rule: Rule) -> Attributes | None:
        """A request `rule` allows that no rule of the other policy allows; None when there is none.

        A resource request with a resource is preferred, then a non-resource request, then the
        resource request with no resource that a path-only rule also matches (as in Kubernetes).
        """
        if not rule.user and not rule.group:
            return None
        candidates = (self._least_resource_request(rule), *self._path_requests(rule))
        found = [a for a in candidates if self._others.first_match(a) is None]
        found.sort(key=lambda a: not (a.resource_request and a.resource))
        return found[0] if found else None

    def _least_subject(self, rule: Rule) -> tuple[str, tuple[str, ...]]:
        user = rule.user if rule.user not in ("", "*") else self._user
        groups = (rule.group,) if rule.group not in ("", "*") else ()
        return user, groups

    def _least_resource_request(self, rule: Rule) -> Attributes:
        user, groups = self._least_subject(rule)
        return Attributes(
            user=user,
            groups=groups,
            verb=_least_verb(rule),
            resource_request=True,
            namespace=self._namespace if rule.namespace == "*" else rule.namespace,
            api_group=self._api_group if rule.api_group == "*" else rule.api_group,
            resource=self._resource if rule.resource == "*" else rule.resource,
        )

    def _path_requests(self, rule: Rule) -> list[Attributes]:
        """The least non-resource request; for a "*" rule, first one whose path starts with "/",
        as every path kube-apiserver authorizes does (the least, with no "/", only a review can
        send)."""
        user, groups = self._least_subject(rule)
        paths = [rule.path]
        if rule.path == "*" or rule.path.endswith("*"):
            prefix = rule.path.rstrip("*")
            paths = [prefix + self._tail] if prefix else ["/" + self._tail, self._tail]
        verb = _least_verb(rule)
        return [Attributes(user, groups, verb, resource_request=False, path=p) for p in paths]


def witness(rule: Rule, others: Sequence[Rule]) -> Attributes | None:
    """`Witnesses(others).of(rule)`, for one rule."""
    return Witnesses(others, (rule,)).of(rule)


def _least_verb(rule: Rule) -> str:
    return "get" if rule.readonly else "create"


def _fresh_tail(patterns: Iterable[str]) -> str:
    """Text that starts with a character no pattern holds, so that a prefix followed by it
    reaches no longer prefix and equals no exact path."""
    used = set("".join(patterns))
    for char in "~-_.0123456789abcdefghijklmnopqrstuvwxyz" + "".join(chr(c) for c in range(0x100, 0x10000)):
        if char not in used:
            return f"{char}{FRESH}"
    raise AssertionError("unreachable: the patterns hold every character")


def fresh(taken: set[str], what: str) -> str:
    """A value of this kind that no rule names: other-namespace, other-user, ..."""
    base = f"{FRESH}-{what}"
    candidate, n = base, 1
    while candidate in taken:
        n += 1
        candidate = f"{base}-{n}"
    return candidate
