"""POST /mutate, /validate, /admit: AdmissionReview webhooks, answered in the version sent."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from gatekeeper.admission.outcome import Outcome
from gatekeeper.admission.request import AdmissionRequest
from gatekeeper.admission.state import Store, StoreError
from gatekeeper.api.admission import parse_admission_review, review_response
from gatekeeper.authn.user import UserInfo
from gatekeeper.k8s.fields import InvalidObject
from gatekeeper.server import observe
from gatekeeper.server.body import RAW_EXTENSIONS, read_json_object
from gatekeeper.server.caller import require_caller
from gatekeeper.server.responses import HTTPError, JSONResponse, bad_request
from gatekeeper.server.runtime import Runtime

router = APIRouter()

Phase = Callable[[AdmissionRequest, Store], Outcome]


@router.post("/mutate")
async def mutate(request: Request, _caller: UserInfo = Depends(require_caller)) -> JSONResponse:
    runtime: Runtime = request.app.state.runtime
    return await _review(request, runtime.admission.chain.mutate, with_patch=True)


@router.post("/validate")
async def validate(request: Request, _caller: UserInfo = Depends(require_caller)) -> JSONResponse:
    runtime: Runtime = request.app.state.runtime
    return await _review(request, runtime.admission.chain.validate, with_patch=False)


@router.post("/admit")
async def admit(request: Request, _caller: UserInfo = Depends(require_caller)) -> JSONResponse:
    runtime: Runtime = request.app.state.runtime
    return await _review(request, runtime.admission.chain.admit, with_patch=True)


async def _review(request: Request, phase: Phase, with_patch: bool) -> JSONResponse:
    runtime: Runtime = request.app.state.runtime
    doc = await read_json_object(
        request, runtime.settings.max_request_bytes, runtime.settings.max_json_depth, RAW_EXTENSIONS
    )
    try:
        version, admission_request = parse_admission_review(doc)
    except InvalidObject as exc:
        raise bad_request(f"not a valid AdmissionReview: {exc}") from None
    problem = runtime.admission.unavailable()
    if problem is not None:  # an HTTP error, so the caller's failurePolicy decides (Fail or Ignore)
        raise HTTPError(503, "ServiceUnavailable", f"admission state is unavailable: {problem}")
    try:  # the store failing, before or inside the chain, is a 503: failurePolicy decides
        store = runtime.admission.request_store()
        if runtime.admission.runs_inline:
            outcome = phase(admission_request, store)
        else:  # a networked store may block for a round trip: keep it off the event loop
            outcome = await run_in_threadpool(phase, admission_request, store)
    except StoreError as exc:
        raise HTTPError(503, "ServiceUnavailable", f"admission state is unavailable: {exc}") from None
    observe.admission(request, admission_request, outcome)
    return JSONResponse(review_response(version, admission_request.uid, outcome, with_patch=with_patch))
