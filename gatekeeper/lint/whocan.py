"""`gatekeeper who-can`: every subject a policy lets make one request, each with its line.

Two answers, both exact: the subjects the policy's rules name (a rule matches the request's verb,
resource and namespace, or its path, whatever its subject), and each user of the credential files
decided in full with the groups the file gives them (and system:authenticated, which every
authenticated user has).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from gatekeeper.authn.user import AUTHENTICATED, UserInfo
from gatekeeper.authz.attributes import Attributes
from gatekeeper.authz.evaluator import (
    Evaluator,
    non_resource_matches,
    resource_matches,
    verb_matches,
)
from gatekeeper.authz.policy import Policy, Rule
from gatekeeper.lint.coverage import matches_nobody
from gatekeeper.lint.explain import subject_of


@dataclass(frozen=True, slots=True)
class Grant:
    subject: str  # "user alice", "group dev", "every authenticated user", ...
    source: str  # FILE:LINE of the rule


@dataclass(frozen=True, slots=True)
class KnownUser:
    user: UserInfo
    origin: str  # FILE:LINE of the credential row
    source: str  # FILE:LINE of the earliest rule that lets the user make the request


def request_of(verb: str, target: str, namespace: str) -> Attributes:
    """The request `verb target`: a path when target starts with "/", else RESOURCE[.GROUP]
    (kubectl's spelling: deployments.apps); the subject is filled in later."""
    if target.startswith("/"):
        return Attributes(user="", groups=(), verb=verb, resource_request=False, path=target)
    resource, _, api_group = target.partition(".")
    return Attributes(
        user="",
        groups=(),
        verb=verb,
        resource_request=True,
        namespace=namespace,
        api_group=api_group,
        resource=resource,
    )


def grants(rules: Sequence[Rule], a: Attributes) -> list[Grant]:
    """The rules that allow `a` to the subject they name, in file order."""
    found = []
    for rule in rules:
        if matches_nobody(rule) or not verb_matches(rule, a.verb):
            continue
        if resource_matches(rule, a) if a.resource_request else non_resource_matches(rule, a.path):
            found.append(Grant(subject_of(rule), rule.source))
    return found


def known_users(
    rules: Sequence[Rule], a: Attributes, users: Sequence[tuple[UserInfo, str]]
) -> list[KnownUser]:
    """Each credential-file user the policy lets make `a`, with the earliest rule that does."""
    evaluator = Evaluator(Policy("who-can", tuple(rules), 0, ""))  # indexed once, not a scan per user
    allowed = []
    for user, origin in users:
        groups = tuple(dict.fromkeys((*user.groups, AUTHENTICATED)))
        rule = evaluator.first_match(replace(a, user=user.name, groups=groups))
        if rule is not None:
            allowed.append(KnownUser(user, origin, rule.source))
    return allowed
