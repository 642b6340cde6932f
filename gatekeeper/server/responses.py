"""Responses in Kubernetes' shapes, serialized with orjson; Status objects for every refusal.

`error_response` is the one error handler: whatever a route's handler (or the caller check before
it) raises is answered here, by the branch of gatekeeper.errors it belongs to, wherever it was met:

    HTTPError       its own code (401, 403, 413, 415, 400 from the edge)
    Busy            429 TooManyRequests, Retry-After (kube-apiserver's max-in-flight answer)
    Unavailable     503 ServiceUnavailable, so the webhook's failurePolicy decides (Fail or Ignore)
    InvalidInput    400 BadRequest, the message naming the field path
    Refused         403 Forbidden, the message as the domain worded it
    anything else   a bug: logged with its traceback, answered with the one 500 body
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from starlette.responses import Response

from gatekeeper.errors import Busy, GatekeeperError, InvalidInput, Refused, Unavailable

log = logging.getLogger("gatekeeper.server")

RETRY_AFTER_SECONDS = 1  # what kube-apiserver's max-in-flight filter says


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


class HTTPError(GatekeeperError):
    """An answer decided at the edge (who calls, what they sent): a Status with the given code."""

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


def error_response(exc: Exception, reads: str) -> JSONResponse:
    """The answer to `exc` raised while serving a route; `reads` names what a 503 says is unavailable."""
    if isinstance(exc, HTTPError):
        return exc.response()
    if isinstance(exc, Busy):
        body = status_body(429, "TooManyRequests", "Too many requests, please try again later.")
        body["details"] = {"retryAfterSeconds": RETRY_AFTER_SECONDS}
        return JSONResponse(body, 429, {"Retry-After": str(RETRY_AFTER_SECONDS)})
    if isinstance(exc, Unavailable):
        return JSONResponse(status_body(503, "ServiceUnavailable", f"{reads} is unavailable: {exc}"), 503)
    if isinstance(exc, InvalidInput):
        return JSONResponse(status_body(400, "BadRequest", str(exc)), 400)
    if isinstance(exc, Refused):
        return JSONResponse(status_body(403, "Forbidden", str(exc)), 403)
    log.error("unexpected error while handling a request", exc_info=exc)
    return JSONResponse(status_body(500, "InternalError", "internal error; see the server log"), 500)
