"""GET /metrics: the Prometheus text of metrics.py's registry, for the --metrics-readers."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from gatekeeper.server.metrics import CONTENT_TYPE, render


async def scrape(request: Request) -> Response:
    """Prometheus text format; rendering reads the store (quota usage), so it runs off the loop."""
    body = await run_in_threadpool(render, request.app.state.metrics_registry)
    return Response(body, media_type=CONTENT_TYPE)
