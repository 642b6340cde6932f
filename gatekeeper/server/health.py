"""/healthz and /readyz: no authentication; readiness lists reload errors without failing."""

from __future__ import annotations

import time

from starlette.requests import Request

from gatekeeper.server.responses import JSONResponse
from gatekeeper.server.runtime import Runtime


async def healthz(_request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    runtime: Runtime = request.app.state.runtime
    checks = {}
    for item in runtime.watched:
        status = item.status()
        checks[status.name] = {
            "ok": status.error is None,
            "reloads": status.reloads,
            "failures": status.failures,
            **({"lastError": status.error} if status.error else {}),
        }
    problem = runtime.admission.unavailable()
    live = runtime.admission.watches()
    if live is not None:
        problem = problem or live.disconnected()
        checks["cluster"] = {
            resource: {
                "synced": watch.synced,
                "connected": watch.connected,
                "events": watch.events,
                "relists": watch.relists,
                "lastEventAgeSeconds": _age(watch.last_event_at),
                **({"lastError": watch.error} if watch.error else {}),
            }
            for resource, watch in live.watches().items()
        }
    if problem is not None:  # etcd or the API server unreachable: out of the Service until it returns
        checks["store"] = {"ok": False, "lastError": problem}
        return JSONResponse({"status": "not ready", "reason": problem, "checks": checks}, 503)
    return JSONResponse({"status": "ready", "checks": checks})


def _age(at: float) -> float | None:
    return round(time.time() - at, 3) if at else None
