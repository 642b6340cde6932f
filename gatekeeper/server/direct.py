"""The webhook endpoints without FastAPI's machinery on their path.

Every API request of a cluster passes through /authorize or the admission webhooks, so their
per-request overhead is the product. A POST to one of those paths skips FastAPI entirely: its
middleware stack (which, in current FastAPI, also checks for telemetry on every request), its
router and its dependency injection. `WebhookApp.fast_path` (set up by create_app as
Observe(DirectRoutes())) authenticates and authorizes the caller with `require_caller`, exactly as
the dependency does, calls the same handler function the FastAPI route calls, and renders an
HTTPError as the same Status response the app's error handler would. Every other request (other
methods, other paths) is FastAPI's, and the routes for these paths stay registered there too.

Before either, a path holding a control character is a 404: Starlette matches routes with
regular expressions ending in `$`, which also matches before a final newline, so
`POST /authorize%0a` would otherwise reach the /authorize handler (and split log lines).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Mapping

from fastapi import FastAPI
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from gatekeeper.authn.user import UserInfo
from gatekeeper.server import admission, authenticate, authorize
from gatekeeper.server.caller import require_caller
from gatekeeper.server.responses import HTTPError, JSONResponse, status_body

log = logging.getLogger("gatekeeper.server")

Handler = Callable[[Request, UserInfo], Awaitable[Response]]

# C0 and C1 controls, DEL, and the Unicode line and paragraph separators.
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")

WEBHOOKS: Mapping[str, Handler] = {
    "/authorize": authorize.authorize,
    "/authenticate": authenticate.authenticate,
    "/mutate": admission.mutate,
    "/validate": admission.validate,
    "/admit": admission.admit,
}


class WebhookApp(FastAPI):
    """FastAPI, except that a POST to a webhook path goes to `fast_path` when one is set."""

    fast_path: ASGIApp | None = None
    not_found: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.not_found is not None and scope["type"] == "http" and CONTROL.search(scope["path"]):
            await self.not_found(scope, receive, send)
            return
        fast = self.fast_path
        if fast is not None and scope["type"] == "http" and scope["method"] == "POST" and (
            scope["path"] in WEBHOOKS
        ):
            scope["app"] = self  # what request.app reads, as Starlette would set it
            await fast(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


class DirectRoutes:
    """Serves the webhook paths by calling their handlers with the authorized caller."""

    def __init__(self, routes: Mapping[str, Handler] = WEBHOOKS) -> None:
        self.routes = dict(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            response = await self.routes[scope["path"]](request, await require_caller(request))
        except HTTPError as exc:
            response = exc.response()
        except ClientDisconnect:
            # Nobody is left to answer: a client that gave up mid-body is no error of ours.
            log.info("%s %s: the client closed the connection before its body was complete",
                     scope["method"], scope["path"])
            return
        except Exception:
            log.exception("unexpected error while handling a request")
            body = status_body(500, "InternalError", "internal error; see the server log")
            response = JSONResponse(body, 500)
        await response(scope, receive, send)


async def not_found(scope: Scope, receive: Receive, send: Send) -> None:
    """The Status FastAPI's 404 handler answers, without routing."""
    await JSONResponse(status_body(404, "NotFound", "Not Found"), 404)(scope, receive, send)
