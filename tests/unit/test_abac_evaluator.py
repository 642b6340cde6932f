"""The indexed evaluator decides exactly as Kubernetes' linear scan, and names the same rule."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from gatekeeper.authz.attributes import Attributes
from gatekeeper.authz.evaluator import NO_MATCH, Evaluator, linear_first_match
from gatekeeper.authz.policy import Policy, Rule, parse_policy

NAMES = st.sampled_from(["", "*", "alice", "bob", "system:authenticated", "admins"])
WORDS = st.sampled_from(["", "*", "pods", "secrets", "ns1", "apps", "/api", "/api/*", "/a*"])
VERBS = st.sampled_from(["get", "list", "watch", "create", "GET", "", "delete"])


@st.composite
def rules(draw: st.DrawFn) -> list[Rule]:
    count = draw(st.integers(min_value=0, max_value=30))  # > Bucket.SMALL: both scan paths
    return [
        Rule(
            user=draw(NAMES),
            group=draw(NAMES),
            readonly=draw(st.booleans()),
            api_group=draw(WORDS),
            resource=draw(WORDS),
            namespace=draw(WORDS),
            path=draw(WORDS),
            source=f"p:{i + 1}",
            position=i,
        )
        for i in range(count)
    ]


@st.composite
def attributes(draw: st.DrawFn) -> Attributes:
    return Attributes(
        user=draw(st.sampled_from(["", "alice", "bob", "carol"])),
        groups=tuple(draw(st.lists(st.sampled_from(["system:authenticated", "admins", "*"]), max_size=3))),
        verb=draw(VERBS),
        resource_request=draw(st.booleans()),
        namespace=draw(WORDS),
        api_group=draw(WORDS),
        resource=draw(WORDS),
        path=draw(WORDS),
    )


@settings(max_examples=400, deadline=None)
@given(rules(), attributes())
def test_index_agrees_with_the_linear_scan(policy_rules: list[Rule], a: Attributes) -> None:
    evaluator = Evaluator(Policy("p", tuple(policy_rules), 0, ""))
    assert evaluator.first_match(a) == linear_first_match(policy_rules, a)


def _decide(policy: str, **attrs: object) -> str:
    evaluator = Evaluator(parse_policy(policy.encode(), "policy.jsonl"))
    defaults: dict[str, object] = {"user": "alice", "groups": ("system:authenticated",), "verb": "get"}
    a = Attributes(**{**defaults, "resource_request": True, **attrs})  # type: ignore[arg-type]
    decision = evaluator.authorize(a)
    return decision.reason if decision.allowed else NO_MATCH


def test_the_earliest_matching_line_is_named() -> None:
    policy = '# comment\n{"user":"bob"}\n{"group":"system:authenticated"}\n{"user":"alice"}\n'
    assert _decide(policy, resource="pods") == "policy.jsonl:3"


def test_readonly_is_exact_about_verbs() -> None:
    policy = '{"user":"alice","readonly":true}'
    assert _decide(policy, resource="pods", verb="get") == "policy.jsonl:1"
    assert _decide(policy, resource="pods", verb="GET") == NO_MATCH
    assert _decide(policy, resource="pods", verb="create") == NO_MATCH


def test_deny_unmatched_turns_no_opinion_into_a_denial() -> None:
    evaluator = Evaluator(parse_policy(b'{"user":"bob"}', "p"))
    a = Attributes(user="alice", groups=(), verb="get", resource_request=True, resource="pods")
    decision = evaluator.deny_unmatched(evaluator.authorize(a))
    assert (decision.allowed, decision.denied, decision.reason) == (False, True, NO_MATCH)
