"""covers(b, a) is sound (b allows every request a allows) and the index finds every coverer."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from gatekeeper.authz.attributes import Attributes
from gatekeeper.authz.evaluator import matches
from gatekeeper.authz.policy import Rule
from gatekeeper.lint.coverage import RuleIndex, covers, grant, matches_nobody, path_covers
from tests.support.abac_strategies import request, rule


@settings(max_examples=1500, deadline=None)
@given(rule(), rule(), request())
def test_a_coverer_allows_everything_the_covered_rule_allows(b: Rule, a: Rule, request: Attributes) -> None:
    if covers(b, a) and matches(a, request):
        assert matches(b, request)


@settings(max_examples=300, deadline=None)
@given(st.lists(rule(), max_size=15))
def test_the_index_finds_the_same_first_coverer_as_comparing_all_pairs(policy: list[Rule]) -> None:
    policy = [r._replace(position=i, source=f"p:{i + 1}") for i, r in enumerate(policy)]
    index = RuleIndex(policy)
    for a in policy:
        if matches_nobody(a):
            continue
        brute = [b for b in policy if b is not a and grant(b) != grant(a) and covers(b, a)]
        expected = min(brute, key=lambda r: r.position) if brute else None
        assert index.first_coverer(a) == expected


def test_path_patterns() -> None:
    assert path_covers("/apis/*", "/apis/apps/*")
    assert path_covers("/apis*", "/apis/x")
    assert not path_covers("/apis/*", "/apis")
    assert not path_covers("/apis/x", "/apis/*")
    assert path_covers("*", "")
