"""The webhook endpoints without FastAPI's routing and dependency injection on their path.

Every API request of a cluster passes through /authorize or the admission webhooks, so their
per-request overhead is the product. `DirectRoutes` is pure ASGI middleware that sends a POST to
one of those paths straight to its handler function: it authenticates and authorizes the caller
(`require_caller`, exactly as the dependency does), calls the handler, and renders an HTTPError
as the same Status response the app's error handler would. Everything else (other methods,
other paths, unexpected exceptions) goes on to the FastAPI app, whose routes for these paths
stay registered, so 404/405/500 answers are the app's own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from gatekeeper.authn.user import UserInfo
from gatekeeper.server import admission, authenticate, authorize
from gatekeeper.server.caller import require_caller
from gatekeeper.server.responses import HTTPError

Handler = Callable[[Request, UserInfo], Awaitable[Response]]

WEBHOOKS: Mapping[str, Handler] = {
    "/authorize": authorize.authorize,
    "/authenticate": authenticate.authenticate,
    "/mutate": admission.mutate,
    "/validate": admission.validate,
    "/admit": admission.admit,
}


class DirectRoutes:
    """Serves POST to the webhook paths by calling their handlers directly."""

    def __init__(self, app: ASGIApp, routes: Mapping[str, Handler] = WEBHOOKS) -> None:
        self.app = app
        self.routes = dict(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = self.routes.get(scope["path"]) if scope["type"] == "http" else None
        if handler is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            response = await handler(request, await require_caller(request))
        except HTTPError as exc:
            response = exc.response()
        await response(scope, receive, send)
