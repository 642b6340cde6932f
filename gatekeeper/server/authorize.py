"""POST /authorize: SubjectAccessReview webhook, answered in the version it was sent."""

from __future__ import annotations

from starlette.requests import Request

from gatekeeper.api.authorization import parse_subject_access_review, review_response
from gatekeeper.k8s.fields import InvalidObject
from gatekeeper.server import observe
from gatekeeper.server.body import read_json_object
from gatekeeper.server.responses import JSONResponse, bad_request
from gatekeeper.server.runtime import Runtime


async def authorize(request: Request) -> JSONResponse:
    runtime: Runtime = request.app.state.runtime
    doc = await read_json_object(
        request, runtime.settings.max_request_bytes, runtime.settings.max_json_depth
    )
    try:
        version, attributes = parse_subject_access_review(doc)
    except InvalidObject as exc:
        raise bad_request(f"not a valid SubjectAccessReview: {exc}") from None
    deny_unmatched = runtime.settings.authorization_deny_unmatched
    decision = runtime.policy.current.authorize(attributes, deny_unmatched)
    shadow = runtime.shadow
    if shadow is None:
        observe.authorization(request, attributes, decision)
    else:  # decided again for the metrics and the audit log only: the answer is `decision`'s
        evaluator = shadow.current
        observe.authorization(
            request, attributes, decision, evaluator.authorize(attributes, deny_unmatched),
            evaluator.policy.sha256,
        )
    return JSONResponse(review_response(doc, version, decision))
