"""pycasbin with a model equivalent to Kubernetes' ABAC, for the engine benchmark's baseline.

One casbin policy line per ABAC rule (user, group, readonly, namespace, resource, apiGroup,
nonResourcePath), and a matcher that spells out abac.go's `matches`: a rule names someone; each
subject it sets matches ("*" or equal; the group among the request's groups); a read-only rule
only allows read-only verbs; a resource request matches namespace, resource and apiGroup ("*" or
equal), a non-resource request matches the path (keyMatch: "*", exact, or a prefix ending in
"*"). The effect is "some rule allows", so casbin stops at the first match, as Kubernetes does.
This is how a user would model ABAC in casbin; it scans every line, as casbin's enforcer does.
"""

from __future__ import annotations

from collections.abc import Sequence

import casbin  # type: ignore[import-untyped]  # the `bench` extra

from gatekeeper.authz.attributes import Attributes
from gatekeeper.authz.policy import Rule

MODEL = """
[request_definition]
r = user, groups, readonly, resreq, ns, res, apigroup, path

[policy_definition]
p = user, group, readonly, ns, res, apigroup, path

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = (p.user != "" || p.group != "") \\
  && (p.user == "" || p.user == "*" || p.user == r.user) \\
  && (p.group == "" || p.group == "*" || p.group in r.groups) \\
  && (p.readonly == "false" || r.readonly == "true") \\
  && ((r.resreq == "true" && (p.ns == "*" || p.ns == r.ns) && (p.res == "*" || p.res == r.res) \\
       && (p.apigroup == "*" || p.apigroup == r.apigroup)) \\
      || (r.resreq == "false" && keyMatch(r.path, p.path)))
"""


def _flag(value: bool) -> str:
    return "true" if value else "false"


class CasbinABAC:
    """A casbin enforcer holding the same rules, in the same order."""

    def __init__(self, rules: Sequence[Rule]) -> None:
        self.enforcer = casbin.Enforcer(casbin.Enforcer.new_model(text=MODEL))
        self.enforcer.logger.disabled = True
        self.enforcer.add_policies(
            [
                [r.user, r.group, _flag(r.readonly), r.namespace, r.resource, r.api_group, r.path]
                for r in rules
            ]
        )

    def allowed(self, a: Attributes) -> bool:
        return bool(
            self.enforcer.enforce(
                a.user, a.groups, _flag(a.read_only), _flag(a.resource_request),
                a.namespace, a.resource, a.api_group, a.path,
            )
        )
