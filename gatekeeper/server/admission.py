"""POST /mutate, /validate, /admit: AdmissionReview webhooks, answered in the version sent."""

from __future__ import annotations

from collections.abc import Callable

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from gatekeeper.admission.outcome import Outcome
from gatekeeper.admission.request import AdmissionRequest
from gatekeeper.admission.state import Store
from gatekeeper.api.admission import parse_admission_review, review_response
from gatekeeper.errors import Unavailable
from gatekeeper.k8s.fields import InvalidObject
from gatekeeper.server import observe
from gatekeeper.server.body import RAW_EXTENSIONS, read_json_object
from gatekeeper.server.responses import JSONResponse, bad_request
from gatekeeper.server.runtime import Runtime

Phase = Callable[[AdmissionRequest, Store], Outcome]


async def mutate(request: Request) -> JSONResponse:
    runtime: Runtime = request.app.state.runtime
    return await _review(request, runtime.admission.chain.mutate, with_patch=True)


async def validate(request: Request) -> JSONResponse:
    runtime: Runtime = request.app.state.runtime
    return await _review(request, runtime.admission.chain.validate, with_patch=False)


async def admit(request: Request) -> JSONResponse:
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
    # A store that fails, here or inside the chain, is the router's 503: failurePolicy decides.
    problem = runtime.admission.unavailable()
    if problem is not None:
        raise Unavailable(problem)
    store = runtime.admission.request_store()
    if runtime.admission.runs_inline:
        outcome = phase(admission_request, store)
    else:  # a networked store may block for a round trip: keep it off the event loop
        outcome = await run_in_threadpool(phase, admission_request, store)
    observe.admission(request, admission_request, outcome)
    return JSONResponse(review_response(version, admission_request.uid, outcome, with_patch=with_patch))
