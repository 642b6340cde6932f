"""Reading a review body: JSON only, bounded in size and nesting, decoded as Go decodes it.

kube-apiserver sends its reviews as `Content-Type: application/json`; anything else is a 415.

A key that comes twice in one object is read as Kubernetes' Go decoder (sigs.k8s.io/json, a fork
of encoding/json) reads it into the typed review structs, not as "the last one wins":

- a repeated object decodes into the value already there: its fields are merged, recursively
  (struct and pointer-to-struct fields are reused, and so is a map: `labels` given twice holds
  the keys of both);
- a repeated array decodes element by element into the elements already there (`containers`
  given twice: the first container of each merged, the length of the second);
- a repeated scalar replaces the earlier one;
- `request.object`, `request.oldObject` and `request.options` are runtime.RawExtension, whose
  UnmarshalJSON keeps only the last text: a repeated one replaces the earlier (repeated keys
  inside it merge, when that text is decoded into the Pod, Namespace... it holds);
- a repeated key whose values differ in type, or whose later value is null after a value, is
  refused (400):
  Go's answer depends on the field's type (null leaves a string or struct field as it was and
  clears a pointer, map or slice; mismatched types fail), which this reader does not model.

Known gaps, for the record: Go also reuses slice elements between a slice's length and capacity
(a third repetition may merge into an element the second one dropped), and an object of a kind
Go would decode as unstructured (map[string]interface{}) replaces instead of merging. Neither
reaches a field gatekeeper reads.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

import orjson
from starlette.requests import Request

from gatekeeper.server.responses import HTTPError, bad_request

JSON = "application/json"
RAW_EXTENSIONS = frozenset({("request", "object"), ("request", "oldObject"), ("request", "options")})


async def read_json_object(
    request: Request,
    limit: int,
    max_depth: int,  # --max-json-depth
    raw_extensions: Collection[tuple[str, ...]] = (),
) -> dict[str, Any]:
    """The body as a JSON object; `raw_extensions` are the key paths that replace when repeated."""
    check_content_type(request.headers.get("content-type"))
    body = await _read_bounded(request, limit)
    if not body:
        raise bad_request("request body is empty: expected a JSON object")
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise bad_request(f"request body is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        kind = "array" if isinstance(value, list) else type(value).__name__
        raise bad_request(f"request body: expected a JSON object, got {kind}")
    # Fewer brackets than the limit cannot nest deeper than it: the common case costs two C scans.
    if body.count(b"{") + body.count(b"[") > max_depth and json_depth(value, max_depth) > max_depth:
        raise bad_request(f"request body: JSON nesting is deeper than {max_depth} levels")
    if may_repeat_a_key(body, value):
        return _decode_as_go(body, frozenset(raw_extensions))
    return value


def check_content_type(header: str | None) -> None:
    """HTTPError 415 unless the media type is application/json (charset, if given, UTF-8)."""
    media_type, _, parameters = (header or "").partition(";")
    charset = next(
        (v.strip().strip('"').lower() for k, _, v in (p.partition("=") for p in parameters.split(";"))
         if k.strip().lower() == "charset"),
        "utf-8",
    )
    if media_type.strip().lower() == JSON and charset == "utf-8":
        return
    got = f"Content-Type {header[:100]!r}" if header else "no Content-Type"
    raise HTTPError(415, "UnsupportedMediaType",
                    f"unsupported media type: got {got}, expected {JSON} (UTF-8)")


def may_repeat_a_key(body: bytes, value: dict[str, Any]) -> bool:
    """False when no object of `body` gives a key twice. orjson keeps the last of a repeated key;
    its re-encoding has one colon per key kept plus those inside strings, the body one per key
    given plus the same (and those of values dropped). Equal counts: nothing was dropped. A colon
    escaped as \\u003a would count in one and not the other: such a body takes the slow path."""
    return b"\\u003" in body or body.count(b":") != orjson.dumps(value).count(b":")


def _decode_as_go(body: bytes, raw_extensions: frozenset[tuple[str, ...]]) -> dict[str, Any]:
    try:
        pairs = json.loads(body, object_pairs_hook=_Pairs, parse_int=_as_orjson_int)
        value = _build(pairs, (), raw_extensions)
    except RecursionError:
        raise bad_request("request body: JSON nesting is too deep") from None
    except _Conflict as exc:
        raise bad_request(f"request body: {exc}") from None
    except ValueError as exc:  # orjson accepted the body; json should too, but never a 500
        raise bad_request(f"request body is not valid JSON: {exc}") from None
    assert isinstance(value, dict)  # orjson read the same body as an object
    return value


def _as_orjson_int(text: str) -> int | float:
    """An integer as orjson reads it: exact from -2**63 to 2**64 - 1, a float beyond."""
    number = int(text)
    return number if -(2**63) <= number < 2**64 else float(text)


class _Pairs(list[tuple[str, Any]]):
    """An object's keys and values in text order, repeats included (json's object_pairs_hook)."""


class _Conflict(ValueError):
    pass


def _build(value: Any, path: tuple[str, ...], raw: frozenset[tuple[str, ...]]) -> Any:
    if isinstance(value, _Pairs):
        built: dict[str, Any] = {}
        for key, item in value:
            here = (*path, key)
            item = _build(item, here, raw)
            built[key] = _merge(built[key], item, here, raw) if key in built else item
        return built
    if isinstance(value, list):
        return [_build(item, path, raw) for item in value]
    return value


def _merge(earlier: Any, later: Any, path: tuple[str, ...], raw: frozenset[tuple[str, ...]]) -> Any:
    """`later` decoded into `earlier`, as Go decodes a value into a field that already holds one."""
    if earlier is None:
        return later  # null first leaves the field as if unset, whatever its type
    if later is None or _json_type(earlier) != _json_type(later):
        what = ("the second time as null" if later is None
                else f"as {_json_type(earlier)} and then as {_json_type(later)}")
        raise _Conflict(f"key {'.'.join(path)!r} is given twice, {what}")
    if path in raw:
        return later
    if isinstance(later, dict):
        merged = dict(earlier)
        for key, item in later.items():
            merged[key] = _merge(merged[key], item, (*path, key), raw) if key in merged else item
        return merged
    if isinstance(later, list):
        return [_merge(earlier[i], item, path, raw) if i < len(earlier) else item
                for i, item in enumerate(later)]
    return later


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "object" if isinstance(value, dict) else "array" if isinstance(value, list) else "null"


async def _read_bounded(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def json_depth(value: Any, stop_after: int) -> int:
    """Nesting depth of a parsed JSON value (a scalar is 0), counted without recursion.

    Stops as soon as the depth passes `stop_after`, so a hostile document costs little.
    """
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        depth += 1
        if depth > deepest:
            deepest = depth
            if deepest > stop_after:
                return deepest
        stack.extend((child, depth) for child in children if isinstance(child, dict | list))
    return deepest


def _too_large(limit: int) -> HTTPError:
    return HTTPError(413, "RequestEntityTooLarge", f"request body is larger than {limit} bytes")
