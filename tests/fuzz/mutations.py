"""Mutations of real review requests: what a broken or hostile client might send.

Each mutation takes a JSON document (a conformance request) and a seeded `random.Random`, and
returns the bytes of a request body plus a short name for the report. Structural mutations
change the parsed document (fields deleted, types swapped, huge strings, many elements); byte
mutations build what json cannot (deep nesting, invalid UTF-8, truncation, flipped bytes,
multi-megabyte bodies). The same seed always gives the same inputs.
"""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Callable, Iterator
from typing import Any

import orjson

Path = list[str | int]
Mutation = Callable[[Any, random.Random], bytes]

ODD_STRINGS = [
    "", " ", "\u0000", "\x7f", "é", "\u202e", "🙂" * 3, "a" * 300, "../../etc/passwd", "*", "-1", "1e400",
    "${jndi:x}", "\\", "\"", "%00", "null", "true", "system:masters", "x,y", "\ud7ff", "\ufeff",
]
ODD_VALUES: list[Any] = [
    None, True, False, 0, -1, 2**63 - 1, -(2**63), 1.5, 1e308, -0.0, "", "x", [], {}, [None], {"": None},
    ["a", 1], {"a": {"b": []}},
]


MAX_PATHS = 5000  # a document grown to thousands of elements is mutated in its first part only


def paths(doc: Any, limit: int = MAX_PATHS) -> list[Path]:
    """The paths into the document (dict keys and list indexes) in document order, the root
    excluded; the first `limit` of them."""
    found: list[Path] = []
    stack: list[tuple[Path, Iterator[tuple[Any, Any]]]] = [([], _children(doc))]
    while stack and len(found) < limit:
        prefix, children = stack[-1]
        step = next(children, None)
        if step is None:
            stack.pop()
            continue
        path = [*prefix, step[0]]
        found.append(path)
        if isinstance(step[1], dict | list):
            stack.append((path, _children(step[1])))
    return found


def _children(node: Any) -> Iterator[tuple[Any, Any]]:
    if isinstance(node, dict):
        return iter(node.items())
    if isinstance(node, list):
        return enumerate(node)
    return iter(())


def _parent(doc: Any, path: Path) -> Any:
    node = doc
    for step in path[:-1]:
        node = node[step]
    return node


def _pick(doc: Any, rng: random.Random) -> Path | None:
    every = paths(doc)
    return rng.choice(every) if every else None


def _dump(doc: Any) -> bytes:
    try:
        return orjson.dumps(doc)
    except TypeError:  # integers past 64 bits, lone surrogates: only json writes those
        return json.dumps(doc, ensure_ascii=False).encode("utf-8", "surrogatepass")


