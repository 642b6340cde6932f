"""The one HTTP stack: a small ASGI router over the route table (server/routes.py).

Every request takes the same path, the webhooks' included:

1. a path holding a control character is a 404 before any lookup (it must not reach a handler
   or a log line under a route's name: `POST /authorize%0a`);
2. the path and method are looked up in a dict (an unknown path 404, a known path with another
   method 405 with Allow; no trailing-slash redirect, ever);
3. a route that names callers authenticates the caller and checks its list (server/caller.py);
4. the handler runs; whatever it raises is answered by `error_response` (server/responses.py).

`Observe` wraps the whole of it, so every request is timed and counted once. A dict lookup
instead of Starlette's regular-expression router: every API request of a cluster passes through
/authorize or the admission webhooks, so the per-request cost of routing is the product's.
"""

from __future__ import annotations

import logging
import re
import traceback
from collections.abc import Awaitable, Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import State
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from gatekeeper.server.caller import Access, Callers, require_caller
from gatekeeper.server.observe import Observe
from gatekeeper.server.responses import JSONResponse, error_response, status_body

log = logging.getLogger("gatekeeper.server")

Handler = Callable[[Request], Awaitable[Response]]
Lifespan = Callable[["App"], AbstractAsyncContextManager[None]]

# C0 and C1 controls, DEL, and the Unicode line and paragraph separators.
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


@dataclass(frozen=True, slots=True)
class Route:
    """One endpoint: what it answers, who may call it, and what its OpenAPI entry says."""

    method: str
    path: str
    handler: Handler
    access: Access
    summary: str
    body: Mapping[str, Any] | None = None  # the JSON Schema of the request body (OpenAPI only)
    query: tuple[str, ...] = ()  # optional string query parameters (OpenAPI only)
    media_type: str = "application/json"  # of the answer
    reads: str = "state"  # what a 503 names: "admission state is unavailable: ..."


@dataclass(frozen=True, slots=True)
class Bound:
    """A route with its caller list resolved from the settings (None: no authentication)."""

    route: Route
    callers: Callers | None


class App:
    """The ASGI application `gatekeeper serve` runs: lifespan, routing, callers, errors, Observe."""

    def __init__(
        self, routes: Iterable[Route], callers: Mapping[Access, Callers], lifespan: Lifespan
    ) -> None:
        self.routes = tuple(routes)
        self.state = State()  # what handlers read as request.app.state
        self._lifespan = lifespan
        self._table: dict[str, dict[str, Bound]] = {}
        for route in self.routes:
            # A missing list is a KeyError here, never a route that admits everyone.
            bound = Bound(route, None if route.access is Access.ANYONE else callers[route.access])
            methods = self._table.setdefault(route.path, {})
            for method in (route.method, "HEAD") if route.method == "GET" else (route.method,):
                methods[method] = bound
        endpoints = frozenset(route.path for route in self.routes)
        self._observed = Observe(self._dispatch, endpoints)

    def lifespan(self) -> AbstractAsyncContextManager[None]:
        """What runs while the app serves (the runtime's poller, SIGHUP, the audit log)."""
        return self._lifespan(self)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope["app"] = self  # what request.app reads, as Starlette would set it
            await self._observed(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._run_lifespan(receive, send)
        else:  # a websocket: no route takes one
            await send({"type": "websocket.close", "code": 1000, "reason": ""})

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        bound = self._match(scope)
        if isinstance(bound, Response):  # 404 or 405
            await bound(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            if bound.callers is not None:
                await require_caller(request, bound.callers)
            response = await bound.route.handler(request)
        except ClientDisconnect:  # nobody is left to answer: a client that gave up is no error of ours
            log.info("%s %s: the client closed the connection before its body was complete",
                     scope["method"], scope["path"])
            return
        except Exception as exc:
            response = error_response(exc, bound.route.reads)
        await response(scope, receive, send)

    def _match(self, scope: Scope) -> Bound | Response:
        path: str = scope["path"]
        methods = None if CONTROL.search(path) else self._table.get(path)
        if methods is None:
            return NOT_FOUND
        bound = methods.get(scope["method"])
        if bound is None:
            body = status_body(405, "MethodNotAllowed", "Method Not Allowed")
            return JSONResponse(body, 405, {"Allow": ", ".join(sorted(methods))})
        return bound

    async def _run_lifespan(self, receive: Receive, send: Send) -> None:
        """ASGI lifespan, as Starlette's router runs it: startup, serve, shutdown."""
        started = False
        await receive()  # lifespan.startup
        try:
            async with self.lifespan():
                await send({"type": "lifespan.startup.complete"})
                started = True
                await receive()  # lifespan.shutdown
        except BaseException:
            failed = "lifespan.shutdown.failed" if started else "lifespan.startup.failed"
            await send({"type": failed, "message": traceback.format_exc()})
            raise
        await send({"type": "lifespan.shutdown.complete"})


NOT_FOUND = JSONResponse(status_body(404, "NotFound", "Not Found"), 404)
