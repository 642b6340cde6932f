"""The exact policy diff's witnesses, held to brute force over small generated policies.

Sound: every witness is a request its rule allows and no rule of the other policy allows.
Complete: whenever some request of a finite space (every value the policies name, and values
they do not) tells a rule apart from the other policy, the rule has a witness.
"""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from gatekeeper.authz.attributes import Attributes
from gatekeeper.authz.evaluator import matches
from gatekeeper.authz.policy import Rule
from gatekeeper.lint.explain import diff
from gatekeeper.lint.witness import witness

PATHS = ("", "/a", "/a/b", "/a*", "/a/*", "/b", "*", "/a/b*", "/*")
rules = st.builds(
    lambda user, group, readonly, api_group, resource, namespace, path: Rule(
        user, group, readonly, api_group, resource, namespace, path, "p:1", 0
    ),
    st.sampled_from(("", "a", "b", "*")),
    st.sampled_from(("", "g", "h", "*")),
    st.booleans(),
    st.sampled_from(("*", "", "apps")),
    st.sampled_from(("*", "", "pods", "secrets")),
    st.sampled_from(("*", "", "n1", "n2")),
    st.sampled_from(PATHS),
)
policies = st.lists(rules, max_size=6)


def requests() -> list[Attributes]:
    subjects = [(user, groups) for user in ("a", "b", "zz") for groups in ((), ("g",), ("h",), ("g", "h"))]
    found = []
    for (user, groups), verb in itertools.product(subjects, ("get", "create")):
        for ns, res, group in itertools.product(
            ("", "n1", "n2", "zz"), ("", "pods", "secrets", "zz"), ("", "apps", "zz")
        ):
            found.append(Attributes(user, groups, verb, True, ns, group, res))
        for path in ("", "/", "/a", "/a/", "/a/b", "/a/bc", "/a/b/c", "/ab", "/b", "/zz", "zz", "*"):
            found.append(Attributes(user, groups, verb, False, path=path))
    return found


SPACE = requests()


def allowed(policy: list[Rule], a: Attributes) -> bool:
    return any(matches(rule, a) for rule in policy)


@settings(max_examples=300, deadline=None)
@given(rule=rules, other=policies)
def test_a_witness_exists_exactly_when_a_request_tells_the_rule_apart(rule: Rule, other: list[Rule]) -> None:
    proof = witness(rule, other)
    if proof is not None:
        assert matches(rule, proof), proof
        assert not allowed(other, proof), proof
        return
    told_apart = [a for a in SPACE if matches(rule, a) and not allowed(other, a)]
    assert told_apart == [], f"missed: {told_apart[:3]}"


@settings(max_examples=150, deadline=None)
@given(old=policies, new=policies)
def test_the_diff_reports_a_change_exactly_when_the_policies_decide_differently(
    old: list[Rule], new: list[Rule]
) -> None:
    changes = diff(old, new)
    proven = {c.change for c in changes if c.witness is not None}
    gained = any(allowed(new, a) and not allowed(old, a) for a in SPACE)
    lost = any(allowed(old, a) and not allowed(new, a) for a in SPACE)
    assert "added" in proven or not gained
    assert "removed" in proven or not lost
    for c in changes:  # every witness is real, whether or not the space above holds it
        if c.witness is None:
            continue
        before, after = allowed(old, c.witness), allowed(new, c.witness)
        assert (after and not before) if c.change == "added" else (before and not after)
