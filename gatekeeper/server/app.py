"""The application factory: the route table on the router, the runtime on app.state."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from gatekeeper.config import Settings
from gatekeeper.server import metrics
from gatekeeper.server.audit import open_audit_log
from gatekeeper.server.caller import callers_by_access, warn_about_policy_grants
from gatekeeper.server.observe import SHADOW_RESULTS
from gatekeeper.server.routes import ROUTES
from gatekeeper.server.routing import App
from gatekeeper.server.runtime import Runtime


def create_app(settings: Settings) -> App:
    runtime = Runtime(settings)
    audit = open_audit_log(settings.audit_log_path, settings.audit_log_maxsize, settings.audit_log_maxbackup)

    @contextlib.asynccontextmanager
    async def lifespan(app: App) -> AsyncIterator[None]:
        async with runtime.lifespan(app):
            yield
        if audit is not None:
            audit.close()

    callers = callers_by_access(settings)
    app = App(ROUTES, callers, lifespan)
    app.state.runtime = runtime
    app.state.audit = audit
    app.state.metrics_registry = metrics.scrape_registry(runtime)
    by_path = {route.path: callers[route.access] for route in ROUTES if route.access in callers}
    warn_about_policy_grants(runtime.policy.current, by_path)
    if runtime.shadow is not None:
        metrics.start_shadow_counts(SHADOW_RESULTS)
    return app


