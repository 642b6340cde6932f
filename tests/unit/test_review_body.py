"""The review body's two paths (server/body.py): orjson when no key repeats, Go's reading when one may.

The fast path is only sound if its check never misses a repeated key; the slow path must agree
with orjson on every body without one. Both are checked on random JSON, with and without keys
written twice; the HTTP behaviour is in tests/integration/test_strict_requests.py.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from gatekeeper.server.body import RAW_EXTENSIONS, _decode_as_go, may_repeat_a_key

KEYS = st.sampled_from(["a", "b", "a:b", ":", '"', "\\", "k\\u003a", "spec", "object"])
TEXT = st.text(alphabet=':"\\ab\n\u2028', max_size=6)
SCALARS = st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | TEXT
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3),
    max_leaves=12,
)
OBJECTS = st.dictionaries(KEYS, VALUES, max_size=4)


@settings(max_examples=300, deadline=None)
@given(OBJECTS)
def test_a_body_without_repeated_keys_takes_the_fast_path_and_both_paths_agree(value: dict[str, Any]) -> None:
    for body in (orjson.dumps(value), json.dumps(value, indent=1).encode(), json.dumps(value).encode()):
        parsed = orjson.loads(body)
        assert may_repeat_a_key(body, parsed) is (b"\\u003" in body)
        assert _decode_as_go(body, RAW_EXTENSIONS) == parsed


@settings(max_examples=300, deadline=None)
@given(OBJECTS, KEYS, VALUES, VALUES)
def test_a_repeated_key_is_never_missed(value: dict[str, Any], key: str, first: Any, second: Any) -> None:
    inner = orjson.dumps(value)[1:-1]
    pair = orjson.dumps({key: first})[1:-1] + b"," + orjson.dumps({key: second})[1:-1]
    body = b"{" + pair + (b"," + inner if inner else b"") + b"}"
    assert may_repeat_a_key(body, orjson.loads(body))


def test_go_merges_objects_and_arrays_and_replaces_raw_extensions() -> None:
    body = (b'{"request":{"uid":"1","object":{"spec":{"c":[{"n":"a","r":{"x":1}}]},"spec":{"c":[{"n":"b"}]}},'
            b'"userInfo":{"groups":["a","b"],"extra":{"k":["1"]}}},'
            b'"request":{"object":{"metadata":{"name":"n"}},"userInfo":{"groups":["c"],"extra":{"j":["2"]}}}}')
    assert _decode_as_go(body, RAW_EXTENSIONS) == {"request": {
        "uid": "1",
        "object": {"metadata": {"name": "n"}},  # RawExtension: the last text only
        "userInfo": {"groups": ["c"], "extra": {"k": ["1"], "j": ["2"]}},  # a slice replaced, a map merged
    }}
    inside = b'{"request":{"object":{"spec":{"c":[{"n":"a","r":{"x":1}}]},"spec":{"c":[{"n":"b"}]}}}}'
    merged = {"spec": {"c": [{"n": "b", "r": {"x": 1}}]}}  # the first element of each, merged
    assert _decode_as_go(inside, RAW_EXTENSIONS)["request"]["object"] == merged


def test_a_colon_written_as_an_escape_takes_the_slow_path() -> None:
    # {"a:": 1} with its colon escaped: one colon fewer in the body than in orjson's re-encoding,
    # which a repeated key elsewhere would make up for, so such a body is always read the slow way
    body = b'{"a\\u003a":1,"b":1,"b":2}'
    assert may_repeat_a_key(body, orjson.loads(body))
    assert _decode_as_go(body, RAW_EXTENSIONS) == {"a:": 1, "b": 2}
