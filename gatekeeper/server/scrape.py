"""GET /metrics: the Prometheus text of metrics.py's registry, for the --metrics-readers."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from gatekeeper.authn.user import UserInfo
from gatekeeper.server.caller import require_caller
from gatekeeper.server.metrics import CONTENT_TYPE, render

router = APIRouter()


@router.get("/metrics")
async def scrape(request: Request, _caller: UserInfo = Depends(require_caller)) -> Response:
    """Prometheus text format; rendering reads the store (quota usage), so it runs off the loop."""
    body = await run_in_threadpool(render, request.app.state.metrics_registry)
    return Response(body, media_type=CONTENT_TYPE)
