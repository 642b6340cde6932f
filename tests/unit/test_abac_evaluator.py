"""The indexed evaluator decides exactly as Kubernetes' linear scan, and names the same rule."""

from __future__ import annotations

import random
import weakref

from hypothesis import given, settings

from gatekeeper.authz.attributes import Attributes
from gatekeeper.authz.evaluator import (
    NO_MATCH,
    RELEASE_STEP,
    Evaluator,
    linear_first_match,
    release_in_steps,
)
from gatekeeper.authz.policy import Policy, Rule, parse_policy
from tests.support.abac_strategies import policy, request


@settings(max_examples=400, deadline=None)
@given(policy(), request())  # policies of up to 30 rules: more than Bucket.SMALL, both scan paths
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
    decision = evaluator.authorize(a, deny_unmatched=True)
    assert (decision.allowed, decision.denied, decision.reason) == (False, True, NO_MATCH)


NAMES = ["", "*", "alice", "admins", "system:authenticated"]
WORDS = ["", "*", "pods", "ns1", "/a", "/a*", "**", *(f"r{i}" for i in range(12))]


def _random_rules(rnd: random.Random, count: int, star_resources: float) -> list[Rule]:
    """`star_resources` of the rules are for resource "*", the rest for any of WORDS."""
    def resource() -> str:
        return "*" if rnd.random() < star_resources else rnd.choice(WORDS)

    return [
        Rule(rnd.choice(NAMES), rnd.choice(NAMES), rnd.random() < 0.3, rnd.choice(WORDS), resource(),
             rnd.choice(WORDS), rnd.choice(WORDS), f"p:{i + 1}", i)
        for i in range(count)
    ]


def test_large_subjects_agree_with_the_linear_scan() -> None:
    """Hundreds of rules per subject: the per-resource index, "*" rules merged into it or, past
    the merge budget (most rules "*"), scanned whole; blank resources and paths; pairs, everyone."""
    rnd = random.Random(5)
    for count, star_resources in ((40, 0.0), (400, 0.0), (400, 0.7)):
        rules = _random_rules(rnd, count, star_resources)
        evaluator = Evaluator(Policy("p", tuple(rules), 0, ""))
        words = ["", "*", "pods", "ns1", "/a", "/a/b", "r3", "r11", "other"]
        for _ in range(3000):
            groups = tuple(rnd.sample(["system:authenticated", "admins", "*"], rnd.randint(0, 2)))
            a = Attributes(rnd.choice(["", "alice", "bob"]), groups, rnd.choice(["get", "create"]),
                           rnd.random() < 0.7, rnd.choice(words), rnd.choice(words), rnd.choice(words),
                           path=rnd.choice(words))
            assert evaluator.first_match(a) == linear_first_match(rules, a), a


def _evaluator(rules: int) -> Evaluator:
    lines = "".join(f'{{"user":"u{i % 500}","namespace":"ns{i}","resource":"pods"}}\n' for i in range(rules))
    return Evaluator(parse_policy(lines.encode(), "p"))


def test_a_released_evaluator_is_freed_in_slices() -> None:
    holder = [_evaluator(3 * RELEASE_STEP)]
    gone = weakref.ref(holder[0])
    pauses: list[int] = []
    release_in_steps(holder, lambda: pauses.append(1))
    assert gone() is None and holder == []
    assert len(pauses) >= 3  # the index's subjects, then the rules, a slice at a time


def test_an_evaluator_still_in_use_is_left_whole() -> None:
    evaluator = _evaluator(100)
    holder = [evaluator]  # and `evaluator`: a request still deciding with it
    release_in_steps(holder, lambda: None, patience=0.01)
    a = Attributes("u7", (), "get", True, namespace="ns7", resource="pods")
    assert evaluator.authorize(a).reason == "p:8"  # nothing emptied under it