def _load(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return json.loads(body.decode("utf-8", "surrogatepass"))


def delete_field(doc: Any, rng: random.Random) -> bytes:
    path = _pick(doc, rng)
    if path is not None:
        del _parent(doc, path)[path[-1]]
    return _dump(doc)


def swap_type(doc: Any, rng: random.Random) -> bytes:
    path = _pick(doc, rng)
    if path is not None:
        _parent(doc, path)[path[-1]] = copy.deepcopy(rng.choice(ODD_VALUES))
    return _dump(doc)


def odd_string(doc: Any, rng: random.Random) -> bytes:
    path = _pick(doc, rng)
    if path is not None:
        _parent(doc, path)[path[-1]] = rng.choice(ODD_STRINGS)
    return _dump(doc)


def huge_string(doc: Any, rng: random.Random) -> bytes:
    path = _pick(doc, rng)
    if path is not None:
        _parent(doc, path)[path[-1]] = rng.choice("ax9-.") * rng.choice([10_000, 100_000, 1_000_000])
    return _dump(doc)


def deep_nesting(doc: Any, rng: random.Random) -> bytes:
    """A value nested past the depth limit (64), past orjson's (1024) and past Python's recursion limit."""
    depth = rng.choice([20, 63, 64, 65, 200, 1000, 1025, 5000, 100_000])
    opener, closer = (b"[", b"]") if rng.random() < 0.5 else (b'{"a":', b"}")
    nested = opener * depth + b"1" + closer * depth
    path = _pick(doc, rng)
    if path is None:
        return nested
    _parent(doc, path)[path[-1]] = "__DEEP__"
    return _dump(doc).replace(b'"__DEEP__"', nested, 1)


def many_elements(doc: Any, rng: random.Random) -> bytes:
    """A list grown to thousands of elements (many containers, many groups, many patches)."""
    lists = [p for p in paths(doc) if isinstance(_get(doc, p), list) and _get(doc, p)]
    if lists:
        target = _get(doc, rng.choice(lists))
        # bounded to about 8 MB, so one input never costs the client more than the server
        copies = min(rng.choice([100, 2000, 20_000]), 8_000_000 // len(_dump(target[0])))
        target.extend([target[0]] * copies)  # one object many times: it is dumped at once, never changed
    return _dump(doc)


def add_field(doc: Any, rng: random.Random) -> bytes:
    dicts = [p for p in paths(doc) if isinstance(_get(doc, p), dict)]
    target = _get(doc, rng.choice(dicts)) if dicts else doc
    if isinstance(target, dict):
        key = rng.choice(["x", "", "metadata", "__proto__", "$ref", "spec"])
        target[key] = copy.deepcopy(rng.choice(ODD_VALUES))
    return _dump(doc)


def invalid_utf8(doc: Any, rng: random.Random) -> bytes:
    body = _dump(doc)
    at = body.find(b'"', rng.randrange(len(body))) + 1 or 1
    bad = rng.choice([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\x80"])
    return body[:at] + bad + body[at:]


def lone_surrogate(doc: Any, rng: random.Random) -> bytes:
    body = _dump(doc)
    at = body.find(b'"', rng.randrange(len(body))) + 1 or 1
    return body[:at] + rng.choice([b"\\ud800", b"\\udfff", b"\\u0000", b"\\uZZZZ"]) + body[at:]


def truncate(doc: Any, rng: random.Random) -> bytes:
    body = _dump(doc)
    return body[: rng.randrange(len(body))]


def flip_bytes(doc: Any, rng: random.Random) -> bytes:
    body = bytearray(_dump(doc))
    for _ in range(rng.randint(1, 8)):
        body[rng.randrange(len(body))] = rng.randrange(256)
    return bytes(body)


def megabytes(doc: Any, rng: random.Random) -> bytes:
    """Bodies around the size limit: just under (valid, parsed) and over (413)."""
    size = rng.choice([2_900_000, 3 * 1024 * 1024 + 1, 8_000_000])
    if isinstance(doc, dict):
        doc.setdefault("metadata", {})
        if isinstance(doc["metadata"], dict):
            doc["metadata"]["annotations"] = {"pad": "p" * size}
            return _dump(doc)
    return b" " * size + _dump(doc)


def not_an_object(doc: Any, rng: random.Random) -> bytes:
    return rng.choice([b"[]", b"null", b"1", b'"x"', b"", b" ", b"{}", b"[{}]", b"NaN", b"Infinity",
                       b"1e999", b"-", b"\x00", b'{"a":1}{"b":2}', b"{\"a\":" * 100, b"\xef\xbb\xbf{}"])


def big_numbers(doc: Any, rng: random.Random) -> bytes:
    body = _dump(doc)
    number = rng.choice([b"1" * 40, b"1e999", b"-1", b"1.0e-400", b"18446744073709551616"])
    return body.replace(b"1", number, 1)


def duplicate_keys(doc: Any, rng: random.Random) -> bytes:
    body = _dump(doc)
    return body.replace(b"{", b'{"kind":"X","kind":null,', 1) if rng.random() < 0.5 else body + b" "


STRUCTURAL: dict[str, Mutation] = {
    "delete_field": delete_field,
    "swap_type": swap_type,
    "odd_string": odd_string,
    "huge_string": huge_string,
    "many_elements": many_elements,
    "add_field": add_field,
}
BYTES: dict[str, Mutation] = {
    "deep_nesting": deep_nesting,
    "invalid_utf8": invalid_utf8,
    "lone_surrogate": lone_surrogate,
    "truncate": truncate,
    "flip_bytes": flip_bytes,
    "megabytes": megabytes,
    "not_an_object": not_an_object,
    "big_numbers": big_numbers,
    "duplicate_keys": duplicate_keys,
}


def _get(doc: Any, path: Path) -> Any:
    node = doc
    for step in path:
        node = node[step]
    return node


def mutate(doc: Any, rng: random.Random) -> tuple[str, bytes]:
    """One input: 1-3 structural mutations, then (one time in three) a byte mutation."""
    doc = _load(_dump(doc))  # a deep copy, quicker than copy.deepcopy
    names: list[str] = []
    rounds = rng.choice([1, 1, 1, 2, 3])
    for _ in range(rounds - 1):
        name = rng.choice(list(STRUCTURAL))
        names.append(name)
        doc = _load(STRUCTURAL[name](doc, rng))
    if rng.random() < 1 / 3:
        name = rng.choice(list(BYTES))
        mutation = BYTES[name]
    else:
        name = rng.choice(list(STRUCTURAL))
        mutation = STRUCTURAL[name]
    names.append(name)
    return "+".join(names), mutation(doc, rng)
