"""Hypothesis strategies for ABAC rules and requests, over small alphabets so that rules and
requests collide often (wildcards, prefixes, the group system:authenticated, "GET" vs "get")."""

from __future__ import annotations

from hypothesis import strategies as st

from gatekeeper.authz.attributes import Attributes
from gatekeeper.authz.policy import Rule

NAMES = st.sampled_from(["", "*", "alice", "bob", "system:authenticated", "admins"])
WORDS = st.sampled_from(["", "*", "pods", "secrets", "ns1", "apps", "/a", "/a/*", "/a*", "/a/b", "**"])
VERBS = st.sampled_from(["get", "list", "watch", "create", "GET", "", "delete"])


@st.composite
def rule(draw: st.DrawFn, position: int = 0) -> Rule:
    return Rule(
        user=draw(NAMES),
        group=draw(NAMES),
        readonly=draw(st.booleans()),
        api_group=draw(WORDS),
        resource=draw(WORDS),
        namespace=draw(WORDS),
        path=draw(WORDS),
        source=f"p:{position + 1}",
        position=position,
    )


@st.composite
def policy(draw: st.DrawFn, max_rules: int = 30) -> list[Rule]:
    count = draw(st.integers(min_value=0, max_value=max_rules))
    return [draw(rule(position=i)) for i in range(count)]


@st.composite
def request(draw: st.DrawFn) -> Attributes:
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
