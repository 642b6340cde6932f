"""GET /quota: every ResourceQuota with the hard it enforces and its current usage, per namespace."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from gatekeeper.admission.quota_usage import with_usage
from gatekeeper.server.responses import JSONResponse
from gatekeeper.server.runtime import Runtime


async def quota(request: Request) -> JSONResponse:
    """A ResourceQuotaList; `?namespace=NS` narrows it to one namespace (the last one given).
    A store that fails is the router's 503, as everywhere."""
    runtime: Runtime = request.app.state.runtime
    namespace = request.query_params.get("namespace")
    items = await run_in_threadpool(with_usage, runtime.admission.store, namespace)
    return JSONResponse({"apiVersion": "v1", "kind": "ResourceQuotaList", "metadata": {}, "items": items})
