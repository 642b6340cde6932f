"""Responses in Kubernetes' shapes, serialized with orjson; Status objects for every refusal."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def status_body(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


class HTTPError(Exception):
    """Raised at the edge; rendered as a Kubernetes Status with the given code."""

    def __init__(self, code: int, reason: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        return JSONResponse(status_body(self.code, self.reason, self.message), self.code, self.headers)


def bad_request(message: str) -> HTTPError:
    return HTTPError(400, "BadRequest", message)
