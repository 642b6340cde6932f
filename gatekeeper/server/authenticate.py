"""POST /authenticate: the TokenReview webhook (--authentication-token-webhook-config-file)."""

from __future__ import annotations

from starlette.requests import Request

from gatekeeper.api.authentication import parse_token_review, token_review_response
from gatekeeper.authn.tokenreview import review_token
from gatekeeper.k8s.fields import InvalidObject
from gatekeeper.server import observe
from gatekeeper.server.body import read_json_object
from gatekeeper.server.responses import JSONResponse, bad_request
from gatekeeper.server.runtime import Runtime


async def authenticate(request: Request) -> JSONResponse:
    runtime: Runtime = request.app.state.runtime
    doc = await read_json_object(
        request, runtime.settings.max_request_bytes, runtime.settings.max_json_depth
    )
    try:
        version, token, audiences = parse_token_review(doc)
    except InvalidObject as exc:
        raise bad_request(f"not a valid TokenReview: {exc}") from None
    tokens = runtime.tokens.current if runtime.tokens else None
    result = review_token(tokens, token, audiences, runtime.settings.api_audiences)
    observe.authentication(request, result)
    return JSONResponse(token_review_response(doc, version, result))
