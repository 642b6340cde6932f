"""GET /quota: every ResourceQuota with the hard it enforces and its current usage, per namespace."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from gatekeeper.admission.quota_usage import with_usage
from gatekeeper.admission.state import StoreError
from gatekeeper.authn.user import UserInfo
from gatekeeper.server.caller import require_caller
from gatekeeper.server.responses import HTTPError, JSONResponse
from gatekeeper.server.runtime import Runtime

router = APIRouter()


@router.get("/quota")
async def quota(
    request: Request, namespace: str | None = None, _caller: UserInfo = Depends(require_caller)
) -> JSONResponse:
    """A ResourceQuotaList; `?namespace=NS` narrows it to one namespace."""
    runtime: Runtime = request.app.state.runtime
    try:
        items = await run_in_threadpool(with_usage, runtime.admission.store, namespace)
    except StoreError as exc:
        raise HTTPError(503, "ServiceUnavailable", f"quota usage is unavailable: {exc}") from None
    return JSONResponse({"apiVersion": "v1", "kind": "ResourceQuotaList", "metadata": {}, "items": items})
