"""The chain's JSONPatch differ: applying its patch to the original always gives the mutated copy."""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch  # type: ignore[import-untyped]
import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from gatekeeper.admission.patch import diff

keys = st.sampled_from(["a", "b", "spec", "a/b", "t~1", "~", ""])
numbers = st.integers(-3, 3) | st.floats(-2, 2, allow_nan=False)
scalars = st.none() | st.booleans() | numbers | st.text(max_size=3)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=4),
    max_leaves=20,
)


def same(a: Any, b: Any) -> bool:
    """Equal as JSON documents (Python's True == 1 == 1.0 is not)."""
    return orjson.dumps(a, option=orjson.OPT_SORT_KEYS) == orjson.dumps(b, option=orjson.OPT_SORT_KEYS)


@settings(max_examples=400, deadline=None)
@given(json_values, json_values)
def test_the_patch_turns_the_source_into_the_target(source: Any, target: Any) -> None:
    original = copy.deepcopy(source)
    patched = jsonpatch.apply_patch(source, diff(source, target))
    assert same(patched, target)
    assert same(source, original)  # the source itself is left alone


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(keys, json_values, max_size=5), st.dictionaries(keys, json_values, max_size=3))
def test_a_mutation_that_adds_fields_is_a_patch_of_adds(
    source: dict[str, Any], extra: dict[str, Any]
) -> None:
    target = {**source, **{f"new-{k}": v for k, v in extra.items()}}
    operations = diff(source, target)
    assert all(op["op"] == "add" for op in operations) and len(operations) == len(extra)
    assert same(jsonpatch.apply_patch(source, operations), target)


def test_a_pod_mutation_names_the_fields_it_sets() -> None:
    pod = {"spec": {"containers": [{"name": "app", "image": "nginx"}]}}
    mutated = copy.deepcopy(pod)
    mutated["spec"]["serviceAccountName"] = "default"
    mutated["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "100m"}}
    mutated["spec"]["volumes"] = [{"name": "token"}]
    assert diff(pod, mutated) == [
        {"op": "add", "path": "/spec/containers/0/resources", "value": {"requests": {"cpu": "100m"}}},
        {"op": "add", "path": "/spec/serviceAccountName", "value": "default"},
        {"op": "add", "path": "/spec/volumes", "value": [{"name": "token"}]},
    ]
    assert diff(pod, copy.deepcopy(pod)) == []


def test_types_are_compared_as_json_does() -> None:
    assert diff({"a": True}, {"a": 1}) == [{"op": "replace", "path": "/a", "value": 1}]
    assert diff({"a": 1}, {"a": 1.0}) == [{"op": "replace", "path": "/a", "value": 1.0}]
    assert diff({"a/b": 1}, {}) == [{"op": "remove", "path": "/a~1b"}]
