"""The FastAPI application factory: routers, error handlers, the runtime on app.state."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from gatekeeper.config import Settings
from gatekeeper.server import admission, authenticate, authorize, health, metrics, openapi, quota, scrape
from gatekeeper.server.audit import open_audit_log
from gatekeeper.server.caller import callers_by_path, warn_about_policy_grants
from gatekeeper.server.direct import DirectRoutes, WebhookApp, not_found
from gatekeeper.server.observe import SHADOW_RESULTS, Observe
from gatekeeper.server.responses import HTTPError, JSONResponse, status_body
from gatekeeper.server.runtime import Runtime

log = logging.getLogger("gatekeeper.server")

ROUTERS = (
    health.router,
    authorize.router,
    authenticate.router,
    admission.router,
    quota.router,
    scrape.router,
    openapi.router,  # /openapi.json, behind authentication like every route but health
)


def create_app(settings: Settings) -> FastAPI:
    runtime = Runtime(settings)
    audit = open_audit_log(settings.audit_log_path, settings.audit_log_maxsize, settings.audit_log_maxbackup)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with runtime.lifespan(app):
            yield
        if audit is not None:
            audit.close()

    app = WebhookApp(
        title="gatekeeper",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        default_response_class=JSONResponse,
        redirect_slashes=False,  # "/authorize/" is a 404, never a redirect to the caller's Host
    )
    app.state.runtime = runtime
    app.state.callers = callers_by_path(settings)
    warn_about_policy_grants(runtime.policy.current, app.state.callers)
    app.state.audit = audit
    app.state.metrics_registry = metrics.scrape_registry(runtime)
    if runtime.shadow is not None:
        metrics.start_shadow_counts(SHADOW_RESULTS)
    for router in ROUTERS:
        app.include_router(router)
    _install_error_handlers(app)
    app.add_middleware(Observe)
    app.fast_path = Observe(DirectRoutes())  # the webhooks: timed and counted like every request
    app.not_found = Observe(not_found)  # paths with control characters, before any routing
    return app


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(HTTPError)
    async def _http_error(_request: Request, exc: HTTPError) -> Response:
        return exc.response()

    @app.exception_handler(StarletteHTTPException)
    async def _starlette_error(_request: Request, exc: StarletteHTTPException) -> Response:
        reason = "NotFound" if exc.status_code == 404 else "MethodNotAllowed"
        body = status_body(exc.status_code, reason, str(exc.detail))
        return JSONResponse(body, exc.status_code, dict(exc.headers or {}))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> Response:
        return JSONResponse(status_body(400, "BadRequest", str(exc.errors())), 400)

    @app.exception_handler(ClientDisconnect)
    async def _client_gone(request: Request, _exc: ClientDisconnect) -> Response:
        log.info(
            "%s %s: the client closed the connection before its body was complete",
            request.method,
            request.url.path,
        )
        return Response(status_code=400)  # nobody reads it; the connection is gone

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> Response:
        log.exception("unexpected error while handling a request")
        return JSONResponse(status_body(500, "InternalError", "internal error; see the server log"), 500)
