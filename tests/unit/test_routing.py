"""The router and its one error handler (server/routing.py, server/responses.py), over ASGI.

The App is the one `gatekeeper serve` runs, with a route table of this test's own: handlers
that raise each branch of gatekeeper.errors, and one with a bug. What the real routes answer
over TLS is tests/integration's (test_strict_requests.py, test_store_outage.py and the others).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from starlette.requests import Request
from starlette.responses import Response

from gatekeeper.authn.hashing import HashingBusy
from gatekeeper.errors import InvalidInput, Refused, Unavailable
from gatekeeper.k8s.fields import InvalidObject
from gatekeeper.server.caller import Access
from gatekeeper.server.responses import JSONResponse
from gatekeeper.server.routing import App, Route


async def ok(_request: Request) -> Response:
    return JSONResponse({"ok": True})


def raising(exc: Exception) -> Any:
    async def handler(_request: Request) -> Response:
        raise exc

    return handler


async def buggy(_request: Request) -> Response:
    return JSONResponse({}.__getitem__("missing"))


EVENTS: list[str] = []


@contextlib.asynccontextmanager
async def lifespan(_app: App) -> AsyncIterator[None]:
    EVENTS.append("started")
    yield
    EVENTS.append("stopped")


APP = App([
    Route("GET", "/ok", ok, Access.ANYONE, "ok"),
    Route("POST", "/post", ok, Access.ANYONE, "post"),
    Route("POST", "/invalid", raising(InvalidObject("spec.containers[0].name: expected a string")),
          Access.ANYONE, "invalid"),
    Route("POST", "/input", raising(InvalidInput("request body: bad")), Access.ANYONE, "input"),
    Route("POST", "/unavailable", raising(Unavailable("etcd is unavailable (x): refused")),
          Access.ANYONE, "unavailable", reads="admission state"),
    Route("POST", "/busy", raising(HashingBusy("2 in flight")), Access.ANYONE, "busy"),
    Route("POST", "/refused", raising(Refused("no")), Access.ANYONE, "refused"),
    Route("POST", "/bug", buggy, Access.ANYONE, "bug"),
], {}, lifespan)


def call(method: str, path: str) -> tuple[int, dict[str, str], bytes]:
    scope = {"type": "http", "method": method, "path": path, "headers": [], "query_string": b"",
             "root_path": "", "http_version": "1.1", "scheme": "https"}
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(APP(scope, receive, send))
    start, body = sent[0], b"".join(m.get("body", b"") for m in sent[1:])
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, body


def status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


def test_a_route_answers_its_method_and_a_get_route_its_head() -> None:
    assert call("GET", "/ok")[0] == 200
    assert call("HEAD", "/ok")[0] == 200
    assert call("POST", "/post")[0] == 200


@pytest.mark.parametrize("path", ["/nowhere", "/ok/", "/ok%0a", "/ok\n", "/ok\u2028", ""])
def test_a_path_that_is_no_route_is_a_404_status(path: str) -> None:
    code, _, body = call("GET", path)
    assert (code, json.loads(body)) == (404, status(404, "NotFound", "Not Found"))


def test_another_method_on_a_route_is_a_405_that_says_which_are_allowed() -> None:
    code, headers, body = call("POST", "/ok")
    assert (code, json.loads(body)) == (405, status(405, "MethodNotAllowed", "Method Not Allowed"))
    assert headers["allow"] == "GET, HEAD"
    assert call("DELETE", "/post")[1]["allow"] == "POST"


@pytest.mark.parametrize(("path", "code", "reason", "message"), [
    ("/invalid", 400, "BadRequest", "spec.containers[0].name: expected a string"),
    ("/input", 400, "BadRequest", "request body: bad"),
    ("/unavailable", 503, "ServiceUnavailable",
     "admission state is unavailable: etcd is unavailable (x): refused"),
    ("/refused", 403, "Forbidden", "no"),
])
def test_each_branch_of_the_error_root_has_its_answer(
    path: str, code: int, reason: str, message: str
) -> None:
    got, _, body = call("POST", path)
    assert (got, json.loads(body)) == (code, status(code, reason, message))


def test_a_full_pool_is_a_429_with_retry_after() -> None:
    code, headers, body = call("POST", "/busy")
    expected = status(429, "TooManyRequests", "Too many requests, please try again later.")
    assert (code, json.loads(body)) == (429, {**expected, "details": {"retryAfterSeconds": 1}})
    assert headers["retry-after"] == "1"


def test_a_bug_is_a_logged_500_with_the_one_body(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, "gatekeeper.server"):
        code, _, body = call("POST", "/bug")
    expected = status(500, "InternalError", "internal error; see the server log")
    assert (code, json.loads(body)) == (500, expected)
    assert b"missing" not in body  # the bug stays in the log
    [record] = [r for r in caplog.records if r.name == "gatekeeper.server"]
    assert record.exc_info is not None and record.exc_info[0] is KeyError


def test_the_lifespan_runs_around_serving() -> None:
    messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    sent: list[str] = []

    async def receive() -> dict[str, Any]:
        return next(messages)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message["type"])

    EVENTS.clear()
    asyncio.run(APP({"type": "lifespan"}, receive, send))
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert EVENTS == ["started", "stopped"]


def test_a_route_whose_caller_list_is_missing_is_refused_not_served_to_anyone() -> None:
    with pytest.raises(KeyError):
        App([Route("POST", "/authorize", ok, Access.WEBHOOK_CALLERS, "x")], {}, lifespan)
