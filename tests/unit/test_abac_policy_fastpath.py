"""The loader's shortcut for plain v1beta1 lines decides every line exactly as the general path does."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gatekeeper.authz.policy import PolicyError, _plain_v1beta1, decode_lines, parse_policy, to_rule

FIELDS = ("user", "group", "readonly", "apiGroup", "resource", "namespace", "nonResourcePath")
V1BETA1 = "abac.authorization.kubernetes.io/v1beta1"
values = st.sampled_from(["", "*", "alice", "dev", "/api*"]) | st.booleans() | st.none() | st.integers(0, 1)
specs = st.dictionaries(st.sampled_from([*FIELDS, "User", "extra"]), values, max_size=5)
envelopes = st.fixed_dictionaries(
    {"spec": specs | st.none() | st.just([])},
    optional={
        "apiVersion": st.sampled_from([V1BETA1, "abac.authorization.kubernetes.io/v0", "v1"]),
        "kind": st.sampled_from(["Policy", "policy", "Other"]),
        "ApiVersion": st.just(V1BETA1),
    },
)
lines = st.one_of(
    envelopes.map(lambda d: json.dumps(d)),
    specs.map(lambda d: json.dumps(d)),  # v0 lines
    st.sampled_from(["", "# comment", "  ", "{", "null", "[1]", "\x0b{}", "{\"user\":\"a\"}\r"]),
)


def general_path(data: bytes) -> Any:
    try:
        decoded = decode_lines(data, "p")
    except PolicyError as exc:
        return str(exc)
    rules = [to_rule(d, f"p:{d.number}", i) for i, d in enumerate(decoded)]
    return rules, sum(not d.versioned for d in decoded)


def loader(data: bytes) -> Any:
    try:
        policy = parse_policy(data, "p")
    except PolicyError as exc:
        return str(exc)
    return list(policy.rules), policy.unversioned_lines


@settings(max_examples=500, deadline=None)
@given(st.lists(lines, max_size=6))
def test_the_shortcut_and_the_general_path_agree(texts: list[str]) -> None:
    data = "\n".join(texts).encode()
    assert loader(data) == general_path(data)


def test_a_plain_v1beta1_line_takes_the_shortcut() -> None:
    line = json.dumps({"apiVersion": V1BETA1, "kind": "Policy", "spec": {"user": "*", "readonly": True}})
    rule = _plain_v1beta1(line.encode(), "p:1", 0)
    assert rule is not None and (rule.user, rule.group, rule.readonly) == ("", "system:authenticated", True)
    assert _plain_v1beta1(b'{"apiVersion":"x","kind":"Policy","spec":{}}', "p:1", 0) is None
