"""Reading a request body: bounded in size and nesting, parsed with orjson, refused with a clear 4xx."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request

from gatekeeper.server.responses import HTTPError, bad_request

DEFAULT_MAX_JSON_DEPTH = 64


async def read_json_object(
    request: Request, limit: int, max_depth: int = DEFAULT_MAX_JSON_DEPTH
) -> dict[str, Any]:
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
    return value


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
