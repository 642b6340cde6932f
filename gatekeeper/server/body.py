"""Reading a request body: bounded in size, parsed with orjson, refused with a clear 4xx."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request

from gatekeeper.server.responses import HTTPError, bad_request


async def read_json_object(request: Request, limit: int) -> dict[str, Any]:
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
    body = b"".join(chunks)
    if not body:
        raise bad_request("request body is empty: expected a JSON object")
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise bad_request(f"request body is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        kind = "array" if isinstance(value, list) else type(value).__name__
        raise bad_request(f"request body: expected a JSON object, got {kind}")
    return value


def _too_large(limit: int) -> HTTPError:
    return HTTPError(413, "RequestEntityTooLarge", f"request body is larger than {limit} bytes")
